"""The foundation issue's speed targets, measured one by one.

Each target compares two callables that take turns (the same number of calls, the order
alternating), so that drift on a shared machine affects both alike; the ratio of the
medians is printed beside the target. At 2^24 elements:
  relu forward out of place   >= 0.9x a parallel copy (into a new array, and into out=)
  relu forward in place       >= 0.9x a parallel in-place pass
  relu backward               >= 0.85x a 3-array pass (into a new array, and into out=)
At 1,000 elements:
  fa.relu(x)                  no slower than np.maximum(x, 0)

    python bench/targets.py [--dtype float32] [--rounds 41]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

import fastact as fa
from fastact._bench import copy_pass, in_place_pass, three_array_pass


def paired(a, b, rounds: int, calls: int, setup=None) -> tuple[float, float]:
    """Median seconds per call of a and of b, alternating which goes first."""
    ta, tb = [], []
    for fn in (a, b):
        if setup:
            setup()
        fn()
    for r in range(rounds):
        for first in ((a, ta), (b, tb)) if r % 2 == 0 else ((b, tb), (a, ta)):
            fn, acc = first
            if setup:
                setup()
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            acc.append((time.perf_counter() - t0) / calls)
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()
    dt = np.dtype(args.dtype)
    n = 1 << 24
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(n).astype(dt)
    x, g, out = x0.copy(), rng.standard_normal(n).astype(dt), np.empty(n, dt)
    restore = lambda: np.copyto(x, x0)  # noqa: E731
    rows = []

    def target(label, goal, ours, theirs, setup=None, calls=1, size=n):
        t_ours, t_theirs = paired(ours, theirs, args.rounds, calls, setup)
        ratio = t_theirs / t_ours
        rows.append((label, ratio, goal, t_ours, t_theirs))

    target("relu forward, new array vs copy into a new array", 0.9,
           lambda: fa.relu(x), lambda: copy_pass(x, np.empty_like(x)))
    target("relu forward, out= vs copy into an existing array", 0.9,
           lambda: fa.relu(x, out=out), lambda: copy_pass(x, out))
    target("relu forward in place vs in-place pass", 0.9,
           lambda: fa.relu(x, out=x), lambda: in_place_pass(x), setup=restore)
    target("relu backward, new array vs 3-array pass into a new array", 0.85,
           lambda: fa.relu_backward(g, x), lambda: three_array_pass(g, x, np.empty_like(x)))
    target("relu backward, out= vs 3-array pass into an existing array", 0.85,
           lambda: fa.relu_backward(g, x, out=out), lambda: three_array_pass(g, x, out))
    small = x0[:1000].copy()
    target("1,000 elements: fa.relu(x) vs np.maximum(x, 0)", 1.0,
           lambda: fa.relu(small), lambda: np.maximum(small, 0), calls=2000)
    target("1,000 elements: fa.relu(x, out=x) vs np.maximum(x, 0)", 1.0,
           lambda: fa.relu(small, out=small), lambda: np.maximum(small, 0), calls=2000)

    print(f"{dt.name}, {numba.get_num_threads()} threads, {numba.config.THREADING_LAYER}, "
          f"{args.rounds} rounds; ratio = peer time / fastact time")
    for label, ratio, goal, t_ours, t_theirs in rows:
        unit, scale = ("us", 1e6) if t_ours < 1e-3 else ("ms", 1e3)
        verdict = "met" if ratio >= goal else f"MISSED by {goal - ratio:.2f}"
        print(f"  {label:<60} {ratio:5.2f}x (target {goal}x: {verdict})  "
              f"[{t_ours * scale:.2f} vs {t_theirs * scale:.2f} {unit}]")


if __name__ == "__main__":
    main()
