"""The row-wise public functions (softmax, log_softmax, softmin, sparsemax): a
normalisation over the rows along an axis. Their loops are _loops_rows's (exponentials)
or _loops_simplex's (sparsemax's threshold), with the same arguments."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from . import _lazy
from ._arrays import (
    F32,
    F64,
    _fortran,
    _launch,
    _lazy_dtype,
    _refuse_masked,
    _result_dtype2,
    _returned,
    _same_view,
    _small_out,
    as_input,
    as_mask,
    broadcast_input,
    check_out,
    compute_dtype,
    half_view,
    is_bfloat16,
    kernel_dtype,
    kernel_view,
    overlaps_partly,
    parallel_min_size,
    result_dtype,
)
from ._arrays import (
    normalize_axis as _normalize_axis,
)
from ._docs import _ARRAY, _OUT, EXAMPLE_ROW_GRAD, _backward_doc, _forward_doc, _named
from ._kernels import Kernels
from ._kinds import Kind
from ._loops_rows import _COLUMN_BLOCK
from ._registry import Activation

# --- row-wise (softmax, log_softmax) ----------------------------------------------------------

_ROW_TASKS = 64  # tasks in the rows form: a few per thread, for load balance
_TASK_MIN_SIZE = 8192  # elements; smaller tasks' scratch allocations cost more than they balance



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
        else:
            self.form, self.shape = "columns", (outer, n, inner)

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
        if self.form == "rows" and not v.flags.c_contiguous:
            # rows along memory, one after the other: the kernels' loops then vectorise,
            # their sums included, and run flat over a block of rows
            return np.ascontiguousarray(v), False
        return v, True

    def run(self, kernels: Kernels, direction: str, *arrays: np.ndarray) -> None:
        if self.form == "rows":
            _run_rows(kernels.rowwise[direction], direction, arrays, *self.shape)
            return
        serial, parallel = kernels.rowwise[f"{direction}_columns"]
        outer, _, inner = self.shape
        tasks = outer * -(-inner // _COLUMN_BLOCK)
        if self.size >= parallel_min_size(arrays[-1].dtype, f"rows {direction}") and tasks >= 2:
            _launch(parallel, *arrays, _COLUMN_BLOCK)
        else:
            serial(*arrays, _COLUMN_BLOCK)


def _run_rows(pair: tuple[Callable[..., None], Callable[..., None]], direction: str, arrays: tuple, rows: int,
              n: int) -> None:
    """A rows kernel over C-ordered (rows, n) arrays: in tasks of a few blocks of rows at
    least (each allocates its scratch) on the threads above the crossover, else serially
    as one task."""
    if rows * n >= parallel_min_size(arrays[-1].dtype, f"rows {direction}"):
        per_task = max(1, -(-rows // _ROW_TASKS), _TASK_MIN_SIZE // max(n, 1))
        if per_task < rows:
            _launch(pair[1], *arrays, per_task)
            return
    pair[0](*arrays, max(rows, 1))


def _run_rowwise(
    kernels: Kernels, direction: str, shape: tuple[int, ...], axis: int, inputs: tuple[np.ndarray, ...],
    out: np.ndarray, fresh_out: bool,
) -> None:
    """out = the row-wise pass over inputs (same shape; the compute dtype, or a 16-bit
    dtype the kernels take as its integer view). out may be one of the inputs (the
    kernels read each element before writing it); a partial overlap goes through a
    temporary."""
    plan = _RowPlan.for_arrays(shape, axis, *inputs, out)
    if plan.size == 0:
        return
    if out.dtype.itemsize == 2 or any(a.dtype.itemsize == 2 for a in inputs):
        inputs, out = tuple(kernel_view(a) for a in inputs), kernel_view(out)
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


def _rowwise_new(kernels: Kernels, direction: str, axis: int, inputs: tuple[np.ndarray, ...],
                 dtype: np.dtype) -> np.ndarray:
    """The row-wise pass over inputs (same shape) into a new array of dtype, in the
    memory order of the last input."""
    last = inputs[-1]
    result = np.empty(last.shape, dtype, order="F" if _fortran(last) else "C")
    _run_rowwise(kernels, direction, last.shape, axis, inputs, result, fresh_out=True)
    return result


def _rowwise_result(
    kernels: Kernels, direction: str, axis: int, inputs: tuple[np.ndarray, ...], out: np.ndarray | None,
    rdt: np.dtype, kdt: np.dtype,
) -> Any:
    """The public functions' result: the pass written into out when out has the kernels'
    dtype kdt (rdt or the compute dtype), else computed in a new array of kdt and
    returned as rdt or cast into out."""
    if out is not None and out.dtype == kdt:
        _run_rowwise(kernels, direction, out.shape, axis, inputs, out, fresh_out=False)
        return out
    result = _rowwise_new(kernels, direction, axis, inputs, kdt)
    if out is None:
        return _returned(result.astype(rdt, copy=False), False)
    np.copyto(out, result, casting="unsafe")
    return out


_AXIS = inspect.Parameter("axis", inspect.Parameter.KEYWORD_ONLY, default=-1, annotation=int)


_WHERE = inspect.Parameter("where", inspect.Parameter.KEYWORD_ONLY, default=None,
                           annotation="numpy.typing.ArrayLike | None")
_DTYPE = inspect.Parameter("dtype", inspect.Parameter.KEYWORD_ONLY, default=None,
                           annotation="numpy.typing.DTypeLike | None")


def _cast_input(function: str, x: Any, dtype: Any) -> Any:
    """x cast to dtype (float16, bfloat16, float32 or float64), as PyTorch's dtype= does
    before the operation; a dask array or DataArray stays lazy."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{function}: dtype {dtype!r} is not a NumPy dtype") from None
    if not (dt.kind == "f" and dt.itemsize <= 8) and not is_bfloat16(dt):
        raise TypeError(f"{function}: dtype must be float16, bfloat16, float32 or float64, got {dt}")
    if _lazy.kind(x) or isinstance(x, np.ndarray):
        _refuse_masked(function, ("x", x))
        return x.astype(dt, copy=False) if isinstance(x, np.ndarray) else x.astype(dt)
    return as_input(function, "x", x).astype(dt, copy=False)


