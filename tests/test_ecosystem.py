"""dask and xarray: fa.NAME and fa.NAME_backward hand them the activation's ufunc through
NumPy's __array_ufunc__ protocol (softmax, log_softmax and prelu run per block of whole
rows or channels), so a dask array stays lazy and a DataArray keeps its coordinates; a
dask.distributed cluster of processes runs them. Skipped when dask or xarray is not
installed (pip install 'fastact[dask]')."""

from __future__ import annotations

import numpy as np
import pytest

import fastact as fa

da = pytest.importorskip("dask.array")

X = np.random.default_rng(0).normal(size=(300, 40)).astype(np.float32) * 3
G = np.random.default_rng(1).normal(size=X.shape).astype(np.float32)


def test_dask_stays_lazy_and_matches():
    d, dg = da.from_array(X, chunks=(64, 40)), da.from_array(G, chunks=(64, 40))
    y = fa.gelu(d, approximate="tanh")
    gx = fa.elu_backward(dg, d, 0.5)
    gy = fa.sigmoid_backward(dg, y=fa.sigmoid(d))
    for lazy in (y, gx, gy):
        assert isinstance(lazy, da.Array) and lazy.chunks == d.chunks
    np.testing.assert_array_equal(y.compute(), fa.gelu(X, approximate="tanh"))
    np.testing.assert_array_equal(gx.compute(), fa.elu_backward(G, X, 0.5))
    np.testing.assert_array_equal(gy.compute(), fa.sigmoid_backward(G, y=fa.sigmoid(X)))
    assert y.dtype == np.float32


def test_dask_and_xarray_run_the_kernels_per_block_not_the_ufunc(monkeypatch):
    """map_blocks of fastact's own function (its vectorised kernels), not numba's generic
    ufunc loop: the ufunc path is made to fail, and the results are still fastact's."""
    from fastact import _elementwise

    def no_ufunc(*args, **kwargs):
        raise AssertionError("went through the ufunc")

    monkeypatch.setattr(_elementwise, "_deferred", no_ufunc)
    xr = pytest.importorskip("xarray")
    d, dg = da.from_array(X, chunks=(64, 40)), da.from_array(G, chunks=(100, 20))  # g chunked otherwise
    results = [
        (fa.gelu(d, approximate="tanh"), fa.gelu(X, approximate="tanh")),
        (fa.elu_backward(dg, d, 0.5), fa.elu_backward(G, X, 0.5)),
        (fa.elu_backward(G, d, alpha=0.5), fa.elu_backward(G, X, 0.5)),  # one of them NumPy
        (fa.sigmoid_backward(dg, y=fa.sigmoid(d)), fa.sigmoid_backward(G, y=fa.sigmoid(X))),
        (fa.threshold(d, 0.1, 20.0), fa.threshold(X, 0.1, 20.0)),
    ]
    for lazy, want in results:
        assert isinstance(lazy, da.Array) and lazy.chunks == d.chunks
        np.testing.assert_array_equal(lazy.compute(), want)
    arr = xr.DataArray(X, dims=("sample", "feature"), attrs={"units": "V"})
    for y in (fa.silu(arr), fa.silu(arr.chunk({"sample": 100}))):
        assert isinstance(y, xr.DataArray) and y.dims == arr.dims and y.attrs == arr.attrs
        np.testing.assert_array_equal(np.asarray(y.values), fa.silu(X))


def test_parameters_are_checked_before_anything_is_deferred():
    d = da.from_array(X, chunks=64)
    with pytest.raises(ValueError, match=r"elu.*alpha"):
        fa.elu(d, alpha=float("nan"))
    with pytest.raises(ValueError, match=r"gelu.*approximate"):
        fa.gelu(d, approximate="fast")
    with pytest.raises(TypeError, match=r"threshold.*missing"):
        fa.threshold(d)
    with pytest.raises(TypeError, match="y="):
        fa.gelu_backward(d, y=d)


X3 = np.random.default_rng(2).normal(size=(50, 6, 7)).astype(np.float32) * 3
G3 = np.random.default_rng(3).normal(size=X3.shape).astype(np.float32)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "sparsemax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_on_dask_whole_rows_per_block(name, axis):
    d, dg = da.from_array(X3, chunks=(10, 3, 4)), da.from_array(G3, chunks=(7, 2, 7))
    forward, backward = getattr(fa, name), getattr(fa, f"{name}_backward")
    y = forward(d, axis=axis)
    from_y, from_x = backward(dg, y=y, axis=axis), backward(dg, d, axis=axis)
    for lazy in (y, from_y, from_x):
        assert isinstance(lazy, da.Array) and lazy.dtype == np.float32
    # each block holds whole rows, so the blocks give exactly the in-memory result
    want = forward(X3, axis=axis)
    np.testing.assert_array_equal(y.compute(), want)
    np.testing.assert_array_equal(from_y.compute(), backward(G3, y=want, axis=axis))
    np.testing.assert_array_equal(from_x.compute(), backward(G3, X3, axis=axis))


