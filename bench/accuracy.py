"""The README's accuracy table: each activation's error against mpmath, per dtype.

For every element-wise activation (its first parameter set in the test references) and
dtype, the forward's error over the dense grid of tests/test_elementwise.py (|x| up to
the dtype's maximum, subnormals, +-0) is measured in ulp against mpmath at 50 digits,
and printed beside the bounds the tests assert for the forward and the backward.
"measured" counts every point; where a reference declares the rounding-error terms of an
ill-conditioned region (see tests/references.py), or a result at the edge of the normal
range, the tests also accept errors within those terms, and the maximum outside them is
given in brackets. Piecewise-linear activations, which have no mpmath reference in the
tests, are measured against their float64 formula.

    python bench/accuracy.py        (from the repository root; needs the [test] extra)
"""

from __future__ import annotations

import sys
from pathlib import Path

import mpmath
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fastact as fa
from tests.references import REFERENCES, close, first_params, typed_params, ulp_distance


def grid(dtype) -> np.ndarray:
    fi = np.finfo(dtype)
    return np.concatenate([
        np.linspace(-20, 20, 1501),
        -np.logspace(-30, np.log10(float(fi.max)) - 1, 400),
        np.logspace(-30, np.log10(float(fi.max)) - 1, 400),
        [float(fi.smallest_subnormal), -float(fi.smallest_subnormal), float(fi.tiny), -float(fi.tiny), 0.0, -0.0],
    ]).astype(dtype)


def measured(name: str, dtype) -> tuple[float, float]:
    ref = REFERENCES[name]
    params = first_params(name)
    x = grid(dtype)
    p = typed_params(params, dtype, name)
    if ref.mp is not None:
        with mpmath.workdps(50):
            mp_params = [q if isinstance(q, str) else mpmath.mpf(q) for q in p]
            want = np.array([float(ref.mp(mpmath.mpf(float(v)), *mp_params)) for v in x])
    else:  # piecewise linear: the float64 formula, rounded once, is the exact result for float32
        want = ref.f(x.astype(np.float64), *p)
    with np.errstate(over="ignore"):
        want = want.astype(dtype)
    got = getattr(fa, name)(x, *params)
    d = ulp_distance(got, want)
    ok_by_terms = close(name, got, want, x, params) & (d > REFERENCES[name].max_ulp[np.dtype(dtype).name])
    return float(d.max()), float(np.where(ok_by_terms, 0, d).max())


def main() -> None:
    print("| activation | float32 forward: measured (bound) | float64 forward: measured (bound) "
          "| backward bound f32 / f64 |")
    print("|---|---:|---:|---:|")
    for name, act in fa.ACTIVATIONS.items():
        ref = REFERENCES.get(name)
        if act.kind != "elementwise" or ref is None:
            continue
        cells = []
        for dt in (np.float32, np.float64):
            raw, outside = measured(name, dt)
            bound = ref.max_ulp[np.dtype(dt).name]
            cells.append(f"{raw:.0f}" + (f" [{outside:.0f}]" if outside != raw else "") + f" ({bound:g})")
        gb = ref.grad_max_ulp or ref.max_ulp
        print(f"| {name}{'' if ref.mp else ' *'} | {cells[0]} | {cells[1]} | {gb['float32']:g} / {gb['float64']:g} |")
    print("\n\\* against the float64 formula (piecewise linear: exact for float32 input; for float64, the "
          "same operations)")


if __name__ == "__main__":
    main()
