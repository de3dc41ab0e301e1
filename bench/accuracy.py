"""The accuracy table of the README: each element-wise forward's error over every float.

For every element-wise activation and each parameter set of its test reference, the
forward is measured over tests/dense.py's grid (a stride through the bit patterns of
every binade of both signs, the smallest subnormals, and dense linear grids where
results approach the underflow threshold or cancel), in ulp of the result's dtype: the
distance in representable floats to the correctly rounded result (float64 references for
float32, mpmath at 50 digits for float64). Printed beside the bound that
tests/test_accuracy_dense.py asserts on the same grid.

    python bench/accuracy.py        (from the repository root; needs the [test] extra)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fastact as fa
from tests.dense import dense_grid, worst
from tests.references import REFERENCES


def main() -> None:
    grids = {dt: dense_grid(dt) for dt in (np.float32, np.float64)}
    print(f"Over {len(grids[np.float32]):,} float32 and {len(grids[np.float64]):,} float64 points.\n")
    print("| activation | parameters | float32: measured (bound) | float64: measured (bound) |")
    print("|---|---|---:|---:|")
    for name, act in fa.ACTIVATIONS.items():
        ref = REFERENCES.get(name)
        if act.kind != "elementwise" or ref is None:
            continue
        fn = getattr(fa, name)
        for params in ref.param_sets:
            cells = []
            for dt, x in grids.items():
                dname = np.dtype(dt).name
                if dt == np.float64 and ref.mp is None:
                    cells.append("exact *")
                    continue
                ulp, _ = worst(name, lambda v, p=params, f=fn: f(v, *p), x, params)
                cells.append(f"{ulp:.0f} ({ref.dense_bound(params, dname):g})")
            shown = ", ".join(map(repr, params)) or "defaults"
            print(f"| {name} | {shown} | {cells[0]} | {cells[1]} |")
    print("\n\\* piecewise linear: the same operations as the float64 formula, exact")


if __name__ == "__main__":
    main()
