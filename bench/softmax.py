"""softmax and log_softmax against PyTorch's operators, like for like, at the speed issue's
shapes: (1000, 1000), (4096, 1024), (64, 65536) and (65536, 64), along the last axis and
along axis 0 (the rows across memory), float32 and float64, forward and backward from y;
and the masked softmax (fastact's ``where=``, 80% of the elements kept at random) against
PyTorch's ``aten._masked_softmax.out`` / ``_masked_softmax_backward.out``; and logsumexp
along each axis against ``torch.logsumexp(..., out=)`` (forward only: PyTorch has no
logsumexp backward operator apart from autograd).

    python bench/softmax.py [--threads 2] [--budget 0.3] [--shapes 1000x1000,65536x64]
                            [--tables softmax,masked,logsumexp]

Both sides write into an output that exists: fastact ``out=``, PyTorch's aten
``_softmax.out`` / ``_log_softmax.out`` and ``_softmax_backward_data.out`` /
``_log_softmax_backward_data.out``. They are timed as ``python -m fastact bench`` times
its contenders (phases in rotated order, medians of all calls); the table gives PyTorch's
median time over fastact's (above 1: fastact faster) and fastact's ns per element, in one process.
Needs PyTorch.
"""

from __future__ import annotations

import argparse
import platform

import numba
import numpy as np

import fastact as fa
from fastact._bench import time_calls

SHAPES = ((1000, 1000), (4096, 1024), (64, 65536), (65536, 64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per case and pass")
    parser.add_argument("--shapes", default=",".join(f"{a}x{b}" for a, b in SHAPES))
    parser.add_argument("--tables", default="softmax,masked,logsumexp", help="which tables, comma-separated")
    args = parser.parse_args()
    tables = set(args.tables.split(","))
    import torch

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, "
          f"numba {numba.__version__}, torch {torch.__version__}: torch time / fastact time (ns per element fastact)")
    if tables & {"softmax", "masked"}:
        print("| function | dtype | shape | axis | forward | backward from y |")
        print("|---|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for name in ("softmax", "log_softmax") if "softmax" in tables else ():
        for dtype in (np.float32, np.float64):
            for shape in shapes:
                x = (rng.standard_normal(shape) * 3).astype(dtype)
                g = rng.standard_normal(shape).astype(dtype)
                for axis in (-1, 0):
                    print(row(name, x, g, axis, args.budget, torch), flush=True)
    for dtype in (np.float32, np.float64) if "masked" in tables else ():
        for shape in shapes:
            x = (rng.standard_normal(shape) * 3).astype(dtype)
            g = rng.standard_normal(shape).astype(dtype)
            keep = rng.random(shape) < 0.8
            for axis in (-1, 0):
                print(masked_row(x, g, keep, axis, args.budget, torch), flush=True)
    if "logsumexp" in tables:
        print("\n| function | dtype | shape | axis | forward |")
        print("|---|---|---|---:|---:|")
        for dtype in (np.float32, np.float64):
            for shape in shapes:
                x = (rng.standard_normal(shape) * 3).astype(dtype)
                for axis in (-1, 0):
                    print(logsumexp_row(x, axis, args.budget, torch), flush=True)


def row(name: str, x: np.ndarray, g: np.ndarray, axis: int, budget: float, torch) -> str:
    aten = torch.ops.aten
    fwd, bwd = getattr(fa, name), getattr(fa, f"{name}_backward")
    y, o = fwd(x, axis=axis), np.empty_like(x)
    tx, tg, ty, to = (torch.from_numpy(a) for a in (x, g, y, o))
    dim = axis % x.ndim
    if name == "softmax":
        theirs_fwd = lambda: aten._softmax.out(tx, dim, False, out=to)  # noqa: E731
        theirs_bwd = lambda: aten._softmax_backward_data.out(tg, ty, dim, ty.dtype, grad_input=to)  # noqa: E731
    else:
        theirs_fwd = lambda: aten._log_softmax.out(tx, dim, False, out=to)  # noqa: E731
        theirs_bwd = lambda: aten._log_softmax_backward_data.out(tg, ty, dim, ty.dtype, out=to)  # noqa: E731
    # in phases of many calls, as python -m fastact bench times them: PyTorch's OpenMP
    # threads spin after a call and slow numba's beside them (shared/FACTS.md)
    t = time_calls({"ours": lambda: fwd(x, axis=axis, out=o), "theirs": theirs_fwd}, None, budget)
    ours, theirs = t["ours"], t["theirs"]
    t = time_calls({"ours": lambda: bwd(g, y=y, axis=axis, out=o), "theirs": theirs_bwd}, None, budget)
    ours_b, theirs_b = t["ours"], t["theirs"]
    per = 1e9 / x.size
    return (f"| {name} | {x.dtype.name} | {x.shape[0]} x {x.shape[1]} | {axis} "
            f"| {theirs / ours:.2f}x ({ours * per:.3f}) | {theirs_b / ours_b:.2f}x ({ours_b * per:.3f}) |")


def masked_row(x: np.ndarray, g: np.ndarray, keep: np.ndarray, axis: int, budget: float, torch) -> str:
    aten = torch.ops.aten
    y, o = fa.softmax(x, axis=axis, where=keep), np.empty_like(x)
    tx, tg, ty, to = (torch.from_numpy(a) for a in (x, g, y, o))
    masked_out = torch.from_numpy(~keep)  # PyTorch's mask: True where an element takes no part
    dim = axis % x.ndim
    t = time_calls({"ours": lambda: fa.softmax(x, axis=axis, where=keep, out=o),
                    "theirs": lambda: aten._masked_softmax.out(tx, masked_out, dim, 2, out=to)}, None, budget)
    ours, theirs = t["ours"], t["theirs"]
    t = time_calls({"ours": lambda: fa.softmax_backward(g, y=y, axis=axis, where=keep, out=o),
                    "theirs": lambda: aten._masked_softmax_backward.out(tg, ty, masked_out, dim, out=to)}, None, budget)
    ours_b, theirs_b = t["ours"], t["theirs"]
    per = 1e9 / x.size
    return (f"| softmax where= | {x.dtype.name} | {x.shape[0]} x {x.shape[1]} | {axis} "
            f"| {theirs / ours:.2f}x ({ours * per:.3f}) | {theirs_b / ours_b:.2f}x ({ours_b * per:.3f}) |")


def logsumexp_row(x: np.ndarray, axis: int, budget: float, torch) -> str:
    o = np.empty(fa.logsumexp(x, axis=axis).shape, x.dtype)
    tx, to = torch.from_numpy(x), torch.from_numpy(o)
    dim = axis % x.ndim
    t = time_calls({"ours": lambda: fa.logsumexp(x, axis=axis, out=o),
                    "theirs": lambda: torch.logsumexp(tx, dim, out=to)}, None, budget)
    ours, theirs = t["ours"], t["theirs"]
    return (f"| logsumexp | {x.dtype.name} | {x.shape[0]} x {x.shape[1]} | {axis} "
            f"| {theirs / ours:.2f}x ({ours * 1e9 / x.size:.3f}) |")


if __name__ == "__main__":
    main()
