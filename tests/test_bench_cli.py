"""The benchmark machinery: how contenders are timed, and the CLI's table (call counts and
output, never timings)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import fastact as fa
from fastact.__main__ import main
from fastact._bench import MODES, Runners, cases, time_calls
from fastact._kinds import kind_of


def test_time_calls_takes_turns_and_times_a_slow_peer_once():
    calls = {"fast": 0, "slow": 0, "cold": 0}

    def counted(key, seconds=0.0):
        def fn():
            calls[key] += 1
            if seconds:
                time.sleep(seconds)
        return fn

    restored = []
    timed = time_calls({"fast": counted("fast"), "slow": counted("slow", 0.06), "cold": counted("cold")},
                       lambda: restored.append(1), budget=0.01, phases=3, slow=0.05, no_warm_up=frozenset({"cold"}))
    assert set(timed) == {"fast", "slow", "cold"} and timed["slow"] >= 0.06
    assert calls["slow"] == 2  # the warm-up and one timed call, in the first phase only
    assert calls["fast"] >= 9 and calls["cold"] >= 6  # per phase a warm-up (not for cold) and 2 calls or more
    assert len(restored) == sum(calls.values())  # restore before every call


@pytest.mark.parametrize("functions", [["relu", "softmax"], ["relu,softmax"]])
def test_bench_cli_prints_a_row_per_case(capsys, functions):
    assert main(["bench", "--functions", *functions, "--dtype", "float32", "--size", "1000",
                 "--budget", "0.001"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("relu ", "softmax "))]
    assert len(rows) == 5  # forward and backward of each, and relu's backward from y, into an existing output
    assert sum("backward from y" in row for row in rows) == 1
    assert all(" into " in row for row in rows)


def test_bench_cli_modes_and_in_cache_rows(capsys):
    assert main(["bench", "--functions", "gelu", "--dtype", "float64", "--size", "2048", "--budget", "0.001",
                 "--mode", "into,in-place", "new", "--in-cache"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("gelu ")]
    assert len(rows) == 2 * 3 + 2  # forward and backward in each mode, and both in cache on one thread
    assert [r[3] for r in rows[:6]] == ["into", "in", "new", "into", "in", "new"]
    assert {r[-7] for r in rows[6:]} == {"1"} and {r[-8] for r in rows[6:]} == {"32768"}
    assert "like for like" in out.lower() and "4 KiB pages" in out
    assert main(["bench", "--functions", "gelu", "--mode", "sideways"]) == 2


def test_bench_cli_16_bit_rows(capsys):
    """float16 and bfloat16 cases, against a 16-bit roofline (and PyTorch's same-dtype operator)."""
    pytest.importorskip("ml_dtypes")
    assert main(["bench", "--functions", "sigmoid", "--dtype", "float16", "bfloat16", "--size", "4096",
                 "--budget", "0.001"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("sigmoid ")]
    assert [r[1] for r in rows] == ["float16"] * 3 + ["bfloat16"] * 3
    assert all(r[-5].endswith("x") for r in rows)  # of roofline


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_bench_16_bit_runners_compute_the_function(dtype):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dt = np.dtype(np.float16 if dtype == "float16" else ml_dtypes.bfloat16)
    for case in cases(["silu"], (dt,), (1024,), modes=("into",)):
        r = Runners(case)
        want = fa.silu(r.x0) if case.direction == "forward" else fa.silu_backward(r.g, r.x0)
        for who in ("fastact", "torch", "roofline"):
            fn = getattr(r, who)()
            if fn is None:
                continue
            fn()
            if who != "roofline":
                np.testing.assert_allclose(r.out.astype(np.float32), want.astype(np.float32), rtol=2e-2,
                                           err_msg=f"{case.id} {who}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(fa.ACTIVATIONS))
def test_bench_runners_compute_the_function(name, mode):
    """Each contender of a case computes the same values (fastact's, to PyTorch's and
    NumPy's rounding, and to what y + alpha loses where elu is near -alpha): the peers are
    the same functions, with the same parameters, doing what the mode says with memory."""
    ran = {}
    act = fa.ACTIVATIONS[name]
    if mode == "in place" and not kind_of(act).result_has_x_shape:
        assert not list(cases([name], (np.dtype(np.float64),), (1024,), modes=(mode,)))
        return
    for case in cases([name], (np.dtype(np.float64),), (1024,), modes=(mode,)):
        r = Runners(case)
        kw = kind_of(act).bench_kwargs
        if case.direction == "forward":
            want = act.forward(r.x0, *r._params(), **kw)
        else:
            want = act.backward(r.g, r.x0, *r._params(), **kw)
        want = want[0] if isinstance(want, tuple) else want
        for who in ("fastact", "numpy", "torch"):
            fn = getattr(r, who)()
            if fn is None:
                continue
            r.restore()
            got = fn()
            got = got[0] if isinstance(got, tuple) else got  # prelu's grad_x
            if mode == "into" and who != "numpy":
                assert got is None or np.shares_memory(np.asarray(got), r.out) or got.data_ptr() == r.out.ctypes.data
                got = r.out
            elif mode == "in place":
                got = r.x if case.direction == "forward" else r.gbuf
            tol = 1e-6 if name == "hardsigmoid" else 1e-9  # PyTorch's float64 hardsigmoid uses float32's 1/6
            np.testing.assert_allclose(np.asarray(got), want, rtol=tol, atol=1e-12, err_msg=f"{case.id} {who}")
            ran.setdefault(who, set()).add(case.direction)
    assert "fastact" in ran
