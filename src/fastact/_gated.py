"""The gated activations' public functions (glu, swiglu, geglu, reglu): value * f(gate).

Two forms, one pair of kernels (``_loops_gated``):

* split: ``fa.swiglu(x, axis=-1)`` halves x along axis (its length must be even); the
  result has half of x's length there, and the backward returns the gradient of x;
* two arrays: ``fa.swiglu(a, b)``, the halves given apart (broadcasting as ufuncs do);
  the backward returns ``(grad_a, grad_b)``, each of its input's shape.

The kernels take C-contiguous 2-D arrays and column offsets; an operand of any other
layout or dtype is copied first (a contiguous float32/float64 one, the common case, is
not). float16 and bfloat16 go through the kernels as 16-bit views, computed in float32.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from . import _lazy, _threading
from ._arrays import (
    F32,
    F64,
    PARALLEL_MIN_SIZES,
    _launch,
    _lazy_dtype,
    _refuse_masked,
    _result_dtype2,
    _returned,
    _same_view,
    _small_out,
    as_input,
    broadcast_input,
    check_out,
    compute_dtype,
    half_view,
    normalize_axis,
    parallel_min_size,
    result_dtype,
)
from ._docs import _ARRAY, _OUT, _backward_doc, _forward_doc, _named
from ._kernels import Kernels
from ._kinds import ApplyLayout, Kind
from ._registry import Activation

_BLOCK = 1 << 14  # columns per parallel task: a long single row (a split along axis 0) still splits


class _Operands:
    """The kernels' view of a call: each operand as a C-contiguous 2-D array of the
    kernels' dtype, and where its columns start."""

    def __init__(self, rdt: np.dtype) -> None:
        self.rdt = rdt
        self.cdt = compute_dtype(rdt)
        self.view = half_view(rdt) if self.cdt != rdt else None  # 16-bit floats as integers

    def kernel_array(self, a: np.ndarray, shape2: tuple[int, int]) -> np.ndarray:
        if self.view is not None and a.dtype == self.rdt:
            return np.ascontiguousarray(a).view(self.view).reshape(shape2)
        return np.ascontiguousarray(a, dtype=self.cdt).reshape(shape2)

    def target(self, out: np.ndarray | None, shape: tuple[int, ...], shape2: tuple[int, int],
               inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(the array the kernel writes, as shape2; what holds the result, of shape):
        out itself where the kernel can write it directly, else a new array."""
        stored = self.rdt if self.view is not None or self.cdt == self.rdt else self.cdt
        # an input out may be is the very same view of the same shape: each element is read
        # before the element of out at its place is written (in place)
        if (out is not None and out.dtype == stored and out.dtype.isnative and out.flags.c_contiguous
                and all(not np.may_share_memory(a, out) or (a.shape == out.shape and _same_view(a, out))
                        for a in inputs)):
            result = out
        else:
            result = np.empty(shape, stored)
        k = result.view(self.view) if self.view is not None else result
        return k.reshape(shape2), result

    def finish(self, result: np.ndarray, out: np.ndarray | None) -> Any:
        if out is None:
            return _returned(result.astype(self.rdt, copy=False), False)
        if result is not out:
            np.copyto(out, result, casting="unsafe")
        return out


def _split_shape(function: str, x: np.ndarray, axis: Any) -> tuple[int, tuple[int, ...], tuple[int, int]]:
    """(the axis, the result's shape, x's kernel shape (rows, 2m))."""
    if x.ndim == 0:
        raise ValueError(f"{function}: x is 0-d; the split form halves x along an axis (or give b=)")
    ax = normalize_axis(function, axis, x.ndim)
    n = x.shape[ax]
    if n % 2:
        raise ValueError(f"{function}: x.shape[{ax}] is {n}, which is odd; the split form halves x along axis")
    shape = (*x.shape[:ax], n // 2, *x.shape[ax + 1:])
    rows = math.prod(x.shape[:ax])
    return ax, shape, (rows, math.prod(shape) // rows if rows else 0)


def _pair_shape(function: str, x: np.ndarray, b: np.ndarray) -> tuple[int, ...]:
    """The two-array form's result shape: x's and b's, broadcast."""
    try:
        return np.broadcast_shapes(x.shape, b.shape)
    except ValueError:
        raise ValueError(f"{function}: x has shape {x.shape} and b has shape {b.shape}, "
                         f"which do not broadcast together") from None


def _unbroadcast(full: Any, shape: tuple[int, ...]) -> Any:
    """The sum of full over the axes along which an operand of this shape was broadcast
    (its gradient, as autograd gives it), in float64 for a float32 full."""
    if full.shape == shape:
        return full
    lead = full.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and full.shape[lead + i] != 1)
    dtype = np.float64 if full.dtype.itemsize < 8 else full.dtype
    return full.sum(axis=axes, dtype=dtype).reshape(shape).astype(full.dtype)


