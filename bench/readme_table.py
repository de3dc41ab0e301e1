"""Turn `python -m fastact bench --json FILE` output into the README's tables: the speed
table, and the speed issue's targets, each marked met or missed with its number.

    python -m fastact bench --json big.json                 (2^24 elements)
    python -m fastact bench --size 1000 --json small.json
    python bench/readme_table.py big.json [small.json]
    python bench/readme_table.py big1.json,big2.json,big3.json small1.json,small2.json,small3.json \
        [--plot docs/bench.png]

Targets (at 2^24 elements, ratios from one run): every element-wise forward >= 0.8x the
copy roofline and backward >= 0.8x the 3-array pass; the transcendental ones in float32
>= 2x PyTorch forward and backward, and none slower than PyTorch anywhere. At 1,000
elements: no slower than NumPy's natural expression. Checked out of place, and the same
goals again in place where the runs measured it (--in-place): PyTorch's in-place forms
where it has them, and the in-place roofline pass.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

FROM_Y = "backward from y"
TRANSCENDENTAL = ("elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "sigmoid", "tanh", "logsigmoid")
NOT_ELEMENTWISE = ("prelu", "softmax", "log_softmax")


def ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def load(paths: str) -> tuple[dict, list[dict]]:
    """One run's results, or (paths separated by commas) the median over the runs of each
    case's GB/s and of each ratio, every ratio still measured within one run. The
    machines this runs on vary by 10-30% from run to run; a median of three keeps one
    disturbed run from deciding a row."""
    runs = []
    for path in paths.split(","):
        with open(path) as fh:
            runs.append(json.load(fh))
    meta, rows = runs[0]["meta"], runs[0]["results"]
    if len(runs) == 1:
        return meta, rows
    by_case = [{r["case"]: r for r in run["results"]} for run in runs]
    merged = []
    for row in rows:
        same = [run[row["case"]] for run in by_case if row["case"] in run]
        out = dict(row)
        for key in ("fastact_GBps", "of_roofline", "vs_numpy", "vs_torch"):
            values = [r[key] for r in same if r[key] is not None]
            out[key] = statistics.median(values) if values else None
        merged.append(out)
    meta = dict(meta, runs=len(runs))
    return meta, merged


def table(meta: dict, rows: list[dict]) -> None:
    runs = f", median of {meta['runs']} runs" if meta.get("runs") else ""
    print(f"{rows[0]['size']:,} elements, {meta['threads']} threads, {meta['date']}{runs}; numpy {meta['numpy']}, "
          f"numba {meta['numba']}, torch {meta['torch']}; {meta['platform']}\n")
    for in_place in (False, True):
        some = [r for r in rows if r["in_place"] == in_place]
        if some:
            if in_place:
                print("\nIn place (`out=x`, `out=grad_output`):\n")
            rows_table(some)


def rows_table(rows: list[dict]) -> None:
    print("| activation | dtype | pass | GB/s | of roofline | vs NumPy | vs PyTorch |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        label = r["pass"] + (" in place" if r["in_place"] else "")
        print(f"| {r['activation']} | {r['dtype']} | {label} | {r['fastact_GBps']:.1f} | {ratio(r['of_roofline'])} "
              f"| {ratio(r['vs_numpy'])} | {ratio(r['vs_torch'])} |")


def checks_of(big: list[dict], small: list[dict], in_place: bool) -> list[tuple[str, float | None, float]]:
    checks: list[tuple[str, float | None, float]] = []
    where = " in place" if in_place else ""
    for r in big:
        # the targets are read from the backward from x; the rows from y are reported beside them
        if r["activation"] in NOT_ELEMENTWISE or r["in_place"] != in_place or r["pass"] == FROM_Y:
            continue
        what = f"{r['activation']} {r['dtype']} {r['pass']}{where}"
        checks.append((f"{what}: of roofline", r["of_roofline"], 0.8))
        if r["activation"] in TRANSCENDENTAL and r["vs_torch"] is not None:
            checks.append((f"{what}: vs PyTorch", r["vs_torch"], 2.0 if r["dtype"] == "float32" else 1.0))
    for r in small:
        if r["in_place"] != in_place or r["vs_numpy"] is None:
            continue
        checks.append((f"{r['activation']} {r['dtype']} {r['pass']}{where} at {r['size']:,}: vs NumPy",
                       r["vs_numpy"], 1.0))
    return checks


def targets(big: list[dict], small: list[dict]) -> None:
    """The targets out of place, then the same goals in place (where the runs measured it)."""
    for in_place in (False, True):
        checks = checks_of(big, small, in_place)
        if not checks:
            continue
        met = [c for c in checks if c[1] is not None and c[1] >= c[2]]
        missed = [c for c in checks if c not in met]
        print(f"\n{'In place: ' if in_place else ''}{len(met)} of {len(checks)} targets met. Missed:\n")
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("big", help="JSON of the 2^24-element runs, comma-separated")
    parser.add_argument("small", nargs="?", help="JSON of the 1,000-element runs, comma-separated")
    parser.add_argument("--plot", metavar="FILE.png", help="the README's bar chart: the first run's rows out of place")
    args = parser.parse_args(argv)
    meta, big = load(args.big)
    small = load(args.small)[1] if args.small else []
    table(meta, big)
    targets(big, small)
    if args.plot:
        from fastact.__main__ import _plot

        _plot([r for r in load(args.big.split(",")[0])[1] if not r["in_place"]], args.plot)


if __name__ == "__main__":
    main(sys.argv[1:])
