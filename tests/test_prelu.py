"""prelu: one slope per channel along an axis, and its weight gradient summed accurately."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastact as fa
from fastact._arrays import PARALLEL_MIN_SIZE

from .references import REFERENCES, sample, ulp_distance

REF = REFERENCES["prelu"]


def broadcast_weight(w, x, axis):
    if x.ndim < 2 or np.size(w) == 1:
        return float(np.ravel(w)[0]) * np.ones(1)
    shape = [1] * x.ndim
    shape[axis] = -1
    return np.reshape(w, shape)


def _fsum(terms):
    """The correctly rounded sum; where a term is infinite or NaN, what any sum gives
    (math.fsum raises on inf + -inf instead of returning NaN)."""
    terms = np.asarray(terms, np.float64)
    with np.errstate(invalid="ignore"):
        return math.fsum(terms) if np.isfinite(terms).all() else float(np.sum(terms))


def reference(x, w, g, axis):
    """Forward, grad_x and grad_weight in float64; grad_weight summed with math.fsum."""
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    wb = broadcast_weight(np.asarray(w, dtype=x.dtype).astype(np.float64), x, axis)
    with np.errstate(all="ignore"):
        y = REF.f(x64, wb)
        gx = g64 * REF.df(x64, wb)
    with np.errstate(all="ignore"):
        contrib = np.where(x64 > 0, 0.0, x64 * g64)
    if x.ndim < 2:
        gw = [_fsum(contrib.ravel())]
    else:
        moved = np.moveaxis(contrib, axis, 0).reshape(x.shape[axis], contrib.size // max(1, x.shape[axis]))
        gw = [_fsum(row) for row in moved]
        if np.size(w) == 1:
            gw = [_fsum(gw)]
    return y, gx, np.array(gw).reshape(np.shape(w))


SHAPES = [
    ((7,), 1, 1),                # 1-D: one channel
    ((), 1, 1),                  # 0-d
    ((4, 3), 1, 3),              # (N, C)
    ((2, 3, 5, 4), 1, 3),        # NCHW
    ((2, 5, 4, 3), -1, 3),       # channels last
    ((3, 2, 4), 0, 3),           # channels first
    ((2, 3, 5, 4), 1, 1),        # one weight for all channels
    ((6, 40, 300), 1, 40),       # 72,000 elements: the parallel kernels
    ((1, 2, 70000), 1, 2),       # long inner rows: tasks split the rows
    ((70000, 3), 1, 3),          # many short rows
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis", "nweight"), SHAPES, ids=str)
def test_prelu_against_reference(shape, axis, nweight, dtype, no_warnings):
    n = int(np.prod(shape))
    x = sample(dtype, n + 50, seed=1)[:n].reshape(shape)
    x = np.where(np.isfinite(x), x, 1.5).astype(dtype)  # inf * g sums are not what this tests
    g = np.random.default_rng(2).normal(size=shape).astype(dtype)
    w = np.linspace(-0.5, 0.75, nweight).astype(dtype)
    y_ref, gx_ref, gw_ref = reference(x, w, g, axis)
    y = fa.prelu(x, w, axis=axis)
    assert np.all(ulp_distance(np.asarray(y), y_ref.astype(dtype)) == 0)
    gx, gw = fa.prelu_backward(g, x, w, axis=axis)
    assert np.all(ulp_distance(np.asarray(gx), gx_ref.astype(dtype)) <= 0)
    assert gw.shape == w.shape and gw.dtype == dtype
    # accurate: the error is a few eps of the sum of |terms| (a naive running sum's grows
    # with the number of terms), plus the final rounding to dtype
    with np.errstate(over="ignore"):  # sums past float32's range are inf in both
        want = gw_ref.astype(dtype).astype(np.float64)
    _, _, abs_sum = reference(np.abs(x) * -1, w, np.abs(g), axis)
    bound = 2 * np.finfo(dtype).eps * np.abs(want) + 8 * np.finfo(np.float64).eps * np.abs(abs_sum)
    got = gw.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf in the test's own arithmetic
        assert np.all((got == want) | (np.abs(got - want) <= bound)), (got, want, bound)


def test_grad_weight_is_summed_accurately_in_float32():
    """2^24 values: a float32 running sum loses most digits here; fastact must not."""
    n = 1 << 24
    rng = np.random.default_rng(3)
    x = -rng.random(n, dtype=np.float32) - np.float32(0.5)  # all negative: every term counts
    g = np.ones(n, np.float32)
    _, gw = fa.prelu_backward(g, x, np.array([0.25], np.float32))
    exact = math.fsum(x.astype(np.float64))
    naive = np.float32(0)
    for chunk in np.array_split(x, 64):  # a float32 running sum, chunked to keep the test quick
        naive = np.float32(naive + np.cumsum(chunk, dtype=np.float32)[-1])
    assert abs(float(gw[0]) - exact) <= abs(exact) * 2 * np.finfo(np.float32).eps
    assert abs(float(naive) - exact) > abs(float(gw[0]) - exact)


@pytest.mark.parametrize("layout", ["F", "strided", "negative"])
def test_prelu_layouts(layout):
    base = np.random.default_rng(4).normal(size=(8, 6, 50, 40))
    x = {"F": np.asfortranarray(base), "strided": base[:, :, ::2], "negative": base[::-1, :, :, ::-1]}[layout]
    g = np.ones_like(x)
    w = np.linspace(0.1, 0.6, 6)
    y_ref, gx_ref, gw_ref = reference(x, w, g, 1)
    np.testing.assert_array_equal(fa.prelu(x, w), y_ref)
    gx, gw = fa.prelu_backward(g, x, w)
    np.testing.assert_array_equal(gx, gx_ref)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-14)


@pytest.mark.parametrize("form", ["rows", "columns"])
@pytest.mark.parametrize("size", [100, PARALLEL_MIN_SIZE * 2])
def test_prelu_out_in_place_and_overlap(size, form):
    # rows: (channels, n) with axis 0; columns: (n, channels) with axis 1 (inner == 1)
    shape, axis = ((4, size // 4), 0) if form == "rows" else ((size // 4, 4), 1)
    x = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    w = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    g0 = np.random.default_rng(6).normal(size=shape).astype(np.float32)
    y_ref, gx_ref, gw_ref = reference(x, w, g0, axis)
    buf = x.copy()
    assert fa.prelu(buf, w, axis=axis, out=buf) is buf
    np.testing.assert_array_equal(buf, y_ref.astype(np.float32))
    flat = np.concatenate([x.ravel(), np.zeros(3, np.float32)])
    shifted_out = flat[3:].reshape(x.shape)  # out partly overlaps x
    fa.prelu(flat[:-3].reshape(x.shape), w, axis=axis, out=shifted_out)
    np.testing.assert_array_equal(shifted_out, y_ref.astype(np.float32))
    g = g0.copy()
    gx, gw = fa.prelu_backward(g, x, w, axis=axis, out=g)  # in place: out is grad_output
    assert gx is g
    np.testing.assert_array_equal(g, gx_ref.astype(np.float32))
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-6)  # the sums read g before it was overwritten
    xb = x.copy()
    gx, gw = fa.prelu_backward(g0, xb, w, axis=axis, out=xb)  # out is x
    np.testing.assert_array_equal(gx, gx_ref.astype(np.float32))
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-6)


def test_prelu_nan_and_kink():
    x = np.array([np.nan, 0.0, -0.0, -np.inf, np.inf, -2.0])
    y = fa.prelu(x, [0.25])
    np.testing.assert_array_equal(y, [np.nan, 0.0, -0.0, -np.inf, np.inf, -0.5])
    assert np.signbit(y[2])
    gx, _ = fa.prelu_backward(np.ones_like(x), x, [0.25])
    np.testing.assert_array_equal(gx, [0.25, 0.25, 0.25, 0.25, 1.0, 0.25])  # PyTorch: weight at 0 and NaN


@pytest.mark.parametrize("form", ["rows", "columns", "one channel"])
@pytest.mark.parametrize("size", [8, PARALLEL_MIN_SIZE * 2])
def test_grad_weight_reaching_infinity(form, size, no_warnings):
    """A sum whose terms reach -inf is -inf (the compensation of an infinite sum is NaN
    and must not leak into it); terms of both infinities give NaN, as a plain sum."""
    x = np.full(size, -1.0)
    x[3] = -np.inf
    g = np.ones(size)
    shape, axis, w = {"rows": ((2, 1, size // 2), 1, [0.5]), "columns": ((size // 2, 2), 1, [0.5, 0.5]),
                      "one channel": ((size,), 1, [0.5])}[form]
    _, gw = fa.prelu_backward(g.reshape(shape), x.reshape(shape), np.array(w), axis=axis)
    assert np.isneginf(gw).any() and not np.isnan(gw).any()
    g[5] = -1.0
    x[5] = -np.inf  # a term of +inf in the same sums
    _, gw = fa.prelu_backward(g.reshape(shape), x.reshape(shape), np.array(w), axis=axis)
    assert np.isnan(gw).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [((2, 4, 6), 1), ((6, 4), 1), ((4, 9), 0), ((9,), 0)], ids=str)
def test_small_calls_repeated(shape, axis, dtype):
    """The second call of a shape takes the small-call path (the first made its plan):
    the same results, every way out= can be given, and a weight or input that shares
    memory with out is read as it was before the call."""
    rng = np.random.default_rng(8)
    x0 = rng.normal(size=shape).astype(dtype)
    g0 = rng.normal(size=shape).astype(dtype)
    channels = 1 if len(shape) < 2 else shape[axis]
    w = np.linspace(0.1, 0.7, channels).astype(dtype)
    y_ref, gx_ref, gw_ref = reference(x0, w, g0, axis)
    y_ref, gx_ref = y_ref.astype(dtype), gx_ref.astype(dtype)
    for _ in range(2):
        np.testing.assert_array_equal(fa.prelu(x0, w, axis=axis), y_ref)
        buf = x0.copy()
        assert fa.prelu(buf, w, axis=axis, out=buf) is buf
        np.testing.assert_array_equal(buf, y_ref)
        other = np.empty_like(x0)
        assert fa.prelu(x0, w, axis=axis, out=other) is other
        np.testing.assert_array_equal(other, y_ref)
        for target in ("new", "g", "x", "other"):
            g, x = g0.copy(), x0.copy()
            out = {"new": None, "g": g, "x": x, "other": np.empty_like(x)}[target]
            gx, gw = fa.prelu_backward(g, x, w, axis=axis, out=out)
            assert out is None or gx is out
            np.testing.assert_array_equal(gx, gx_ref)
            np.testing.assert_allclose(gw, gw_ref, rtol=4 * np.finfo(dtype).eps)
            assert gw.shape == w.shape and gw.dtype == dtype
    # a weight that lives in out's memory: the slopes are those from before the call
    for _ in range(2):
        out = np.empty_like(x0)
        out.ravel()[:channels] = w
        assert fa.prelu(x0, out.ravel()[:channels], axis=axis, out=out) is out
        np.testing.assert_array_equal(out, reference(x0, w, g0, axis)[0].astype(dtype))
        x = x0.copy()
        w_in_x = x.ravel()[:channels]
        w_then = w_in_x.copy()
        fa.prelu(x, w_in_x, axis=axis, out=x)
        np.testing.assert_array_equal(x, reference(x0, w_then, g0, axis)[0].astype(dtype))
        g = g0.copy()
        w_in_g = g.ravel()[:channels]
        w_then = w_in_g.copy()
        gx, gw = fa.prelu_backward(g, x0, w_in_g, axis=axis, out=g)
        _, gx_want, gw_want = reference(x0, w_then, g0, axis)
        np.testing.assert_array_equal(gx, gx_want.astype(dtype))
        np.testing.assert_allclose(gw, gw_want, rtol=4 * np.finfo(dtype).eps)
