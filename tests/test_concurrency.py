"""Threads and forked processes: each scenario runs in its own interpreter, so that an
abort (numba's workqueue layer under threads, GNU OpenMP after fork) fails the test
instead of ending the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

THREADS = textwrap.dedent("""
    import threading, numpy as np, fastact as fa
    from fastact._dispatch import PARALLEL_MIN_SIZE
    sizes = [1000, PARALLEL_MIN_SIZE - 1, PARALLEL_MIN_SIZE, 3 * PARALLEL_MIN_SIZE + 5]
    cases = [("relu", lambda x: np.where(x < 0, 0, x)),
             ("leaky_relu", lambda x: np.where(x > 0, x, x * x.dtype.type(0.01))),
             ("elu", None)]
    errors = []
    def work(seed):
        rng = np.random.default_rng(seed)
        for i in range(50):
            name, ref = cases[i % len(cases)]
            dt = (np.float32, np.float64)[(i // 3) % 2]
            x = rng.standard_normal(sizes[(seed + i) % len(sizes)]).astype(dt)
            y = getattr(fa, name)(x)
            g = getattr(fa, name + "_backward")(np.ones_like(x), x)
            want = ref(x) if ref is not None else np.where(x > 0, x, np.expm1(x.astype(np.float64))).astype(dt)
            if not np.allclose(y, want, rtol=1e-6, atol=0) or not np.all(np.isfinite(g)):
                errors.append((seed, i, name))
    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not errors, errors
    print("ok", __import__("numba").threading_layer())
""")

FORK = textwrap.dedent("""
    import multiprocessing as mp, numpy as np, fastact as fa
    def child(seed):
        x = np.random.default_rng(seed).standard_normal(1 << 18).astype(np.float32)
        y = fa.relu(x)
        return float(np.abs(y - np.maximum(x, 0)).max()), float(fa.elu_backward(np.ones_like(x), x).sum())
    if __name__ == "__main__":
        x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
        fa.relu(x, out=x)  # the parent runs parallel kernels before it forks
        ctx = mp.get_context("{method}")
        with ctx.Pool(2) as pool:
            results = pool.map(child, range(4))
        assert all(err == 0.0 for err, _ in results), results
        print("ok")
""")


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"exit {out.returncode}\\n{out.stdout}\\n{out.stderr[-3000:]}"
    return out.stdout


def test_many_threads_at_once():
    assert run(THREADS).startswith("ok")


def test_many_threads_with_a_layer_that_is_not_thread_safe(monkeypatch):
    # numba's workqueue layer aborts on concurrent launches; fastact serialises its own
    monkeypatch.setenv("NUMBA_THREADING_LAYER", "workqueue")
    assert run(THREADS).strip() == "ok workqueue"


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_after_parallel_kernels(method, tmp_path):
    script = tmp_path / "pool.py"  # spawn and forkserver re-import the main module: a file
    script.write_text(FORK.format(method=method))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
