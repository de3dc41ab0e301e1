"""The benchmark machinery: how contenders are timed, and the CLI's table (call counts and
output, never timings)."""

from __future__ import annotations

import time

from fastact.__main__ import main
from fastact._bench import time_calls


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


def test_bench_cli_prints_a_row_per_case(capsys):
    assert main(["bench", "--functions", "relu", "softmax", "--dtype", "float32", "--size", "1000",
                 "--budget", "0.001"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("relu ", "softmax "))]
    assert len(rows) == 4  # forward and backward of each
