"""Independent references, one per activation, written here and not in fastact.

Each is plain float64 NumPy (and mpmath where accuracy is measured), following
PyTorch's conventions at kinks and at NaN (shared/FACTS.md), so that a test failure
means fastact and the reference disagree, not that both share a bug.

Parameters are rounded to the array's dtype before they reach a reference, because
fastact (like PyTorch) computes a float32 array with float32 parameters.

Adding an activation to fastact means adding its entry here; tests/test_registry.py
fails until it exists.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import mpmath
import numpy as np


@dataclass
class Reference:
    f: Callable[..., np.ndarray]  # float64 forward: f(x, *params)
    df: Callable[..., np.ndarray]  # float64 derivative from x: df(x, *params)
    param_sets: tuple[tuple[float, ...], ...] = ((),)  # () means the defaults
    kinks: Callable[..., tuple[float, ...]] = lambda *p: (0.0,)
    y_ok: Callable[..., bool] = lambda *p: True
    mp: Callable[..., mpmath.mpf] | None = None  # high-precision forward, for ULP bounds
    max_ulp: dict[str, float] = field(default_factory=lambda: {"float32": 0, "float64": 0})
    grad_max_ulp: dict[str, float] | None = None  # the backward's bound, when not max_ulp
    # For derivatives that cross zero (silu's at x = -1.28), where no formula keeps a relative
    # accuracy: the sum of the magnitudes of the derivative's terms. A backward value within
    # max_ulp * eps * |g| * terms of the reference passes (the standard rounding-error bound
    # of a sum), as well as one within max_ulp ulp.
    grad_terms: Callable[..., np.ndarray] | None = None
    # the same for the forward, where the function is ill-conditioned (gelu's tanh form in
    # its far tail, where 2u = O(x^3) amplifies the rounding of x)
    terms: Callable[..., np.ndarray] | None = None
    # the forward's bound over every float (tests/test_accuracy_dense.py: a stride through
    # every binade's bit patterns and dense grids near underflow), with no allowance for
    # ill-conditioning: the README's promise. {params: {dtype: ulp}}; None: max_ulp for
    # every parameter set
    dense_ulp: dict[tuple, dict[str, float]] | None = None

    def dense_bound(self, params: tuple, dtype: str) -> float:
        if self.dense_ulp is not None and tuple(params) in self.dense_ulp:
            return self.dense_ulp[tuple(params)][dtype]
        return self.max_ulp[dtype]


def _where(cond, a, b):
    with np.errstate(all="ignore"):
        return np.where(cond, a, b)


def _elu(x, alpha=1.0):
    with np.errstate(all="ignore"):
        return _where(x > 0, x, alpha * np.expm1(x))


def _elu_grad(x, alpha=1.0):
    with np.errstate(all="ignore"):  # NaN gives NaN (PyTorch's vectorised path)
        return _where(x > 0, 1.0, alpha * np.exp(x))


def _nan_to_nan(x, derivative):
    """The derivative with NaN at x = NaN: fastact's rule where PyTorch's autograd has no
    single answer (its scalar and vectorised paths differ)."""
    return np.where(np.isnan(x), np.nan, derivative)


def _squareplus_root(x, b):
    with np.errstate(all="ignore"):
        return _where(np.abs(x) > 2.0**500, np.abs(x), np.sqrt(x * x + b))


def _squareplus(x, b=4.0):
    s = _squareplus_root(x, b)
    with np.errstate(all="ignore"):
        return _where(x >= 0, _where(np.abs(x) > 2.0**500, x, x / 2 + s / 2), b / (2 * (s - x)))


def _squareplus_grad(x, b=4.0):
    s = _squareplus_root(x, b)
    with np.errstate(all="ignore"):
        return _where(x >= 0, 1 - b / (2 * s * (s + x)), b / (2 * s * (s - x)))


def _limits(x, value, at_minus_inf, at_plus_inf):
    """value, with the limits at -inf and +inf put in (where inf * 0 gave nan)."""
    return np.where(x == -np.inf, at_minus_inf, np.where(x == np.inf, at_plus_inf, value))


def _sigmoid(x):
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))  # never overflows: keeps subnormal results
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


SELU_ALPHA = 1.6732632423543772848170429916717  # Klambauer et al. 2017, as torch.nn.functional.selu
SELU_SCALE = 1.0507009873554804934193349852946


def _selu(x):
    with np.errstate(all="ignore"):
        return SELU_SCALE * _where(x > 0, x, SELU_ALPHA * np.expm1(x))


def _selu_grad(x):
    with np.errstate(all="ignore"):
        return _where(x > 0, SELU_SCALE, SELU_SCALE * SELU_ALPHA * np.exp(x))


def _celu(x, alpha=1.0):
    with np.errstate(all="ignore"):
        return _where(x > 0, x, alpha * np.expm1(x / alpha))


def _celu_grad(x, alpha=1.0):
    with np.errstate(all="ignore"):
        return _where(x > 0, 1.0, np.exp(x / alpha))


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


_MP_MEMO: dict[tuple[str, float], float] = {}


def _mp_array(key, f, x):
    """f (an mpmath function) at every element of x, at 30 digits, as float64; remembered,
    since the tests draw the same samples many times."""
    out = np.empty(np.size(x))
    with mpmath.workdps(30):
        for i, v in enumerate(np.ravel(x).tolist()):
            r = _MP_MEMO.get((key, v))
            if r is None:
                r = _MP_MEMO[(key, v)] = float(f(mpmath.mpf(v)))
            out[i] = r
    return out.reshape(np.shape(x))


# The dtype the caller rounds a reference's float64 values to (rounded_to): where that is
# narrower than float64, gelu's reference keeps its float64 formula in the tail, whose error
# such a result cannot resolve, instead of mpmath's (a third of a random sample, 20 s).
_ROUNDED_TO: contextvars.ContextVar[np.dtype | None] = contextvars.ContextVar("rounded_to", default=None)  # float64


@contextlib.contextmanager
def rounded_to(dtype):
    token = _ROUNDED_TO.set(np.dtype(dtype))
    try:
        yield
    finally:
        _ROUNDED_TO.reset(token)


def _exact_tail() -> bool:
    dtype = _ROUNDED_TO.get()
    return dtype is None or dtype.itemsize >= 8


def _gelu(x, approximate="none"):
    exact_tail = _exact_tail()
    return _gelu_1d(np.atleast_1d(np.asarray(x, np.float64)), approximate, exact_tail).reshape(np.shape(x))


def _gelu_grad(x, approximate="none"):
    exact_tail = _exact_tail()
    return _gelu_grad_1d(np.atleast_1d(np.asarray(x, np.float64)), approximate, exact_tail).reshape(np.shape(x))


def _gelu_1d(x, approximate, exact_tail=True):
    with np.errstate(all="ignore"):
        if approximate == "tanh":
            u2 = 2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
            return _limits(x, x * _sigmoid(u2), -0.0, np.inf)  # 0.5 (1 + tanh(u)) = sigmoid(2u)
        y = 0.5 * x * _erfc(-x / math.sqrt(2))
        # erfc(-x / sqrt 2) is off by ~x^2 eps for x < 0 (x / sqrt 2 is rounded): mpmath
        # there, for float64 results (for float32 ones, at most 40^2 * 2^-52 relative, 2e-6
        # of their ulp)
        tail = (x > -40) & (x < -1)  # below -40, both underflow to 0 in float64
        if exact_tail and tail.any():
            y[tail] = _mp_array("gelu", lambda v: v * mpmath.ncdf(v), x[tail])
        return _limits(x, y, -0.0, np.inf)


def _gelu_grad_1d(x, approximate, exact_tail=True):
    with np.errstate(all="ignore"):
        if approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            xc = np.clip(x, -50, 50)  # 0 and 1 to float64 precision beyond; no inf * 0
            u2 = 2 * k * (xc + 0.044715 * xc**3)
            s, t = _sigmoid(u2), _sigmoid(-u2)
            return s + xc * s * t * 2 * k * (1 + 3 * 0.044715 * xc * xc)
        d = 0.5 * _erfc(-x / math.sqrt(2)) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        tail = (x > -40) & (x < -1)  # below -40, both underflow to 0 in float64
        if exact_tail and tail.any():
            d[tail] = _mp_array("gelu'", lambda v: mpmath.ncdf(v) + v * mpmath.npdf(v), x[tail])
        return _limits(x, d, 0.0, 1.0)


def _gelu_terms(x, approximate="none"):
    with np.errstate(all="ignore"):
        if approximate == "tanh":
            u2 = np.abs(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
            return np.abs(_gelu(x, "tanh")) * (1 + 3 * u2)
        # a bound's scale, not a value to compare with: the float64 formula's 1e-13 will do
        x64 = np.atleast_1d(np.asarray(x, np.float64))
        return np.abs(_gelu_1d(x64, "none", exact_tail=False)).reshape(np.shape(x))


def _gelu_grad_terms(x, approximate="none"):
    with np.errstate(all="ignore"):
        if approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            xc = np.clip(x, -50, 50)
            u2 = 2 * k * (xc + 0.044715 * xc**3)
            s, t = _sigmoid(u2), _sigmoid(-u2)
            return (s + np.abs(xc * s * t * 2 * k * (1 + 3 * 0.044715 * xc * xc))) * (1 + 3 * np.abs(u2))
        return np.nan_to_num(0.5 * _erfc(-x / math.sqrt(2)) + np.abs(x) * np.exp(-0.5 * x * x) / 2.5, posinf=1.0)


def _silu(x):
    with np.errstate(all="ignore"):
        return _limits(x, x * _sigmoid(x), -0.0, np.inf)


def _silu_grad(x):
    with np.errstate(all="ignore"):
        s, t = _sigmoid(x), _sigmoid(-x)
        return _limits(x, s * (1 + x * t), 0.0, 1.0)


def _silu_grad_terms(x):
    with np.errstate(all="ignore"):
        s, t = _sigmoid(x), _sigmoid(-x)
        return np.nan_to_num(s + np.abs(x) * s * t)


def _tsp(x):  # tanh(softplus(x))
    with np.errstate(all="ignore"):
        return np.tanh(np.logaddexp(0.0, x))


def _mish(x):
    with np.errstate(all="ignore"):
        return _limits(x, x * _tsp(x), -0.0, np.inf)


def _mish_grad(x):
    with np.errstate(all="ignore"):
        t = _tsp(x)
        sech2 = 1 / np.cosh(np.logaddexp(0.0, x)) ** 2  # 1 - t^2, without cancellation
        return _limits(x, t + x * _sigmoid(x) * sech2, 0.0, 1.0)


def _mish_grad_terms(x):
    with np.errstate(all="ignore"):
        sech2 = 1 / np.cosh(np.logaddexp(0.0, x)) ** 2
        return np.nan_to_num(_tsp(x) + np.abs(x) * _sigmoid(x) * sech2)


def _softplus(x, beta=1.0, threshold=20.0):
    with np.errstate(all="ignore"):
        z = x * beta
        return _where(z > threshold, x, np.logaddexp(0.0, z) / beta)


def _softplus_grad(x, beta=1.0, threshold=20.0):
    with np.errstate(all="ignore"):
        z = x * beta
        return _where(z > threshold, 1.0, _sigmoid(z))


def _tanhshrink(x):
    # x - tanh(x) cancels near 0; there, (x cosh x - sinh x) / cosh x, whose numerator is the
    # series sum of 2n x^(2n+1) / (2n+1)!, n >= 1: terms of one sign, nothing cancels
    shape = np.shape(x)
    x = np.atleast_1d(np.asarray(x, np.float64))
    with np.errstate(all="ignore"):
        far = x - np.tanh(x)
        near = np.abs(x) < 2
        xs = x[near]
        num = xs * 0.0  # zeros with x's sign: f is odd
        for n in range(30, 0, -1):
            num += 2 * n * xs ** (2 * n + 1) / math.factorial(2 * n + 1)
        far[near] = num / np.cosh(xs)
        return far.reshape(shape)


def _mp_tanhshrink(x):
    # x - tanh(x) ~ x^3 / 3 loses 2 |log10 x| digits to cancellation: work with that many more
    extra = 0 if x == 0 else max(0, int(-2 * mpmath.log10(abs(x)))) + 10
    with mpmath.workdps(mpmath.mp.dps + extra):
        return +(x - mpmath.tanh(x))


def _tanh_grad(x):
    with np.errstate(all="ignore"):
        return 1.0 / np.cosh(x) ** 2


REFERENCES: dict[str, Reference] = {
    "relu": Reference(
        f=lambda x: _where(x < 0, 0.0, x),  # x < 0: relu(-0.0) is -0.0 and relu(nan) is nan
        df=lambda x: _where(x <= 0, 0.0, 1.0),  # 0 at the kink; NaN passes the gradient
    ),
    "leaky_relu": Reference(
        f=lambda x, s=0.01: _where(x > 0, x, x * s),
        df=lambda x, s=0.01: _where(x > 0, 1.0, s),
        param_sets=((), (0.2,), (0.0,), (-0.5,), (1.5,)),
        y_ok=lambda s=0.01: s > 0,
    ),
    "elu": Reference(
        f=_elu,
        df=_elu_grad,
        param_sets=((), (0.5,), (2.0,), (-1.0,)),
        y_ok=lambda alpha=1.0: alpha > 0,
        mp=lambda x, alpha=1.0: x if x > 0 else alpha * mpmath.expm1(x),
        # libm's expm1 (<= 1 ulp) times alpha, rounded once more
        max_ulp={"float32": 2, "float64": 2},
    ),
    "selu": Reference(
        f=_selu,
        df=_selu_grad,
        mp=lambda x: SELU_SCALE * (x if x > 0 else SELU_ALPHA * mpmath.expm1(x)),
        max_ulp={"float32": 3, "float64": 3},
    ),
    "celu": Reference(
        f=_celu,
        df=_celu_grad,
        param_sets=((), (0.5,), (2.0,), (-1.5,)),
        y_ok=lambda alpha=1.0: alpha > 0,
        mp=lambda x, alpha=1.0: x if x > 0 else alpha * mpmath.expm1(x / alpha),
        max_ulp={"float32": 2, "float64": 2},
        # x / alpha is rounded, and exp amplifies that by |x / alpha| (large for alpha < 0)
        terms=lambda x, alpha=1.0: np.abs(_celu(x, alpha)) * (1 + np.abs(x / alpha)),
        grad_terms=lambda x, alpha=1.0: np.abs(_celu_grad(x, alpha)) * (1 + np.abs(x / alpha)),
    ),
    "gelu": Reference(
        f=_gelu,
        df=_gelu_grad,
        param_sets=((), ("tanh",)),
        mp=lambda x, approximate="none": (
            (x * mpmath.ncdf(x) if x > -50 else mpmath.mpf(0)) if approximate == "none"
            else x / (1 + mpmath.exp(-2 * mpmath.sqrt(2 / mpmath.pi) * (x + mpmath.mpf("0.044715") * x**3)))
        ),
        max_ulp={"float32": 4, "float64": 4},
        # float32, over every float: 5 ulp near 0, where Phi(x) = 1 - erfc(x / sqrt 2) / 2 ~ 1/2
        # carries erfc_scaled's relative error (tests/test_accuracy_dense.py)
        dense_ulp={(): {"float32": 5, "float64": 4}},
        terms=_gelu_terms,
        grad_terms=_gelu_grad_terms,
    ),
    "silu": Reference(
        f=_silu,
        df=_silu_grad,
        mp=lambda x: x / (1 + mpmath.exp(-x)),
        max_ulp={"float32": 3, "float64": 3},
        grad_terms=_silu_grad_terms,
    ),
    "mish": Reference(
        f=_mish,
        df=_mish_grad,
        mp=lambda x: x * mpmath.tanh(mpmath.log1p(mpmath.exp(x))),
        max_ulp={"float32": 4, "float64": 5},
        grad_terms=_mish_grad_terms,
    ),
    "softplus": Reference(
        f=_softplus,
        df=_softplus_grad,
        param_sets=((), (2.0, 20.0), (0.5, 5.0), (-1.0, 20.0), (1.0, 1000.0)),
        kinks=lambda beta=1.0, threshold=20.0: (threshold / beta,),
        mp=lambda x, beta=1.0, threshold=20.0: x if x * beta > threshold else mpmath.log1p(mpmath.exp(x * beta)) / beta,
        max_ulp={"float32": 2, "float64": 2},
        grad_max_ulp={"float32": 4, "float64": 4},
    ),
    "sigmoid": Reference(
        f=_sigmoid,
        df=lambda x: _sigmoid(x) * _sigmoid(-x),
        mp=lambda x: 1 / (1 + mpmath.exp(-x)),
        max_ulp={"float32": 2, "float64": 3},
        grad_max_ulp={"float32": 6, "float64": 6},  # s(x) s(-x): two values of <= 2 ulp, then times g
    ),
    "tanh": Reference(
        f=lambda x: np.tanh(x),
        df=_tanh_grad,
        mp=mpmath.tanh,
        max_ulp={"float32": 2, "float64": 3},
        grad_max_ulp={"float32": 5, "float64": 8},  # 4 m / (1 + m)^2, against 1 / cosh(x)^2
    ),
    "logsigmoid": Reference(
        f=lambda x: -np.logaddexp(0.0, -x) + 0.0,  # logsigmoid(inf) = +0.0, as PyTorch's
        df=lambda x: _sigmoid(-x),
        mp=lambda x: -mpmath.log1p(mpmath.exp(-x)),
        max_ulp={"float32": 2, "float64": 2},
        # g * sigmoid(-x): sigmoid's 2 ulp count double where |g| < 1 takes the product a
        # binade down; measured 4 (float32, x = 14.447289, g = 0.853342)
        grad_max_ulp={"float32": 4, "float64": 3},
    ),
    "hardtanh": Reference(
        f=lambda x, lo=-1.0, hi=1.0: _where(x < lo, lo, _where(x > hi, hi, x)),
        df=lambda x, lo=-1.0, hi=1.0: _nan_to_nan(x, _where((x > lo) & (x < hi), 1.0, 0.0)),  # 0 at the bounds
        param_sets=((), (-2.0, 3.0), (0.0, 6.0), (0.5, 0.5)),
        kinks=lambda lo=-1.0, hi=1.0: (lo, hi),
    ),
    "relu6": Reference(
        f=lambda x: _where(x < 0, 0.0, _where(x > 6, 6.0, x)),
        df=lambda x: _nan_to_nan(x, _where((x > 0) & (x < 6), 1.0, 0.0)),
        kinks=lambda: (0.0, 6.0),
    ),
    "hardsigmoid": Reference(
        f=lambda x: _where(x + 3 < 0, 0.0, _where(x + 3 > 6, 6.0, x + 3)) / 6,
        df=lambda x: _where((x > -3) & (x < 3), 1 / 6, 0.0),
        kinks=lambda: (-3.0, 3.0),
        max_ulp={"float32": 1, "float64": 0},  # x + 3 rounds in float32 before / 6
    ),
    "hardswish": Reference(
        # x * (v / 6), not x * v / 6, which overflows for float64 x near its largest value
        f=lambda x: _where(x <= -3, -0.0, x * (_where(x + 3 < 0, 0.0, _where(x + 3 > 6, 6.0, x + 3)) / 6)),
        df=lambda x: _where(x <= -3, 0.0, _where(x >= 3, 1.0, x / 3 + 0.5)),
        kinks=lambda: (-3.0, 3.0),
        max_ulp={"float32": 2, "float64": 2},
        grad_terms=lambda x: np.abs(x / 3) + 0.5,  # x / 3 + 1/2 crosses 0 at -1.5
    ),
    "threshold": Reference(
        f=lambda x, threshold, value: _where(x <= threshold, value, x),  # NaN <= t is false: NaN stays
        df=lambda x, threshold, value: _where(x <= threshold, 0.0, 1.0),
        param_sets=((0.5, -2.0), (0.0, 0.0), (-1.0, 3.0), (0.5, math.nan)),  # PyTorch takes value=nan
        kinks=lambda threshold, value: (threshold,),
    ),
    "softshrink": Reference(
        f=lambda x, lambd=0.5: _where(x > lambd, x - lambd, _where(x < -lambd, x + lambd, x * 0.0)),
        df=lambda x, lambd=0.5: _nan_to_nan(x, _where((x > lambd) | (x < -lambd), 1.0, 0.0)),
        param_sets=((), (0.0,), (1.5,)),
        kinks=lambda lambd=0.5: (-lambd, lambd),
    ),
    "hardshrink": Reference(
        f=lambda x, lambd=0.5: _where((x >= -lambd) & (x <= lambd), 0.0, x),
        df=lambda x, lambd=0.5: _nan_to_nan(x, _where((x > lambd) | (x < -lambd), 1.0, 0.0)),
        param_sets=((), (0.0,), (1.5,), (-1.0,)),  # a negative lambd: every x is outside, f(x) = x
        kinks=lambda lambd=0.5: (-lambd, lambd),
    ),
    "squareplus": Reference(
        # (x + s) / 2 written as b / (2 (s - x)) for x < 0, where it would cancel; s = |x|
        # where x^2 + b is x^2 (and x^2 would overflow)
        f=lambda x, b=4.0: _squareplus(x, b),
        df=lambda x, b=4.0: _squareplus_grad(x, b),
        param_sets=((), (1.0,), (0.25,), (100.0,)),
        mp=lambda x, b=4.0: (x + mpmath.sqrt(x * x + b)) / 2 if x >= 0 else b / (2 * (mpmath.sqrt(x * x + b) - x)),
        max_ulp={"float32": 2, "float64": 3},  # float64: against a float64 reference of ~1.5 ulp
        grad_max_ulp={"float32": 4, "float64": 6},  # float64: against a float64 reference of ~3 ulp
        # on the dense grids against the correctly rounded result (mpmath for float64)
        dense_ulp={p: {"float32": 1, "float64": 1} for p in ((), (1.0,), (0.25,), (100.0,))},
    ),
    "sparse_plus": Reference(
        f=lambda x: _where(x <= -1, 0.0, _where(x >= 1, x, (x + 1) ** 2 / 4)),
        df=lambda x: _nan_to_nan(x, _where(x <= -1, 0.0, _where(x >= 1, 1.0, (x + 1) / 2))),
        kinks=lambda: (-1.0, 1.0),
        mp=lambda x: 0 if x <= -1 else (x if x >= 1 else (x + 1) ** 2 / 4),
        max_ulp={"float32": 2, "float64": 2},
        grad_max_ulp={"float32": 1, "float64": 1},
    ),
    "sparse_sigmoid": Reference(
        f=lambda x: _where(x <= -1, 0.0, _where(x >= 1, 1.0, (x + 1) / 2)),
        df=lambda x: _nan_to_nan(x, _where((x > -1) & (x < 1), 0.5, 0.0)),
        kinks=lambda: (-1.0, 1.0),
    ),
    "softsign": Reference(
        f=lambda x: _where(np.isinf(x), np.sign(x), x / (1 + np.abs(x))),
        df=lambda x: 1 / (1 + np.abs(x)) ** 2,
        mp=lambda x: x / (1 + abs(x)),
        max_ulp={"float32": 1, "float64": 1},
        grad_max_ulp={"float32": 5, "float64": 5},
    ),
    "tanhshrink": Reference(
        f=_tanhshrink,
        df=lambda x: np.tanh(x) ** 2,
        mp=_mp_tanhshrink,
        max_ulp={"float32": 4, "float64": 5},  # against a reference of ~2 ulp
        grad_max_ulp={"float32": 8, "float64": 8},  # tanh(x)^2: twice tanh's error, and the reference's
    ),
    "prelu": Reference(  # f(x, w) with w broadcast along the channel axis by the test
        f=lambda x, w: _where(x > 0, x, w * x),
        df=lambda x, w: _where(x > 0, 1.0, w),
    ),
}


REFERENCES["hard_silu"] = REFERENCES["hardswish"]  # hardswish under JAX's name: the same function


# --- helpers shared by the tests ----------------------------------------------------------


def special_values(dtype) -> np.ndarray:
    fi = np.finfo(dtype)
    v = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -1.0, 1e30, -1e30, 0.5, -0.5, 3.0, -3.0, 6.0,
         20.0, -20.0, 1e-3, -1e-3,
         float(fi.max), -float(fi.max), float(fi.tiny), -float(fi.tiny),
         float(fi.smallest_subnormal), -float(fi.smallest_subnormal), float(fi.tiny) / 3]
    with np.errstate(over="ignore"):
        return np.array(v, dtype=dtype)


def sample(dtype, n: int = 2000, seed: int = 0) -> np.ndarray:
    """Random values over a wide range, with every special value in it."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([
        rng.normal(0, 3, n),
        rng.uniform(-30, 30, n // 4),
        np.sign(rng.normal(size=n // 8)) * 10.0 ** rng.uniform(-40, 40, n // 8),
    ])
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    x = np.concatenate([x, special_values(dtype)])
    return rng.permutation(x)


def reference_defaults(name: str) -> tuple[float, ...]:
    """The defaults the reference function itself declares (torch.nn.functional's)."""
    sig = inspect.signature(REFERENCES[name].f)
    return tuple(None if p.default is p.empty else p.default for p in list(sig.parameters.values())[1:])


def typed_params(params: tuple[float, ...], dtype, name: str | None = None) -> tuple[float, ...]:
    """Parameters (the reference's defaults filled in) rounded to dtype, as fastact
    computes with them, back as floats."""
    if name is not None:
        params = tuple(params) + reference_defaults(name)[len(params):]
    return tuple(p if isinstance(p, str) else float(np.dtype(dtype).type(p)) for p in params)


def first_params(name: str) -> tuple:
    """The first parameter set of an activation, its defaults filled in (threshold has none)."""
    params = REFERENCES[name].param_sets[0]
    return tuple(params) + reference_defaults(name)[len(params):]


def numeric_params(name: str, params: tuple) -> tuple[float, ...]:
    """params as the ufuncs and scalar functions take them: a choice (gelu's approximate) by its index."""
    import fastact as fa

    declared = fa.ACTIVATIONS[name].params
    return tuple(float(declared[i].choices.index(p)) if isinstance(p, str) else p for i, p in enumerate(params))


def close(name: str, got, want, x=None, params: tuple = (), g=None) -> np.ndarray:
    """Which elements agree: within max_ulp ulp, or (where the reference declares the terms
    of its rounding-error bound) within max_ulp * eps * terms, times |g| for a backward."""
    ref = REFERENCES[name]
    bounds = ref.max_ulp if g is None or ref.grad_max_ulp is None else ref.grad_max_ulp
    bound = bounds[np.dtype(want.dtype).name]
    ok = ulp_distance(got, want) <= bound
    with np.errstate(all="ignore"):  # at the edge of the normal range, an absolute error of that edge
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        # x times a subnormal intermediate (silu(-90) = -90 sigmoid(-90)) is off by up to |x| tiny
        scale = 1.0 if x is None else np.maximum(1.0, np.abs(x.astype(np.float64)))
        floor = float(np.finfo(want.dtype).tiny) * scale * (1.0 if g is None else np.maximum(1.0, np.abs(g)))
    ok |= err <= floor
    terms = ref.terms if g is None else ref.grad_terms
    if terms is not None and x is not None:
        p = typed_params(params, x.dtype, name)
        with np.errstate(all="ignore"):
            scale = terms(x.astype(np.float64), *p)
            if g is not None:
                scale = scale * np.abs(g.astype(np.float64))
        ok |= err <= max(bound, 1) * 2 * float(np.finfo(want.dtype).eps) * scale
    return ok


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Units in the last place between same-dtype arrays; NaN vs NaN is 0, NaN vs a number inf."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype
    itype = {4: np.int32, 8: np.int64}[a.dtype.itemsize]

    def ordered(v):  # the float's bits as an integer that grows with the float's value
        i = v.view(itype).astype(np.int64)
        return np.where(i < 0, np.int64(np.iinfo(itype).min) - i, i)

    # Subtract as integers: as floats, int64 values near 2^62 would be rounded to
    # multiples of 1024 and small distances lost. Same-sign pairs cannot overflow; a pair
    # of opposite signs (other than -0.0 and +0.0, which order as 0 and 0) is far apart.
    oa, ob = ordered(a), ordered(b)
    same_side = (oa >= 0) == (ob >= 0)
    with np.errstate(over="ignore"):
        d = np.where(same_side, np.abs(oa - ob), np.abs(oa) + np.abs(ob)).astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    d = np.where(nan_a & nan_b, 0.0, d)
    return np.where(nan_a ^ nan_b, np.inf, d)


def reference_forward(name: str, x: np.ndarray, params: tuple[float, ...]) -> np.ndarray:
    """The reference at x's dtype: computed in float64, rounded once."""
    ref = REFERENCES[name]
    p = typed_params(params, x.dtype, name)
    with np.errstate(all="ignore"), rounded_to(x.dtype):
        return ref.f(x.astype(np.float64), *p).astype(x.dtype)


def reference_backward(name: str, g: np.ndarray, x: np.ndarray, params: tuple[float, ...]) -> np.ndarray:
    ref = REFERENCES[name]
    p = typed_params(params, x.dtype, name)
    with np.errstate(all="ignore"), rounded_to(np.result_type(g.dtype, x.dtype)):
        d = ref.df(x.astype(np.float64), *p)
        if x.dtype == np.float32:  # the derivative is a float32 value, then multiplied
            d = d.astype(np.float32).astype(np.float64)
        return (g.astype(np.float64) * d).astype(x.dtype)


# --- the gated activations: value * f(gate) over the two halves, from the references above ----
# (base, gate): the element-wise reference of f, and which half goes through it (glu: the
# second, as PyTorch's F.glu; the others: the first, as the LLM MLPs compose them)
GATED = {"glu": ("sigmoid", 1), "swiglu": ("silu", 0), "geglu": ("gelu", 0), "reglu": ("relu", 0)}
GATED_PARAM_SETS = {"geglu": ((), ("tanh",))}


def gated_halves(name: str, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gate, value)"""
    return (second, first) if GATED[name][1] == 1 else (first, second)


def gated_forward(name: str, first: np.ndarray, second: np.ndarray, params: tuple = ()) -> np.ndarray:
    """float64 value * f(gate)."""
    dtype = np.result_type(first.dtype, second.dtype)
    gate, value = gated_halves(name, first.astype(np.float64), second.astype(np.float64))
    with np.errstate(all="ignore"), rounded_to(dtype):
        return value * REFERENCES[GATED[name][0]].f(gate, *params)


def gated_backward(name: str, g: np.ndarray, first: np.ndarray, second: np.ndarray,
                   params: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """float64 (grad of the first half, grad of the second)."""
    ref = REFERENCES[GATED[name][0]]
    dtype = np.result_type(g.dtype, first.dtype, second.dtype)
    g = g.astype(np.float64)
    gate, value = gated_halves(name, first.astype(np.float64), second.astype(np.float64))
    with np.errstate(all="ignore"), rounded_to(dtype):
        # value * f' first: where f' is 0 the gradient is 0, whatever g * value is
        grad_gate, grad_value = g * (value * ref.df(gate, *params)), g * ref.f(gate, *params)
    return (grad_value, grad_gate) if GATED[name][1] == 1 else (grad_gate, grad_value)


def gated_bounds(name: str, dtype) -> tuple[float, float]:
    """(forward, backward) ulp bounds: the base's, plus the products' roundings."""
    ref = REFERENCES[GATED[name][0]]
    key = np.dtype(dtype).name
    grad = (ref.grad_max_ulp or ref.max_ulp)[key]
    return ref.max_ulp[key] + 2, max(grad, ref.max_ulp[key]) + 3


# --- logsumexp ------------------------------------------------------------------------------


def logsumexp_reference(x: np.ndarray, axis=None, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x))) over axis, each row's value exact (mpmath, 40 digits) and rounded
    once to float64 (a row of more than 4,096 elements: from float64 terms, exactly summed);
    +inf anywhere gives +inf, only -inf gives -inf, NaN gives NaN."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim)) if axis is None else tuple(a % x.ndim for a in (axis if isinstance(axis, tuple)
                                                                                 else (axis,)))
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, kept + list(axes)).reshape(int(np.prod([x.shape[i] for i in kept])), -1)
    out = []
    with mpmath.workdps(40):
        for row in moved:
            if np.isnan(row).any():
                out.append(np.nan)
            elif (row == np.inf).any():
                out.append(np.inf)
            elif row.size == 0 or (row == -np.inf).all():
                out.append(-np.inf)
            elif row.size > 4096:  # long rows: float64 terms summed exactly (math.fsum), within an ulp or two
                m = float(row.max())
                out.append(m + math.log(math.fsum(np.exp(row - m))))
            else:
                out.append(float(mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in row if v > -np.inf))))
    result = np.array(out).reshape([x.shape[i] for i in kept])
    if keepdims:
        result = np.expand_dims(result, axes)
    return result


# --- sparsemax: exact, by sorting in rational arithmetic --------------------------------------


def sparsemax_row(row) -> list[float]:
    """sparsemax of one row, exactly (fractions.Fraction: the function is piecewise
    linear, so each output is a rational number of the inputs), rounded once to float64:
    sort descending, k the largest with 1 + k z_k > z_1 + ... + z_k, tau = (z_1 + ... +
    z_k - 1) / k, y = max(x - tau, 0). -inf entries give 0; NaN or +inf anywhere, or
    only -inf, give NaN throughout (as softmax's)."""
    from fractions import Fraction

    row = [float(v) for v in row]
    if any(math.isnan(v) or v == math.inf for v in row) or all(v == -math.inf for v in row):
        return [math.nan] * len(row)
    z = sorted((Fraction(v) for v in row if v != -math.inf), reverse=True)
    total, tau = Fraction(0), None
    for k, v in enumerate(z, 1):
        total += v
        if 1 + k * v > total:
            tau = (total - 1) / k
    return [0.0 if v == -math.inf else float(max(Fraction(v) - tau, Fraction(0))) for v in row]


def sparsemax_grad_row(g, y) -> tuple[list[float], list[float]]:
    """The gradient from the output y, exactly: on the support (y > 0) g less the mean of g
    over it, 0 off it; and the size of the terms each is computed from (|g| + mean |g|)."""
    from fractions import Fraction

    g, y = [float(v) for v in g], [float(v) for v in y]
    if any(math.isnan(v) for v in y):
        return [math.nan] * len(y), [0.0] * len(y)
    support = [i for i, v in enumerate(y) if v > 0]
    mean = sum((Fraction(g[i]) for i in support), Fraction(0)) / max(1, len(support))
    mean_abs = sum(abs(g[i]) for i in support) / max(1, len(support))
    grad = [float(Fraction(a) - mean) if b > 0 else 0.0 for a, b in zip(g, y, strict=True)]
    return grad, [abs(a) + mean_abs for a in g]