M3 = np.random.default_rng(4).random(X3.shape) > 0.3
M3[3] = False  # all of n=3 masked: its rows along axes 1 and 2 have nothing unmasked


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin", "sparsemax"])
@pytest.mark.parametrize("axis", [0, 2])
def test_masked_rowwise_on_dask(name, axis):
    d, dg = da.from_array(X3, chunks=(10, 3, 4)), da.from_array(G3, chunks=(7, 2, 7))
    forward, backward = getattr(fa, name), getattr(fa, f"{name}_backward")
    want = forward(X3, axis=axis, where=M3)
    # a dask mask of other chunks, a NumPy mask, and a mask that broadcasts
    for mask in (da.from_array(M3, chunks=(25, 6, 2)), M3):
        y = forward(d, axis=axis, where=mask)
        assert isinstance(y, da.Array) and y.dtype == np.float32
        np.testing.assert_array_equal(y.compute(), want)
        from_x, from_y = backward(dg, d, axis=axis, where=mask), backward(G3, y=y, axis=axis, where=mask)
        np.testing.assert_array_equal(from_x.compute(), backward(G3, X3, axis=axis, where=M3))
        np.testing.assert_array_equal(from_y.compute(), backward(G3, y=want, axis=axis, where=M3))
    # a NumPy x with a dask mask is lazy too
    assert isinstance(forward(X3, axis=axis, where=da.from_array(M3)), da.Array)
    row = M3[:1, :1, :]
    np.testing.assert_array_equal(forward(d, axis=axis, where=row).compute(), forward(X3, axis=axis, where=row))
    with pytest.raises(ValueError, match=f"{name}: where has shape"):
        forward(d, where=M3[:5])
    with pytest.raises(TypeError, match=f"{name}: where must be an array of booleans"):
        forward(d, where=da.from_array(M3.astype(np.float32)))


