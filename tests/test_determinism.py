"""The same call gives the same bits with 1 and with 2 threads, and on the serial and the
parallel path: how the work is split never changes a result (prelu's weight gradient,
a sum, included: its blocks do not depend on the thread count)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import fastact as fa
from fastact import _arrays
from fastact._arrays import PARALLEL_MIN_SIZE

from .conftest import FIRST_CASES
from .references import sample

N = 3 * PARALLEL_MIN_SIZE + 17


def bits(result):
    parts = result if isinstance(result, tuple) else (result,)
    return [np.ascontiguousarray(p).view(f"u{p.dtype.itemsize}").copy() for p in parts]


def assert_same_bits(a, b, what):
    for p, q in zip(bits(a), bits(b), strict=True):
        assert p.shape == q.shape
        diff = np.flatnonzero(p.ravel() != q.ravel())
        assert diff.size == 0, f"{what}: {diff.size} elements differ, first at {diff[0]}"


def variants(call, monkeypatch):
    """call() with 2 threads (the parallel kernels), with 1 thread, and on the serial path."""
    two = call()
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = call()
    finally:
        numba.set_num_threads(before)
    with monkeypatch.context() as m:
        for key in _arrays.PARALLEL_MIN_SIZES:
            m.setitem(_arrays.PARALLEL_MIN_SIZES, key, 1 << 62)
        serial = call()
    return two, one, serial


def check(call, monkeypatch, what):
    two, one, serial = variants(call, monkeypatch)
    assert_same_bits(two, one, f"{what}: 2 threads vs 1")
    assert_same_bits(two, serial, f"{what}: parallel vs serial")


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_elementwise(name, params, dtype, monkeypatch):
    f, b = getattr(fa, name), getattr(fa, f"{name}_backward")
    x = sample(dtype, N, seed=12)[:N]
    g = np.random.default_rng(13).normal(size=N).astype(dtype)
    check(lambda: f(x, *params), monkeypatch, f"{name} forward")
    check(lambda: b(g, x, *params), monkeypatch, f"{name} backward")
    # not flat: the row kernels in parallel, numba's ufunc loop below the crossover
    x2, g2 = x[: N - N % 64].reshape(-1, 64)[:, 1:], g[: N - N % 64].reshape(-1, 64)[:, 1:]
    check(lambda: f(x2, *params), monkeypatch, f"{name} forward, strided rows")
    check(lambda: b(g2, x2, *params), monkeypatch, f"{name} backward, strided rows")


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [((N // 64, 64), -1), ((16, N // 16), 0)], ids=["rows", "columns"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "sparsemax"])
def test_rowwise(name, shape, axis, dtype, monkeypatch):
    f, b = getattr(fa, name), getattr(fa, f"{name}_backward")
    rng = np.random.default_rng(14)
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    y = f(x, axis=axis)
    check(lambda: f(x, axis=axis), monkeypatch, f"{name} forward, axis {axis}")
    check(lambda: b(g, y=y, axis=axis), monkeypatch, f"{name} backward, axis {axis}")


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "nweight"), [((2, 3, N // 6), 3), ((N // 4, 4), 4), ((N,), 1)])
def test_prelu(shape, nweight, dtype, monkeypatch):
    rng = np.random.default_rng(15)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w = np.linspace(-0.5, 0.5, nweight).astype(dtype)
    check(lambda: fa.prelu(x, w), monkeypatch, "prelu forward")
    check(lambda: fa.prelu_backward(g, x, w), monkeypatch, "prelu backward (grad_x, grad_weight)")
