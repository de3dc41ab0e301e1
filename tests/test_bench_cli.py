"""The benchmark machinery: how contenders are timed, and the CLI's table (call counts and
output, never timings)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import fastact as fa
from fastact.__main__ import main
from fastact._bench import FROM_Y, Runners, cases, time_calls


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
                       lambda: restored.append(1), budget=0.01, slow=0.05, no_warm_up=frozenset({"cold"}))
    assert set(timed) == {"fast", "slow", "cold"} and timed["slow"] >= 0.06
    assert calls["slow"] == 2  # the warm-up and one timed call
    assert calls["fast"] >= 4 and calls["cold"] >= 3  # a warm-up (not for cold) and at least 3 rounds
    assert len(restored) == sum(calls.values())  # restore before every call


@pytest.mark.parametrize("functions", [["relu", "softmax"], ["relu,softmax"]])
def test_bench_cli_prints_a_row_per_case(capsys, functions):
    assert main(["bench", "--functions", *functions, "--dtype", "float32", "--size", "1000",
                 "--budget", "0.001"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("relu ", "softmax "))]
    assert len(rows) == 5  # forward and backward of each, and relu's backward from y
    assert sum("backward from y" in row for row in rows) == 1


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("name", ["sigmoid", "elu", "prelu"])
def test_bench_runners_compute_the_function(name, in_place):
    """Each contender of a backward case computes the same gradient (the one from y too,
    to the rounding that y + alpha loses where elu is near -alpha)."""
    ran = set()
    for case in cases([name], (np.dtype(np.float64),), (1024,), ("backward", FROM_Y), (in_place,)):
        r = Runners(case)
        want = fa.ACTIVATIONS[name].backward(r.g, r.x0, *r._params())
        want = want[0] if isinstance(want, tuple) else want
        for who in ("fastact", "numpy", "torch"):
            fn = getattr(r, who)()
            if fn is None:
                continue
            r.restore()
            got = fn()
            got = r.gbuf if in_place and who != "torch" else got
            got = got[0] if isinstance(got, tuple) else got
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-14, err_msg=f"{case.id} {who}")
            ran.add(case.direction)
    assert ran == ({"backward"} if name == "prelu" else {"backward", FROM_Y})
