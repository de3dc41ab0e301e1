"""Every element-wise activation in the registry against its independent reference."""

from __future__ import annotations

import math
import tracemalloc

import mpmath
import numpy as np
import pytest

import fastact as fa
from fastact._arrays import PARALLEL_MIN_SIZE

from .conftest import CASES, DTYPES, ELEMENTWISE, FIRST_CASES, call_backward, call_forward, y_supported
from .references import (
    REFERENCES,
    close,
    reference_backward,
    reference_defaults,
    reference_forward,
    sample,
    special_values,
    typed_params,
    ulp_distance,
)

BIG = PARALLEL_MIN_SIZE * 3 + 17  # takes the parallel kernels, with a ragged end


def assert_close_ulp(name, got, want, x=None, params=(), g=None):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    ok = close(name, got, want, x, params, g)
    if not ok.all():
        d = np.where(ok, 0, ulp_distance(got, want))
        worst = int(np.argmax(d))
        at = f" (x = {x.flat[worst]!r})" if x is not None else ""
        raise AssertionError(
            f"{name}{list(params)}: {np.count_nonzero(~ok)} values off, worst {d.flat[worst]} ulp at index "
            f"{worst}{at}: got {got.flat[worst]!r}, want {want.flat[worst]!r}"
        )


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1000, BIG])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_forward_matches_reference(name, params, dtype, size, no_warnings):
    x = sample(dtype, size)[:size]
    got = call_forward(name, x, params)
    assert_close_ulp(name, got, reference_forward(name, x, params), x, params)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1000, BIG])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_backward_matches_reference(name, params, dtype, size, no_warnings):
    # the forward test's x: gelu's float64 reference (mpmath in its tail) is remembered per
    # value, and the tests of one activation share a process
    x = sample(dtype, size)[:size]
    g = np.random.default_rng(2).normal(size=x.size).astype(dtype)
    got = call_backward(name, g, x, params)
    assert_close_ulp(name, got, reference_backward(name, g, x, params), x, params, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "params"), CASES)
def test_special_values(name, params, dtype, no_warnings):
    """NaN propagates, +-inf give the limits, -0.0 keeps its sign where the reference does."""
    x = special_values(dtype)
    got = call_forward(name, x, params)
    want = reference_forward(name, x, params)
    assert_close_ulp(name, got, want, x, params)
    assert np.all(np.isnan(got[np.isnan(x)]))
    exact = (want == 0) & ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[exact]), np.signbit(want[exact]))


# The backward at x = NaN: NaN, except where PyTorch's autograd gives one finite answer on
# every code path (its elu'(nan), hardtanh'(nan), ... differ between its scalar tail and
# its vectorised loop)
NAN_DERIVATIVES = {
    "relu": lambda: 1.0,
    "leaky_relu": lambda negative_slope=0.01: negative_slope,
    "threshold": lambda threshold, value: 1.0,
    "hardsigmoid": lambda: 0.0,
}


def _ufunc_backward(name, g, x, params):
    with np.errstate(invalid="ignore"):  # NumPy reports the invalid flag that comparing NaN raises
        values = fa.ACTIVATIONS[name].validate(name, tuple(params) + reference_defaults(name)[len(params):])
        return getattr(fa.ufuncs, f"{name}_backward")(g, x, *values)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "params"), CASES)
def test_backward_at_nan_follows_one_rule(name, params, dtype):
    want = NAN_DERIVATIVES.get(name, lambda *p: math.nan)(*typed_params(params, dtype, name))
    g = np.full(BIG, 2.0, dtype)
    x = np.full(BIG, np.nan, dtype)
    results = {
        "serial": call_backward(name, g[:100], x[:100], params),
        "parallel": call_backward(name, g, x, params),
        "strided": call_backward(name, g[::3], x[::3], params),
        "ufunc": _ufunc_backward(name, g[:10], x[:10], params),
    }
    if y_supported(name, params):  # y = f(nan) = nan
        results["from y"] = getattr(fa, f"{name}_backward")(g[:100], None, *params, y=x[:100])
        results["from y, parallel"] = getattr(fa, f"{name}_backward")(g, None, *params, y=x)
    for path, got in results.items():
        np.testing.assert_array_equal(got, np.full(got.shape, 2.0 * np.asarray(want, dtype)), err_msg=path)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_kink_derivatives(name, params):
    """The derivative exactly at each kink, as PyTorch's autograd gives it."""
    ref = REFERENCES[name]
    kinks = np.array([k for k in ref.kinks(*params)] + [-0.0], dtype=np.float64)
    g = np.ones_like(kinks)
    np.testing.assert_array_equal(call_backward(name, g, kinks, params), ref.df(kinks, *params))


