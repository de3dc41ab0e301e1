"""logsumexp against the mpmath reference of tests/references.py: any axes, layouts,
keepdims, special values, long rows (the parallel pieces), the backward, dask, xarray and
fastact.torch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastact as fa
from fastact._arrays import PARALLEL_MIN_SIZE

from .conftest import Guard
from .dense import bit_grid, edge_grids
from .references import logsumexp_reference, ulp_distance

DTYPES = [np.float32, np.float64]


def assert_close(got, x, axis=None, keepdims=False):
    """Within 2 ulp, or (the float64 sum of n exponentials, each within an ulp, has a
    relative error up to (n + 2) eps, which log turns into an absolute one) within that."""
    want = logsumexp_reference(x, axis, keepdims)
    got = np.asarray(got)
    dt = got.dtype
    n = x.size // max(want.size, 1)
    with np.errstate(all="ignore"):
        ok = ulp_distance(got, want.astype(dt)) <= 2
        ok |= np.abs(got.astype(np.float64) - want) <= (n + 2) * float(np.finfo(dt).eps) + 2 * float(
            np.finfo(dt).eps) * np.abs(want)
    assert ok.all(), f"{got[~ok][:4]} where the reference is {want[~ok][:4]}"


RNG = np.random.default_rng(7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_grids(dtype, no_warnings):
    """The README's bound on dense grids (tests/dense.py, thinned for mpmath): rows (0, t),
    (t, t) and (t, 1 - t), t a stride through every binade's bit patterns and linear grids
    where the result underflows (log(1 + e^t) for t << 0) or cancels."""
    t = np.concatenate([bit_grid(dtype, 3000)[:: 40 if dtype == np.float32 else 1], edge_grids(dtype)[::10]])
    for x in (np.stack([np.zeros_like(t), t], 1), np.stack([t, t], 1), np.stack([t, 1 - t], 1)):
        assert_close(fa.logsumexp(x, axis=1), x, axis=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, (0, 2), (1, 2), ()])
@pytest.mark.parametrize("keepdims", [False, True])
def test_values_any_axes(axis, keepdims, dtype, no_warnings):
    x = (RNG.standard_normal((4, 5, 6)) * 10).astype(dtype)
    for layout in (x, np.asfortranarray(x), x[::-1, :, ::2].repeat(2, axis=2)):
        got = fa.logsumexp(layout, axis=axis, keepdims=keepdims)
        assert np.shape(got) == np.shape(logsumexp_reference(layout, axis, keepdims))
        assert np.asarray(got).dtype == dtype
        assert_close(got, layout, axis, keepdims)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scales_special_values_and_empty(dtype, no_warnings):
    inf, nan = np.inf, np.nan
    x = np.array([[1e3, 0.0, -1e3], [-inf, 0.0, 1.0], [inf, 0.0, 1.0], [-inf, -inf, -inf], [nan, 0.0, 1.0],
                  [inf, nan, 0.0], [-inf, nan, -inf], [30.0, 30.0, 30.0], [-1e30, -1e30, 5.0]], dtype=dtype)
    got = fa.logsumexp(x, axis=1)
    want = logsumexp_reference(x, 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert_close(got, x, 1)
    assert_close(fa.logsumexp(x.T.copy(), axis=0), x, 1)  # the columns loop
    assert fa.logsumexp(np.zeros((3, 0)), axis=1).tolist() == [-inf] * 3
    assert fa.logsumexp(np.float32(2.5)) == np.float32(2.5)
    assert isinstance(fa.logsumexp([1.0, 2.0]), np.float64)
    assert fa.logsumexp(np.arange(4, dtype=np.int16)).dtype == np.float32


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_rows_in_parallel_pieces(dtype):
    n = 2 * PARALLEL_MIN_SIZE + 37  # pieces and a remainder
    x = (RNG.standard_normal(n) * 5).astype(dtype)
    assert_close(fa.logsumexp(x), x)
    x[n // 3] = 100.0  # one element that dominates
    assert_close(fa.logsumexp(x), x)
    rows = (RNG.standard_normal((3, n // 3)) * 3).astype(dtype)
    assert_close(fa.logsumexp(rows, axis=1), rows, 1)
    assert_close(fa.logsumexp(rows, axis=0), rows, 0)
    x[5] = np.nan
    assert np.isnan(fa.logsumexp(x))
    x[5] = np.inf
    assert fa.logsumexp(x) == np.inf


def assert_backward_close(got, g, x, axis=None):
    """got against g * exp(x - logsumexp(x)) of the reference, within the README's bound."""
    dtype = got.dtype
    y = logsumexp_reference(x, axis, keepdims=True)
    want = np.reshape(g, y.shape) * np.exp(x.astype(np.float64) - y)
    # the reference's own x - y is rounded: exp magnifies that by |x - y|; and the row's
    # float64 sum of n exponentials is within (n + 2) eps of float64 (what the forward allows)
    eps, tiny = float(np.finfo(dtype).eps), float(np.finfo(dtype).tiny)
    n = x.size // max(np.size(y), 1)
    with np.errstate(invalid="ignore"):  # x = -inf: want 0, and 0 * inf in the bound
        bound = (8 + np.abs(x.astype(np.float64) - y)) * eps * np.abs(want) + (n + 2) * 2.0**-52 * np.abs(want) \
            + 8 * tiny
        ok = (np.abs(got - want) <= bound) | (got == want)
    assert ok.all()


