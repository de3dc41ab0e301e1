"""fastact._math against mpmath: the error bounds its docstring states, and the special values."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from numba import njit

from fastact import _math

from .references import _mp_tanhshrink, ulp_distance

# the bounds _math's docstring states, per function and dtype
BOUNDS = {
    "exp": (1, 1), "expm1": (2, 2), "tanh": (2, 2), "sigmoid": (2, 2), "log1p": (1, 1), "log": (1, 1),
    "erf": (2, 2), "erfc": (4, 4), "softplus": (2, 2), "logsigmoid": (2, 2), "x_minus_tanh": (3, 3),
}
MPMATH = {
    "exp": mpmath.exp, "expm1": mpmath.expm1, "tanh": mpmath.tanh, "sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)),
    "log1p": mpmath.log1p, "log": mpmath.log, "erf": mpmath.erf, "erfc": mpmath.erfc,
    # log1p, not log(1 + ...): 1 + e^-90 needs more digits than the working precision
    "softplus": lambda v: mpmath.log1p(mpmath.exp(v)), "logsigmoid": lambda v: -mpmath.log1p(mpmath.exp(-v)),
    "x_minus_tanh": _mp_tanhshrink,
}


def _loop(f):
    """out[i] = f(x[i]) as a numba loop: the vectorised code path a kernel would use."""

    @njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i])

    return loop


LOOPS = {name: _loop(getattr(_math, name)) for name in BOUNDS}


def grid(dtype, name="exp"):
    """Dense near 0, across the whole finite range, past the underflow and overflow
    thresholds, with subnormal results, plus random points; for log and log1p, their domain
    (dense near 0 and -1) and a little beyond it."""
    rng = np.random.default_rng(0)
    fi = np.finfo(dtype)
    edges = [float(fi.tiny), -float(fi.tiny), float(fi.smallest_subnormal), -float(fi.smallest_subnormal)]
    if name in ("log", "log1p"):
        x = np.concatenate([
            10.0 ** rng.uniform(-45, 38.5, 6000), np.linspace(0, 4, 8001), edges, [float(fi.max)],
            np.sign(rng.normal(size=3000)) * 10.0 ** rng.uniform(-45, 0, 3000),
        ])
        if name == "log1p":
            x = np.concatenate([x, -1 + np.logspace(-16, 0, 4000), np.linspace(-1, 30, 8001), [-1.0, -2.0, -1e30]])
        else:
            x = np.concatenate([x, [0.0, -1.0]])
        with np.errstate(over="ignore"):
            return x.astype(dtype)
    lo, hi = (-110.0, 92.0) if dtype == np.float32 else (-750.0, 712.0)
    return np.concatenate([
        np.linspace(-2, 2, 8001), np.linspace(-30, 30, 8001), np.linspace(lo, hi, 8001),
        np.sign(rng.normal(size=3000)) * 10.0 ** rng.uniform(-45, 2.8, 3000), rng.uniform(lo, hi, 3000), edges,
    ]).astype(dtype)


def _mp_value(name, v):
    try:
        return float(MPMATH[name](mpmath.mpf(v)))
    except (ValueError, TypeError):  # outside the domain (mpmath gives complex): nan
        return np.nan


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(LOOPS))
def test_error_bound_against_mpmath(name, dtype):
    x = grid(dtype, name)
    got = np.empty_like(x)
    with np.errstate(all="raise"):  # no FP exception may leak out as a warning
        LOOPS[name](x, got)
    with mpmath.workdps(50):
        want = np.array([_mp_value(name, float(v)) if v >= -1 or name != "log1p" else np.nan for v in x])
    with np.errstate(over="ignore"):
        want = want.astype(dtype)
    d = ulp_distance(got, want)
    bound = BOUNDS[name][0 if dtype == np.float32 else 1]
    worst = int(np.argmax(d))
    assert d.max() <= bound, f"{name}({x[worst]!r}) = {got[worst]!r}, want {want[worst]!r}: {d.max()} ulp"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e4, -1e4], dtype)
    e, m = np.empty_like(x), np.empty_like(x)
    with np.errstate(all="raise"):  # no FP exception may leak out as a warning
        LOOPS["exp"](x, e)
        LOOPS["expm1"](x, m)
    np.testing.assert_array_equal(e, np.array([1, 1, np.inf, 0, np.nan, np.inf, 0], dtype))
    np.testing.assert_array_equal(m, np.array([0, -0.0, np.inf, -1, np.nan, np.inf, -1], dtype))
    assert np.signbit(m[1]) and not np.signbit(m[0])
    assert e.dtype == m.dtype == dtype
    t, s = np.empty_like(x), np.empty_like(x)
    with np.errstate(all="raise"):
        LOOPS["tanh"](x, t)
        LOOPS["sigmoid"](x, s)
    np.testing.assert_array_equal(t, np.array([0, -0.0, 1, -1, np.nan, 1, -1], dtype))
    assert np.signbit(t[1]) and not np.signbit(t[0])
    np.testing.assert_array_equal(s, np.array([0.5, 0.5, 1, 0, np.nan, 1, 0], dtype))
    tiny = np.array([1e-30, -1e-30, float(np.finfo(dtype).smallest_subnormal)], dtype)
    LOOPS["tanh"](tiny, t[:3])
    np.testing.assert_array_equal(t[:3], tiny)  # tanh(x) rounds to x for tiny x, subnormals too


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(LOOPS))
def test_loops_vectorise(name, dtype):
    import re

    fresh = njit(error_model="numpy")(LOOPS[name].py_func)
    x = np.ones(64, dtype)
    fresh(x, x.copy())
    asm = fresh.inspect_asm(fresh.signatures[0])
    packed_math = r"\bv(?:mul|add|sub|div|max|min|cmp\w*|blendv|and|andn|or|xor)p[sd]\s+[^\n]*%[yz]mm"
    assert re.search(packed_math, asm), f"{name}: no packed ymm/zmm arithmetic: the loop did not vectorise"


def test_python_fallbacks_are_the_math_module():
    assert _math.exp(1.0) == pytest.approx(np.e) and _math.expm1(1e-10) == pytest.approx(1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_of_the_log_erf_family(dtype):
    inf, nan = np.inf, np.nan
    cases = {
        "log1p": ([0.0, -0.0, -1.0, -2.0, inf, -inf, nan], [0.0, -0.0, -inf, nan, inf, nan, nan]),
        "log": ([0.0, -0.0, 1.0, -1.0, inf, -inf, nan], [-inf, -inf, 0.0, nan, inf, nan, nan]),
        "erf": ([0.0, -0.0, inf, -inf, nan, 30.0, -30.0], [0.0, -0.0, 1.0, -1.0, nan, 1.0, -1.0]),
        "erfc": ([0.0, -0.0, inf, -inf, nan, 30.0, -30.0], [1.0, 1.0, 0.0, 2.0, nan, 0.0, 2.0]),
        "softplus": ([0.0, inf, -inf, nan, 1e30, -1e30], [np.log(2), inf, 0.0, nan, 1e30, 0.0]),
        "logsigmoid": ([0.0, inf, -inf, nan, 1e30, -1e30], [-np.log(2), 0.0, -inf, nan, 0.0, -1e30]),
    }
    for name, (x, want) in cases.items():
        x = np.array(x, dtype)
        got = np.empty_like(x)
        with np.errstate(all="raise"):
            LOOPS[name](x, got)
        want = np.array(want, dtype)
        np.testing.assert_array_equal(got, want, err_msg=name)
        np.testing.assert_array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]), err_msg=name)
