"""Agreement with PyTorch's CPU activations and autograd, where PyTorch is installed."""

from __future__ import annotations

import numpy as np
import pytest

import fastact as fa

from .conftest import CASES, torch_function
from .references import REFERENCES, sample, ulp_distance

torch = pytest.importorskip("torch")
F = torch.nn.functional

def _agree(name, got, want, x):
    """Within the reference bound plus PyTorch's own error (its vector math, and formulas
    such as 0.5 x (1 + tanh(u)) that lose accuracy where fastact's do not), or within a few
    eps of the scale |f| + |x f'| + 1 that rounding x itself moves the result by."""
    eps = float(np.finfo(x.dtype).eps)
    if name == "hardsigmoid" and x.dtype == np.float64:
        eps = float(np.finfo(np.float32).eps)  # PyTorch's float64 backward uses float32's 1/6 (FACTS.md)
    bound = REFERENCES[name].max_ulp[np.dtype(x.dtype).name] + 2
    with np.errstate(all="ignore"):
        x64 = np.abs(x.astype(np.float64))
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        scale = (1 + x64) * (1 + np.abs(want.astype(np.float64)) * (1 + x64**3))
    ok = (ulp_distance(got, want) <= bound) | (err <= 8 * eps * scale)
    # where PyTorch's formula overflows to nan for large finite |x| (softplus' gradient,
    # exp(x) / (exp(x) + 1)), fastact gives the limit
    return ok | (np.isnan(want) & ~np.isnan(got) & (x64 > 10))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_forward_and_autograd_match_pytorch(name, params, dtype):
    x = sample(dtype, 3000, seed=12)
    x = x[np.isfinite(x) | np.isnan(x)]  # PyTorch gives nan for some limits at +-inf (silu(-inf))
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    # the contract: torch.nn.functional's names and parameters
    kwargs = {"approximate": params[0]} if name == "gelu" and params else {}
    positional = () if kwargs else params
    yt = torch_function(F, name)(t, *positional, **kwargs)
    (gt,) = torch.autograd.grad(yt.sum(), t)
    y = fa.__dict__[name](x, *params)
    ok = _agree(name, y, yt.detach().numpy(), x)
    assert ok.all(), f"forward: x={x[~ok][:4]}, fastact {y[~ok][:4]}, torch {yt.detach().numpy()[~ok][:4]}"
    got = fa.__dict__[f"{name}_backward"](np.ones_like(x), x, *params)
    # at NaN PyTorch's gradients differ between its vectorised and scalar paths
    finite = ~np.isnan(x)
    got, want, x = got[finite], gt.numpy()[finite], x[finite]
    ok = _agree(name, got, want, x)
    assert ok.all(), f"backward: x={x[~ok][:4]}, fastact {got[~ok][:4]}, torch {want[~ok][:4]}"


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