@pytest.mark.parametrize(("name", "params"), CASES)
def test_backward_against_finite_differences(name, params):
    ref = REFERENCES[name]
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, 4000)
    kinks = np.array(ref.kinks(*params))
    x = x[np.min(np.abs(x[:, None] - kinks[None, :]), axis=1) > 1e-3]
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    numeric = (call_forward(name, x + h, params) - call_forward(name, x - h, params)) / (2 * h)
    analytic = call_backward(name, np.ones_like(x), x, params)
    defined = ~np.isnan(numeric)  # threshold with value=nan is nan below its threshold
    assert defined.mean() > 0.3
    np.testing.assert_allclose(analytic[defined], numeric[defined], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("name", "params"), [c for c in CASES if REFERENCES[c.values[0]].mp is not None])
@pytest.mark.parametrize("dtype", DTYPES)
def test_accuracy_against_mpmath(name, params, dtype):
    """Max ULP error over a dense grid, against mpmath at 50 digits, within the declared bound."""
    ref = REFERENCES[name]
    fi = np.finfo(dtype)
    grid = np.concatenate([
        np.linspace(-20, 20, 1501),
        -np.logspace(-30, np.log10(float(fi.max)) - 1, 400),
        np.logspace(-30, 2, 200),
        [float(fi.smallest_subnormal), -float(fi.smallest_subnormal), float(fi.tiny), -float(fi.tiny)],
    ]).astype(dtype)
    p = typed_params(params, dtype, name)
    with mpmath.workdps(50):
        mp_params = [q if isinstance(q, str) else mpmath.mpf(q) for q in p]
        want = np.array([float(ref.mp(mpmath.mpf(float(v)), *mp_params)) for v in grid])
    with np.errstate(over="ignore"):
        want = want.astype(dtype)
    got = call_forward(name, grid, params)
    ok = close(name, got, want, grid, params)
    d = np.where(ok, 0, ulp_distance(got, want))
    worst = int(np.argmax(d))
    assert ok.all(), f"{d[worst]} ulp at x={grid[worst]!r}: got {got[worst]!r}, want {want[worst]!r}"


# --- backward from the output ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "params"), CASES)
def test_backward_from_y(name, params, dtype):
    x = sample(dtype, 3000, seed=4)
    x = x[np.isfinite(x)]
    g = np.random.default_rng(5).normal(size=x.size).astype(dtype)
    if not y_supported(name, params):
        with pytest.raises(TypeError, match=f"{name}_backward"):
            getattr(fa, f"{name}_backward")(g, *params, y=call_forward(name, x, params)) if not params \
                else getattr(fa, f"{name}_backward")(g, None, *params, y=call_forward(name, x, params))
        return
    y = call_forward(name, x, params)
    got = getattr(fa, f"{name}_backward")(g, None, *params, y=y)
    want = reference_backward(name, g, x, params)
    # From y the derivative is recomputed from a rounded y, so expressions such as elu's
    # y + alpha cancel where x << 0: the error is bounded by a few eps of |g| (|y| + |params|),
    # not in ulp of the (tiny) result.
    tol = REFERENCES[name].max_ulp[np.dtype(dtype).name] + 2
    eps = float(np.finfo(dtype).eps)
    scale = np.abs(g.astype(np.float64)) * (1 + np.abs(y.astype(np.float64)) + max(map(abs, params), default=1))
    ok = (ulp_distance(got, want) <= tol) | (np.abs(got.astype(np.float64) - want) <= 4 * eps * scale)
    assert ok.all(), f"{np.count_nonzero(~ok)} values off, e.g. x={x[~ok][:3]} got={got[~ok][:3]} want={want[~ok][:3]}"


# --- inputs, outputs, layouts ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_scalars_lists_and_integers_convert_as_numpy_ufuncs_do(name, params):
    f = getattr(fa, name)
    r = f(1.5, *params)
    assert isinstance(r, np.float64) and not isinstance(r, np.ndarray)
    assert isinstance(f(np.float32(-2.0), *params), np.float32)
    assert isinstance(f(np.array(3.0), *params), np.float64)  # a 0-d array gives a scalar, as np.exp
    for value, dtype in [([1, -2, 3], np.float64), (np.arange(-3, 3, dtype=np.int64), np.float64),
                         (np.arange(-3, 3, dtype=np.int16), np.float32),
                         (np.array([True, False]), np.float16), (np.arange(-3, 3, dtype=np.int8), np.float16),
                         (np.arange(-3, 3, dtype=np.float16), np.float16)]:
        got = f(value, *params)
        assert got.dtype == np.exp(np.asarray(value)).dtype == dtype
        want = reference_forward(name, np.asarray(value).astype(np.float64), params)
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-3)


