"""Turn `python -m fastact bench --json FILE` output into the README's tables: the speed
table, and the speed issue's targets, each marked met or missed with its number.

    python -m fastact bench --json big.json                 (2^24 elements)
    python -m fastact bench --size 1000 --json small.json
    python bench/readme_table.py big.json [small.json]

Targets (at 2^24 elements, ratios from one run): every element-wise forward >= 0.8x the
copy roofline and backward >= 0.8x the 3-array pass; the transcendental ones in float32
>= 2x PyTorch forward and backward, and none slower than PyTorch anywhere. At 1,000
elements: no slower than NumPy's natural expression.
"""

from __future__ import annotations

import json
import sys

FROM_Y = "backward from y"
TRANSCENDENTAL = ("elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "sigmoid", "tanh", "logsigmoid")
NOT_ELEMENTWISE = ("prelu", "softmax", "log_softmax")


def ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def load(path: str) -> tuple[dict, list[dict]]:
    with open(path) as fh:
        data = json.load(fh)
    return data["meta"], data["results"]


def table(meta: dict, rows: list[dict]) -> None:
    print(f"{rows[0]['size']:,} elements, {meta['threads']} threads, {meta['date']}; numpy {meta['numpy']}, "
          f"numba {meta['numba']}, torch {meta['torch']}; {meta['platform']}\n")
    print("| activation | dtype | pass | GB/s | of roofline | vs NumPy | vs PyTorch |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        label = r["pass"] + (" in place" if r["in_place"] else "")
        print(f"| {r['activation']} | {r['dtype']} | {label} | {r['fastact_GBps']:.1f} | {ratio(r['of_roofline'])} "
              f"| {ratio(r['vs_numpy'])} | {ratio(r['vs_torch'])} |")


def targets(big: list[dict], small: list[dict]) -> None:
    checks: list[tuple[str, float | None, float]] = []
    for r in big:
        # the targets are read from the backward from x; the rows from y are reported beside them
        if r["activation"] in NOT_ELEMENTWISE or r["in_place"] or r["pass"] == FROM_Y:
            continue
        what = f"{r['activation']} {r['dtype']} {r['pass']}"
        checks.append((f"{what}: of roofline", r["of_roofline"], 0.8))
        if r["activation"] in TRANSCENDENTAL and r["vs_torch"] is not None:
            checks.append((f"{what}: vs PyTorch", r["vs_torch"], 2.0 if r["dtype"] == "float32" else 1.0))
    for r in small:
        if r["in_place"] or r["vs_numpy"] is None:
            continue
        checks.append((f"{r['activation']} {r['dtype']} {r['pass']} at {r['size']:,}: vs NumPy", r["vs_numpy"], 1.0))
    met = [c for c in checks if c[1] is not None and c[1] >= c[2]]
    missed = [c for c in checks if c not in met]
    print(f"\n{len(met)} of {len(checks)} targets met. Missed:\n")
    print("| target | measured | goal |")
    print("|---|---:|---:|")
    for label, value, goal in missed:
        print(f"| {label} | {ratio(value)} | {goal}x |")
    from_y = [r for r in big if r["pass"] == FROM_Y and not r["in_place"]]
    if from_y:
        print("\nThe same goals for the backward from y (not counted above):\n")
        print("| backward from y | of roofline (goal 0.8x) | vs PyTorch |")
        print("|---|---:|---:|")
        for r in from_y:
            print(f"| {r['activation']} {r['dtype']} | {ratio(r['of_roofline'])} | {ratio(r['vs_torch'])} |")


def main(argv: list[str]) -> None:
    meta, big = load(argv[0])
    small = load(argv[1])[1] if len(argv) > 1 else []
    table(meta, big)
    targets(big, small)


if __name__ == "__main__":
    main(sys.argv[1:])
