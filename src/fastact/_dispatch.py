"""The thin NumPy-facing layer: conversion, ``out=``, layouts, serial vs parallel.

Paths, fastest first:

1. every operand is one contiguous buffer in the same order (C or Fortran), or can be
   viewed as 1-D: the flat kernel, serial below ``PARALLEL_MIN_SIZES`` elements (per
   dtype and direction) and parallel above;
2. a large strided array that can be viewed as 2-D rows: the parallel row kernel;
3. anything else (broadcasting, partial overlap of ``out`` with an input, layouts
   with no 1-D or 2-D view): the activation's real NumPy ufunc, which loops over any
   strides without copying and handles overlap exactly as NumPy does.

Every check runs before anything is written.
"""

from __future__ import annotations

import inspect
import math
import operator
import re
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from . import _lazy, _threading
from ._kernels import _COLUMN_BLOCK, _TAIL, Kernels, channel_totals_columns, channel_totals_rows
from ._registry import Activation

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)

# Element counts at and above which the parallel kernels run, per dtype and direction:
# the median, over the element-wise activations, of the size from which the parallel
# flat kernel beat the serial one at every larger size, measured by bench/crossover.py
# on the project's machine kind (2 threads, TBB; 2026-11-23, medians over the 21
# activations: float32 2^16 both ways, float64 2^14 forward and 2^13 backward). Below, the few
# microseconds of a parallel launch cost more than splitting the work saves. The
# memory-bound activations (relu, hardtanh, the shrinks) cross later than the median,
# the transcendental ones (gelu, mish) earlier. README, "Dispatch", has the numbers.
PARALLEL_MIN_SIZES: dict[tuple[np.dtype, str], int] = {
    (F32, "forward"): 1 << 16,
    (F32, "backward"): 1 << 16,
    (F64, "forward"): 1 << 14,
    (F64, "backward"): 1 << 13,
    # softmax and log_softmax (rows of 1,024; the kernels timed directly, serial against
    # parallel with 16 tasks, 2026-12-01, Zen 5, 2 threads): their backward is a light
    # pass per row, and a parallel launch pays later than for the element-wise kernels
    (F32, "rows forward"): 1 << 15,
    (F64, "rows forward"): 1 << 15,
    (F32, "rows backward"): 1 << 16,
    (F64, "rows backward"): 1 << 17,
}
# at and above this, every kernel runs in parallel (tests use it to reach that path)
PARALLEL_MIN_SIZE = max(PARALLEL_MIN_SIZES.values())


def parallel_min_size(dtype: np.dtype, direction: str) -> int:
    return PARALLEL_MIN_SIZES.get((dtype, direction), PARALLEL_MIN_SIZE)

_lock_needed: bool | None = None


def _launch(kernel: Callable[..., None], *args: Any) -> None:
    """Run a parallel kernel, serialised when the threading layer is not thread-safe."""
    global _lock_needed
    if _lock_needed is False:
        kernel(*args)
        return
    with _threading.launch_lock:
        kernel(*args)
        _lock_needed = _threading.needs_launch_lock()


_C_CONTIGUOUS, _WRITEABLE = 0x1, 0x400  # bits of ndarray.flags.num (NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_WRITEABLE)


def _entry_point(dispatcher: Any, args: tuple) -> Callable[..., None]:
    """The compiled function behind a numba dispatcher for these arguments' types (compiled,
    or loaded from the disk cache, now). The small-call paths call it directly: numba's
    typing of the arguments on every call is about 0.4 microseconds of a 2-microsecond
    call at 1,000 elements. The compiled function unboxes what it is given without
    checking it against its types, so a caller keys the entry points by everything that
    decides those types: the dtype and each array's flags (layout, alignment, read-only).
    A numba without ``Dispatcher.compile`` returns the dispatcher itself."""
    try:
        return dispatcher.compile(tuple(numba.typeof(a) for a in args))
    except AttributeError:
        return dispatcher


# --- conversion and checks ----------------------------------------------------------------


def result_dtype(function: str, argument: str, dtype: np.dtype) -> np.dtype:
    """The dtype NumPy's own ufuncs (np.exp) give for this input dtype."""
    if dtype is F32 or dtype is F64:
        return dtype
    kind = dtype.kind
    if kind == "f" and dtype.itemsize <= 8:
        return dtype.newbyteorder("=")  # float16, or a byte-swapped float32/64
    if kind in "biu":
        return np.result_type(dtype, F16)  # bool, int8 -> float16; int16 -> float32; ...
    raise TypeError(
        f"{function}: {argument} has dtype {dtype}, which fastact does not support "
        f"(it computes in float32 and float64 and accepts float16, integer and bool input)"
    )


def _result_dtype2(function: str, name1: str, dtype1: np.dtype, name2: str, dtype2: np.dtype) -> np.dtype:
    """The result dtype of a function of two arrays (np.result_type's, skipped for the
    common case of one float32 or float64 dtype: it costs microseconds)."""
    if dtype1 is dtype2 and (dtype1 is F32 or dtype1 is F64):
        return dtype1
    return np.result_type(result_dtype(function, name1, dtype1), result_dtype(function, name2, dtype2))


def _defers(a: Any) -> bool:
    """a is an array type that implements NumPy's ufunc protocol itself (dask, xarray,
    pandas) or a masked array: it gets the activation's ufunc, as np.exp would hand it,
    and so stays lazy (dask), keeps its coordinates (xarray) or its mask instead of being
    converted to an ndarray."""
    if isinstance(a, np.ndarray | np.generic):
        return isinstance(a, np.ma.MaskedArray)
    return getattr(type(a), "__array_ufunc__", None) is not None


def _refuse_masked(function: str, *named: tuple[str, Any]) -> None:
    for name, a in named:
        if isinstance(a, np.ma.MaskedArray):
            raise TypeError(
                f"{function}: {name} is a masked array, whose mask a normalisation over rows would have to "
                f"take part in; pass {name}.filled(value) or {name}.data"
            )


def _deferred(ufunc: np.ufunc, inputs: tuple, params: tuple[float, ...], out: Any) -> Any:
    """The activation's ufunc over inputs of which one _defers: their type computes it."""
    return ufunc(*inputs, *params) if out is None else ufunc(*inputs, *params, out=out)


def _lazy_dtype(function: str, out: Any, *named: tuple[str, Any]) -> np.dtype:
    """The result dtype for dask/xarray input (softmax, log_softmax, prelu), checked before
    anything is deferred; out= has no meaning for a lazy result."""
    if out is not None:
        raise TypeError(f"{function}: out= is not supported for dask or xarray input")
    dtypes = [result_dtype(function, name, np.dtype(a.dtype) if hasattr(a, "dtype") else np.asarray(a).dtype)
              for name, a in named]
    return np.result_type(*dtypes)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    return F32 if dtype is F16 or dtype == F16 else dtype


