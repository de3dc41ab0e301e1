"""fastact._math against mpmath: the error bounds its docstring states, and the special values."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from numba import njit

from fastact import _math

from .references import ulp_distance

BOUNDS = {("exp", "float32"): 1, ("exp", "float64"): 1, ("expm1", "float32"): 2, ("expm1", "float64"): 2,
          ("tanh", "float32"): 2, ("tanh", "float64"): 2, ("sigmoid", "float32"): 2, ("sigmoid", "float64"): 2}
MPMATH = {"exp": mpmath.exp, "expm1": mpmath.expm1, "tanh": mpmath.tanh,
          "sigmoid": lambda v: 1 / (1 + mpmath.exp(-v))}


def _loop(f):
    """out[i] = f(x[i]) as a numba loop: the vectorised code path a kernel would use."""

    @njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i])

    return loop


LOOPS = {name: _loop(getattr(_math, name)) for name in ("exp", "expm1", "tanh", "sigmoid")}


def grid(dtype):
    """Dense near 0, across the whole finite range, past the underflow and overflow
    thresholds, with subnormal results, plus random points."""
    lo, hi = (-110.0, 92.0) if dtype == np.float32 else (-750.0, 712.0)
    rng = np.random.default_rng(0)
    fi = np.finfo(dtype)
    return np.concatenate([
        np.linspace(-2, 2, 8001), np.linspace(-30, 30, 8001), np.linspace(lo, hi, 8001),
        np.sign(rng.normal(size=3000)) * 10.0 ** rng.uniform(-45, 2.8, 3000), rng.uniform(lo, hi, 3000),
        [float(fi.tiny), -float(fi.tiny), float(fi.smallest_subnormal), -float(fi.smallest_subnormal)],
    ]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(LOOPS))
def test_error_bound_against_mpmath(name, dtype):
    x = grid(dtype)
    got = np.empty_like(x)
    LOOPS[name](x, got)
    with mpmath.workdps(50):
        want = np.array([float(MPMATH[name](mpmath.mpf(float(v)))) for v in x])
    with np.errstate(over="ignore"):
        want = want.astype(dtype)
    d = ulp_distance(got, want)
    bound = BOUNDS[(name, np.dtype(dtype).name)]
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
    assert re.findall(r"\bv\w+p[sd]\s+[^\n]*%[yz]mm", asm), f"{name} did not vectorise"


def test_python_fallbacks_are_the_math_module():
    assert _math.exp(1.0) == pytest.approx(np.e) and _math.expm1(1e-10) == pytest.approx(1e-10)