@pytest.mark.parametrize("dtype", [*DTYPES, np.float16])
@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_zero_d_and_empty(name, params, dtype):
    f, b = getattr(fa, name), getattr(fa, f"{name}_backward")
    empty = np.empty((0, 3), dtype)
    assert f(empty, *params).shape == (0, 3) and f(empty, *params).dtype == dtype
    assert b(empty, empty, *params).shape == (0, 3)
    zero_d = np.array(-0.5, dtype)
    out = np.empty((), dtype)
    assert f(zero_d, *params, out=out) is out
    assert out.dtype == dtype
    np.testing.assert_allclose(float(out), float(reference_forward(name, zero_d.astype(np.float64), params)),
                               rtol=1e-3)


def _layouts(x3):
    """Views of a 3-D array in layouts the kernels must handle without copying."""
    return {
        "C": x3,
        "F": np.asfortranarray(x3),
        "strided": x3[:, ::2, :],
        "negative": x3[::-1, :, ::-1],
        "transposed": x3.transpose(2, 0, 1),
        "strided-1d": x3.reshape(-1)[::3],
        "column": x3[:, 1, :],
    }


# The parallel row kernels (large strided arrays) are one loop generated for every
# activation, differing only in the inlined scalar function that the flat-kernel tests
# check for each activation; so the big layouts run for one activation per parameter
# arity (and gelu's choice parameter), which keeps CI's cold compilation in bounds.
ROW_KERNEL_CASES = [c for c in CASES if c.values[0] in ("relu", "leaky_relu", "hardtanh", "gelu", "mish")]


def _layout_cases():
    for case in CASES:
        yield pytest.param(*case.values, "small", id=f"{case.id}-small")
    for case in ROW_KERNEL_CASES:
        yield pytest.param(*case.values, "big", id=f"{case.id}-big")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "params", "size"), list(_layout_cases()))
def test_layouts(name, params, dtype, size, no_warnings):
    shape = (5, 6, 7) if size == "small" else (64, 40, 30)  # 76,800 elements: the parallel paths
    x3 = sample(dtype, int(np.prod(shape)), seed=6)[: int(np.prod(shape))].reshape(shape)
    g3 = np.random.default_rng(7).normal(size=shape).astype(dtype)
    for layout, x in _layouts(x3).items():
        g = _layouts(g3)[layout]
        got = call_forward(name, x, params)
        assert got.shape == x.shape, layout
        assert_close_ulp(name, got, reference_forward(name, x, params), x, params)
        gb = call_backward(name, g, x, params)
        assert_close_ulp(name, gb, reference_backward(name, g, x, params), x, params, g)


@pytest.mark.parametrize("size", [1000, BIG])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "params"), CASES)
def test_in_place(name, params, dtype, size, no_warnings):
    x = sample(dtype, size)[:size]  # the values tests' x (their references remembered)
    want = reference_forward(name, x, params)
    buf = x.copy()
    assert call_forward(name, buf, params, out=buf) is buf
    assert_close_ulp(name, buf, want, x, params)
    g = np.random.default_rng(9).normal(size=size).astype(dtype)
    want_b = reference_backward(name, g, x, params)
    gbuf = g.copy()
    assert call_backward(name, gbuf, x, params, out=gbuf) is gbuf
    assert_close_ulp(name, gbuf, want_b, x, params, g)
    xbuf = x.copy()  # out= the x of a backward
    assert call_backward(name, g, xbuf, params, out=xbuf) is xbuf
    assert_close_ulp(name, xbuf, want_b, x, params, g)


@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_in_place_allocates_no_full_size_array(name, params):
    n = 1 << 22  # 16 MiB of float32
    x = np.random.default_rng(0).normal(size=n).astype(np.float32)
    g = np.ones(n, np.float32)
    call_forward(name, x[:10], params, out=x[:10])  # compile and warm outside the measurement
    call_backward(name, g[:10], x[:10], params, out=g[:10])
    call_forward(name, x, params, out=x)
    call_backward(name, g, x, params, out=g)
    tracemalloc.start()
    try:
        call_forward(name, x, params, out=x)
        call_backward(name, g, x, params, out=g)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 16, f"peak {peak} bytes traced during an in-place call"