def as_input(function: str, argument: str, value: Any) -> np.ndarray:
    """value as an ndarray of a supported dtype (not yet converted); raises TypeError."""
    a = value if type(value) is np.ndarray else np.asarray(value)
    if not (a.dtype is F32 or a.dtype is F64):
        result_dtype(function, argument, a.dtype)
    return a


def check_out(function: str, out: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{function}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{function}: out has shape {out.shape}, the result has shape {shape}")
    if out.dtype != dtype and out.dtype.newbyteorder("=") != dtype:  # byte order aside, as NumPy's ufuncs
        raise TypeError(f"{function}: out has dtype {out.dtype}, the result has dtype {dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{function}: out is read-only")
    return out


def _fast_out(out: Any, x: np.ndarray, dtype: np.dtype, *more: np.ndarray) -> np.ndarray | None:
    """out, if the lean path can write to it as it is (right type, dtype, shape, contiguous,
    writable, and each input either out itself or apart from it); else None, and the
    general path checks it and says what is wrong."""
    if type(out) is not np.ndarray or out.dtype is not dtype or out.shape != x.shape:
        return None
    flags = out.flags
    if not (flags.c_contiguous and flags.writeable):
        return None
    for a in (x, *more):
        if a is not out and np.may_share_memory(a, out):
            return None
    return out


def _small_out(out: Any, a: np.ndarray, *more: np.ndarray) -> np.ndarray | None:
    """Where a small-call path writes: a new array like a; a itself (in place: a's
    kernels read each element before writing it), when writable and apart from the
    other operands; or an out it can take as it is (_fast_out). None: the general path
    checks out and says what is wrong."""
    if out is None:
        return np.empty_like(a)
    if out is a:
        return a if a.flags.writeable and not any(np.may_share_memory(m, a) for m in more) else None
    return _fast_out(out, a, a.dtype, *more)


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    # the cheap tests first: __array_interface__ builds a dict (microseconds)
    return a is b or (
        a.strides == b.strides
        and np.may_share_memory(a, b)
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def overlaps_partly(out: np.ndarray, *inputs: np.ndarray) -> bool:
    """out shares memory with an input without being the very same view of it."""
    for a in inputs:
        if a is not out and np.may_share_memory(a, out) and not _same_view(a, out):
            return True
    return False


# --- views for the kernels ---------------------------------------------------------------


def _flat_views(arrays: tuple[np.ndarray, ...]) -> list[np.ndarray] | None:
    """1-D views that pair up element by element, or None."""
    if arrays[0].ndim == 1:  # the views pair up exactly when the shapes do
        return list(arrays)
    if all(a.flags.c_contiguous for a in arrays):
        return [a.reshape(-1) for a in arrays]
    if all(a.flags.f_contiguous for a in arrays):
        return [a.T.reshape(-1) for a in arrays]
    try:
        return [a.reshape(-1, copy=False) for a in arrays]
    except ValueError:
        return None


def _row_views(arrays: tuple[np.ndarray, ...]) -> list[np.ndarray] | None:
    """2-D strided views (rows x columns) that pair up element by element, or None."""
    for order in (arrays, tuple(a.T for a in arrays)):
        try:
            return [a.reshape(-1, a.shape[-1], copy=False) for a in order]
        except ValueError:
            continue
    return None


def run_elementwise(
    kernels: Kernels, loops: str, inputs: tuple[np.ndarray, ...], out: np.ndarray, params: tuple,
    fresh_out: bool = False,
) -> None:
    """out = loop(*inputs) over any layout. ``loops`` names the Kernels attribute
    ("forward", "backward", "backward_from_y"); its ufunc is only built if needed.
    ``fresh_out``: out was just allocated, so it cannot overlap an input."""
    size = out.size
    threshold = parallel_min_size(out.dtype, "forward" if loops == "forward" else "backward")
    if size >= threshold and _threading.one_thread():  # a parallel launch would only add its cost
        threshold = size + 1
    same_shape = all(a.shape == out.shape for a in inputs)
    if same_shape and (fresh_out or not overlaps_partly(out, *inputs)):
        arrays = (*inputs, out)
        views = _flat_views(arrays)
        if views is not None:
            serial, parallel = getattr(kernels, loops)["flat"]
            if size < threshold:
                if out is inputs[0]:  # in place: the serial loop reads out (see _kernels._map_loops)
                    views[0] = None
                serial(*views, params)
            else:
                _launch(parallel, *views, params)
            return
        if size >= threshold and out.ndim >= 2:
            views = _row_views(arrays)
            if views is not None:
                _launch(getattr(kernels, loops)["rows"][1], *views, params)
                return
    ufunc = getattr(kernels, f"{loops}_ufunc" if loops != "forward" else "ufunc")
    # numba's vectorised compares raise the FP "invalid" flag on NaN, which NumPy would
    # report after the loop; fastact's other paths never warn, so neither does this one
    with np.errstate(all="ignore"):
        ufunc(*inputs, *params, out=out)


# --- the public functions -----------------------------------------------------------------


class _RequiresValues:
    """In place of the typed defaults of an activation with required parameters: any use
    means the call gave none of them."""

    def __init__(self, function: str, act: Activation) -> None:
        self.function, self.act = function, act

    def __getitem__(self, dtype: np.dtype) -> tuple:
        missing = [p.name for p in self.act.params if p.required]
        raise TypeError(f"{self.function}() missing required arguments: {', '.join(map(repr, missing))}")


class Binder:
    """Binds (args, kwargs) to an activation's parameters, with its defaults, fast."""

    def __init__(self, function: str, act: Activation, first: int) -> None:
        self.function = function
        self.act = act
        self.names = act.param_names
        self.index = {n: i for i, n in enumerate(self.names)}
        self.defaults = tuple(p.default for p in act.params)
        self.first = first  # how many positional arguments precede the parameters
        self.required = any(p.required for p in act.params)
        if self.required:  # no defaults to fall back on: every call binds its own values
            self.default_values = None
            self.typed_defaults = _RequiresValues(function, act)
        else:
            self.default_values = act.validate(function, self.defaults)
            self.typed_defaults = {dt: tuple(dt.type(v) for v in self.default_values) for dt in (F32, F64)}
        # validated, typed parameters of recent calls: a loop calling leaky_relu(x, 0.2)
        # pays for validation once
        self._memo: dict[np.dtype, dict[tuple, tuple]] = {}  # per dtype; float32's at hand
        self._memo32 = self._memo.setdefault(F32, {})
        self._positional: dict[tuple, tuple[float, ...]] = {}
        self.typed_pairs: dict[tuple, tuple[tuple, tuple]] = {}

    def bind(self, args: tuple, kwargs: dict) -> tuple[float, ...] | None:
        """The validated parameter values, or None when all are the defaults."""
        if not args and not kwargs and not self.required:
            return None
        if not kwargs:
            # positional parameters seen before: their validated values. (Arguments that
            # compare equal, such as 1, 1.0 and True, validate to the same floats.)
            try:
                return self._positional[args]
            except (KeyError, TypeError):  # new, or unhashable (an array): bound below
                pass
        if len(args) > len(self.names):
            raise TypeError(
                f"{self.function}() takes {self.first + len(self.names)} positional "
                f"arguments but {self.first + len(args)} were given"
            )
        values = list(args) + list(self.defaults[len(args):])
        for key, value in kwargs.items():
            i = self.index.get(key)
            if i is None:
                raise TypeError(f"{self.function}() got an unexpected keyword argument {key!r}")
            if i < len(args):
                raise TypeError(f"{self.function}() got multiple values for argument {key!r}")
            values[i] = value
        checked = self.act.validate(self.function, tuple(values))
        if not kwargs:
            if len(self._positional) > 64:
                self._positional.clear()
            try:
                self._positional[args] = checked
            except TypeError:
                pass
        return checked

    def call_params(self, args: tuple, kwargs: dict) -> tuple[tuple, tuple]:
        """typed_pair's result, found in one dictionary lookup for positional parameters
        seen before (the small-call paths' way in)."""
        if not kwargs:
            try:
                pair = self.typed_pairs.get(args)
            except TypeError:  # unhashable: a 0-d array as a parameter
                pair = None
            if pair is not None:
                return pair
        return self.typed_pair(args, kwargs)

    def typed_pair(self, args: tuple, kwargs: dict) -> tuple[tuple, tuple]:
        """The parameters of a call typed for float32 and for float64. Positional arguments
        are remembered in ``typed_pairs`` (keyed by the args tuple itself, so that a small
        call finds them in one dictionary lookup, building nothing)."""
        values = self.bind(args, kwargs) if args or kwargs else None
        pair = (self.typed(values, F32), self.typed(values, F64))
        if not kwargs:
            if len(self.typed_pairs) > 64:
                self.typed_pairs.clear()
            try:
                self.typed_pairs[args] = pair
            except TypeError:  # unhashable (an array as a parameter): not remembered
                pass
        return pair

    def given_or_default(self, values: tuple[float, ...] | None) -> tuple[float, ...]:
        """values, or the validated defaults (raising when a required parameter is missing)."""
        if values is not None:
            return values
        if self.default_values is None:
            self.typed_defaults[F64]  # raises: the call gave none of the required parameters
        return self.default_values

    def typed(self, values: tuple[float, ...] | None, dtype: np.dtype) -> tuple:
        if values is None:
            return self.typed_defaults[dtype]
        memo = self._memo32 if dtype is F32 else self._memo.setdefault(dtype, {})
        typed = memo.get(values)
        if typed is None:
            if len(memo) > 64:
                memo.clear()
            typed = memo[values] = tuple(dtype.type(v) for v in values)
        return typed


def _returned(result: np.ndarray, out_given: bool) -> Any:
    # as ufuncs do: a 0-d result comes back as a NumPy scalar unless out= was given
    return result[()] if result.ndim == 0 and not out_given else result


def _params_signature(act: Activation) -> list[inspect.Parameter]:
    return [
        inspect.Parameter(
            p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=inspect.Parameter.empty if p.required else p.default, annotation=str if p.choices else float,
        )
        for p in act.params
    ]


_ARRAY = "numpy.typing.ArrayLike"
_OUT = inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="numpy.ndarray | None")


def make_forward(act: Activation, kernels: Kernels) -> Callable[..., Any]:
    name = act.name
    binder = Binder(name, act, first=1)

    # The small-array path below costs only overhead, so it keeps to closure variables
    # (faster to reach than module globals) and calls the serial kernel's compiled entry
    # points, by the operands' dtype and flags (-1: a new array, C-contiguous and aligned).
    ndarray, empty_like, f32, f64, one_thread = np.ndarray, np.empty_like, F32, F64, _threading.one_thread
    small32, small64 = PARALLEL_MIN_SIZES[F32, "forward"], PARALLEL_MIN_SIZES[F64, "forward"]
    call_params = binder.call_params
    entries: dict[tuple, Callable[..., None]] = {}

    def forward(x, *args, out=None, **kwargs):
        if type(x) is ndarray:
            dt = x.dtype
            xnum = x.flags.num
            # below the parallel crossover, or at any size where the kernels run on one thread
            if (dt is f32 or dt is f64) and xnum & _C_CONTIGUOUS and (
                    x.size < (small32 if dt is f32 else small64) or one_thread()):
                if out is None:
                    result, rnum = empty_like(x), -1
                elif out is x:  # in place: x=None, the loop reads out (see _kernels._map_loops)
                    result, rnum = (x if xnum & _WRITEABLE else None), -2
                else:
                    result = _fast_out(out, x, dt)
                    rnum = None if result is None else result.flags.num
                if result is not None:
                    params = call_params(args, kwargs)[dt is f64]
                    rv = result if result.ndim == 1 else result.reshape(-1)
                    xv = None if rnum == -2 else (x if x.ndim == 1 else x.reshape(-1))
                    key = (dt is f64, xnum, rnum)
                    entry = entries.get(key)
                    if entry is None:
                        entry = entries[key] = _entry_point(kernels.forward["flat"][0], (xv, rv, params))
                    entry(xv, rv, params)
                    return result if x.ndim or out is not None else result[()]
        values = binder.bind(args, kwargs) if args or kwargs else None
        if out is None and _lazy.kind(x):
            binder.given_or_default(values)  # raises where a required parameter is missing: before deferring
            return _lazy.elementwise_forward(forward, x, args, kwargs, _lazy_dtype(name, None, ("x", x)))
        if _defers(x):
            return _deferred(kernels.ufunc, (x,), binder.given_or_default(values), out)
        x = as_input(name, "x", x)
        rdt = result_dtype(name, "x", x.dtype)
        cdt = compute_dtype(rdt)
        if out is not None:
            check_out(name, out, x.shape, rdt)
        params = binder.typed(values, cdt)
        if x.dtype == cdt and rdt == cdt and (out is None or out.dtype == cdt):
            result = np.empty_like(x) if out is None else out
            run_elementwise(kernels, "forward", (x,), result, params, fresh_out=out is None)
        else:
            # converted input is a private copy: compute in it, then cast (float16)
            xc = x.astype(cdt)
            run_elementwise(kernels, "forward", (xc,), xc, params, fresh_out=True)
            result = xc.astype(rdt, copy=False) if out is None else out
            if out is not None:
                np.copyto(out, xc, casting="unsafe")
        return _returned(result, out is not None)

    forward.__signature__ = inspect.Signature(
        [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         *_params_signature(act), _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    return _named(forward, name, _forward_doc(act))


def make_backward(act: Activation, kernels: Kernels) -> Callable[..., Any]:
    name = f"{act.name}_backward"
    binder = Binder(name, act, first=2)
    # as in make_forward: the small path keeps to closure variables and entry points
    ndarray, empty_like, f32, f64, one_thread = np.ndarray, np.empty_like, F32, F64, _threading.one_thread
    small32, small64 = PARALLEL_MIN_SIZES[F32, "backward"], PARALLEL_MIN_SIZES[F64, "backward"]
    call_params = binder.call_params
    entries: dict[tuple, Callable[..., None]] = {}

    supports_y, y_ok = act.supports_y, act.y_ok

    def backward(grad_output, x=None, *args, y=None, out=None, **kwargs):
        # v: x, or y where only y= is given and the output can give the derivative
        v = x if y is None else (y if x is None and supports_y else None)
        if type(v) is ndarray and type(grad_output) is ndarray:
            dt = v.dtype
            if (
                (dt is f32 or dt is f64) and grad_output.dtype is dt and v.ndim == 1 and grad_output.shape == v.shape
                and (v.size < (small32 if dt is f32 else small64) or one_thread())
            ):  # the common small case (or one thread), kept lean
                if out is None:
                    result, rnum = empty_like(v), -1
                else:
                    result = _fast_out(out, v, dt, grad_output)
                    rnum = None if result is None else (-2 if result is grad_output else result.flags.num)
                if result is not None:
                    params = call_params(args, kwargs)[dt is f64]
                    # (a y= that these parameters do not allow: the general path below says why)
                    if y is None or y_ok is None or y_ok(*params):
                        gv = None if rnum == -2 else grad_output  # in place: the loop reads out
                        key = (dt is f64, y is None, grad_output.flags.num, v.flags.num, rnum)
                        entry = entries.get(key)
                        if entry is None:
                            loops = kernels.backward if y is None else kernels.backward_from_y
                            entry = entries[key] = _entry_point(loops["flat"][0], (gv, v, result, params))
                        entry(gv, v, result, params)
                        return result
        values = binder.bind(args, kwargs) if args or kwargs else None
        if (x is None) == (y is None):
            raise TypeError(f"{name}: give exactly one of x (the forward's input) and y= (its output)")
        if y is not None:
            act.check_y(name, values if values is not None else binder.default_values)
            arg, argname = y, "y"
        else:
            arg, argname = x, "x"
        if out is None and (_lazy.kind(grad_output) == "dask" or _lazy.kind(arg) == "dask"):
            binder.given_or_default(values)  # as in forward: a missing parameter raises now
            rdt = _lazy_dtype(name, None, ("grad_output", grad_output), (argname, arg))
            lazy = _lazy.elementwise_backward(backward, grad_output, arg, y is not None, args, kwargs, rdt)
            if lazy is not None:
                return lazy
        if _defers(grad_output) or _defers(arg):
            ufunc = kernels.backward_ufunc if y is None else kernels.backward_from_y_ufunc
            return _deferred(ufunc, (grad_output, arg), binder.given_or_default(values), out)
        g = as_input(name, "grad_output", grad_output)
        v = as_input(name, argname, arg)
        rdt = _result_dtype2(name, "grad_output", g.dtype, argname, v.dtype)
        cdt = compute_dtype(rdt)
        try:
            shape = np.broadcast_shapes(g.shape, v.shape)
        except ValueError:
            raise ValueError(
                f"{name}: grad_output has shape {g.shape}, which does not match {argname}'s shape {v.shape}"
            ) from None
        if out is not None:
            check_out(name, out, shape, rdt)
        params = binder.typed(values, cdt)
        loops = "backward" if y is None else "backward_from_y"
        g, v = g.astype(cdt, copy=False), v.astype(cdt, copy=False)
        if rdt == cdt and (out is None or out.dtype == cdt):  # (a byte-swapped out: through tmp below)
            if out is not None:
                result = out
            else:  # keep the inputs' memory order, so that the flat kernel applies
                result = np.empty_like(g) if g.shape == shape else np.empty(shape, cdt)
            run_elementwise(kernels, loops, (g, v), result, params, fresh_out=out is None)
        else:
            tmp = np.empty(shape, cdt)
            run_elementwise(kernels, loops, (g, v), tmp, params, fresh_out=True)
            result = tmp.astype(rdt) if out is None else out
            if out is not None:
                np.copyto(out, tmp, casting="unsafe")
        return _returned(result, out is not None)

    backward.__signature__ = inspect.Signature(
        [inspect.Parameter("grad_output", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         inspect.Parameter(
             "x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=f"{_ARRAY} | None",
             # x is optional when y= can stand in for it (a required parameter may not follow it then)
             default=None if act.supports_y or not binder.required else inspect.Parameter.empty,
         ),
         *_params_signature(act),
         inspect.Parameter("y", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=f"{_ARRAY} | None"),
         _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    return _named(backward, name, _backward_doc(act))


# --- channel-wise (prelu) ---------------------------------------------------------------------

_BLOCK = 65536  # row elements per task: long enough to vectorise, short enough to spread
_ROW_BLOCKS = 64  # tasks in the columns form: a few per thread, for load balance


def _channel_layout(function: str, x: np.ndarray, weight: np.ndarray, axis: Any) -> tuple[int, int, int]:
    """(outer, channels, inner) of x around its channel axis, checking weight against it."""
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{function}: axis must be an integer, got {axis!r}") from None
    if x.ndim < 2:  # as PyTorch: a 0-d or 1-D input has a single channel
        outer, channels, inner = 1, 1, x.size
    else:
        if not -x.ndim <= axis < x.ndim:
            raise np.exceptions.AxisError(f"{function}: axis {axis} is out of bounds for x with {x.ndim} dimensions")
        axis %= x.ndim
        channels = x.shape[axis]
        outer, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
    if weight.ndim > 1:  # as PyTorch: a (1, C) weight is refused, not flattened
        raise ValueError(f"{function}: weight must be 0-d or 1-D, got shape {weight.shape}")
    if weight.size not in (1, channels):
        raise ValueError(
            f"{function}: weight has {weight.size} elements; it needs 1 or one per channel "
            f"({channels}, x.shape[axis])"
        )
    return outer, channels, inner


class _ChannelPlan:
    """How the channel kernels see x: one long row (a single channel), columns (an
    (N, C) input: inner == 1), or rows (outer * channels rows of inner elements)."""

    def __init__(self, outer: int, channels: int, inner: int) -> None:
        self.outer, self.channels, self.inner = outer, channels, inner
        if channels == 1:
            self.form, self.shape = "rows", (1, outer * inner)
        elif inner == 1:
            self.form, self.shape = "columns", (outer, channels)
        else:
            self.form, self.shape = "rows", (outer * channels, inner)
        self.n_row_blocks = max(1, min(outer, _ROW_BLOCKS))
        self.extra = _BLOCK if self.form == "rows" else self.n_row_blocks  # the kernels' last argument
        self.n_blocks = max(1, -(-self.shape[1] // _BLOCK))  # tasks per row in the rows form

    def view(self, a: np.ndarray) -> tuple[np.ndarray, bool]:
        """(a 2-D view of a, True), or (a 2-D copy, False) where no strided view exists."""
        try:
            return a.reshape(self.shape, copy=False), True
        except ValueError:
            return np.ascontiguousarray(a).reshape(self.shape), False

    def kernel(self, kernels: Kernels, loop: str, parallel: bool, in_place: bool) -> Callable[..., None]:
        """The kernel for this form; in_place: its output is the very array it reads (x,
        or g)."""
        name = loop if self.form == "rows" else f"{loop}_columns"
        return (kernels.channel_in_place if in_place else kernels.channel)[name][1 if parallel else 0]

    def run(self, kernel: Callable[..., None], parallel: bool, *arrays: np.ndarray) -> None:
        if parallel:
            _launch(kernel, *arrays, self.extra)
        else:
            kernel(*arrays, self.extra)

    def backward(self, kernel: Callable[..., None], parallel: bool, g2: np.ndarray, x2: np.ndarray,
                 w: np.ndarray, out2: np.ndarray, totals: np.ndarray) -> None:
        """out2 = g * df/dx, and totals = the sums of g * df/dweight per channel (or of all
        of them, when totals has one element), accumulated in float64."""
        if g2.size == 0:  # (0 channels included: an empty weight gets an empty gradient)
            totals[...] = 0
        elif self.form == "rows":
            partial = np.zeros(self.shape[0] * self.n_blocks)
            self.run(kernel, parallel, g2, x2, w, out2, partial)
            channel_totals_rows(partial, self.channels, self.n_blocks, totals)
        else:
            partial = np.zeros((self.n_row_blocks, self.channels))
            compensation = np.zeros_like(partial)
            self.run(kernel, parallel, g2, x2, w, out2, partial, compensation)
            channel_totals_columns(partial, compensation, totals)


_channel_plans: dict[tuple, _ChannelPlan] = {}


def _channel_plan(function: str, x: np.ndarray, w: np.ndarray, axis: Any) -> _ChannelPlan:
    """_ChannelPlan for x's shape, axis and the weight's size, checked by _channel_layout
    the first time and then remembered (a small call costs a few microseconds less)."""
    key = (x.shape, axis, w.size) if type(axis) is int and w.ndim <= 1 else None
    plan = _channel_plans.get(key) if key is not None else None
    if plan is None:
        plan = _ChannelPlan(*_channel_layout(function, x, w, axis))
        if key is not None:
            if len(_channel_plans) > 256:
                _channel_plans.clear()
            _channel_plans[key] = plan
    return plan


def _channel_weight(function: str, w: np.ndarray, channels: int, dtype: np.dtype,
                    fresh_out: bool) -> tuple[np.ndarray, np.dtype]:
    """One slope per channel in the compute dtype, and the weight's own result dtype.
    w itself when it already is that (a fresh output cannot overlap it), else a copy,
    so that an out overlapping the weight cannot change the slopes mid-pass."""
    wdt = result_dtype(function, "weight", w.dtype)
    if w.size != channels:
        return np.full(channels, w.reshape(-1)[0], dtype), wdt
    if fresh_out and w.dtype is dtype and w.ndim == 1 and w.flags.c_contiguous:
        return w, wdt
    return w.astype(dtype).reshape(-1), wdt


def make_prelu(act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
    fname, bname = act.name, f"{act.name}_backward"
    # The small-call path: contiguous arrays of one dtype, a weight per channel, and a
    # shape, axis and weight size whose plan a checked call has already made (so nothing
    # is left to check but the operands' memory). Its cost is overhead only, as in
    # make_forward: closure variables, and the serial kernels once looked up.
    ndarray, f32, f64 = np.ndarray, F32, F64
    small = {F32: PARALLEL_MIN_SIZES[F32, "forward"], F64: PARALLEL_MIN_SIZES[F64, "forward"]}
    small_backward = {F32: PARALLEL_MIN_SIZES[F32, "backward"], F64: PARALLEL_MIN_SIZES[F64, "backward"]}
    plans = _channel_plans
    serial: dict[tuple[str, str, bool], Callable[..., Any]] = {}

    def serial_kernel(plan: _ChannelPlan, loop: str, in_place: bool) -> Callable[..., Any]:
        kernel = serial.get((plan.form, loop, in_place))
        if kernel is None:
            kernel = serial[plan.form, loop, in_place] = plan.kernel(kernels, loop, False, in_place)
        return kernel

    def lean_plan(x: Any, weight: Any, axis: Any, sizes: dict) -> _ChannelPlan | None:
        if not (type(x) is ndarray and type(weight) is ndarray and type(axis) is int):
            return None
        plan = plans.get((x.shape, axis, weight.size))
        dt = x.dtype
        if (
            plan is None or not (dt is f32 or dt is f64) or weight.dtype is not dt or weight.ndim != 1
            or weight.size != plan.channels or not 0 < x.size < sizes[dt]
            or not (x.flags.c_contiguous and weight.flags.c_contiguous)
        ):
            return None
        return plan

    def prelu(x, weight, *, axis=1, out=None):
        plan = lean_plan(x, weight, axis, small)
        if plan is not None and (target := _small_out(out, x, weight)) is not None:
            serial_kernel(plan, "forward", target is x)(x.reshape(plan.shape), weight, target.reshape(plan.shape),
                                                        plan.extra)
            return target
        if _lazy.kind(x):
            return _lazy.prelu_forward(prelu, x, as_input(fname, "weight", weight), axis,
                                       _lazy_dtype(fname, out, ("x", x)))
        if isinstance(x, np.ma.MaskedArray):  # element-wise in x: the result keeps x's mask
            return np.ma.MaskedArray(prelu(x.data, weight, axis=axis, out=None if out is None else np.asarray(out)),
                                     mask=np.ma.getmaskarray(x).copy())
        x = as_input(fname, "x", x)
        rdt = result_dtype(fname, "x", x.dtype)
        cdt = compute_dtype(rdt)
        w = as_input(fname, "weight", weight)
        plan = _channel_plan(fname, x, w, axis)
        if out is not None:
            check_out(fname, out, x.shape, rdt)
        xc = x.astype(cdt, copy=False)
        direct = out is not None and rdt == cdt and out.dtype == cdt and not overlaps_partly(out, xc)
        wc, _ = _channel_weight(fname, w, plan.channels, cdt, fresh_out=not direct)
        target = out if direct else np.empty(x.shape, cdt)
        o2, o2_is_view = plan.view(target)
        x2 = plan.view(xc)[0]
        in_place = direct and o2_is_view and (out is xc or _same_view(x2, o2))
        parallel = x.size >= parallel_min_size(cdt, "forward")
        plan.run(plan.kernel(kernels, "forward", parallel, in_place), parallel, x2, wc, o2)
        if not o2_is_view:  # the kernel wrote to a copy
            target[...] = o2.reshape(target.shape)
        if out is None:
            return _returned(target.astype(rdt, copy=False), False)
        if target is not out:
            np.copyto(out, target, casting="unsafe")
        return out

    def prelu_backward(grad_output, x, weight, *, axis=1, out=None):
        plan = lean_plan(x, weight, axis, small_backward)
        if (
            plan is not None and type(grad_output) is ndarray and grad_output.dtype is x.dtype
            and grad_output.shape == x.shape and grad_output.flags.c_contiguous
        ):
            g = grad_output
            # in place is out=g (the kernels' in-place form); out=x is any other out
            target = _small_out(out, g, x, weight) if out is g else _small_out(out, x, g, weight)
            if target is not None:
                grad_weight = np.empty_like(weight)
                plan.backward(serial_kernel(plan, "backward", target is g), False, g.reshape(plan.shape),
                              x.reshape(plan.shape), weight, target.reshape(plan.shape), grad_weight)
                return target, grad_weight
        if _lazy.kind(grad_output) or _lazy.kind(x):
            return _lazy.prelu_backward(prelu_backward, grad_output, x, as_input(bname, "weight", weight), axis,
                                        _lazy_dtype(bname, out, ("grad_output", grad_output), ("x", x)))
        g = as_input(bname, "grad_output", grad_output)
        x = as_input(bname, "x", x)
        rdt = _result_dtype2(bname, "grad_output", g.dtype, "x", x.dtype)
        cdt = compute_dtype(rdt)
        w = as_input(bname, "weight", weight)
        plan = _channel_plan(bname, x, w, axis)
        if g.shape != x.shape:
            raise ValueError(f"{bname}: grad_output has shape {g.shape}, which does not match x's shape {x.shape}")
        if out is not None:
            check_out(bname, out, x.shape, rdt)
        gc, xc = g.astype(cdt, copy=False), x.astype(cdt, copy=False)
        direct = out is not None and rdt == cdt and out.dtype == cdt and not overlaps_partly(out, gc, xc)
        wc, wdt = _channel_weight(bname, w, plan.channels, cdt, fresh_out=not direct)
        target = out if direct else np.empty(x.shape, cdt)
        g2, x2 = plan.view(gc)[0], plan.view(xc)[0]
        o2, o2_is_view = plan.view(target)
        in_place = direct and o2_is_view and (out is gc or _same_view(g2, o2))
        # the weight's gradient, written in its dtype by the kernel (float16: cast after)
        grad_weight = np.empty(w.shape, wdt if wdt is F32 or wdt is F64 else F64)
        parallel = x.size >= parallel_min_size(cdt, "backward")
        plan.backward(plan.kernel(kernels, "backward", parallel, in_place), parallel, g2, x2, wc, o2,
                      grad_weight.reshape(-1))
        if not o2_is_view:
            target[...] = o2.reshape(target.shape)
        if grad_weight.dtype != wdt:
            with np.errstate(over="ignore"):  # a sum beyond float16's range is inf, quietly
                grad_weight = grad_weight.astype(wdt)
        if out is None:
            grad_x = _returned(target.astype(rdt, copy=False), False)
        else:
            if target is not out:
                np.copyto(out, target, casting="unsafe")
            grad_x = out
        return grad_x, grad_weight

    prelu.__signature__ = inspect.Signature(
        [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         inspect.Parameter("weight", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         inspect.Parameter("axis", inspect.Parameter.KEYWORD_ONLY, default=1, annotation=int), _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    prelu_backward.__signature__ = inspect.Signature(
        [inspect.Parameter("grad_output", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         inspect.Parameter("weight", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         inspect.Parameter("axis", inspect.Parameter.KEYWORD_ONLY, default=1, annotation=int), _OUT],
        return_annotation="tuple[numpy.ndarray, numpy.ndarray]",
    )
    return _named(prelu, fname, _forward_doc(act)), _named(prelu_backward, bname, _backward_doc(act))


# --- row-wise (softmax, log_softmax) ----------------------------------------------------------

_ROW_TASKS = 64  # tasks in the rows form: a few per thread, for load balance


def _normalize_axis(function: str, axis: Any, ndim: int) -> int:
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{function}: axis must be an integer, got {axis!r}") from None
    if ndim == 0:  # as PyTorch: a 0-d input is one row of one element
        if axis not in (0, -1):
            raise np.exceptions.AxisError(f"{function}: axis {axis} is out of bounds for a 0-d x")
        return 0
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"{function}: axis {axis} is out of bounds for x with {ndim} dimensions")
    return axis % ndim


class _RowPlan:
    """How the row-wise kernels see an array: rows (n along the last axis of a 2-D
    view) or columns (a 3-D (outer, n, inner) view, inner > 1). A Fortran-ordered
    array is seen through its transpose, so that its unit stride stays innermost."""

    def __init__(self, shape: tuple[int, ...], axis: int, transposed: bool) -> None:
        if transposed:
            shape, axis = shape[::-1], len(shape) - 1 - axis
        self.transposed = transposed
        if not shape:
            outer, n, inner = 1, 1, 1
        else:
            outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
        self.size = outer * n * inner
        if inner == 1:
            self.form, self.shape = "rows", (outer, n)
            self.tasks = outer
            self.extra = max(1, -(-outer // _ROW_TASKS))  # rows per task
        else:
            self.form, self.shape = "columns", (outer, n, inner)
            self.tasks = outer * -(-inner // _COLUMN_BLOCK)
            self.extra = _COLUMN_BLOCK

    @staticmethod
    def for_arrays(shape: tuple[int, ...], axis: int, *arrays: np.ndarray) -> _RowPlan:
        return _RowPlan(shape, axis, all(_fortran(a) for a in arrays))

    def view(self, a: np.ndarray) -> tuple[np.ndarray, bool]:
        """(a view of a in the plan's form, True), or (a contiguous copy, False)."""
        b = a.T if self.transposed else a
        try:
            v = b.reshape(self.shape, copy=False)
        except ValueError:
            return np.ascontiguousarray(b).reshape(self.shape), False
        if self.form == "rows" and v.shape[1] > 1 and v.strides[1] != v.itemsize:
            # rows along memory: the kernels' loops over a row then vectorise, its sums included
            return np.ascontiguousarray(v), False
        return v, True

    def run(self, kernels: Kernels, direction: str, *arrays: np.ndarray) -> None:
        if self.form == "columns":
            name = f"{direction}_columns"
        else:
            name = direction if self.shape[1] % _TAIL == 0 else f"{direction}_tails"
        serial, parallel = kernels.rowwise[name]
        if self.size >= parallel_min_size(arrays[-1].dtype, f"rows {direction}") and self.tasks >= 2:
            _launch(parallel, *arrays, self.extra)
        else:
            serial(*arrays, self.extra)


def _run_rowwise(
    kernels: Kernels, direction: str, shape: tuple[int, ...], axis: int, inputs: tuple[np.ndarray, ...],
    out: np.ndarray, fresh_out: bool,
) -> None:
    """out = the row-wise pass over inputs (same shape, compute dtype). out may be one of
    the inputs (the kernels read each element before writing it); a partial overlap
    goes through a temporary."""
    plan = _RowPlan.for_arrays(shape, axis, *inputs, out)
    if plan.size == 0:
        return
    views = [plan.view(a)[0] for a in inputs]
    direct = fresh_out or not overlaps_partly(out, *inputs)
    target = out if direct else np.empty_like(out)
    t2, t2_is_view = plan.view(target)
    # an input that is the output itself is passed as None (the kernels then read out)
    plan.run(kernels, direction, *(None if _same_view(v, t2) else v for v in views), t2)
    if not t2_is_view:  # the kernel wrote to a copy
        target[...] = t2.T.reshape(target.shape) if plan.transposed else t2.reshape(target.shape)
    if target is not out:
        np.copyto(out, target)


def _rowwise_new(kernels: Kernels, direction: str, axis: int, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """The row-wise pass over inputs (same shape and compute dtype) into a new array in
    the memory order of the last input."""
    last = inputs[-1]
    result = np.empty(last.shape, last.dtype, order="F" if _fortran(last) else "C")
    _run_rowwise(kernels, direction, last.shape, axis, inputs, result, fresh_out=True)
    return result


def _rowwise_result(
    kernels: Kernels, direction: str, axis: int, inputs: tuple[np.ndarray, ...], out: np.ndarray | None,
    rdt: np.dtype,
) -> Any:
    """The public functions' result: the pass written into out when out has the compute
    dtype, else computed in a new array and returned as rdt or cast into out."""
    if out is not None and rdt == inputs[-1].dtype and out.dtype == rdt:
        _run_rowwise(kernels, direction, out.shape, axis, inputs, out, fresh_out=False)
        return out
    result = _rowwise_new(kernels, direction, axis, inputs)
    if out is None:
        return _returned(result.astype(rdt, copy=False), False)
    np.copyto(out, result, casting="unsafe")
    return out


_AXIS = inspect.Parameter("axis", inspect.Parameter.KEYWORD_ONLY, default=-1, annotation=int)


def _lean_rows(a: np.ndarray, axis: Any, direction: str) -> int:
    """The row length, when a (an ndarray) can take the lean small path of the row-wise
    functions: float32/float64, C-contiguous, non-empty rows along the last axis, below
    the parallel crossover. Else 0, and the general path checks and plans the call."""
    dt = a.dtype
    if type(axis) is int and (dt is F32 or dt is F64) and a.ndim and a.size < PARALLEL_MIN_SIZES[dt, direction] \
            and (axis == -1 or axis == a.ndim - 1) and a.flags.c_contiguous:
        return a.shape[-1]
    return 0


def make_rowwise(act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
    fname, bname = act.name, f"{act.name}_backward"
    ndarray = np.ndarray
    serial: dict[str, Callable[..., None]] = {}  # the serial rows kernels, once loaded

    def forward(x, *, axis=-1, out=None):
        if (type(x) is ndarray and (n := _lean_rows(x, axis, "rows forward"))
                and (result := _small_out(out, x)) is not None):
            kernel = "forward" if n % _TAIL == 0 else "forward_tails"
            if kernel not in serial:
                serial[kernel] = kernels.rowwise[kernel][0]
            # one task of all rows: the serial kernel runs its tasks in order anyway
            serial[kernel](None if result is x else x.reshape(-1, n), result.reshape(-1, n), max(1, x.size // n))
            return result
        if _lazy.kind(x):
            return _lazy.rowwise_forward(forward, x, axis, _lazy_dtype(fname, out, ("x", x)))
        _refuse_masked(fname, ("x", x))
        x = as_input(fname, "x", x)
        rdt = result_dtype(fname, "x", x.dtype)
        cdt = compute_dtype(rdt)
        ax = _normalize_axis(fname, axis, x.ndim)
        if out is not None:
            check_out(fname, out, x.shape, rdt)
        return _rowwise_result(kernels, "forward", ax, (x.astype(cdt, copy=False),), out, rdt)

    def backward(grad_output, x=None, *, axis=-1, y=None, out=None):
        if (x is None and type(y) is ndarray and type(grad_output) is ndarray
                and grad_output.dtype is y.dtype and grad_output.shape == y.shape
                and grad_output.flags.c_contiguous and (n := _lean_rows(y, axis, "rows backward"))
                and (result := (_small_out(out, grad_output, y) if out is grad_output
                                else _small_out(out, y, grad_output))) is not None):
            kernel = "backward" if n % _TAIL == 0 else "backward_tails"
            if kernel not in serial:
                serial[kernel] = kernels.rowwise[kernel][0]
            serial[kernel](None if result is grad_output else grad_output.reshape(-1, n),
                               None if result is y else y.reshape(-1, n), result.reshape(-1, n), max(1, y.size // n))
            return result
        if (x is None) == (y is None):
            raise TypeError(f"{bname}: give exactly one of x (the forward's input) and y= (its output)")
        argname = "x" if y is None else "y"
        if _lazy.kind(grad_output) or _lazy.kind(x if y is None else y):
            v = x if y is None else y
            return _lazy.rowwise_backward(backward, grad_output, v, y is not None, axis,
                                          _lazy_dtype(bname, out, ("grad_output", grad_output), (argname, v)))
        _refuse_masked(bname, ("grad_output", grad_output), (argname, x if y is None else y))
        g = as_input(bname, "grad_output", grad_output)
        v = as_input(bname, argname, x if y is None else y)
        rdt = _result_dtype2(bname, "grad_output", g.dtype, argname, v.dtype)
        cdt = compute_dtype(rdt)
        try:  # broadcasting as the element-wise backward functions (and ufuncs) do
            shape = np.broadcast_shapes(g.shape, v.shape)
        except ValueError:
            raise ValueError(
                f"{bname}: grad_output has shape {g.shape}, which does not match {argname}'s shape {v.shape}"
            ) from None
        ax = _normalize_axis(bname, axis, len(shape))
        if out is not None:
            check_out(bname, out, shape, rdt)
        gc, vc = np.broadcast_to(g.astype(cdt, copy=False), shape), np.broadcast_to(v.astype(cdt, copy=False), shape)
        # the gradient is expressed through the output: given x, compute it first
        yc = _rowwise_new(kernels, "forward", ax, (vc,)) if y is None else vc
        return _rowwise_result(kernels, "backward", ax, (gc, yc), out, rdt)

    forward.__signature__ = inspect.Signature(
        [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY), _AXIS, _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    backward.__signature__ = inspect.Signature(
        [inspect.Parameter("grad_output", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=f"{_ARRAY} | None"),
         _AXIS,
         inspect.Parameter("y", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=f"{_ARRAY} | None"),
         _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    return _named(forward, fname, _forward_doc(act)), _named(backward, bname, _backward_doc(act))


def _fortran(a: np.ndarray) -> bool:
    return a.ndim >= 2 and a.flags.f_contiguous and not a.flags.c_contiguous


# --- names and docstrings ---------------------------------------------------------------------


def _named(fn: Callable[..., Any], name: str, doc: str) -> Callable[..., Any]:
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = "fastact"
    fn.__doc__ = doc
    return fn


def _params_doc(act: Activation) -> str:
    if act.kind == "rowwise":
        return "axis : int, default -1\n    The axis along which the rows run (any axis, any layout).\n"
    if act.kind == "channelwise":
        return (
            "weight : array_like\n    One slope, or one per channel (x.shape[axis] elements).\n"
            "axis : int, default 1\n    The channel axis. A 0-d or 1-D x has a single channel.\n"
        )
    def one(p: Any) -> str:
        if p.choices:
            return f"{p.name} : {{{', '.join(map(repr, p.choices))}}}, default {p.default!r}\n"
        return f"{p.name} : float\n" if p.required else f"{p.name} : float, default {p.default}\n"

    return "".join(one(p) for p in act.params)


# the docstrings' example inputs; the outputs are in each declaration (Activation.examples)
EXAMPLE_X = {
    "elementwise": "np.array([-2.0, 0.0, 1.5])",
    "rowwise": "np.array([1.0, 2.0, 3.0])",
    "channelwise": "np.array([[-2.0, 1.5], [-1.0, 0.5]])",
}
EXAMPLE_WEIGHT = "np.array([0.25, 0.1])"
EXAMPLE_ROW_GRAD = "np.array([1.0, 0.0, 0.0])"


def example_numbers(printed: str) -> list[float]:
    """The numbers in an example's printed output, in order."""
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?", printed)]


def example_args(act: Activation) -> str:
    """The arguments after x in the examples: the required parameters, by name."""
    if act.kind == "channelwise":
        return ", weight"
    return "".join(f", {p.name}={p.example!r}" for p in act.params if p.required)


def _example(act: Activation, backward: bool) -> str:
    lines = [">>> import numpy as np, fastact as fa", f">>> x = {EXAMPLE_X[act.kind]}"]
    if act.kind == "channelwise":
        lines.append(f">>> weight = {EXAMPLE_WEIGHT}")
    args, (forward_out, backward_out) = example_args(act), act.examples
    name = act.name
    if not backward:
        lines += [f">>> fa.{name}(x{args})", forward_out]
    elif act.kind == "rowwise":
        lines += [f">>> fa.{name}_backward({EXAMPLE_ROW_GRAD}, y=fa.{name}(x))", backward_out]
    elif act.kind == "channelwise":
        lines += [f">>> fa.{name}_backward(np.ones((2, 2)), x{args})  # (grad_x, grad_weight)", backward_out]
    else:
        lines += [f">>> fa.{name}_backward(np.ones(3), x{args})  # f'(x)", backward_out]
        values = act.validate(name, act.example_params)
        if act.supports_y and (act.y_ok is None or act.y_ok(*values)):
            lines += [f">>> fa.{name}_backward(np.ones(3), y=fa.{name}(x{args}){args})  # the same, from y",
                      backward_out]
    return "Examples\n--------\n" + "\n".join(lines) + "\n"


def _forward_doc(act: Activation) -> str:
    return (
        f"{act.summary}\n\n{act.formula}\n\nDerivative: {act.derivative}.\n\n"
        f"Parameters\n----------\nx : array_like\n    float32 and float64 keep their dtype; float16 is "
        f"computed in float32; integers and bools convert as in np.exp.\n{_params_doc(act)}"
        f"out : ndarray, optional\n    Where to write the result; out=x computes in place.\n\n"
        f"Returns\n-------\nndarray (a NumPy scalar for scalar input), or out.\n\n{_example(act, False)}"
    )


def _backward_doc(act: Activation) -> str:
    if act.kind == "channelwise":
        how = "Returns (grad_x, grad_weight): grad_output * df/dx, and grad_output * df/dweight summed " \
              "over every axis but the channel axis (accumulated in float64)."
    elif act.supports_y:
        cond = f" (needs {act.y_condition})" if act.y_condition else ""
        how = f"Returns grad_output * f'(x). Give x, or the forward's output as y={cond}."
    else:
        how = "Returns grad_output * f'(x). y= is not supported: the output does not determine f'."
    inputs = "grad_output : array_like\n    d loss / d f(x), of x's shape.\n"
    if act.kind == "channelwise":
        inputs += "x : array_like\n    The forward's input.\n"
    else:
        inputs += "x : array_like, optional\n    The forward's input (give x or y).\n"
    if act.supports_y:
        inputs += "y : array_like, optional, keyword\n    The forward's output, instead of x.\n"
    out = "out : ndarray, optional\n    Where to write grad_x; out=grad_output computes in place.\n"
    return (f"Backward (gradient) of {act.name}: {act.formula}\n\n{act.derivative}.\n\n{how}\n\n"
            f"Parameters\n----------\n{inputs}{_params_doc(act)}{out}\n{_example(act, True)}")