_SELECT: list[tuple] = []  # (serial, parallel) of _loops_rows._masked_select_loops, once made


def _select(x: np.ndarray | None, mask: np.ndarray, out: np.ndarray, fill: float, negate: bool = False) -> None:
    """out = (-x if negate else x) where mask, else fill; x, mask and out C-contiguous of
    one shape (x None: out itself)."""
    if not _SELECT:
        from ._cache import SOURCE_TOKEN, _jit_variants
        from ._loops_rows import _masked_select_loops

        (loop,) = _masked_select_loops(SOURCE_TOKEN)
        _SELECT.append(_jit_variants(loop, "rowwise.masked_select"))
    serial, parallel = _SELECT[0]
    flat = out.reshape(-1)
    args = (None if x is None else x.reshape(-1), mask.reshape(-1), flat, fill, negate)
    if flat.size >= parallel_min_size(out.dtype, "flat forward"):
        _launch(parallel, *args)
    else:
        serial(*args)


def _lean_rows(a: np.ndarray, axis: Any, half: bool) -> int:
    """The row length, when a (an ndarray) can take the lean path of the row-wise
    functions: float32/float64 (or, where half, a 16-bit dtype the kernels take as its
    integer view), C-contiguous, non-empty rows along the last axis. Else 0, and the
    general path checks and plans the call."""
    dt = a.dtype
    if type(axis) is int and (dt is F32 or dt is F64 or (half and dt.itemsize == 2 and half_view(dt) is not None)) \
            and a.ndim and (axis == -1 or axis == a.ndim - 1) and a.flags.c_contiguous:
        return a.shape[-1]
    return 0


