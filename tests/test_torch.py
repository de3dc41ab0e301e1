"""Agreement with PyTorch's CPU activations and autograd, where PyTorch is installed."""

from __future__ import annotations

import numpy as np
import pytest

import fastact as fa

from .conftest import CASES
from .references import REFERENCES, sample, ulp_distance

torch = pytest.importorskip("torch")
F = torch.nn.functional

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_forward_and_autograd_match_pytorch(name, params, dtype):
    x = sample(dtype, 3000, seed=12)
    x = x[np.isfinite(x) | np.isnan(x)]
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = getattr(F, name)(t, *params)  # the contract: torch.nn.functional's names and parameters
    (gt,) = torch.autograd.grad(yt.sum(), t)
    bound = REFERENCES[name].max_ulp[np.dtype(dtype).name] + 1  # PyTorch's own vector math
    assert np.all(ulp_distance(fa.__dict__[name](x, *params), yt.detach().numpy()) <= bound)
    got = fa.__dict__[f"{name}_backward"](np.ones_like(x), x, *params)
    assert np.all(ulp_distance(got, gt.numpy()) <= bound)


@pytest.mark.parametrize("axis_shape", [((2, 3, 4), 3), ((5,), 1), ((4, 3), 3)])
def test_prelu_matches_pytorch(axis_shape):
    shape, c = axis_shape
    x = np.random.default_rng(0).normal(size=shape)
    w = np.linspace(0.1, 0.5, c)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    tw = torch.from_numpy(w.copy()).requires_grad_(True)
    yt = F.prelu(t, tw)
    g = np.random.default_rng(1).normal(size=shape)
    gx_t, gw_t = torch.autograd.grad(yt, (t, tw), grad_outputs=torch.from_numpy(g))
    np.testing.assert_array_equal(fa.prelu(x, w), yt.detach().numpy())
    gx, gw = fa.prelu_backward(g, x, w)
    np.testing.assert_allclose(gx, gx_t.numpy(), rtol=1e-15)
    np.testing.assert_allclose(gw, gw_t.numpy(), rtol=1e-12)
