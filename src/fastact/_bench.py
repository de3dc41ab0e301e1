"""Benchmark cases generated from the registry, shared by ``python -m fastact bench``
and the pytest-benchmark suite in bench/.

Each case is (activation, pass, in place or not, dtype, size) and has four runners:
fastact, NumPy's natural expression (declared with the activation), PyTorch CPU when it
is installed, and the roofline: a numba parallel loop that moves the same bytes and
does no arithmetic (a copy for a forward, a read-modify-write pass for an in-place
forward, a 3-array pass for a backward). Speed is reported as bytes moved per second
and as ratios to the roofline and to the peers measured in the same run.

Out of place, every contender returns a new array, as ``fa.relu(x)``, ``np.maximum(x, 0)``
and ``F.relu(t)`` do, and the roofline copies into a new array: the allocation (and the
page faults of a large one) is part of what each costs. In place, none allocates.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit, prange

from . import ACTIVATIONS

PRELU_CHANNELS = 8
ROW_LENGTH = 1024  # softmax and log_softmax: rows of this many elements along the last axis


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


# --- cases ---------------------------------------------------------------------------------------


FROM_Y = "backward from y"  # the backward given the forward's output, as autograd keeps it


@dataclass
class Case:
    name: str
    direction: str  # "forward", "backward" (from x) or FROM_Y
    in_place: bool
    dtype: np.dtype
    size: int
    params: tuple = field(default=())

    @property
    def id(self) -> str:
        where = "inplace" if self.in_place else "out"
        return f"{self.name}-{self.direction.replace(' ', '_')}-{where}-{np.dtype(self.dtype).name}-{self.size}"

    @property
    def bytes_moved(self) -> int:
        arrays = 2 if self.direction == "forward" else 3
        return arrays * self.size * np.dtype(self.dtype).itemsize


def cases(
    names: list[str] | None = None,
    dtypes: tuple = (np.float32, np.float64),
    sizes: tuple[int, ...] = (1 << 24,),
    directions: tuple[str, ...] = ("forward", "backward", FROM_Y),
    in_place: tuple[bool, ...] = (False, True),
) -> Iterator[Case]:
    """FROM_Y for the element-wise activations whose derivative their output gives
    (a row-wise backward always works from y: its "backward" is that one)."""
    for name in names or list(ACTIVATIONS):
        act = ACTIVATIONS[name]
        params = act.example_params if act.kind == "elementwise" else ()
        for dtype in dtypes:
            for size in sizes:
                for direction in directions:
                    if direction == FROM_Y and not (act.kind == "elementwise" and act.supports_y):
                        continue
                    for ip in in_place:
                        yield Case(name, direction, ip, np.dtype(dtype), size, params)


@functools.lru_cache(maxsize=4)
def _inputs(shape: tuple[int, ...], dtype: np.dtype, seed: int, scale: float) -> np.ndarray:
    """Normal random values, shared by the cases of one shape and dtype (read-only; making
    2^24 of them costs more than timing a case)."""
    a = np.random.default_rng(seed).standard_normal(shape, dtype=np.float64).astype(dtype) * dtype.type(scale)
    a.flags.writeable = False
    return a


class Runners:
    """The arrays of one case and a zero-argument callable per contender.

    In-place runners overwrite their buffer; ``restore()`` puts the original values
    back (untimed), so every timed call sees the same data."""

    def __init__(self, case: Case, seed: int = 0) -> None:
        self.case = case
        n, dt = case.size, case.dtype
        kind = ACTIVATIONS[case.name].kind
        if kind == "channelwise":
            shape: tuple[int, ...] = (1, PRELU_CHANNELS, n // PRELU_CHANNELS)
        elif kind == "rowwise":
            shape = (n // min(n, ROW_LENGTH), min(n, ROW_LENGTH))
        else:
            shape = (n,)
        self.rowwise = kind == "rowwise"
        self.x0 = _inputs(shape, dt, seed, 3.0)
        self.g = _inputs(shape, dt, seed + 1, 1.0)
        self.x = self.x0.copy()
        self.weight = np.linspace(0.05, 0.4, PRELU_CHANNELS).astype(dt)
        self.gbuf = self.g.copy()
        # a row-wise backward works from the forward's output, as a training step has it
        self.y = ACTIVATIONS[case.name].forward(self.x0, *self._params()) if (
            self.rowwise or case.direction == FROM_Y) else None

    def restore(self) -> None:
        np.copyto(self.x, self.x0)
        np.copyto(self.gbuf, self.g)

    def _params(self) -> tuple:
        return (self.weight,) if self.case.name == "prelu" else self.case.params

    def fastact(self) -> Callable[[], Any]:
        act = ACTIVATIONS[self.case.name]
        p, x, g, gbuf = self._params(), self.x, self.g, self.gbuf
        if self.case.direction == "forward":
            if self.case.in_place:
                return lambda: act.forward(x, *p, out=x)
            return lambda: act.forward(x, *p)
        if self.y is not None:  # from y: x is not given (params follow it positionally)
            y = self.y
            if self.case.in_place:
                return lambda: act.backward(gbuf, None, *p, y=y, out=gbuf)
            return lambda: act.backward(g, None, *p, y=y)
        if self.case.in_place:
            return lambda: act.backward(gbuf, x, *p, out=gbuf)
        return lambda: act.backward(g, x, *p)

    def numpy(self) -> Callable[[], Any] | None:
        act = ACTIVATIONS[self.case.name]
        if act.numpy is None or self.case.direction == FROM_Y:  # no natural NumPy form declared from y
            return None
        p = self._params()
        if self.case.name == "prelu":
            p = (self.weight.reshape(1, -1, 1),)
        x, g = self.x, self.g
        if self.case.direction == "forward":
            f = act.numpy
            if self.case.in_place:  # the natural in-place NumPy form: assign the result back
                return lambda: np.copyto(x, f(x, *p))
            return lambda: f(x, *p)
        fg = act.numpy_grad
        if self.rowwise:  # its natural NumPy gradient is written from y
            x = self.y
        if self.case.name == "prelu":  # prelu_backward's two results: grad_x is the first
            fg = functools.partial(_first, fg)
        if self.case.in_place:
            gb = self.gbuf
            return lambda: np.copyto(gb, fg(gb, x, *p))
        return lambda: fg(g, x, *p)

    def torch(self) -> Callable[[], Any] | None:
        try:
            import torch
            import torch.nn.functional as F
        except ImportError:
            return None
        name, case = self.case.name, self.case
        fn = getattr(F, name, None)
        if fn is None:
            return None
        if name == "prelu":
            p: tuple = (torch.from_numpy(self.weight),)
        elif self.rowwise:
            p, fn = (), functools.partial(fn, dim=-1)
        else:  # by keyword: fastact's parameter names are PyTorch's (gelu's approximate is keyword-only)
            p, fn = (), functools.partial(fn, **dict(zip(ACTIVATIONS[name].param_names, case.params, strict=True)))
        tx = torch.from_numpy(self.x)
        if case.direction == "forward":
            if case.in_place:
                if _takes_inplace(getattr(F, name)):
                    return lambda: fn(tx, *p, inplace=True)
                method = getattr(torch.Tensor, f"{name}_", None)  # tanh_, sigmoid_
                if method is not None and not case.params and not self.rowwise:
                    return lambda: method(tx)
                return None  # PyTorch has no in-place form of this one
            return lambda: fn(tx, *p)
        if case.in_place:
            return None  # autograd allocates its gradient
        leaf = torch.from_numpy(self.x0.copy()).requires_grad_(True)
        wrt = (leaf,)
        if name == "prelu":  # the weight's gradient too, as fastact's prelu_backward returns it
            p = (p[0].clone().requires_grad_(True),)
            wrt = (leaf, p[0])
        y = fn(leaf, *p)
        tg = torch.from_numpy(self.g.copy())  # self.g is read-only, which torch warns about
        return lambda: torch.autograd.grad(y, wrt, tg, retain_graph=True)

    def roofline(self) -> Callable[[], Any]:
        x = self.x.reshape(-1)
        if self.case.direction == "forward":
            if self.case.in_place:
                return lambda: in_place_pass(x)
            return lambda: copy_pass(x, np.empty_like(x))
        if self.case.in_place:
            g = self.gbuf.reshape(-1)
            return lambda: three_array_pass(g, x, g)
        g = self.g.reshape(-1)
        return lambda: three_array_pass(g, x, np.empty_like(x))


def _first(f: Callable[..., Any], *args: Any) -> Any:
    """The first of f's results, where f returns a tuple (grad_x of prelu's gradients)."""
    result = f(*args)
    return result[0] if isinstance(result, tuple) else result


def _takes_inplace(fn: Callable[..., Any]) -> bool:
    try:
        return "inplace" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature (prelu)
        return False


def time_calls(fns: dict[str, Callable[[], Any]], restore: Callable[[], None] | None,
               budget: float = 0.25, max_rounds: int = 200, no_warm_up: frozenset[str] = frozenset(),
               slow: float = 0.25) -> dict[str, float]:
    """Median seconds per call of each callable. The callables take turns, one call each per
    round, so that drift on a shared machine (another tenant, frequency changes) affects
    them alike, and the round's order rotates, so that none always follows a peer that
    allocates and frees a large array; rounds continue while they fit in budget seconds
    per callable (at least 3). ``restore`` runs untimed before each call.

    A callable whose first timed call takes longer than ``slow`` seconds (NumPy's gelu at
    2^24 elements: 3-4 s) is timed that once: repeating it would cost most of a default
    `python -m fastact bench` run and change its ratio by less than the machine's noise.
    Those in ``no_warm_up`` (NumPy's expressions: nothing to compile) skip the warm-up."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for key, fn in fns.items():  # warm-up: compile, fault pages in
        if key in no_warm_up:
            continue
        if restore:
            restore()
        fn()
    start = time.perf_counter()
    rounds = 0
    order = list(fns.items())
    done: set[str] = set()
    slow_seconds = 0.0  # not counted against the others' budget
    while rounds < 3 or (time.perf_counter() - start - slow_seconds < budget * len(fns) and rounds < max_rounds):
        k = rounds % len(order)
        for key, fn in order[k:] + order[:k]:
            if key in done:
                continue
            if restore:
                restore()
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
            if times[key][0] > slow:
                done.add(key)
                slow_seconds += times[key][0]
        rounds += 1
        if len(done) == len(order):
            break
    return {k: float(np.median(v)) for k, v in times.items()}


CONTENDERS = ("fastact", "roofline", "numpy", "torch")


def measure(case: Case, budget: float = 0.25) -> dict[str, Any]:
    """Seconds per call for each contender (None where there is none), and the ratios."""
    r = Runners(case)
    fns = {who: fn for who in CONTENDERS if (fn := getattr(r, who)()) is not None}
    timed = time_calls(fns, r.restore if case.in_place else None, budget, no_warm_up=frozenset({"numpy"}))
    seconds: dict[str, float | None] = {who: timed.get(who) for who in CONTENDERS}
    fa = seconds["fastact"]
    result: dict[str, Any] = {
        "case": case.id, "activation": case.name, "pass": case.direction, "in_place": case.in_place,
        "dtype": case.dtype.name, "size": case.size, "bytes": case.bytes_moved, "seconds": seconds,
        "fastact_GBps": case.bytes_moved / fa / 1e9,
        "of_roofline": seconds["roofline"] / fa,
    }
    for peer in ("numpy", "torch"):
        result[f"vs_{peer}"] = None if seconds[peer] is None else seconds[peer] / fa
    return result
