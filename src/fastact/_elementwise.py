"""The element-wise activations' public functions, fa.NAME and fa.NAME_backward.

Paths, fastest first:

1. every operand is one contiguous buffer in the same order (C or Fortran), or can be
   viewed as 1-D: the flat kernel, serial below ``PARALLEL_MIN_SIZES`` elements (per
   dtype and direction) and parallel above;
2. a large strided array that can be viewed as 2-D rows: the parallel row kernel;
3. anything else (broadcasting, partial overlap of ``out`` with an input, layouts
   with no 1-D or 2-D view): the activation's real NumPy ufunc, which loops over any
   strides without copying and handles overlap exactly as NumPy does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _lazy, _threading
from ._arrays import (
    _C_CONTIGUOUS,
    _WRITEABLE,
    F32,
    F64,
    PARALLEL_MIN_SIZES,
    _deferred,
    _defers,
    _entry_point,
    _fast_out,
    _lazy_dtype,
    _result_dtype2,
    _returned,
    as_input,
    check_out,
    compute_dtype,
    half_view,
    result_dtype,
    run_elementwise,
    run_half,
)
from ._docs import _ARRAY, _OUT, _backward_doc, _forward_doc, _named
from ._kernels import Kernels
from ._kinds import Kind
from ._memo import Memo
from ._registry import Activation

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
        self._memo: dict[np.dtype, Memo] = {}  # per dtype; float32's at hand
        self._memo32 = self._memo.setdefault(F32, Memo())
        self._positional = Memo()
        self.typed_pairs = Memo()

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
        return self._positional.remember(args, checked) if not kwargs else checked

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
        return self.typed_pairs.remember(args, pair) if not kwargs else pair

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
        memo = self._memo32 if dtype is F32 else self._memo.setdefault(dtype, Memo())
        typed = memo.get(values)
        return typed if typed is not None else memo.remember(values, tuple(dtype.type(v) for v in values))



def _params_signature(act: Activation) -> list[inspect.Parameter]:
    return [
        inspect.Parameter(
            p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=inspect.Parameter.empty if p.required else p.default, annotation=str if p.choices else float,
        )
        for p in act.params
    ]




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
            kd = dt if dt is f32 or dt is f64 else half_view(dt) if dt.itemsize == 2 else None
            # below the parallel crossover, or at any size where the kernels run on one thread
            if kd is not None and xnum & _C_CONTIGUOUS and (
                    x.size < (small64 if dt is f64 else small32) or one_thread()):
                if out is None:
                    result, rnum = empty_like(x), -1
                elif out is x:  # in place: x=None, the loop reads out (see _loops_map._map_loops)
                    result, rnum = (x if xnum & _WRITEABLE else None), -2
                else:
                    result = _fast_out(out, x, dt)
                    rnum = None if result is None else result.flags.num
                if result is not None:
                    params = call_params(args, kwargs)[dt is f64]
                    rv = result if result.ndim == 1 else result.reshape(-1)
                    xv = None if rnum == -2 else (x if x.ndim == 1 else x.reshape(-1))
                    if kd is not dt:  # 16-bit: the kernels take its integer view
                        rv, xv = rv.view(kd), (None if xv is None else xv.view(kd))
                    key = (kd.num, xnum, rnum)
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
        elif not (cdt != rdt and x.dtype == rdt and (out is None or out.dtype == rdt) and run_half(
                kernels, "forward", (x,), result := (np.empty_like(x, rdt) if out is None else out), params,
                fresh_out=out is None)):
            # (16-bit floats the kernels did not take in one pass, or a cast) converted input is
            # a private copy: compute in it, then cast
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
            kd = dt if dt is f32 or dt is f64 else half_view(dt) if dt.itemsize == 2 else None
            if (
                kd is not None and grad_output.dtype is dt and v.ndim == 1 and grad_output.shape == v.shape
                and (v.size < (small64 if dt is f64 else small32) or one_thread())
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
                        vv, rv = v, result
                        if kd is not dt:  # 16-bit: the kernels take its integer view
                            gv, vv, rv = (None if gv is None else gv.view(kd)), v.view(kd), result.view(kd)
                        key = (kd.num, y is None, grad_output.flags.num, v.flags.num, rnum)
                        entry = entries.get(key)
                        if entry is None:
                            loops = kernels.backward if y is None else kernels.backward_from_y
                            entry = entries[key] = _entry_point(loops["flat"][0], (gv, vv, rv, params))
                        entry(gv, vv, rv, params)
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
        if (cdt != rdt and g.dtype == rdt and v.dtype == rdt and (out is None or out.dtype == rdt)
                and run_half(kernels, loops, (g, v), result := (out if out is not None else np.empty_like(v, rdt)
                                                                 if v.shape == shape else np.empty(shape, rdt)),
                             params, fresh_out=out is None)):
            return _returned(result, out is not None)
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


class Elementwise(Kind):
    """A scalar function of each element, with float parameters (relu ... gelu)."""

    name = "elementwise"
    torch_adapter = "fastact._torch_elementwise"

    def public_functions(self, act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
        return make_forward(act, kernels), make_backward(act, kernels)

    def warm(self, act: Activation, kernels: Kernels, layouts: list[np.ndarray]) -> None:
        p = act.example_params
        buf = layouts[0].copy()  # the serial loops' in-place specialisations (x=None, g=None)
        act.forward(buf, *p, out=buf)
        act.backward(buf, layouts[0], *p, out=buf)
        for x in layouts:
            act.forward(x, *p)
            act.backward(x, x, *p)
            if act.supports_y:
                act.backward(x, y=x, **dict(zip(act.param_names, p, strict=True)))
        kernels.ufunc, kernels.backward_ufunc  # noqa: B018 -- built on first access
        if act.supports_y:
            kernels.backward_from_y_ufunc  # noqa: B018

    def backward_example(self, act: Activation, args: str, printed: str) -> list[str]:
        name = act.name
        lines = [f">>> fa.{name}_backward({self.example_ones}, x{args})  # f'(x)", printed]
        values = act.validate(name, act.example_params)
        if act.supports_y and (act.y_ok is None or act.y_ok(*values)):
            lines += [f">>> fa.{name}_backward({self.example_ones}, y=fa.{name}(x{args}){args})  # the same, from y",
                      printed]
        return lines
