"""Threads and processes. Each scenario runs tests/_workload.py in its own interpreter,
so that an abort (numba's workqueue layer under concurrent launches, GNU OpenMP in a
forked child) fails the test instead of ending the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

from ._workload import jobs

ROOT = Path(__file__).resolve().parent.parent

# Run the workload as if the tbb package were not installed: fastact's fallback.
WITHOUT_TBB = """
import importlib.metadata as md, sys
files = md.files
def hide_tbb(name):
    if name == "tbb":
        raise md.PackageNotFoundError(name)
    return files(name)
md.files = hide_tbb
from tests import _workload
_workload.run_threads() if sys.argv[1] == "threads" else _workload.run_pool(sys.argv[2])
"""


def run(*args: str, env: dict[str, str] | None = None, code: str | None = None) -> str:
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "tests._workload", *args]
    # a layer chosen in the environment running the tests would defeat the point
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"} | (env or {})
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env=environ)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr[-3000:]}"
    return out.stdout.strip()


def test_eight_threads_two_hundred_calls_each():
    """8 threads x 200 calls at once, mixing activations, dtypes, directions, output
    modes and sizes around the crossover; each result equal, bit for bit, to the same
    call made alone (which is checked against the reference first)."""
    assert run("threads") == "ok tbb 1600"


def test_threads_with_a_layer_that_is_not_thread_safe():
    # the user's choice is kept; fastact serialises its own launches instead of aborting
    assert run("threads", env={"NUMBA_THREADING_LAYER": "workqueue"}) == "ok workqueue 1600"


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
def test_same_bits_with_one_or_two_threads_and_serial():
    """Every job of the mix with 2 threads, 1 thread and on the serial path
    (tests/test_determinism.py does the same in-process for every activation)."""
    assert run("split") == f"ok {len(jobs())}"


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_after_parallel_kernels(method):
    """The parent runs every job (parallel kernels included), then a pool of 2 runs them
    all again: the same bits in the children."""
    assert run("pool", method) == f"ok {method} {len(jobs())}"


def test_without_tbb_the_fallback_is_still_safe():
    """No tbb package: numba's fork-safe selection (workqueue on Linux, not GNU OpenMP),
    with launches serialised; threads and a forked pool both work."""
    assert run("threads", code=WITHOUT_TBB) == "ok workqueue 1600"
    assert run("pool", "fork", code=WITHOUT_TBB) == f"ok fork {len(jobs())}"