@pytest.mark.parametrize("axis", [None, 0, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_masked_logsumexp_on_dask(axis, keepdims):
    d = da.from_array(X3, chunks=(10, 3, 4))
    mask = da.from_array(M3, chunks=(7, 6, 3))
    want = fa.logsumexp(X3, axis=axis, keepdims=keepdims, where=M3)
    got = fa.logsumexp(d, axis=axis, keepdims=keepdims, where=mask)
    assert isinstance(got, da.Array)
    np.testing.assert_allclose(got.compute(), want, rtol=2e-7)  # whole reduced axes per block: the same sums
    g = np.random.default_rng(5).normal(size=np.shape(want)).astype(np.float32)
    grad = fa.logsumexp_backward(g, d, axis=axis, keepdims=keepdims, where=mask)
    assert isinstance(grad, da.Array)
    np.testing.assert_allclose(grad.compute(), fa.logsumexp_backward(g, X3, axis=axis, keepdims=keepdims, where=M3),
                               rtol=2e-7, atol=1e-30)


def test_masked_on_xarray_aligns_the_mask_by_name():
    xr = pytest.importorskip("xarray")
    x = xr.DataArray(X3, dims=("n", "c", "t"), coords={"n": np.arange(50)}, attrs={"units": "logit"})
    # the mask's dimensions in another order, one of them missing (broadcast along it)
    mask = xr.DataArray(M3[0].T, dims=("t", "c"))
    aligned = np.broadcast_to(M3[0], X3.shape)
    for data in (x, x.chunk({"n": 10})):
        y = fa.softmax(data, axis=1, where=mask)
        assert isinstance(y, xr.DataArray) and y.dims == x.dims and y.attrs == x.attrs
        np.testing.assert_array_equal(y.values, fa.softmax(X3, axis=1, where=aligned))
        g = fa.softmax_backward(G3, data, axis=1, where=mask)
        np.testing.assert_array_equal(np.asarray(g), fa.softmax_backward(G3, X3, axis=1, where=aligned))
        lse = fa.logsumexp(data, axis=2, where=mask)
        assert lse.dims == ("n", "c")
        np.testing.assert_allclose(lse.values, fa.logsumexp(X3, axis=2, where=aligned), rtol=2e-7)


@pytest.mark.parametrize(("weight", "axis"), [
    (np.linspace(0.1, 0.6, 6, dtype=np.float32), 1),
    (np.float32([0.2]), 1),
    (np.linspace(0.1, 0.6, 7), 2),
])
def test_prelu_on_dask(weight, axis):
    d, dg = da.from_array(X3, chunks=(10, 3, 4)), da.from_array(G3, chunks=(7, 2, 7))
    y = fa.prelu(d, weight, axis=axis)
    gx, gw = fa.prelu_backward(dg, d, weight, axis=axis)
    assert isinstance(y, da.Array) and isinstance(gx, da.Array) and isinstance(gw, da.Array)
    np.testing.assert_array_equal(y.compute(), fa.prelu(X3, weight, axis=axis))
    want_x, want_w = fa.prelu_backward(G3, X3, weight, axis=axis)
    np.testing.assert_array_equal(gx.compute(), want_x)
    assert gw.shape == weight.shape and gw.dtype == weight.dtype
    # float64 sums per block, added up: against the exact sum, as tight as in memory
    mask = np.moveaxis(X3, axis, -1) < 0
    terms = np.moveaxis(G3.astype(np.float64) * X3, axis, -1)
    exact = np.where(mask, terms, 0).reshape(-1, X3.shape[axis]).sum(axis=0)
    if weight.size == 1:
        exact = exact.sum(keepdims=True)
    eps = float(np.finfo(weight.dtype).eps)
    np.testing.assert_allclose(gw.compute(), exact, rtol=eps, atol=eps * np.abs(terms).sum())
    np.testing.assert_allclose(want_w, exact, rtol=eps, atol=eps * np.abs(terms).sum())


def test_rowwise_and_prelu_checks_come_first():
    d = da.from_array(X3, chunks=10)
    with pytest.raises(ValueError, match="weight"):
        fa.prelu(d, np.ones(5))
    with pytest.raises(ValueError, match="grad_output"):
        fa.prelu_backward(d[:10], d, np.ones(6))
    with pytest.raises(np.exceptions.AxisError, match="softmax"):
        fa.softmax(d, axis=3)
    with pytest.raises(TypeError, match="complex"):
        fa.log_softmax(d.astype(np.complex64))
    with pytest.raises(TypeError, match="out="):
        fa.softmax(d, out=np.empty(X3.shape, np.float32))


def test_xarray_keeps_coordinates():
    xr = pytest.importorskip("xarray")
    arr = xr.DataArray(X, dims=("sample", "feature"),
                       coords={"sample": np.arange(X.shape[0]), "feature": [f"f{i}" for i in range(X.shape[1])]})
    y = fa.leaky_relu(arr, 0.2)
    assert isinstance(y, xr.DataArray) and y.dims == arr.dims
    assert list(y.coords["feature"].values) == list(arr.coords["feature"].values)
    np.testing.assert_array_equal(y.values, fa.leaky_relu(X, 0.2))
    g = fa.leaky_relu_backward(arr.copy(data=G), arr, 0.2)
    assert isinstance(g, xr.DataArray)
    np.testing.assert_array_equal(g.values, fa.leaky_relu_backward(G, X, 0.2))
    lazy = fa.silu(arr.chunk({"sample": 100}))  # dask-backed: still lazy
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_array_equal(lazy.compute().values, fa.silu(X))
    for result in (fa.softmax(arr, axis=0), fa.log_softmax_backward(arr, y=arr, axis=1),
                   fa.prelu(arr.chunk({"sample": 100}), np.full(X.shape[1], 0.1, np.float32)),
                   fa.prelu_backward(arr, arr, [0.3])[0]):
        assert isinstance(result, xr.DataArray) and result.dims == arr.dims
        assert list(result.coords["feature"].values) == list(arr.coords["feature"].values)
    np.testing.assert_array_equal(fa.softmax(arr, axis=0).values, fa.softmax(X, axis=0))


def _silu_errors(y, gx, x, g):
    """Per block: the largest relative errors of silu and its gradient against float64."""
    x64 = x.astype(np.float64)
    s = 1 / (1 + np.exp(-x64))
    forward = np.abs(y - x64 * s) / (np.abs(x64 * s) + 1e-300)
    # relative to the gradient's condition, not its value (it crosses 0 near x = -1.28)
    backward = np.abs(gx - g * s * (1 + x64 * (1 - s))) / (np.abs(g) * (s + np.abs(x64) * s * (1 - s)) + 1e-300)
    return np.array([[forward.max(), backward.max()]])


def test_local_cluster_processes_an_array_larger_than_a_workers_memory():
    """Two worker processes with 512 MiB each stream a 768 MiB array through silu and its
    backward: the functions travel to the workers pickled, each block is computed and
    checked where it lives, and only the errors come back."""
    distributed = pytest.importorskip("dask.distributed")
    limit = 512 * 2**20
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=limit,
                                 dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):
        rows = (3 * limit // 2) // (4 << 20)  # one row of 2^20 float32 per chunk
        x = da.random.default_rng(0).standard_normal((rows, 1 << 20), chunks=(1, 1 << 20), dtype=np.float32) * 4
        g = da.random.default_rng(1).standard_normal(x.shape, chunks=x.chunks, dtype=np.float32)
        assert x.nbytes > limit
        y, gx = fa.silu(x), fa.silu_backward(g, x)
        assert isinstance(y, da.Array) and isinstance(gx, da.Array)
        errors = da.map_blocks(_silu_errors, y, gx, x, g, dtype=np.float64, chunks=(1, 2)).max(axis=0).compute()
    eps = float(np.finfo(np.float32).eps)
    assert errors[0] <= 4 * eps and errors[1] <= 8 * eps, errors
