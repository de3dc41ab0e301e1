"""Benchmark cases generated from the registry, shared by ``python -m fastact bench``
and the pytest-benchmark suite in bench/.

Each case is (activation, pass, mode, dtype, size, threads) and has up to four runners:
fastact; PyTorch's own operator (declared with the activation: an aten ``.out`` or
``.grad_input`` overload, never autograd, which would add the forward and the graph);
NumPy's natural expression (SciPy's ``erf`` for gelu where SciPy is installed); and the
roofline, a numba parallel loop that moves the same bytes and computes nothing (a copy
for a forward, a 3-array pass for a backward).

Every contender of a case does the same thing with memory (``MODES``):

* "into": writes into an output that already exists and has been written before (no
  allocation, no page faults): fastact ``out=``, PyTorch's ``.out`` overload;
* "in place": overwrites its input (``out=x``; PyTorch's ``.out`` with out=x);
* "new": allocates its result, each with its own allocator. NumPy's (and so fastact's)
  asks the kernel for transparent huge pages on large arrays; PyTorch's CPU allocator
  does only with ``THP_MEM_ALLOC_ENABLE=1`` in the environment before torch is imported,
  and otherwise takes a page fault per 4 KiB on first touch. The report names which.

NumPy's natural expression allocates whatever the mode, so it appears in "new" only. A
peer that has no such form (PyTorch's mish backward and prelu allocate; softsign and
tanhshrink are compositions in PyTorch) is timed in "new" only.

Contenders are timed in phases, one after another, each with a warm-up call: PyTorch's
OpenMP threads spin after a call, and numba's threads running beside them were measured
2-3x slower (shared/FACTS.md). The phases repeat in rotated order and each contender's
time is the median of all its calls.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
from numba import njit, prange

from . import ACTIVATIONS
from ._kinds import kind_of

MODES = ("into", "in place", "new")
IN_CACHE_SIZE = 1 << 15  # 128 KiB of float32 per array: in L2 on every CPU of the machine kind


# --- rooflines: the same memory traffic, no arithmetic ----------------------------------------


@njit(parallel=True, cache=True, nogil=True)
def copy_pass(a, out):
    for i in prange(a.shape[0]):
        out[i] = a[i]


@njit(parallel=True, cache=True, nogil=True)
def in_place_pass(a):
    for i in prange(a.shape[0]):
        a[i] = -a[i]  # not foldable, unlike a * 1


@njit(parallel=True, cache=True, nogil=True)
def three_array_pass(a, b, out):
    for i in prange(a.shape[0]):
        out[i] = a[i] * b[i]


@njit(parallel=True, cache=True, nogil=True)
def read_pass(a):
    # a reduction's traffic: one array read
    s = 0.0
    for i in prange(a.shape[0]):
        s += a[i]
    return s


@njit(parallel=True, cache=True, nogil=True)
def five_array_pass(g, a, b, out_a, out_b):
    # a gated backward's traffic: three arrays read, two written
    for i in prange(g.shape[0]):
        out_a[i] = g[i] * b[i]
        out_b[i] = g[i] * a[i]


# the rooflines' passes, for the kinds' own traffic (Kind.bench_roofline)
PASSES = SimpleNamespace(copy=copy_pass, three=three_array_pass, five=five_array_pass, read=read_pass)


# --- cases ---------------------------------------------------------------------------------------


FROM_Y = "backward from y"  # the backward given the forward's output, as autograd keeps it


@dataclass
class Case:
    name: str
    direction: str  # "forward", "backward" (from x) or FROM_Y
    mode: str  # one of MODES
    dtype: np.dtype
    size: int
    params: tuple = field(default=())
    threads: int | None = None  # None: numba's (and PyTorch's) current number

    @property
    def in_place(self) -> bool:
        return self.mode == "in place"

    @property
    def id(self) -> str:
        threads = "" if self.threads is None else f"-{self.threads}thread"
        return (f"{self.name}-{self.direction.replace(' ', '_')}-{self.mode.replace(' ', '_')}-"
                f"{np.dtype(self.dtype).name}-{self.size}{threads}")

    @property
    def bytes_moved(self) -> int:
        arrays = kind_of(ACTIVATIONS[self.name]).bench_streams(self.direction == "forward")
        return arrays * self.size * np.dtype(self.dtype).itemsize


def cases(
    names: list[str] | None = None,
    dtypes: tuple = (np.float32, np.float64),
    sizes: tuple[int, ...] = (1 << 24,),
    directions: tuple[str, ...] = ("forward", "backward", FROM_Y),
    modes: tuple[str, ...] = MODES,
    threads: int | None = None,
) -> Iterator[Case]:
    """FROM_Y for the element-wise activations whose derivative their output gives
    (a row-wise backward always works from y: its "backward" is that one)."""
    for name in names or list(ACTIVATIONS):
        act = ACTIVATIONS[name]
        params = act.example_params
        for dtype in dtypes:
            for size in sizes:
                for direction in directions:
                    if direction == FROM_Y and not (act.supports_y and not kind_of(act).backward_from_y_only):
                        continue
                    for mode in modes:
                        if mode == "in place" and not kind_of(act).result_has_x_shape:
                            continue
                        yield Case(name, direction, mode, np.dtype(dtype), size, params, threads)


@functools.lru_cache(maxsize=4)
def _inputs(shape: tuple[int, ...], dtype: np.dtype, seed: int, scale: float) -> np.ndarray:
    """Normal random values, shared by the cases of one shape and dtype (read-only; making
    2^24 of them costs more than timing a case)."""
    a = np.random.default_rng(seed).standard_normal(shape, dtype=np.float64).astype(dtype) * dtype.type(scale)
    a.flags.writeable = False
    return a


def torch_allocator() -> str:
    """How PyTorch allocates a new CPU tensor in this process."""
    huge = os.environ.get("THP_MEM_ALLOC_ENABLE", "") not in ("", "0")
    return "PyTorch's, with huge pages (THP_MEM_ALLOC_ENABLE=1)" if huge else "PyTorch's default (4 KiB pages)"


class Runners:
    """The arrays of one case and a zero-argument callable per contender.

    In-place runners overwrite their buffer; ``restore()`` puts the original values
    back (untimed), so every timed call sees the same data."""

    def __init__(self, case: Case, seed: int = 0) -> None:
        self.case = case
        n, dt = case.size, case.dtype
        self.act = act = ACTIVATIONS[case.name]
        self.kind = kind = kind_of(act)
        shape = kind.bench_shape(n)
        self.rowwise = kind.backward_from_y_only
        result_shape = kind.bench_result_shape(shape)  # the forward's result's, and grad_output's
        self.x0 = _inputs(shape, dt, seed, 3.0)
        self.g = _inputs(result_shape, dt, seed + 1, 1.0)
        self.x = self.x0.copy()
        self.gbuf = self.g.copy()
        # an existing output, its pages already touched
        self.out = np.ones(result_shape if case.direction == "forward" else shape, dt)
        self.args = kind.bench_args(case.params, dt)  # the public functions' arguments after x
        # a row-wise backward works from the forward's output, as a training step has it
        self.from_y = self.rowwise or case.direction == FROM_Y
        self.y = act.forward(self.x0, *self._params()) if self.from_y else None

    def restore(self) -> None:
        np.copyto(self.x, self.x0)
        np.copyto(self.gbuf, self.g)

    def _params(self) -> tuple:
        return self.args

    def fastact(self) -> Callable[[], Any]:
        act, case = self.act, self.case
        p = self._params()
        kw = self.kind.bench_kwargs
        if case.direction == "forward":
            x = self.x if case.in_place else self.x0
            out = {"into": self.out, "in place": self.x, "new": None}[case.mode]
            return lambda: act.forward(x, *p, out=out, **kw)
        g = self.gbuf if case.in_place else self.g
        out = {"into": self.out, "in place": self.gbuf, "new": None}[case.mode]
        if self.from_y:  # x is not given (parameters follow it positionally)
            y = self.y
            return lambda: act.backward(g, None, *p, y=y, out=out, **kw)
        x = self.x0
        return lambda: act.backward(g, x, *p, out=out, **kw)

    def numpy(self) -> Callable[[], Any] | None:
        act, case = self.act, self.case
        if act.numpy is None or case.direction == FROM_Y or case.mode != "new":
            return None  # the natural expression allocates; none is declared from y
        p = self.kind.bench_numpy_args(self.args)
        if case.direction == "forward":
            f, x = act.numpy, self.x0
            call = lambda: f(x, *p)  # noqa: E731
        else:
            fg, g, v = act.numpy_grad, self.g, (self.y if self.rowwise else self.x0)
            first = self.kind.bench_first_result
            call = lambda: first(fg(g, v, *p))  # noqa: E731
        if case.dtype.itemsize == 2:  # a natural expression may not take bfloat16 (SciPy's erf)
            try:
                with np.errstate(all="ignore"):
                    call()
            except TypeError:
                return None
        return call

    def torch(self) -> Callable[[], Any] | None:
        try:
            import torch
        except ImportError:
            return None
        act, case = self.act, self.case
        forward = case.direction == "forward"
        op = act.torch_out if forward else act.torch_grad_out
        if op is None or (not forward and ("y" if self.from_y else "x") not in act.torch_grad_from):
            return None
        aten = torch.ops.aten
        p = self.kind.bench_torch_args(self.args)
        from ._torch_ops import tensor  # a tensor on an array's memory (bfloat16 through int16)

        # PyTorch's tensors own copies (the inputs are read-only arrays, which torch warns about)
        x = tensor(self.x) if case.in_place and forward else tensor(self.x0.copy())
        if forward:
            def call(out):
                return op(aten, x, out, *p)
            buffer = x
        else:
            g = tensor(self.gbuf) if case.in_place else tensor(self.g.copy())
            v = tensor(self.y.copy()) if self.from_y else tensor(self.x0.copy())

            def call(out):
                return op(aten, g, v, out, self.from_y, *p)
            buffer = g
        if case.mode == "new":
            like = tensor(self.out)  # the result's shape (a gated backward's is x's, not g's)
            return lambda: call(torch.empty_like(like))
        out = buffer if case.in_place else tensor(self.out)
        # a peer that allocates its result (no out overload) is not like for like here
        probe = call(out)
        if probe is not out and probe.data_ptr() != out.data_ptr():
            return None
        return lambda: call(out)

    def roofline(self) -> Callable[[], Any]:
        def flat(a: np.ndarray) -> np.ndarray:
            # 16-bit floats as the integers of their width: the same bytes, which numba loops over
            return a.reshape(-1).view(np.uint16) if a.itemsize == 2 else a.reshape(-1)

        x = flat(self.x0)
        forward = self.case.direction == "forward"
        own = self.kind.bench_roofline(PASSES, x, flat(self.g), flat(self.out), forward, self.case.mode == "new")
        if own is not None:  # a kind whose result has another shape than x
            return own
        if self.case.mode == "in place":
            if forward:
                buf = flat(self.x)
                return lambda: in_place_pass(buf)
            g = flat(self.gbuf)
            return lambda: three_array_pass(g, x, g)
        new = self.case.mode == "new"
        out = flat(self.out)
        if forward:
            return (lambda: copy_pass(x, np.empty_like(x))) if new else (lambda: copy_pass(x, out))
        g = flat(self.g)
        return (lambda: three_array_pass(g, x, np.empty_like(x))) if new else (lambda: three_array_pass(g, x, out))


def time_calls(fns: dict[str, Callable[[], Any]], restore: Callable[[], None] | None,
               budget: float = 0.25, phases: int = 3, no_warm_up: frozenset[str] = frozenset(),
               slow: float = 0.25) -> dict[str, float]:
    """Median seconds per call of each callable, timed in phases: each callable in turn
    gets a warm-up call and then calls for budget / phases seconds (at least 2), and the
    phases repeat with the order rotated, so that drift on a shared machine reaches every
    contender and none always follows the same peer. ``restore`` runs untimed before each
    call.

    A callable whose first timed call takes longer than ``slow`` seconds (NumPy's gelu
    through math.erf at 2^24 elements: 3-4 s) is timed that once. Those in ``no_warm_up``
    (NumPy's expressions: nothing to compile) skip the warm-up."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns.items())
    for phase in range(phases):
        k = phase % len(order)
        for key, fn in order[k:] + order[:k]:
            if times[key] and times[key][0] > slow:
                continue
            if key not in no_warm_up:
                if restore:
                    restore()
                fn()
            start = time.perf_counter()
            calls = 0
            while calls < 2 or time.perf_counter() - start < budget / phases:
                if restore:
                    restore()
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
                calls += 1
                if times[key][0] > slow:
                    break
    return {k: float(np.median(v)) for k, v in times.items()}


CONTENDERS = ("fastact", "roofline", "numpy", "torch")


@functools.lru_cache(maxsize=1)
def _torch_module() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def _set_threads(n: int) -> None:
    import numba

    numba.set_num_threads(n)
    torch = _torch_module()
    if torch is not None:
        torch.set_num_threads(n)


def measure(case: Case, budget: float = 0.25) -> dict[str, Any]:
    """Seconds per call for each contender (None where there is none), and the ratios."""
    import numba

    before = numba.get_num_threads()
    if case.threads is not None:
        _set_threads(case.threads)
    try:
        r = Runners(case)
        fns = {who: fn for who in CONTENDERS if (fn := getattr(r, who)()) is not None}
        timed = time_calls(fns, r.restore if case.in_place else None, budget, no_warm_up=frozenset({"numpy"}))
        threads = numba.get_num_threads()
    finally:
        if case.threads is not None:
            _set_threads(before)
    seconds: dict[str, float | None] = {who: timed.get(who) for who in CONTENDERS}
    fa = seconds["fastact"]
    result: dict[str, Any] = {
        "case": case.id, "activation": case.name, "pass": case.direction, "mode": case.mode,
        "in_place": case.in_place, "dtype": case.dtype.name, "size": case.size, "threads": threads,
        "bytes": case.bytes_moved, "seconds": seconds,
        "fastact_GBps": case.bytes_moved / fa / 1e9,
        "fastact_ns_per_element": fa / case.size * 1e9,
        "torch_ns_per_element": None if seconds["torch"] is None else seconds["torch"] / case.size * 1e9,
        "of_roofline": seconds["roofline"] / fa,
    }
    for peer in ("numpy", "torch"):
        result[f"vs_{peer}"] = None if seconds[peer] is None else seconds[peer] / fa
    return result
