"""The work that tests/test_concurrency.py runs in subprocesses (a crash there must fail a
test, not end the run): calls mixing activations, dtypes, directions, output modes and
sizes on both sides of the parallel crossover.

Each job's result is first computed alone, in the main thread, and checked against the
independent references (tests/references.py, float64 NumPy); every result computed
concurrently (threads, pool workers) must then equal it bit for bit.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import sys
import threading
from dataclasses import dataclass
from functools import cache

import numpy as np

import fastact as fa
from fastact._arrays import parallel_min_size

from .references import close, first_params, reference_backward, reference_forward, sample

ELEMENTWISE = ["relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus", "hardtanh", "mish"]
# the parameters the jobs use: the first set of each, but gelu's tanh form, whose
# reference is vectorised NumPy (the erf form's is elementwise Python: 20 s here)
PARAMS = {name: ("tanh",) if name == "gelu" else first_params(name) for name in ELEMENTWISE}
ROWWISE = ["softmax", "log_softmax"]
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MODES = ("new", "out", "in_place")
ROW = 64  # softmax row length


@dataclass(frozen=True)
class Job:
    name: str
    dtype: np.dtype
    direction: str
    size: int

    def __str__(self) -> str:
        return f"{self.name} {self.dtype} {self.direction} {self.size}"


def jobs() -> list[Job]:
    out = []
    for dtype in DTYPES:
        for direction in ("forward", "backward"):
            n = parallel_min_size(dtype, direction)
            sizes = (1000, n - 1, n, 2 * n + 5)  # both sides of the crossover, a ragged end
            for name in ELEMENTWISE:
                out += [Job(name, dtype, direction, s) for s in sizes]
            for name in ROWWISE:  # whole rows of ROW elements around the same sizes
                out += [Job(name, dtype, direction, ROW * r) for r in (16, n // ROW - 1, n // ROW, 2 * n // ROW + 1)]
            out += [Job("prelu", dtype, direction, 4 * ROW * r) for r in (4, n // 256 - 1, n // 256, 2 * n // 256 + 1)]
    return out


@cache
def inputs(job: Job) -> tuple[np.ndarray, np.ndarray]:
    """x and grad_output for a job, the same in every process."""
    x = sample(job.dtype, job.size, seed=job.size + DTYPES.index(job.dtype))[: job.size]
    g = np.random.default_rng(job.size).normal(size=job.size).astype(job.dtype)
    if job.name in ROWWISE:
        x = np.nan_to_num(x, nan=1.0, posinf=30.0, neginf=-30.0)  # NaN and inf make whole rows NaN
        x, g = x.reshape(-1, ROW), g.reshape(-1, ROW)
    elif job.name == "prelu":
        x, g = x.reshape(-1, 4, ROW), g.reshape(-1, 4, ROW)
    # writable, as callers' arrays usually are (a read-only array is another signature of
    # every kernel: 100 s of compiling here); that no call writes into them is checked by
    # their digests at the end (assert_inputs_unchanged)
    _INPUT_DIGESTS[job] = digest((x, g))
    return x, g


_INPUT_DIGESTS: dict[Job, str] = {}


def assert_inputs_unchanged() -> None:
    changed = [str(job) for job, d in _INPUT_DIGESTS.items() if digest(inputs(job)) != d]
    assert not changed, f"calls wrote into their inputs: {changed[:10]}"


PRELU_WEIGHT = np.array([0.25, -0.5, 0.0, 1.5])


def call(job: Job, mode: str) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    x, g = inputs(job)
    if job.name in ROWWISE:
        y = getattr(fa, job.name)(x)
        a = y if job.direction == "backward" else x
    else:
        a = x
    src = g if job.direction == "backward" else a
    out = None if mode == "new" else (np.empty_like(src) if mode == "out" else src.copy())
    kw = {} if out is None else {"out": out}
    if job.name == "prelu":
        w = PRELU_WEIGHT.astype(job.dtype)
        if job.direction == "forward":
            return fa.prelu(x, w, **kw)
        return fa.prelu_backward(g, x, w, **kw)
    f = getattr(fa, job.name if job.direction == "forward" else f"{job.name}_backward")
    if job.name in ROWWISE:
        return f(x, **kw) if job.direction == "forward" else f(g, y=a, **kw)
    params = PARAMS[job.name]
    return f(x, *params, **kw) if job.direction == "forward" else f(g, x, *params, **kw)


def _check_rowwise(job: Job, got: np.ndarray) -> bool:
    x, g = (a.astype(np.float64) for a in inputs(job))
    eps, tiny = float(np.finfo(job.dtype).eps), float(np.finfo(job.dtype).tiny)
    m = x.max(axis=1, keepdims=True)
    s = np.exp(x - m).sum(axis=1, keepdims=True)
    log_y = x - m - np.log(s)
    if job.direction == "forward":
        want = np.exp(log_y) if job.name == "softmax" else log_y
        # exp(x - m) in float64 magnifies the rounding of x - m by |x - m|
        scale = (np.abs(want) if job.name == "softmax" else 1) * (np.abs(x - m) + 1)
    else:  # from the y= the call was given (an input of the backward, like g)
        y = getattr(fa, job.name)(inputs(job)[0]).astype(np.float64)
        if job.name == "softmax":
            want = y * (g - (g * y).sum(axis=1, keepdims=True))
            scale = y * (np.abs(g) + np.abs(g * y).sum(axis=1, keepdims=True))
        else:
            p = np.exp(y)
            want = g - p * g.sum(axis=1, keepdims=True)
            scale = np.abs(g) + p * np.abs(g).sum(axis=1, keepdims=True)
    with np.errstate(over="ignore"):
        rounded = want.astype(job.dtype)  # beyond the dtype's range: +-inf, as fastact gives
    return bool(np.all((got == rounded) | (np.abs(got.astype(np.float64) - want) <= 16 * eps * scale + tiny)))


@np.errstate(all="ignore")  # inf * 0 and the like, as in the kernels
def _check_prelu(job: Job, got) -> bool:
    x, g = (a.astype(np.float64) for a in inputs(job))
    w = PRELU_WEIGHT.astype(job.dtype).astype(np.float64)[:, None]
    if job.direction == "forward":
        return bool(np.array_equal(got, np.where(x > 0, x, w * x).astype(job.dtype), equal_nan=True))
    gx, gw = got
    want_gx = (g * np.where(x > 0, 1.0, w)).astype(job.dtype)
    terms = np.where(x > 0, 0.0, x * g)
    want_gw = terms.sum(axis=(0, 2)).astype(job.dtype)  # -inf, inf or NaN where the terms reach them
    bound = 1e-12 * np.abs(terms).sum(axis=(0, 2))
    gw_ok = (gw == want_gw) | (np.abs(gw - want_gw) <= bound) | (np.isnan(gw) & np.isnan(want_gw))
    return bool(np.array_equal(gx, want_gx, equal_nan=True) and gw_ok.all())


def checked(job: Job) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The job's result computed alone, after checking it against the reference."""
    got = call(job, "new")
    x, g = inputs(job)
    if job.name in ROWWISE:
        ok = _check_rowwise(job, got)
    elif job.name == "prelu":
        ok = _check_prelu(job, got)
    else:
        params = PARAMS[job.name]
        if job.direction == "forward":
            ok = close(job.name, got, reference_forward(job.name, x, params), x, params).all()
        else:
            ok = close(job.name, got, reference_backward(job.name, g, x, params), x, params, g).all()
    if not ok:
        raise AssertionError(f"{job}: computed alone, the result disagrees with the reference")
    return got


