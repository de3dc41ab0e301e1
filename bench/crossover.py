"""Measure where the parallel kernels start to beat the serial ones.

For every element-wise activation of the registry, both dtypes, forward and backward,
times the serial and the parallel flat kernel over sizes from 2^10 to 2^20 and prints
the smallest size at which the parallel one is faster in this run and at every larger
size; then, per dtype and direction, the median of those crossovers over the
activations. fastact._arrays.PARALLEL_MIN_SIZES holds these medians, rounded to a
power of two.

    python bench/crossover.py [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

import fastact as fa


def best_of(fn, args, reps: int = 200) -> float:
    fn(*args)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(*args)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    sizes = [1 << k for k in range(10, 21)]
    crossovers: dict[tuple[str, str], list[int]] = {}
    print(f"threads {numba.get_num_threads()}, layer {numba.config.THREADING_LAYER}; times in microseconds")
    for name, act in fa.ACTIVATIONS.items():
        if act.kind != "elementwise":
            continue
        k = fa.KERNELS[name]
        for dtype in (np.float32, np.float64):
            params = tuple(np.dtype(dtype).type(v) for v in act.validate(name, act.example_params))
            for direction in ("forward", "backward"):
                serial, parallel = getattr(k, direction)["flat"]
                row = []
                for n in sizes:
                    x = np.linspace(-3, 3, n, dtype=dtype)
                    out = np.empty_like(x)
                    a = (x, out, params) if direction == "forward" else (x, x, out, params)
                    reps = max(5, 200_000 // n)
                    row.append((n, best_of(serial, a, reps), best_of(parallel, a, reps)))
                wins = [n for i, (n, s, p) in enumerate(row) if all(pp < ss for _, ss, pp in row[i:])]
                cross = wins[0] if wins else None
                crossovers.setdefault((np.dtype(dtype).name, direction), []).append(cross or 2 * sizes[-1])
                detail = " ".join(f"{n}:{s * 1e6:.1f}/{p * 1e6:.1f}" for n, s, p in row)
                print(f"{name:<11} {np.dtype(dtype).name:<8} {direction:<9} parallel from {cross}  ({detail})")
    print("\nmedian crossover over the activations (rounded to a power of two), and the range:")
    for (dtype_name, direction), values in sorted(crossovers.items()):
        median = float(np.median(values))
        print(f"  {dtype_name:<8} {direction:<9} 2^{round(np.log2(median))}  "
              f"(median {median:.0f}; from {min(values)} to {max(values)})")


if __name__ == "__main__":
    main()

