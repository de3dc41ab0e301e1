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

import inspect
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


def _where(cond, a, b):
    with np.errstate(all="ignore"):
        return np.where(cond, a, b)


def _elu(x, alpha=1.0):
    with np.errstate(all="ignore"):
        return _where(x > 0, x, alpha * np.expm1(x))


def _elu_grad(x, alpha=1.0):
    with np.errstate(all="ignore"):  # NaN gives NaN (PyTorch's vectorised path)
        return _where(x > 0, 1.0, alpha * np.exp(x))


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
    "prelu": Reference(  # f(x, w) with w broadcast along the channel axis by the test
        f=lambda x, w: _where(x > 0, x, w * x),
        df=lambda x, w: _where(x > 0, 1.0, w),
    ),
}


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
    return tuple(p.default for p in list(sig.parameters.values())[1:])


def typed_params(params: tuple[float, ...], dtype, name: str | None = None) -> tuple[float, ...]:
    """Parameters (the reference's defaults filled in) rounded to dtype, as fastact
    computes with them, back as floats."""
    if name is not None:
        params = tuple(params) + reference_defaults(name)[len(params):]
    return tuple(float(np.dtype(dtype).type(p)) for p in params)


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
    with np.errstate(all="ignore"):
        return ref.f(x.astype(np.float64), *p).astype(x.dtype)


def reference_backward(name: str, g: np.ndarray, x: np.ndarray, params: tuple[float, ...]) -> np.ndarray:
    ref = REFERENCES[name]
    p = typed_params(params, x.dtype, name)
    with np.errstate(all="ignore"):
        d = ref.df(x.astype(np.float64), *p)
        if x.dtype == np.float32:  # the derivative is a float32 value, then multiplied
            d = d.astype(np.float32).astype(np.float64)
        return (g.astype(np.float64) * d).astype(x.dtype)
