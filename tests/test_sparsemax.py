"""sparsemax beyond the row-wise table of test_softmax.py: dense grids where the outputs
cancel, ties at the threshold, the sort that finishes a row Michelot's passes leave
unsettled, apply, and fastact.torch. The reference is exact (references.sparsemax_row:
rational arithmetic on the sorted row)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import fastact as fa
from fastact._cache import SOURCE_TOKEN
from fastact._loops_simplex import _simplex_loops

from .references import sparsemax_grad_row, sparsemax_row, ulp_distance
from .test_softmax import assert_backward, assert_forward

DTYPES = [np.float32, np.float64]
RNG = np.random.default_rng(20261201)


def exact(x: np.ndarray) -> np.ndarray:
    return np.array([sparsemax_row(row) for row in x.reshape(-1, x.shape[-1])]).reshape(x.shape)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_grid_where_an_element_joins_the_support(dtype):
    """Rows (a, t) and (a, b, t) with t on a dense linear grid across the point where it
    joins the support (t = a - 1, and for three elements t = (a + b - 1) / 2), where the
    output x - tau cancels down to 0: float32 within 1 ulp of the exact value, float64
    within 1 ulp or half an eps (test_softmax.SPARSEMAX_ABS_EPS) absolute."""
    eps = float(np.finfo(dtype).eps)
    rows = []
    for a in (0.0, 0.75, -3.5, 100.0):
        for centre in (a - 1.0, (a + (a - 0.25) - 1.0) / 2):
            span = 64 * eps * max(1.0, abs(centre))
            t = np.linspace(centre - span, centre + span, 513).astype(dtype)
            rows.append(np.stack([np.full_like(t, a), t], axis=1))
            rows.append(np.stack([np.full_like(t, a), np.full_like(t, a - 0.25), t], axis=1))
    for x in rows:
        x = x.astype(dtype)
        y = fa.sparsemax(x)
        assert_forward("sparsemax", y, x)
        assert (y >= 0).all()
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=4 * eps)
        if dtype == np.float32:  # computed in float64 and rounded once
            assert ulp_distance(y, exact(x).astype(dtype)).max() <= 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_grid_of_bit_patterns(dtype):
    """Each binade's bit patterns strided through (subnormals included) as the second
    element of rows (0.5, t) and (t, -t, 0): right against the exact reference."""
    bits = np.uint32 if dtype == np.float32 else np.uint64
    top = 0x7F800000 if dtype == np.float32 else 0x7FF0000000000000
    pattern = np.arange(0, top, top // 20011, dtype=np.uint64).astype(bits)
    t = pattern.view(dtype)
    t = np.concatenate([t, -t])
    for x in (np.stack([np.full_like(t, 0.5), t], axis=1), np.stack([t, -t, np.zeros_like(t)], axis=1)):
        y = fa.sparsemax(x)
        assert_forward("sparsemax", y, x)
        g = RNG.standard_normal(x.shape).astype(dtype)
        assert_backward("sparsemax", fa.sparsemax_backward(g, y=y), g, y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties(dtype):
    """An element at the threshold gets 0 and is off the support (the entmax libraries'
    y > 0); tied maxima share the mass."""
    x = np.array([[1.0, 0.0, 0.0], [2.0, 2.0, 0.0], [0.5, 0.5, 0.5], [3.0, 2.0, 2.0], [0.0, 0.0, -1.0]], dtype)
    y = fa.sparsemax(x)
    want = np.array([[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [1, 0, 0], [0.5, 0.5, 0]], dtype)
    np.testing.assert_array_equal(y, want)
    g = np.array([[1.0, 2.0, 3.0]] * 5, dtype)
    gx = fa.sparsemax_backward(g, y=y)
    want_g = np.array([[0, 0, 0], [-0.5, 0.5, 0], [-1, 0, 1], [0, 0, 0], [-0.5, 0.5, 0]], dtype)
    np.testing.assert_allclose(gx, want_g, atol=4 * np.finfo(dtype).eps)
    assert (gx[y == 0] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("passes", [1, 2])
def test_the_sort_finishes_what_michelots_passes_leave(passes, dtype):
    """The loops compiled to stop Michelot's method after one or two passes (the package
    takes 32, which these rows never need) and sort what is left: rows and columns
    forms, right against the exact reference."""
    forward, _, forward_columns, _ = (numba.njit(f) for f in _simplex_loops(SOURCE_TOKEN, passes))
    x = (RNG.standard_normal((6, 200)) * np.array([[0.01], [0.1], [0.3], [1], [3], [30]])).astype(dtype)
    x[0, :100] = x[0, 0]  # ties
    out = np.empty_like(x)
    forward(x, out, 2)
    assert_forward("sparsemax", out, x)
    cols = np.ascontiguousarray(x.T).reshape(1, 200, 6)
    out_cols = np.empty_like(cols)
    forward_columns(cols, out_cols, 4)
    assert_forward("sparsemax", out_cols[0], cols[0], axis=0)
    np.testing.assert_allclose(out, fa.sparsemax(x), rtol=0, atol=2 * np.finfo(dtype).eps)


def test_backward_rows_of_no_support_and_nan():
    """A y of zeros only (a row masked out entirely) gives a gradient of 0; a NaN y, NaN."""
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([[0.0, 0.0], [np.nan, np.nan]])
    gx = fa.sparsemax_backward(g, y=y)
    assert (gx[0] == 0).all() and np.isnan(gx[1]).all()
    want, _ = sparsemax_grad_row(g[1], y[1])
    assert np.isnan(want).all()


def test_apply_whole_rows(tmp_path):
    from .test_apply import run, save

    x = (RNG.standard_normal((300, 40)) * 2).astype(np.float32)
    g = RNG.standard_normal(x.shape).astype(np.float32)
    src, grad = save(tmp_path / "x.npy", x), save(tmp_path / "g.npy", g)
    run("sparsemax", src, tmp_path / "y.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), fa.sparsemax(x))
    run("sparsemax", src, tmp_path / "gx.npy", backward=grad)
    np.testing.assert_array_equal(np.load(tmp_path / "gx.npy"), fa.sparsemax_backward(g, x))


# --- fastact.torch ------------------------------------------------------------------------------


def test_torch_module_functional_and_composition():
    """PyTorch has no sparsemax: fastact.torch.sparsemax and Sparsemax(dim) are fastact's;
    a tensor fastact does not compute (here a non-contiguous one) goes through a
    sort-based composition of PyTorch operations, which agrees; the backward is the
    exact gradient, and differentiable again."""
    torch = pytest.importorskip("torch")
    import fastact.torch as ft

    x64 = RNG.standard_normal((5, 9)) * 2
    for dim in (0, 1, -1):
        x = torch.from_numpy(x64).requires_grad_(True)
        y = ft.sparsemax(x, dim=dim)
        np.testing.assert_array_equal(y.detach().numpy(), fa.sparsemax(x64, axis=dim))
        assert_forward("sparsemax", y.detach().numpy(), x64, dim)
        g = torch.from_numpy(RNG.standard_normal(x64.shape))
        (gx,) = torch.autograd.grad(y, x, g)
        assert_backward("sparsemax", gx.numpy(), g.numpy(), y.detach().numpy(), dim)
        assert torch.autograd.gradcheck(lambda t, d=dim: ft.sparsemax(t, dim=d), (x,))
        assert torch.autograd.gradgradcheck(lambda t, d=dim: ft.sparsemax(t, dim=d), (x,))
        strided = torch.from_numpy(np.repeat(x64, 2, axis=1))[:, ::2].requires_grad_(True)
        assert not strided.is_contiguous()
        ys = ft.sparsemax(strided, dim=dim)
        torch.testing.assert_close(ys, y.detach(), rtol=0, atol=1e-15)
        (gs,) = torch.autograd.grad(ys, strided, g)
        torch.testing.assert_close(gs, gx, rtol=0, atol=1e-14)
    module = ft.Sparsemax(dim=0)
    assert module.dim == 0 and repr(module) == "Sparsemax(dim=0)" and ft.Sparsemax().dim == -1
    torch.testing.assert_close(module(torch.from_numpy(x64)), torch.from_numpy(fa.sparsemax(x64, axis=0)))


def test_torch_compile_vmap_and_jacobian():
    torch = pytest.importorskip("torch")
    import fastact.torch as ft

    x = torch.from_numpy((RNG.standard_normal((4, 6)) * 2).astype(np.float32))
    compiled = torch.compile(lambda t: ft.sparsemax(t, dim=-1), fullgraph=True)
    torch.testing.assert_close(compiled(x), ft.sparsemax(x, dim=-1), rtol=0, atol=0)
    batched = torch.func.vmap(lambda t: ft.sparsemax(t, dim=0))(x)
    torch.testing.assert_close(batched, ft.sparsemax(x, dim=1), rtol=0, atol=0)
    row = x[0].double()
    jac = torch.func.jacrev(lambda t: ft.sparsemax(t, dim=0))(row)
    s = (ft.sparsemax(row, dim=0) > 0).double()
    want = torch.diag(s) - torch.outer(s, s) / s.sum()  # the Jacobian: diag(s) - s s^T / |S|
    torch.testing.assert_close(jac, want, rtol=0, atol=1e-15)
