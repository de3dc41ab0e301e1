"""Bias + activation fused in a user's own numba kernel through ``fastact.scalar``,
against the copy roofline (the same bytes moved, no arithmetic) and the two-pass
``fa.NAME(x + b)``, in one run. The README's "Your own numba kernels" quotes it.

Run: python -m bench.fused_bias [--rows 4096] [--cols 4096]
"""

from __future__ import annotations

import argparse
from functools import partial

import numba
import numpy as np
from numba import njit, prange

import fastact as fa
from fastact._bench import copy_pass, time_calls

relu, gelu, silu = fa.scalar.relu, fa.scalar.gelu, fa.scalar.silu


@njit(parallel=True, cache=True, error_model="numpy")
def bias_relu(x, b, out):
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = relu(x[i, j] + b[j])


@njit(parallel=True, cache=True, error_model="numpy")
def bias_gelu(x, b, out):
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = gelu(x[i, j] + b[j], 0.0)  # 0.0: approximate="none"


@njit(parallel=True, cache=True, error_model="numpy")
def bias_silu(x, b, out):
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = silu(x[i, j] + b[j])


KERNELS = {"relu": bias_relu, "gelu": bias_gelu, "silu": bias_silu}


def _two_pass(public, x, b):
    return public(x + b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=4096)
    args = parser.parse_args()
    print(f"numba {numba.__version__}, numpy {np.__version__}, {numba.get_num_threads()} threads, "
          f"{args.rows} x {args.cols}")
    print("| dtype | activation | fused kernel (ms) | copy roofline (ms) | of roofline | fa.NAME(x + b) (ms) "
          "| speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        x = rng.normal(scale=3, size=(args.rows, args.cols)).astype(dtype)
        b = rng.normal(size=args.cols).astype(dtype)
        out, flat_out = np.empty_like(x), np.empty(x.size, dtype)
        flat = x.reshape(-1)
        for name, kernel in KERNELS.items():
            public = getattr(fa, name)
            t = time_calls({
                "fused": partial(kernel, x, b, out),
                "roofline": partial(copy_pass, flat, flat_out),
                "two_pass": partial(_two_pass, public, x, b),
            }, None, budget=0.5)
            fused, roofline, two_pass = t["fused"], t["roofline"], t["two_pass"]
            print(f"| {np.dtype(dtype).name} | {name} | {fused * 1e3:.2f} | {roofline * 1e3:.2f} "
                  f"| {roofline / fused:.2f}x | {two_pass * 1e3:.2f} | {two_pass / fused:.2f}x |")


if __name__ == "__main__":
    main()