def make_rowwise(act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
    fname, bname = act.name, f"{act.name}_backward"
    ndarray = np.ndarray
    # softmin: the kernels compute softmax over -x, negated into the output (or a private
    # array) first and computed there in place: one more pass, as PyTorch's softmin makes
    negated = act.kind_options.get("negated", False)

    masked_value = act.kind_options.get("masked_value", 0.0)
    # the exponentials' loops take 16-bit arrays as their integer views, in one pass;
    # sparsemax's sort-based threshold goes through float32 copies
    takes_half = act.kind_options.get("rule") != "simplex"

    def masked_forward(x: Any, where: Any, axis: Any, out: Any) -> Any:
        """The forward over the elements where is True, each row on its own: the others
        (masked) and every element of a row with nothing unmasked get masked_value."""
        _refuse_masked(fname, ("x", x))
        x = as_input(fname, "x", x)
        rdt = result_dtype(fname, "x", x.dtype)
        cdt = compute_dtype(rdt)
        ax = _normalize_axis(fname, axis, x.ndim)
        mask = as_mask(fname, where, x.shape)
        if out is not None:
            check_out(fname, out, x.shape, rdt)
        xc = np.ascontiguousarray(x, dtype=cdt)
        # masked, then computed in place: in out where it can hold the work (a C-ordered
        # out of the compute dtype, x itself or apart from it), else in a private array
        direct = (out is not None and out.dtype == cdt and out.flags.c_contiguous
                  and not overlaps_partly(out, xc, mask))
        xm = out if direct else np.empty(x.shape, cdt)
        # a masked element takes no part: exp(-inf) is 0, and sparsemax's x - tau < 0
        _select(None if xc is xm else xc, np.ascontiguousarray(mask), xm, -np.inf, negated)
        _run_rowwise(kernels, "forward", xm.shape, ax, (xm,), xm, fresh_out=False)
        if xm.ndim:
            empty = ~mask.any(axis=ax, keepdims=True)  # a row with nothing unmasked: NaN, until filled
            if empty.any():
                np.copyto(xm, masked_value, where=np.broadcast_to(empty, xm.shape))
        elif not mask:
            xm[()] = masked_value
        if direct:
            return out
        if out is None:
            return _returned(xm.astype(rdt, copy=False), False)
        np.copyto(out, xm, casting="unsafe")
        return out

    def forward(x, *, axis=-1, dtype=None, where=None, out=None):
        if dtype is not None:  # as PyTorch: x is cast to dtype first, and the result has it
            x = _cast_input(fname, x, dtype)
        if where is not None:
            if _lazy.lazy_where(where, x):
                return _lazy.rowwise_forward(forward, x, axis, _lazy_dtype(fname, out, ("x", x)), where)
            return masked_forward(x, where, axis, out)
        if (type(x) is ndarray and (n := _lean_rows(x, axis, takes_half))
                and (result := _small_out(out, x)) is not None):
            if negated:
                np.negative(x, out=result)
            _run_rows(kernels.rowwise["forward"], "forward",
                      (None if result is x or negated else kernel_view(x).reshape(-1, n),
                       kernel_view(result).reshape(-1, n)), x.size // n, n)
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
        kdt = kernel_dtype(rdt, cdt) if takes_half else cdt
        if negated:
            xn = x.astype(kdt)  # private: negated and computed in place when no out is given
            np.negative(xn, out=xn)
            if out is None:
                _run_rowwise(kernels, "forward", xn.shape, ax, (xn,), xn, fresh_out=False)
                return _returned(xn.astype(rdt, copy=False), False)
            return _rowwise_result(kernels, "forward", ax, (xn,), out, rdt, kdt)
        return _rowwise_result(kernels, "forward", ax, (x.astype(kdt, copy=False),), out, rdt, kdt)

    def backward_inputs(grad_output: Any, v: Any, argname: str, axis: Any) -> tuple:
        """(g, v as arrays, the result and compute dtypes, their broadcast shape, the axis),
        checked: the backward's inputs, v the forward's input or output (argname)."""
        _refuse_masked(bname, ("grad_output", grad_output), (argname, v))
        g = as_input(bname, "grad_output", grad_output)
        v = as_input(bname, argname, v)
        rdt = _result_dtype2(bname, "grad_output", g.dtype, argname, v.dtype)
        try:  # broadcasting as the element-wise backward functions (and ufuncs) do
            shape = np.broadcast_shapes(g.shape, v.shape)
        except ValueError:
            raise ValueError(
                f"{bname}: grad_output has shape {g.shape}, which does not match {argname}'s shape {v.shape}"
            ) from None
        return g, v, rdt, compute_dtype(rdt), shape, _normalize_axis(bname, axis, len(shape))

    def masked_backward(grad_output: Any, x: Any, y: Any, where: Any, axis: Any, out: Any) -> Any:
        """The gradient of masked_forward: grad_output of the masked elements takes no
        part, and their gradient is 0."""
        if (x is None) == (y is None):
            raise TypeError(f"{bname}: give exactly one of x (the forward's input) and y= (its output)")
        v = x if y is None else y
        if _lazy.lazy_where(where, grad_output, v):
            argname = "x" if y is None else "y"
            return _lazy.rowwise_backward(backward, grad_output, v, y is not None, axis,
                                          _lazy_dtype(bname, out, ("grad_output", grad_output), (argname, v)), where)
        g, v, rdt, cdt, shape, ax = backward_inputs(grad_output, v, "x" if y is None else "y", axis)
        mask = as_mask(bname, where, shape)
        if out is not None:
            check_out(bname, out, shape, rdt)
        yc = masked_forward(broadcast_input(v, shape), mask, ax, None) if y is None else v
        mc = np.ascontiguousarray(mask)
        gs = np.ascontiguousarray(broadcast_input(g, shape), dtype=cdt)
        yc = np.ascontiguousarray(broadcast_input(np.asarray(yc, dtype=cdt), shape))
        # the masked grad_output takes no part: selected into out where it can hold the
        # work (not y's memory, which the backward reads after), else a private array
        direct = (out is not None and out.dtype == cdt and out.flags.c_contiguous
                  and not np.may_share_memory(out, yc) and not overlaps_partly(out, gs, mc))
        gc = out if direct else np.empty(shape, cdt)
        _select(None if gs is gc else gs, mc, gc, 0.0)
        _run_rowwise(kernels, "backward", shape, ax, (gc, yc), gc, fresh_out=False)
        _select(None, mc, gc, 0.0)
        if direct:
            return out
        if out is None:
            return _returned(gc.astype(rdt, copy=False), False)
        np.copyto(out, gc, casting="unsafe")
        return out

    def backward(grad_output, x=None, *, axis=-1, y=None, where=None, out=None):
        if where is not None:
            return masked_backward(grad_output, x, y, where, axis, out)
        if (x is None and type(y) is ndarray and type(grad_output) is ndarray
                and grad_output.dtype is y.dtype and grad_output.shape == y.shape
                and grad_output.flags.c_contiguous and (n := _lean_rows(y, axis, takes_half))
                and (result := (_small_out(out, grad_output, y) if out is grad_output
                                else _small_out(out, y, grad_output))) is not None):
            _run_rows(kernels.rowwise["backward"], "backward",
                      (None if result is grad_output else kernel_view(grad_output).reshape(-1, n),
                       None if result is y else kernel_view(y).reshape(-1, n), kernel_view(result).reshape(-1, n)),
                      y.size // n, n)
            return result
        if (x is None) == (y is None):
            raise TypeError(f"{bname}: give exactly one of x (the forward's input) and y= (its output)")
        argname = "x" if y is None else "y"
        if _lazy.kind(grad_output) or _lazy.kind(x if y is None else y):
            v = x if y is None else y
            return _lazy.rowwise_backward(backward, grad_output, v, y is not None, axis,
                                          _lazy_dtype(bname, out, ("grad_output", grad_output), (argname, v)))
        g, v, rdt, cdt, shape, ax = backward_inputs(grad_output, x if y is None else y, argname, axis)
        if out is not None:
            check_out(bname, out, shape, rdt)
        kdt = kernel_dtype(rdt, cdt) if takes_half else cdt
        gc, vc = broadcast_input(g.astype(kdt, copy=False), shape), broadcast_input(v.astype(kdt, copy=False), shape)
        # the gradient is expressed through the output: given x, compute it first, in the
        # compute dtype (rounded to 16 bits, it would round the gradient twice)
        yc = _rowwise_new(kernels, "forward", ax, (np.negative(vc) if negated else vc,), cdt) if y is None else vc
        return _rowwise_result(kernels, "backward", ax, (gc, yc), out, rdt, kdt)

    forward.__signature__ = inspect.Signature(
        [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY), _AXIS, _DTYPE, _WHERE,
         _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    backward.__signature__ = inspect.Signature(
        [inspect.Parameter("grad_output", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=f"{_ARRAY} | None"),
         _AXIS,
         inspect.Parameter("y", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=f"{_ARRAY} | None"),
         _WHERE, _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    return _named(forward, fname, _forward_doc(act)), _named(backward, bname, _backward_doc(act))


class Rowwise(Kind):
    """Each element depends on every element of its row along an axis (softmax,
    log_softmax, softmin, sparsemax); the backward works from the output y."""

    name = "rowwise"
    torch_adapter = "fastact._torch_rowwise"
    example_x = "np.array([1.0, 2.0, 3.0])"
    has_ufuncs = has_scalar = False  # a row is not one value
    backward_from_y_only = True
    bench_kwargs: ClassVar[dict[str, Any]] = {"axis": -1}

    def public_functions(self, act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
        return make_rowwise(act, kernels)

    def warm(self, act: Activation, kernels: Kernels, layouts: list[np.ndarray]) -> None:
        for x in layouts:
            for axis in range(x.ndim):
                y = act.forward(x, axis=axis)
                act.backward(x, y=y, axis=axis)
                buf = x.copy()
                act.forward(buf, axis=axis, out=buf)

    def kernel_params(self, act: Activation) -> int:
        return 1  # never used: row-wise activations have no ufuncs

    def params_doc(self, act: Activation) -> str:
        return ("axis : int, default -1\n    The axis along which the rows run (any axis, any layout).\n"
                "where : array_like of bool, optional\n    Only these elements take part (JAX's where=); the "
                f"others, and a row with none, give {act.kind_options.get('masked_value', 0.0)}.\n")

    def forward_params_doc(self, act: Activation) -> str:
        return (self.params_doc(act) + "dtype : float dtype, optional\n    x is cast to it first (PyTorch's dtype=): "
                "the result has it, float16 input computed and returned as float32 with dtype=np.float32.\n")

    def backward_example(self, act: Activation, args: str, printed: str) -> list[str]:
        return [f">>> fa.{act.name}_backward({EXAMPLE_ROW_GRAD}, y=fa.{act.name}(x))", printed]

    def apply_params(self, act: Activation) -> list[str]:
        return ["axis"]

    def apply_split(self, function: str, x: np.ndarray, kw: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
        # whole rows per chunk (a 1-D file is one row)
        axis = kw.get("axis", -1)
        if x.ndim and not x.flags.c_contiguous:
            raise ValueError(f"{function}: the file must be in C order")
        if x.ndim and axis % x.ndim != x.ndim - 1:
            raise ValueError(f"{function}: apply runs along the last axis only (axis=-1)")
        return lambda a: a.reshape(-1, a.shape[-1])

    bench_row_length = 1024  # rows of this many elements along the last axis

    def bench_shape(self, n: int) -> tuple[int, ...]:
        return (n // min(n, self.bench_row_length), min(n, self.bench_row_length))

    def bench_args(self, params: tuple, dtype: np.dtype) -> tuple:
        return ()

    def bench_torch_args(self, args: tuple) -> tuple:
        return (-1,)  # dim
