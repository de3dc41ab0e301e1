"""fa.ufuncs.NAME against fa.NAME: every element-wise activation, float32 and float64
(and float16 with --dtype float16), forward and backward, into an existing output and in
place, on one thread.

    python bench/ufuncs.py [--n 1000000] [--repeat 7] [--dtype float32 float64 float16]

Prints fa.NAME's time / the ufunc's (1.0: as fast), best of --repeat, in one process.
In place, each call first restores its input (applied again and again, an activation
drives the values to where the math is slower or subnormal), and the restore's own time
is subtracted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numba
import numpy as np

import fastact as fa


def best(fn, repeat: int, number: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    return min(times)


def cases(name: str, dtype, n: int):
    act = fa.ACTIVATIONS[name]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * 3).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    public = act.example_params
    # a choice by its index, as the ufuncs take it; Python floats, which take a float16
    # loop's float32 parameters (a NumPy float64 would promote float16 to float64)
    numeric = tuple(map(float, act.validate(name, public)))
    out = np.empty_like(x)
    fwd, bwd = getattr(fa.ufuncs, name), getattr(fa.ufuncs, f"{name}_backward")
    f, b = getattr(fa, name), getattr(fa, f"{name}_backward")
    y = np.empty_like(x)

    def restore(a):
        np.copyto(y, a)

    return {
        "forward": (lambda: f(x, *public, out=out), lambda: fwd(x, *numeric, out=out), None),
        "backward": (lambda: b(g, x, *public, out=out), lambda: bwd(g, x, *numeric, out=out), None),
        "forward in place": (lambda: (restore(x), f(y, *public, out=y)),
                             lambda: (restore(x), fwd(y, *numeric, out=y)), lambda: restore(x)),
        "backward in place": (lambda: (restore(g), b(y, x, *public, out=y)),
                              lambda: (restore(g), bwd(y, x, *numeric, out=y)), lambda: restore(g)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"], choices=["float32", "float64", "float16"])
    args = parser.parse_args()
    numba.set_num_threads(1)
    print(f"{platform.processor() or platform.machine()}, numba {numba.__version__}, 1 thread, "
          f"{args.n} elements; fa.NAME time / fa.ufuncs.NAME time")
    names = [n for n, a in fa.ACTIVATIONS.items() if a.kind == "elementwise"]
    ratios: dict[str, list[float]] = {}
    for dtype in map(np.dtype, args.dtype):
        for name in names:
            row = []
            for what, (public, ufunc, restore) in cases(name, dtype, args.n).items():
                public(), ufunc()  # compile or load
                base = best(restore, args.repeat) if restore else 0.0
                r = (best(public, args.repeat) - base) / (best(ufunc, args.repeat) - base)
                row.append(f"{what} {r:.2f}")
                key = f"{dtype.name} " + ("with parameters " if fa.ACTIVATIONS[name].params else "without ") + what
                ratios.setdefault(key, []).append(r)
            print(f"{dtype.name:8} {name:12} " + ", ".join(row))
    for key, rs in ratios.items():
        print(f"{key}: median {statistics.median(rs):.2f}, min {min(rs):.2f}")


if __name__ == "__main__":
    main()