def _check_backward(x, axis, dtype):
    g = RNG.standard_normal(np.shape(logsumexp_reference(x, axis))).astype(dtype)
    got = fa.logsumexp_backward(g, x, axis=axis)
    assert got.shape == x.shape and got.dtype == dtype
    assert_backward_close(got, g, x, axis)
    out = np.full_like(x, 7.0, order="F" if np.isfortran(x) else "C")
    assert fa.logsumexp_backward(g, x, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_layouts_and_long_rows(dtype):
    x = (RNG.standard_normal((6, 8, 10)) * 3).astype(dtype)
    for layout in (x, np.asfortranarray(x), x[:, ::2]):
        for axis in (0, 1, 2, (0, 1), None):
            _check_backward(layout, axis, dtype)
    long = (RNG.standard_normal(2 * PARALLEL_MIN_SIZE + 37) * 4).astype(dtype)
    _check_backward(long, None, dtype)
    _check_backward(long.reshape(1, -1), 1, dtype)
    _check_backward(long[:-37].reshape(-1, 4), 0, dtype)  # columns, in parallel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [None, 1, (0, 2)])
def test_backward_is_grad_times_softmax(axis, dtype):
    x = (RNG.standard_normal((3, 4, 5)) * 3).astype(dtype)
    y = logsumexp_reference(x, axis, keepdims=True)
    g = RNG.standard_normal(np.shape(logsumexp_reference(x, axis))).astype(dtype)
    got = fa.logsumexp_backward(g, x, axis=axis)
    assert got.shape == x.shape and got.dtype == dtype
    want = np.reshape(g, y.shape) * np.exp(x.astype(np.float64) - y)
    bound = (8 + np.abs(x.astype(np.float64) - y)) * float(np.finfo(dtype).eps) * np.abs(want)
    assert (np.abs(got - want) <= bound + 8 * float(np.finfo(dtype).tiny)).all()
    keep = fa.logsumexp_backward(np.reshape(g, y.shape), x, axis=axis, keepdims=True)
    np.testing.assert_array_equal(keep, got)
    out = np.empty_like(x)
    assert fa.logsumexp_backward(g, x, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, got)


def test_bad_input_raises_before_writing():
    x = np.ones((3, 4))
    out = np.full(3, 7.0)
    guard = Guard(x, out)
    with pytest.raises(np.exceptions.AxisError, match="logsumexp"):
        fa.logsumexp(x, axis=2)
    with pytest.raises(ValueError, match=r"logsumexp: axis .* repeats an axis"):
        fa.logsumexp(x, axis=(1, -1))
    with pytest.raises(TypeError, match="logsumexp: axis must be"):
        fa.logsumexp(x, axis=1.5)
    with pytest.raises(ValueError, match="out has shape"):
        fa.logsumexp(x, axis=0, out=out)
    with pytest.raises(TypeError, match="logsumexp: x has dtype complex128"):
        fa.logsumexp(x.astype(complex))
    with pytest.raises(TypeError, match="logsumexp_backward: the derivative of logsumexp cannot be computed from"):
        fa.logsumexp_backward(np.ones(3), y=np.ones(3), axis=1)
    with pytest.raises(ValueError, match="logsumexp_backward: grad_output has shape"):
        fa.logsumexp_backward(np.ones(4), x, axis=1)
    guard.check()


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), data=st.data(),
       dtype=st.sampled_from(DTYPES), scale=st.sampled_from([0.1, 3.0, 100.0]))
