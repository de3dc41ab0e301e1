"""dask and xarray: fa.NAME and fa.NAME_backward hand them the activation's ufunc through
NumPy's __array_ufunc__ protocol, so a dask array stays lazy and a DataArray keeps its
coordinates. Skipped when dask or xarray is not installed (pip install 'fastact[dask]')."""

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
