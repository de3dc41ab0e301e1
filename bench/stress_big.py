"""More than 2^31 elements through relu and gelu: the kernels index with 64-bit integers.

Not part of CI (it writes two float32 memmaps of 8.6 GB each and takes a few minutes):

    python bench/stress_big.py [--dir DIR] [--elements N] [--samples K]

x[i] is a function of i alone (below), so any element can be checked without reading
the rest. The script runs relu out of place (x -> y), then gelu in place (x -> x), each
over memory-mapped files, and checks K random elements plus every element around the
2^31 boundary and at the end against float64 references. Exit status 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fastact as fa

CHUNK = 1 << 24


def x_of(i: np.ndarray) -> np.ndarray:
    """x[i]: a hash of i scaled to [-8, 8) in float32 (Knuth's multiplicative hash)."""
    h = (i.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return (h.astype(np.float64) * (16.0 / 2**32) - 8.0).astype(np.float32)


def gelu64(x: np.ndarray) -> np.ndarray:
    """x Phi(x) = x erfc(-x / sqrt 2) / 2 (1 + erf(x / sqrt 2) would cancel for x << 0)."""
    x = x.astype(np.float64)
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    return 0.5 * x * erfc(-x / math.sqrt(2.0))


def within_bound(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """gelu's float32 bound in the test suite (tests/references.py): 4 ulp, or 8 eps
    relative where its product form is ill-conditioned."""
    err = np.abs(got.astype(np.float64) - want)
    spacing = np.spacing(np.abs(want.astype(np.float32))).astype(np.float64)
    return (err <= 4 * spacing + 1e-45) | (err <= 8 * float(np.finfo(np.float32).eps) * np.abs(want))


def timed(label: str, n: int, arrays: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"{label}: {dt:.2f} s, {arrays * 4 * n / dt / 1e9:.2f} GB/s", flush=True)
    return dt


def run(d: Path, n: int, idx: np.ndarray) -> bool:
    x = np.lib.format.open_memmap(d / "x.npy", mode="w+", dtype=np.float32, shape=(n,))
    y = np.lib.format.open_memmap(d / "y.npy", mode="w+", dtype=np.float32, shape=(n,))

    def fill() -> None:
        for s in range(0, n, CHUNK):
            x[s:s + CHUNK] = x_of(np.arange(s, min(s + CHUNK, n)))

    timed("fill x", n, 1, fill)
    timed("relu(x, out=y)", n, 2, lambda: fa.relu(x, out=y))
    xs = x_of(idx)
    bad = np.flatnonzero(y[idx] != np.maximum(xs, 0))
    print(f"relu: {idx.size:,} elements checked (exact), {bad.size} wrong", flush=True)
    timed("gelu(x, out=x)", n, 2, lambda: fa.gelu(x, out=x))
    good = within_bound(x[idx], gelu64(xs))
    print(f"gelu: {idx.size:,} elements checked (its accuracy bound), {np.count_nonzero(~good)} wrong", flush=True)
    for i in (0, 2**31 - 1, 2**31, n - 1):
        if i < n:
            print(f"  x[{i}] = {xs[np.searchsorted(idx, i)]!r}: relu {y[i]!r}, gelu {x[i]!r}")
    return bad.size == 0 and bool(good.all())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=None, help="where the memmaps go (default: a temporary directory)")
    ap.add_argument("--elements", type=int, default=2**31 + 2**20 + 7)
    ap.add_argument("--samples", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.elements
    rng = np.random.default_rng(0)
    idx = np.unique(np.concatenate([
        rng.integers(0, n, args.samples),
        np.arange(max(0, 2**31 - 64), min(n, 2**31 + 64)),  # where a 32-bit index would wrap
        np.arange(max(0, n - 1000), n),
        np.arange(min(n, 1000)),
    ]))
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        print(f"{n:,} float32 elements ({4 * n / 2**30:.2f} GiB per array) in {d}; "
              f"fastact {fa.__version__}, numpy {np.__version__}", flush=True)
        ok = run(Path(d), n, idx)  # the memmaps are closed on return, before d is removed
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
