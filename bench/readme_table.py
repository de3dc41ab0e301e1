"""Turn `python -m fastact bench --json FILE` output into the README's markdown table.

    python -m fastact bench --in-place --json big.json
    python bench/readme_table.py big.json
"""

from __future__ import annotations

import json
import sys


def ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def main(path: str) -> None:
    with open(path) as fh:
        data = json.load(fh)
    meta, rows = data["meta"], data["results"]
    print(f"{rows[0]['size']:,} elements, {meta['threads']} threads, {meta['date']}; numpy {meta['numpy']}, "
          f"numba {meta['numba']}, torch {meta['torch']}; {meta['platform']}\n")
    print("| activation | dtype | pass | GB/s | of roofline | vs NumPy | vs PyTorch |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        label = r["pass"] + (" in place" if r["in_place"] else "")
        print(f"| {r['activation']} | {r['dtype']} | {label} | {r['fastact_GBps']:.1f} | {ratio(r['of_roofline'])} "
              f"| {ratio(r['vs_numpy'])} | {ratio(r['vs_torch'])} |")


if __name__ == "__main__":
    main(sys.argv[1])
