"""The 16-bit table of docs/speed.md, and the half-precision issue's targets, from one run
of `python -m fastact bench` over float16, bfloat16 and float32 (the same length):

    python -m fastact bench --functions <the element-wise ones> --dtype float16 bfloat16 float32 \
        --size 16777216 --json half.json
    python bench/half_table.py half.json

Targets (like for like, into an existing output): each 16-bit case >= 1.0x PyTorch's
same-dtype operator; no slower than fastact's own float32 case; the memory-bound
activations (those whose float32 forward runs at >= 0.8x of its copy roofline in the same
run) >= 0.8x of the 16-bit roofline.
"""

from __future__ import annotations

import argparse
import json

HALVES = ("float16", "bfloat16")


def ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json")
    args = parser.parse_args()
    with open(args.json) as f:
        run = json.load(f)
    rows = [r for r in run["results"] if r["mode"] == "into"]
    by = {(r["activation"], r["pass"], r["dtype"]): r for r in rows}
    meta = run["meta"]
    print(f"{meta['date']}, {meta['cpu']}, {meta['threads']} threads, {rows[0]['size']:,} elements, into an "
          f"existing output. Per dtype: ms per call, of the roofline, vs PyTorch (its aten operator in the same "
          f"dtype), vs fastact's own float32 (its time / the 16-bit time).\n")
    print("| activation | pass | " + " | ".join(f"{d}: ms, of roofline, vs PyTorch, vs float32" for d in HALVES) + " |")
    print("|---|---|" + "---:|" * len(HALVES))
    met = {"torch": [0, 0], "float32": [0, 0], "roofline": [0, 0]}
    missed: dict[str, list[str]] = {k: [] for k in met}
    for (name, pass_, dtype), r32 in sorted(by.items()):
        if dtype != "float32":
            continue
        cells = []
        memory_bound = pass_ == "forward" and r32["of_roofline"] >= 0.8
        for d in HALVES:
            r = by.get((name, pass_, d))
            if r is None:
                cells.append("-")
                continue
            vs32 = r32["seconds"]["fastact"] / r["seconds"]["fastact"]
            cells.append(f"{r['seconds']['fastact'] * 1e3:.2f}, {ratio(r['of_roofline'])}, {ratio(r['vs_torch'])}, "
                         f"{ratio(vs32)}")
            for key, value, bar in (("torch", r["vs_torch"], 1.0), ("float32", vs32, 1.0),
                                    ("roofline", r["of_roofline"] if memory_bound else None, 0.8)):
                if value is None:
                    continue
                met[key][1] += 1
                if value >= bar:
                    met[key][0] += 1
                else:
                    missed[key].append(f"{name} {d} {pass_} {value:.2f}x")
        print(f"| {name} | {pass_} | " + " | ".join(cells) + " |")
    print()
    for key, what in (("torch", ">= 1.0x PyTorch"), ("float32", "no slower than float32"),
                      ("roofline", "memory-bound >= 0.8x of the 16-bit roofline")):
        print(f"- {what}: {met[key][0]} of {met[key][1]} met" + (f"; missed: {', '.join(missed[key])}"
                                                                 if missed[key] else ""))


if __name__ == "__main__":
    main()