def test_any_shape(shape, data, dtype, scale):
    ndim = len(shape)
    axes = data.draw(st.sets(st.integers(0, ndim - 1)))
    axis = None if not axes or data.draw(st.booleans()) else tuple(sorted(axes))
    x = (np.random.default_rng(len(shape)).standard_normal(shape) * scale).astype(dtype)
    assert_close(fa.logsumexp(x, axis=axis), x, axis)


def test_dask_xarray_and_torch():
    x = RNG.standard_normal((6, 8))
    da = pytest.importorskip("dask.array")
    d = da.from_array(x, chunks=(2, 3))
    for axis in (None, 0, 1):
        lazy = fa.logsumexp(d, axis=axis)
        assert isinstance(lazy, da.Array)
        np.testing.assert_array_equal(lazy.compute(), fa.logsumexp(x, axis=axis))
    g = np.ones(6)
    np.testing.assert_array_equal(fa.logsumexp_backward(da.from_array(g, chunks=2), d, axis=1).compute(),
                                  fa.logsumexp_backward(g, x, axis=1))
    xr = pytest.importorskip("xarray")
    arr = xr.DataArray(x, dims=("batch", "feature"), coords={"batch": np.arange(6)})
    got = fa.logsumexp(arr, axis=1)
    assert isinstance(got, xr.DataArray) and got.dims == ("batch",)
    np.testing.assert_array_equal(got.values, fa.logsumexp(x, axis=1))
    torch = pytest.importorskip("torch")
    import fastact.torch as ft

    t = torch.tensor(x, requires_grad=True)
    for dim, keep in ((1, False), ((0, 1), True), (0, False)):
        torch.testing.assert_close(ft.logsumexp(t, dim, keep), torch.logsumexp(t, dim, keep))
        (a,) = torch.autograd.grad(ft.logsumexp(t, dim, keep).sum(), t)
        (b,) = torch.autograd.grad(torch.logsumexp(t, dim, keep).sum(), t)
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradgradcheck(lambda u: ft.logsumexp(u, 1), (t[:3, :4].detach().clone().requires_grad_(),))
    torch.testing.assert_close(ft.LogSumExp(1)(t), torch.logsumexp(t, 1))
    compiled = torch.compile(lambda u: ft.logsumexp(u, -1), fullgraph=True)
    torch.testing.assert_close(compiled(t), torch.logsumexp(t, -1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_where_masks_elements_out(axis, dtype, no_warnings):
    x = (RNG.standard_normal((5, 6)) * 3).astype(dtype)
    mask = RNG.random((5, 6)) < 0.5
    mask[1, :] = False
    mask[:, 4] = False
    got = fa.logsumexp(x, axis=axis, where=mask)
    assert_close(got, np.where(mask, x, -np.inf), axis)
    g = np.ones(np.shape(got), dtype)
    gx = fa.logsumexp_backward(g, x, axis=axis, where=mask)
    assert (gx[~mask] == 0).all() and np.isfinite(gx).all()
    want = np.where(mask, fa.logsumexp_backward(g, np.where(mask, x, -np.inf), axis=axis), 0)
    np.testing.assert_allclose(gx, np.nan_to_num(want), rtol=4 * np.finfo(dtype).eps)
    assert fa.logsumexp(x, where=np.zeros(x.shape, bool)) == -np.inf