def _lean_half(x: Any, axis: Any, direction: str) -> int:
    """m, half of x's last axis, when x can take the lean small path of the split form:
    an ndarray of float32/float64, C-contiguous, non-empty, halved along the last axis,
    its result below the parallel crossover. Else 0, and the general path checks and
    plans the call."""
    if type(x) is not np.ndarray or type(axis) is not int:
        return 0
    dt = x.dtype
    if (dt is F32 or dt is F64) and x.ndim and (axis == -1 or axis == x.ndim - 1) and x.flags.c_contiguous:
        n = x.shape[-1]
        if x.size and n % 2 == 0 and x.size // 2 < PARALLEL_MIN_SIZES[dt, direction]:
            return n // 2
    return 0


def make_gated(act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
    fname, bname = act.name, f"{act.name}_backward"
    gate = act.kind_options["gate"]
    names = act.param_names
    defaults = tuple(p.default for p in act.params)
    # the small-call path: the default parameters, checked and typed once; the serial kernels
    checked = act.validate(fname, defaults)
    lean_params = {F32: tuple(F32.type(v) for v in checked), F64: tuple(F64.type(v) for v in checked)}
    serial: dict[str, Callable[..., None]] = {}

    def serial_kernel(direction: str) -> Callable[..., None]:
        k = serial.get(direction)
        if k is None:
            k = serial[direction] = kernels.gated[direction][0]
        return k

    def values(function: str, kwargs: dict, odt: _Operands) -> tuple:
        for key in kwargs:
            if key not in names:
                raise TypeError(f"{function}() got an unexpected keyword argument {key!r}")
        checked = act.validate(function, tuple(kwargs.get(n, d) for n, d in zip(names, defaults, strict=True)))
        return tuple(odt.cdt.type(v) for v in checked)

    def run(direction: str, odt: _Operands, rows: int, m: int, args: tuple, params: tuple) -> None:
        if rows * m == 0:
            return
        serial, parallel = kernels.gated[direction]
        if rows * m >= parallel_min_size(odt.cdt, direction) and not _threading.one_thread():
            _launch(parallel, *args, _BLOCK, max(1, _BLOCK // m), params)
        else:
            serial(*args, m, rows, params)  # one task

    def forward(x, b=None, *, axis=-1, out=None, **kwargs):
        if b is None and not kwargs and (m := _lean_half(x, axis, "forward")):
            shape = (*x.shape[:-1], m)
            if out is None:
                result = np.empty(shape, x.dtype)
            elif (type(out) is np.ndarray and out.dtype is x.dtype and out.shape == shape and out.flags.c_contiguous
                  and out.flags.writeable and not np.may_share_memory(out, x)):
                result = out
            else:
                result = None  # the general path checks out, and says what is wrong
            if result is not None:
                rows = x.size // (2 * m)
                xk = x.reshape(rows, 2 * m)
                # one task of all rows: block m columns, group every row
                serial_kernel("forward")(xk, gate * m, xk, (1 - gate) * m, result.reshape(rows, m), m, rows,
                                         lean_params[x.dtype])
                return result
        if _lazy.kind(x) or _lazy.kind(b):
            values(fname, kwargs, _Operands(np.dtype(np.float64)))  # a bad parameter raises before deferring
            named = (("x", x),) if b is None else (("x", x), ("b", b))
            return _lazy.gated_forward(forward, x, b, axis, kwargs, _lazy_dtype(fname, out, *named))
        _refuse_masked(fname, ("x", x), ("b", b))
        x = as_input(fname, "x", x)
        if b is None:
            rdt = result_dtype(fname, "x", x.dtype)
            _, shape, (rows, m) = _split_shape(fname, x, axis)
        else:
            b = as_input(fname, "b", b)
            rdt = _result_dtype2(fname, "x", x.dtype, "b", b.dtype)
            shape = _pair_shape(fname, x, b)
            rows, m = 1, math.prod(shape)
        odt = _Operands(rdt)
        params = values(fname, kwargs, odt)
        if out is not None:
            check_out(fname, out, shape, rdt)
        if b is None:
            xk = odt.kernel_array(x, (rows, 2 * m))
            operands = (xk, gate * m, xk, (1 - gate) * m)
            inputs = [x]
        else:
            pair = [odt.kernel_array(broadcast_input(a, shape), (1, m)) for a in (x, b)]
            operands = (pair[gate], 0, pair[1 - gate], 0)
            inputs = [x, b]
        target, result = odt.target(out, shape, (rows, m), inputs)
        run("forward", odt, rows, m, (*operands, target), params)
        return odt.finish(result, out)

    def backward(grad_output, x=None, b=None, *, axis=-1, y=None, out=None, **kwargs):
        if (b is None and y is None and not kwargs and type(grad_output) is np.ndarray
                and (m := _lean_half(x, axis, "backward")) and grad_output.dtype is x.dtype
                and grad_output.shape == (*x.shape[:-1], m) and grad_output.flags.c_contiguous
                and (result := _small_out(out, x, grad_output)) is not None):
            rows = x.size // (2 * m)
            xk, rk = x.reshape(rows, 2 * m), result.reshape(rows, 2 * m)
            serial_kernel("backward")(grad_output.reshape(rows, m), xk, gate * m, xk, (1 - gate) * m, rk, gate * m,
                                      rk, (1 - gate) * m, m, rows, lean_params[x.dtype])
            return result
        act.require_x(bname, x, y)
        if _lazy.kind(grad_output) or _lazy.kind(x) or _lazy.kind(b):
            values(bname, kwargs, _Operands(np.dtype(np.float64)))
            named = (("grad_output", grad_output), ("x", x)) + (() if b is None else (("b", b),))
            return _lazy.gated_backward(backward, grad_output, x, b, axis, kwargs, _lazy_dtype(bname, out, *named))
        _refuse_masked(bname, ("grad_output", grad_output), ("x", x), ("b", b))
        g = as_input(bname, "grad_output", grad_output)
        x = as_input(bname, "x", x)
        if b is None:
            rdt = _result_dtype2(bname, "grad_output", g.dtype, "x", x.dtype)
            _, shape, (rows, m) = _split_shape(bname, x, axis)
            shapes = [x.shape]
        else:
            b = as_input(bname, "b", b)
            rdt = np.result_type(_result_dtype2(bname, "grad_output", g.dtype, "x", x.dtype),
                                 result_dtype(bname, "b", b.dtype))
            shape = _pair_shape(bname, x, b)
            rows, m = 1, math.prod(shape)
            shapes = [x.shape, b.shape]
        try:
            g = broadcast_input(g, shape)
        except ValueError:
            raise ValueError(f"{bname}: grad_output has shape {g.shape}, the forward's output has shape "
                             f"{shape}") from None
        odt = _Operands(rdt)
        params = values(bname, kwargs, odt)
        if out is not None:
            outs = (out,) if b is None else out
            if b is not None and not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(f"{bname}: given b, out must be a tuple of two arrays (for grad_x and grad_b)")
            for o, s in zip(outs, shapes, strict=True):
                check_out(bname, o, s, rdt)
            if b is not None and np.may_share_memory(out[0], out[1]):
                raise ValueError(f"{bname}: the two arrays of out share memory")
        gk = odt.kernel_array(g, (rows, m))
        if b is None:
            xk = odt.kernel_array(x, (rows, 2 * m))
            target, result = odt.target(out, x.shape, (rows, 2 * m), [g, x])
            operands = (xk, gate * m, xk, (1 - gate) * m, target, gate * m, target, (1 - gate) * m)
            run("backward", odt, rows, m, (gk, *operands), params)
            return odt.finish(result, out)
        pair = [odt.kernel_array(broadcast_input(a, shape), (1, m)) for a in (x, b)]
        direct = out is not None and all(o.shape == shape for o in out)
        targets = [odt.target(out[i] if direct else None, shape, (1, m), [g, x, b]) for i in range(2)]
        k = [t[0] for t in targets]
        run("backward", odt, 1, m, (gk, pair[gate], 0, pair[1 - gate], 0, k[gate], 0, k[1 - gate], 0), params)
        grads = [_unbroadcast(t[1], s) for t, s in zip(targets, shapes, strict=True)]
        if out is None:
            return tuple(odt.finish(gr, None) for gr in grads)
        return tuple(odt.finish(gr, o) for gr, o in zip(grads, out, strict=True))

    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter(p.name, kw, default=p.default, annotation=str if p.choices else float)
              for p in act.params]
    axis = inspect.Parameter("axis", kw, default=-1, annotation=int)
    b_param = inspect.Parameter("b", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=f"{_ARRAY} | None")
    forward.__signature__ = inspect.Signature(
        [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY), b_param,
         *params, axis, _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    backward.__signature__ = inspect.Signature(
        [inspect.Parameter("grad_output", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=f"{_ARRAY} | None"),
         b_param, *params, axis,
         inspect.Parameter("y", kw, default=None, annotation=f"{_ARRAY} | None"),
         inspect.Parameter("out", kw, default=None,
                           annotation="numpy.ndarray | tuple[numpy.ndarray, numpy.ndarray] | None")],
        return_annotation="numpy.ndarray | tuple[numpy.ndarray, numpy.ndarray]",
    )
    return _named(forward, fname, _forward_doc(act)), _named(backward, bname, _backward_doc(act))


class Gated(Kind):
    """One half of x (along an axis), through an element-wise activation, times the
    other half; or the two halves given as two arrays (glu, swiglu, geglu, reglu)."""

    name = "gated"
    torch_adapter = "fastact._torch_gated"
    has_ufuncs = has_scalar = False  # two inputs per element, and a split along an axis
    result_has_x_shape = False  # half of x along the axis
    example_x = "np.array([-1.0, 2.0, 0.5, -1.5])"
    example_ones = "np.ones(2)"
    grad_output_doc = "grad_output : array_like\n    d loss / d f(x), of the forward's output shape.\n"
    x_doc = "x : array_like\n    The forward's input: all of it (split form), or its first half (given b).\n"
    out_doc = ("out : ndarray, optional\n    Where to write the result (of x's shape, halved along axis; "
               "or of x and b's broadcast shape).\n")
    backward_out_doc = ("out : ndarray or tuple of two ndarrays, optional\n    Where to write grad_x (out=x "
                        "computes in place), or given b, (grad_x, grad_b).\n")
    bench_kwargs: ClassVar[dict[str, Any]] = {"axis": -1}

    def public_functions(self, act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
        return make_gated(act, kernels)

    def warm(self, act: Activation, kernels: Kernels, layouts: list[np.ndarray]) -> None:
        kw = dict(zip(act.param_names, act.example_params, strict=True))
        for x in layouts:
            if x.shape[-1] % 2 == 0:
                y = act.forward(x, **kw)
                act.backward(y, x, **kw)
            act.forward(x, x, **kw)
            act.backward(x, x, x, **kw)

    def kernel_params(self, act: Activation) -> int:
        return len(act.params)

    def params_doc(self, act: Activation) -> str:
        base = super().params_doc(act)
        return ("b : array_like, optional\n    The second half, given apart from x (x is then the first half).\n"
                + base + "axis : int, default -1\n    The axis along which x is halved (its length there must be "
                "even).\n")

    def example_args(self, act: Activation) -> str:
        return ""

    def backward_summary(self, act: Activation) -> str:
        return ("Returns the gradient of x in the split form, or (grad_x, grad_b) given b, each of its "
                "input's shape. y= is not supported: the output does not determine the derivative.")

    def backward_example(self, act: Activation, args: str, printed: str) -> list[str]:
        return [f">>> fa.{act.name}_backward({self.example_ones}, x)", printed]

    def apply_params(self, act: Activation) -> list[str]:
        return [*act.param_names, "axis"]

    def apply_layout(self, fn: Callable[..., Any], x: np.ndarray, kw: dict[str, Any], backward: bool) -> ApplyLayout:
        if x.ndim > 1 and not x.flags.c_contiguous:
            raise ValueError(f"{fn.__name__}: the file must be in C order")
        kw = dict(kw)
        _, half, (rows, m) = _split_shape(fn.__name__, x, kw.pop("axis", -1))
        return _HalvesLayout(fn, kw, x.shape if backward else half, half, rows, m)

    bench_row_length = 1024  # the result's rows; x's are twice as long

    def bench_shape(self, n: int) -> tuple[int, ...]:
        # n: the result's elements, so that the 16-bit and float32 cases of one n compare
        row = min(n, self.bench_row_length)
        return (n // row, 2 * row)

    def bench_result_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-1], shape[-1] // 2)

    def bench_streams(self, forward: bool) -> int:
        return 3 if forward else 5  # two halves read, one written; g and two halves read, two written

    def bench_roofline(self, passes: Any, x: np.ndarray, g: np.ndarray, out: np.ndarray, forward: bool,
                       new: bool) -> Callable[[], Any]:
        n = g.size  # x holds two halves, each of the result's size
        a, b = x[:n], x[n:]
        if forward:
            return (lambda: passes.three(a, b, np.empty_like(a))) if new else (lambda: passes.three(a, b, out[:n]))
        if new:
            return lambda: passes.five(g, a, b, *np.split(np.empty_like(x), 2))
        return lambda: passes.five(g, a, b, out[:n], out[n:])

    def bench_args(self, params: tuple, dtype: np.dtype) -> tuple:
        return ()

    def bench_torch_args(self, args: tuple) -> tuple:
        return (-1,)  # dim


class _HalvesLayout(ApplyLayout):
    """apply over a C-ordered x seen as (rows, 2, m): its two halves along the axis are
    x[:, 0] and x[:, 1]. With more than one row, chunks of whole rows, each the split
    form along axis 1; with one (the halved axis is the first), chunks of the m
    columns, each the two-array form of the halves' contiguous pieces."""

    def __init__(self, fn: Callable[..., Any], kw: dict[str, Any], out_shape: tuple[int, ...],
                 grad_shape: tuple[int, ...], rows: int, m: int) -> None:
        super().__init__(fn, kw, out_shape, grad_shape)
        self.rows, self.m = rows, m
        self.backward = out_shape != grad_shape

    def view(self, a: np.ndarray, role: str) -> np.ndarray:
        whole = role == "x" or (role == "out" and self.backward)  # x's shape; else the result's
        if self.rows > 1:
            return a.reshape(self.rows, 2 if whole else 1, self.m)
        return a.reshape(2, self.m).T if whole else a.reshape(self.m)

    def call(self, xs: np.ndarray, gs: np.ndarray | None, os: Any) -> Any:
        if self.rows > 1:
            return self.fn(*((xs,) if gs is None else (gs, xs)), axis=1, **self.kw, out=os)
        args = (xs[:, 0], xs[:, 1]) if gs is None else (gs, xs[:, 0], xs[:, 1])
        if os is not None and gs is not None:
            os = (os[:, 0], os[:, 1])  # (grad of the first half, of the second)
        return self.fn(*args, **self.kw, out=os)