def digest(result) -> str:
    parts = result if isinstance(result, tuple) else (result,)
    h = hashlib.sha256()
    for p in parts:
        h.update(np.ascontiguousarray(p).tobytes())
    return h.hexdigest()


def run_threads(n_threads: int = 8, calls: int = 200) -> None:
    """n_threads Python threads, `calls` calls each, all at once; every result checked."""
    all_jobs = jobs()
    want = {job: digest(checked(job)) for job in all_jobs}
    errors: list[str] = []
    start = threading.Barrier(n_threads)

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        start.wait()
        try:
            for _ in range(calls):
                job = all_jobs[rng.integers(len(all_jobs))]
                mode = MODES[rng.integers(len(MODES))]
                if digest(call(job, mode)) != want[job]:
                    errors.append(f"thread {seed}: {job} ({mode}) differs from the result computed alone")
        except Exception as e:  # an exception in a thread would otherwise only be printed
            errors.append(f"thread {seed}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, "\n".join(errors[:20])
    assert_inputs_unchanged()
    print("ok", __import__("numba").threading_layer(), n_threads * calls)


def _child(task: tuple[int, int]) -> list[tuple[str, str]]:
    first, step = task
    all_jobs = jobs()
    return [(str(job), digest(call(job, MODES[i % len(MODES)])))
            for i, job in enumerate(all_jobs[first::step])]


def run_pool(method: str) -> None:
    """Parallel kernels run in this process, then in a pool of 2 made with `method`."""
    all_jobs = jobs()
    want = {str(job): digest(checked(job)) for job in all_jobs}  # runs the parallel kernels here first
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        results = pool.map(_child, [(i, 4) for i in range(4)])
    got = [pair for part in results for pair in part]
    assert len(got) == len(all_jobs)
    wrong = [job for job, d in got if want[job] != d]
    assert not wrong, f"{method}: {len(wrong)} results differ in the children, e.g. {wrong[:5]}"
    assert_inputs_unchanged()
    print("ok", method, len(got))


def run_split() -> None:
    """Every job with all threads (2 here), with 1, and on the serial path: the same bits."""
    import numba

    from fastact import _arrays

    all_jobs = jobs()
    two = {job: digest(checked(job)) for job in all_jobs}
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    one = {job: digest(call(job, "new")) for job in all_jobs}
    numba.set_num_threads(threads)
    saved = dict(_arrays.PARALLEL_MIN_SIZES)
    _arrays.PARALLEL_MIN_SIZES.update({key: 1 << 62 for key in saved})  # everything serial
    serial = {job: digest(call(job, "new")) for job in all_jobs}
    _arrays.PARALLEL_MIN_SIZES.update(saved)
    wrong = [f"{job}: {'1 thread' if one[job] != two[job] else 'serial'}" for job in all_jobs
             if not one[job] == two[job] == serial[job]]
    assert not wrong, f"{len(wrong)} jobs differ from their 2-thread result, e.g. {wrong[:5]}"
    assert_inputs_unchanged()
    print("ok", len(all_jobs))


if __name__ == "__main__":  # python -m tests._workload threads | split | pool METHOD
    {"threads": run_threads, "split": run_split}.get(sys.argv[1], lambda: run_pool(sys.argv[2]))()