def _unaligned(a):
    """A copy of a whose data starts one byte past an aligned address (flags.aligned False)."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    u = np.frombuffer(raw.data, a.dtype, count=a.size, offset=1).reshape(a.shape)
    u[...] = a
    return u


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "params"), [c for c in FIRST_CASES if c.values[0] in ("relu", "elu", "threshold")])
def test_small_calls_by_operand_kind(name, params, dtype, no_warnings):
    """The small-call paths call compiled entry points chosen by the operands' dtype and
    flags: each kind of operand, one after another and again, gets its own and the
    right result (read-only, unaligned, strided, 0-d, each way of giving out=). The
    choosing is the same code for every activation, and each new kind compiles new
    kernels, so three activations (0, 1 and 2 parameters) stand for all."""
    x0 = sample(dtype, 300, seed=12)[:300]
    g0 = np.random.default_rng(13).normal(size=300).astype(dtype)
    want = reference_forward(name, x0, params)
    want_b = reference_backward(name, g0, x0, params)
    read_only = x0.copy()
    read_only.flags.writeable = False
    g_read_only = g0.copy()
    g_read_only.flags.writeable = False
    kinds = {
        "plain": (x0.copy(), g0.copy()),
        "read-only": (read_only, g_read_only),
        "unaligned": (_unaligned(x0), _unaligned(g0)),
        "2-d": (x0.reshape(20, 15), g0.reshape(20, 15)),
    }
    for _ in range(2):
        for kind, (x, g) in kinds.items():
            assert_close_ulp(name, call_forward(name, x, params).reshape(-1), want, x0, params)
            assert_close_ulp(name, call_backward(name, g, x, params).reshape(-1), want_b, x0, params, g0)
            for out in (np.empty_like(x), _unaligned(np.empty_like(x))):
                assert call_forward(name, x, params, out=out) is out, kind
                assert_close_ulp(name, out.reshape(-1), want, x0, params)
                assert call_backward(name, g, x, params, out=out) is out, kind
                assert_close_ulp(name, out.reshape(-1), want_b, x0, params, g0)
            if x.flags.writeable:
                buf = x.copy() if x.flags.aligned else _unaligned(x)
                assert call_forward(name, buf, params, out=buf) is buf
                assert_close_ulp(name, buf.reshape(-1), want, x0, params)
        # strided 1-D operands of a backward
        xs, gs = np.repeat(x0, 2)[::2], np.repeat(g0, 2)[::2]
        assert_close_ulp(name, call_backward(name, gs, xs, params), want_b, x0, params, g0)
        zero_d = call_forward(name, x0[3:4].reshape(()), params)
        assert np.ndim(zero_d) == 0
        assert_close_ulp(name, np.asarray(zero_d).reshape(1), want[3:4], x0[3:4], params)


@pytest.mark.parametrize("shift", [1, -1, 7])
@pytest.mark.parametrize("size", [1000, BIG])
@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_partial_overlap(name, params, size, shift, no_warnings):
    """out a shifted view of the input: the same result as with no overlap."""
    base = sample(np.float32, size + 16, seed=10)[: size + 16]
    a = 8
    x = base[a:a + size]
    want = reference_forward(name, x.copy(), params)
    out = base[a + shift:a + shift + size]
    x0 = x.copy()
    call_forward(name, x, params, out=out)
    assert_close_ulp(name, out, want, x0, params)
    base = sample(np.float32, size + 16, seed=11)[: size + 16]
    x, g = base[a:a + size], np.linspace(-2, 2, size, dtype=np.float32)
    x0 = x.copy()
    want_b = reference_backward(name, g, x0, params)
    out = base[a + shift:a + shift + size]
    call_backward(name, g, x, params, out=out)
    assert_close_ulp(name, out, want_b, x0, params, g)


@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_backward_broadcasts_and_promotes(name, params):
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    g = np.array([1.0, 2.0, -1.0, 0.5], np.float32)
    got = call_backward(name, g, x, params)
    assert got.shape == (3, 4) and got.dtype == np.float64
    want = np.broadcast_to(g, x.shape).astype(np.float64) * REFERENCES[name].df(x, *params)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_registry_description(name):
    act = fa.ACTIVATIONS[name]
    assert tuple(act.defaults.values()) == reference_defaults(name)  # torch.nn.functional's defaults
    assert act.forward is getattr(fa, name) and act.backward is getattr(fa, f"{name}_backward")
    assert isinstance(act.defaults, dict) and isinstance(act.supports_y, bool)
    assert act.formula and act.derivative
    doc = getattr(fa, name).__doc__
    assert act.formula in doc and "Derivative" in doc
