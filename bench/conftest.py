"""Benchmarks are generated from fastact's registry (fastact/_bench.py): every activation,
forward and backward, into an existing output, in place and into new memory, float32 and
float64, at 1e3, 1e5, 1e6 and 2^24 elements, each beside PyTorch's own operator (when
installed; skipped otherwise), NumPy's natural expression (new memory) and the roofline (a
parallel copy, or the 3-array pass of a backward), each doing the same with memory.

Run: pytest bench/ --benchmark-only     (each case is a group: its contenders side by side)
     pytest bench/ --benchmark-only -k "gelu and float32 and 16777216"   (a subset)
"""

from __future__ import annotations

import numpy as np
import pytest

from fastact._bench import Runners, cases

SIZES = (1_000, 100_000, 1_000_000, 1 << 24)
CASES = list(cases(sizes=SIZES))


def run(benchmark, case, contender):
    r = Runners(case)
    fn = getattr(r, contender)()
    if fn is None:
        pytest.skip(f"no {contender} for {case.id}")
    benchmark.group = case.id
    benchmark.extra_info.update(bytes=case.bytes_moved, dtype=np.dtype(case.dtype).name, size=case.size)
    rounds = 15 if case.size >= 1 << 20 else 200
    if case.in_place:
        benchmark.pedantic(fn, setup=r.restore, rounds=rounds, warmup_rounds=1)
    else:
        benchmark.pedantic(fn, rounds=rounds, iterations=1 if case.size >= 1 << 20 else 20, warmup_rounds=1)
