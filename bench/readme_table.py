"""Turn `python -m fastact bench --json FILE` output into the speed tables of docs/speed.md
and the speed issue's targets, each marked met or missed with its number.

    python -m fastact bench --size 16777216 --budget 0.15 --mode into,in-place,new --in-cache --json big.json
    python -m fastact bench --size 1000 --mode new --json small.json
    python bench/readme_table.py big.json [small.json]
    python bench/readme_table.py big1.json,big2.json,big3.json small1.json,small2.json  (medians per case)

Targets (like for like, "into" an existing output, ratios from one run):
- every element-wise activation, forward and backward, at the large size with the run's
  threads and in cache with 1 thread: >= 1.0x PyTorch's operator (>= 0.95x where both
  run at the copy roofline, >= 0.8x of it);
- float32 in cache: sigmoid, silu, elu, selu, celu, softplus, logsigmoid, mish >= 1.3x
  PyTorch; tanh, tanhshrink, gelu >= 1.0x;
- the large size: float32 forward >= 0.8x of the copy roofline (gelu, mish, softplus,
  logsigmoid, tanhshrink >= 0.5x), backward >= 0.8x of the 3-array pass (gelu, mish
  >= 0.5x); float64 forward >= 0.7x (gelu >= 0.4x);
- softmax and log_softmax, forward and backward from y: >= 1.0x PyTorch;
- at 1,000 elements ("new": each allocates): no slower than NumPy's natural expression.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

FROM_Y = "backward from y"
ROWWISE = ("softmax", "log_softmax")
IN_CACHE_130 = ("sigmoid", "silu", "elu", "selu", "celu", "softplus", "logsigmoid", "mish")
IN_CACHE_100 = ("tanh", "tanhshrink", "gelu")
FORWARD_HALF = ("gelu", "mish", "softplus", "logsigmoid", "tanhshrink")
BACKWARD_HALF = ("gelu", "mish")
RATIOS = ("fastact_GBps", "of_roofline", "vs_numpy", "vs_torch", "fastact_ns_per_element", "torch_ns_per_element")


def ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def number(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def load(paths: str) -> tuple[dict, list[dict]]:
    """One run's results, or (paths separated by commas) the median over the runs of each
    case's numbers, every ratio still measured within one run."""
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
        for key in RATIOS:
            values = [r[key] for r in same if r.get(key) is not None]
            out[key] = statistics.median(values) if values else None
        merged.append(out)
    return dict(meta, runs=len(runs)), merged


def header(meta: dict) -> None:
    runs = f", median of {meta['runs']} runs per case" if meta.get("runs") else ""
    print(f"{meta['date']}, {meta.get('cpu', meta['platform'])}{runs}; numpy {meta['numpy']}, numba {meta['numba']}, "
          f"torch {meta['torch']}; PyTorch's allocator in 'new': {meta.get('torch_allocator', '?')}.\n")


def speed_table(rows: list[dict]) -> None:
    print("| activation | dtype | pass | mode | elements | threads | GB/s | of roofline | vs NumPy | vs PyTorch "
          "| ns/element fastact | ns/element PyTorch |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['activation']} | {r['dtype']} | {r['pass']} | {r['mode']} | {r['size']:,} | {r['threads']} "
              f"| {r['fastact_GBps']:.1f} | {ratio(r['of_roofline'])} | {ratio(r['vs_numpy'])} "
              f"| {ratio(r['vs_torch'])} | {number(r['fastact_ns_per_element'], 3)} "
              f"| {number(r.get('torch_ns_per_element'), 3)} |")


def checks_of(big: list[dict], small: list[dict]) -> list[tuple[str, float | None, float]]:
    checks: list[tuple[str, float | None, float]] = []
    into = [r for r in big if r["mode"] == "into"]
    large = max((r["size"] for r in into), default=0)
    for r in into:
        name, dt, single = r["activation"], r["dtype"], r["threads"] == 1 and r["size"] < large
        what = f"{name} {dt} {r['pass']}" + (f" in cache, 1 thread ({r['size']:,})" if single else "")
        if name == "prelu":
            continue
        if name in ROWWISE:
            if r["vs_torch"] is not None:
                checks.append((f"{what}: vs PyTorch", r["vs_torch"], 1.0))
            continue
        if r["vs_torch"] is not None:
            goal = 1.0
            if single and dt == "float32" and r["pass"] == "forward":
                goal = 1.3 if name in IN_CACHE_130 else 1.0
            elif not single and r["of_roofline"] >= 0.8:
                goal = 0.95  # both at the copy roofline
            checks.append((f"{what}: vs PyTorch", r["vs_torch"], goal))
        if single or r["pass"] == FROM_Y:
            continue
        if r["pass"] == "forward":
            goal = (0.5 if name in FORWARD_HALF else 0.8) if dt == "float32" else (0.4 if name == "gelu" else 0.7)
        else:
            goal = (0.5 if name in BACKWARD_HALF else 0.8) if dt == "float32" else 0.0
        if goal:
            checks.append((f"{what}: of roofline", r["of_roofline"], goal))
    for r in small:
        if r["vs_numpy"] is not None and r["mode"] == "new":
            checks.append((f"{r['activation']} {r['dtype']} {r['pass']} at {r['size']:,}: vs NumPy",
                           r["vs_numpy"], 1.0))
    return checks


def targets(big: list[dict], small: list[dict]) -> None:
    checks = checks_of(big, small)
    met = [c for c in checks if c[1] is not None and c[1] >= c[2]]
    missed = [c for c in checks if c not in met]
    print(f"\n{len(met)} of {len(checks)} targets met. Missed:\n")
    print("| target | measured | goal |")
    print("|---|---:|---:|")
    for label, value, goal in missed:
        print(f"| {label} | {ratio(value)} | {goal}x |")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("big", help="JSON of the large runs, comma-separated")
    parser.add_argument("small", nargs="?", help="JSON of the 1,000-element runs, comma-separated")
    parser.add_argument("--plot", metavar="FILE.png", help="a bar chart of the first run's 'into' rows")
    args = parser.parse_args(argv)
    meta, big = load(args.big)
    small = load(args.small)[1] if args.small else []
    header(meta)
    speed_table(big)
    if small:
        print()
        speed_table(small)
    targets(big, small)
    if args.plot:
        from fastact.__main__ import _plot

        _plot([r for r in load(args.big.split(",")[0])[1] if r["mode"] == "into"], args.plot)


if __name__ == "__main__":
    main(sys.argv[1:])
