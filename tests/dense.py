"""Dense grids for accuracy measurements, and the maximum ulp error of a forward on them.

float32: a stride through the bit patterns of every binade of both signs (subnormals
included), about half a million points, against the tests' float64 references (each
within a few float64 ulp, which is far below a float32 ulp); float64: a sparser stride,
against mpmath at 50 digits. Both add dense linear grids where results approach the
underflow threshold (x sigmoid(x) and gelu's tail, whose results become subnormal) and
where the function cancels (gelu's tanh form for x << 0).
"""

from __future__ import annotations

import mpmath
import numpy as np

from .references import REFERENCES, typed_params, ulp_distance

FLOAT32_STRIDE = 8191  # bit patterns between points: ~260,000 per sign
FLOAT64_POINTS = 6000  # per sign, spread evenly over the bit patterns


def bit_grid(dtype, points_per_sign: int | None = None) -> np.ndarray:
    """Every k-th bit pattern from +0 to the largest finite value, and the same negated."""
    if np.dtype(dtype) == np.float32:
        bits = np.arange(0, 0x7F800000, FLOAT32_STRIDE, dtype=np.uint32)
        positive = bits.view(np.float32)
    else:
        n = points_per_sign or FLOAT64_POINTS
        bits = np.linspace(0, 0x7FF0000000000000 - 1, n, dtype=np.float64).astype(np.uint64)
        positive = bits.view(np.float64)
    return np.concatenate([positive, -positive])


def edge_grids(dtype) -> np.ndarray:
    """Linear grids where results near the underflow threshold or cancel."""
    if np.dtype(dtype) == np.float32:
        spans = [(-110.0, -80.0, 40_000), (-16.0, -8.0, 20_000), (-4.0, 4.0, 40_000), (80.0, 90.0, 2_000)]
    else:
        spans = [(-760.0, -700.0, 2_000), (-40.0, -25.0, 2_000), (-4.0, 4.0, 2_000)]
    return np.concatenate([np.linspace(a, b, n) for a, b, n in spans]).astype(dtype)


def smallest(dtype, n: int = 64) -> np.ndarray:
    """The n smallest subnormals of each sign (the stride steps over most of them)."""
    itype = np.uint32 if np.dtype(dtype) == np.float32 else np.uint64
    tiny = np.arange(1, n + 1, dtype=itype).view(dtype)
    return np.concatenate([tiny, -tiny])


def dense_grid(dtype) -> np.ndarray:
    return np.concatenate([bit_grid(dtype), edge_grids(dtype), smallest(dtype)])


def reference(name: str, x: np.ndarray, params: tuple) -> np.ndarray:
    """The correctly rounded result at x's dtype (float64 formula for float32; mpmath at
    50 digits for float64 where the reference declares one, else, for the piecewise-linear
    activations, the float64 formula, exact by the same operations)."""
    ref = REFERENCES[name]
    p = typed_params(params, x.dtype, name)
    if x.dtype == np.float64 and ref.mp is not None:
        with mpmath.workdps(50):
            mp_params = [q if isinstance(q, str) else mpmath.mpf(q) for q in p]
            want = np.array([float(ref.mp(mpmath.mpf(float(v)), *mp_params)) if np.isfinite(v) else np.nan
                             for v in x])
        finite = np.isfinite(x)
        want[~finite] = ref.f(x[~finite], *p)
        return want
    with np.errstate(all="ignore"):
        return ref.f(x.astype(np.float64), *p).astype(x.dtype)


def worst(name: str, fn, x: np.ndarray, params: tuple) -> tuple[float, float]:
    """(max ulp, the x where it is reached) of fn(x) against the reference."""
    want = reference(name, x, params)
    with np.errstate(all="ignore"):
        got = np.asarray(fn(x))
    d = ulp_distance(got, want.astype(x.dtype))
    i = int(np.argmax(d))
    return float(d[i]), float(x[i])
