"""logsumexp's public functions: a reduction over any axes (all by default).

The loops (``_loops_reduce``) give each row's maximum m and float64 sum s of
exp(x - m); the value is m + log(s), rounded once to the result's dtype. One axis of a
C- or Fortran-ordered array is read in place (rows, or columns of the row-wise
kernels' form); several axes, or another layout, are moved last in a contiguous copy.
A single long row (a reduction over everything) is cut into pieces that run in
parallel and are combined. The backward is grad_output / s times exp(x - m) along the
reduced axes (softmax's form), one more pass over x after the forward's.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from . import _lazy, _threading
from ._arrays import (
    _fortran,
    _launch,
    _lazy_dtype,
    _refuse_masked,
    _result_dtype2,
    _returned,
    as_input,
    as_mask,
    broadcast_input,
    check_out,
    compute_dtype,
    parallel_min_size,
    result_dtype,
)
from ._docs import _ARRAY, _OUT, _backward_doc, _forward_doc, _named
from ._kernels import Kernels
from ._kinds import ApplyLayout, Kind
from ._loops_rows import _COLUMN_BLOCK
from ._registry import Activation

_PIECES = 64  # a long single row is cut into this many pieces, to run in parallel


def normalize_axes(function: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """axis (None: all; an int or a tuple of ints) as sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    axes = []
    for a in items:
        try:
            a = operator.index(a)
        except TypeError:
            raise TypeError(f"{function}: axis must be None, an integer or a tuple of integers, got {axis!r}") from None
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise np.exceptions.AxisError(f"{function}: axis {a} is out of bounds for x with {ndim} dimensions")
        axes.append(a % ndim if ndim else 0)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{function}: axis {axis!r} repeats an axis")
    return tuple(sorted(axes)) if ndim else ()


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _combine(m: np.ndarray, s: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The (m, s) of whole rows from those of their pieces along axis."""
    with np.errstate(all="ignore"):
        big = np.fmax.reduce(m, axis=axis, keepdims=True)  # a piece of only NaN has m NaN
        total = np.sum(s * np.exp(m - big), axis=axis, keepdims=True)
        nan = np.isnan(s).any(axis=axis, keepdims=True)
        total = np.where(np.isfinite(big), total, np.where(nan, np.nan, 1.0))
    return np.squeeze(big, axis), np.squeeze(total, axis)


class _Plan:
    """How the loops see x for a reduction over axes: rows (rows, n) or columns
    (outer, n, inner), of x itself (one axis of a C- or Fortran-ordered x) or of a
    contiguous copy with the axes moved last; and, for few long rows, the rows cut into
    _PIECES pieces (and a remainder) so that they run in parallel."""

    def __init__(self, kernels: Kernels, x: np.ndarray, axes: tuple[int, ...]) -> None:
        self.kernels, self.shape, self.axes = kernels, x.shape, axes
        self.kept = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        n = math.prod(x.shape[a] for a in axes)
        self.transposed = self.moved = False
        if len(axes) == 1 and (x.flags.c_contiguous or _fortran(x)):
            self.transposed = not x.flags.c_contiguous
            v, ax = (x.T, x.ndim - 1 - axes[0]) if self.transposed else (x, axes[0])
            outer, inner = math.prod(v.shape[:ax]), math.prod(v.shape[ax + 1:])
            self.view_shape = (outer, n) if inner == 1 else (outer, n, inner)
            self.row_shape = tuple(d for i, d in enumerate(v.shape) if i != ax)  # the results, as v has them
            self.v = v.reshape(self.view_shape)
        else:
            self.moved = True
            self.moved_x = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
            self.view_shape = (math.prod(self.kept), n)
            self.row_shape = self.kept
            self.v = np.ascontiguousarray(self.moved_x).reshape(self.view_shape)
        self.pieces = (len(self.view_shape) == 2 and self.view_shape[0] < _PIECES and n >= 2 * _PIECES
                       and self._parallel(self.v.size, _PIECES))

    def _parallel(self, size: int, tasks: int) -> bool:
        return (size >= parallel_min_size(self.v.dtype, "rows forward") and tasks >= 2
                and not _threading.one_thread())

    def _run(self, loops: dict[str, tuple], *args: Any) -> None:
        """The rows or columns loop over the view (args after it), parallel where it pays."""
        if len(self.view_shape) == 2:
            serial, parallel = loops["rows"]
            tasks = self.view_shape[0]
        else:
            serial, parallel = loops["columns"]
            tasks, args = self.view_shape[0] * -(-self.view_shape[2] // _COLUMN_BLOCK), (*args, _COLUMN_BLOCK)
        if self._parallel(self.v.size, tasks):
            _launch(parallel, self.v, *args)
        else:
            serial(self.v, *args)

    def _cut(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        body = row.shape[0] - row.shape[0] % _PIECES
        return row[:body].reshape(_PIECES, -1), row[body:].reshape(1, -1)

    def _results(self, a: np.ndarray) -> np.ndarray:
        """A per-row result of the view, shaped as x without the reduced axes."""
        a = a.reshape(self.row_shape)
        return a.T if self.transposed else a

    def forward(self) -> tuple[np.ndarray, np.ndarray]:
        """Each row's (m, s), shaped as x without the reduced axes."""
        rows = self.view_shape[0]
        if self.pieces:
            m, s = np.empty((rows, _PIECES + 1)), np.ones((rows, _PIECES + 1))
            m[:, _PIECES] = -np.inf  # an empty remainder: exp(-inf) weighs nothing
            serial, parallel = self.kernels.reduce["rows"]
            for i in range(rows):
                main, rest = self._cut(self.v[i])
                _launch(parallel, main, m[i, :_PIECES], s[i, :_PIECES])
                if rest.size:
                    serial(rest, m[i, _PIECES:], s[i, _PIECES:])
            m, s = _combine(m, s, 1)
        else:
            shape = (rows,) if len(self.view_shape) == 2 else (rows, self.view_shape[2])
            m, s = np.empty(shape), np.empty(shape)
            self._run(self.kernels.reduce, m, s)
        return self._results(m), self._results(s)

    def _direct(self, target: np.ndarray | None) -> np.ndarray | None:
        """target as the view's shape, where the loops can write it as it is."""
        if target is None or target.dtype != self.v.dtype or self.moved or np.may_share_memory(target, self.v):
            return None
        if self.transposed:
            return target.T.reshape(self.view_shape) if _fortran(target) else None
        return target.reshape(self.view_shape) if target.flags.c_contiguous else None

    def backward(self, m: np.ndarray, scale: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
        """exp(x - m) * scale along each row (m and scale shaped as forward's results, in
        x's dtype), of x's shape: into target where the loops can write it directly."""
        if self.transposed:
            m, scale = m.T, scale.T
        shape = (self.view_shape[0],) if len(self.view_shape) == 2 else (self.view_shape[0], self.view_shape[2])
        m, scale = np.ascontiguousarray(m).reshape(shape), np.ascontiguousarray(scale).reshape(shape)
        direct = self._direct(target)
        out = np.empty(self.view_shape, self.v.dtype) if direct is None else direct
        if self.pieces:
            serial, parallel = self.kernels.reduce_backward["rows"]
            for i in range(self.view_shape[0]):
                (main, rest), (out_main, out_rest) = self._cut(self.v[i]), self._cut(out[i])
                _launch(parallel, main, np.full(_PIECES, m[i]), np.full(_PIECES, scale[i]), out_main)
                if rest.size:
                    serial(rest, m[i:i + 1], scale[i:i + 1], out_rest)
        else:
            self._run(self.kernels.reduce_backward, m, scale, out)
        if direct is not None:
            return target
        if self.moved:
            return np.moveaxis(out.reshape(self.moved_x.shape), tuple(range(-len(self.axes), 0)), self.axes)
        return out.reshape(self.shape[::-1]).T if self.transposed else out.reshape(self.shape)


def make_reduction(act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
    fname, bname = act.name, f"{act.name}_backward"

    def masked(function: str, x: np.ndarray, where: Any, cdt: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
        """x in cdt with the elements where= leaves out set to -inf (they take no part),
        and the mask; or x and None without where=."""
        if where is None:
            return x.astype(cdt, copy=False), None
        mask = as_mask(function, where, x.shape)
        xm = x.astype(cdt)
        np.copyto(xm, -np.inf, where=~mask)
        return xm, mask

    def forward(x, axis=None, keepdims=False, *, where=None, out=None):
        if _lazy.kind(x) or _lazy.lazy_where(where, x):
            return _lazy.reduction_forward(forward, x, axis, keepdims, _lazy_dtype(fname, out, ("x", x)), where)
        _refuse_masked(fname, ("x", x))
        x = as_input(fname, "x", x)
        rdt = result_dtype(fname, "x", x.dtype)
        axes = normalize_axes(fname, axis, x.ndim)
        shape = _reduced_shape(x.shape, axes, bool(keepdims))
        if out is not None:
            check_out(fname, out, shape, rdt)
        if not axes:  # a 0-d x: itself (one element)
            result = masked(fname, x, where, rdt)[0].reshape(shape).copy()
        elif math.prod(x.shape[a] for a in axes) == 0:  # the sum of no exponentials is 0
            result = np.full(shape, -np.inf, rdt)
        else:
            m, s = _Plan(kernels, masked(fname, x, where, compute_dtype(rdt))[0], axes).forward()
            with np.errstate(all="ignore"):
                result = (m + np.log(s)).astype(rdt).reshape(shape)
        if out is None:
            return _returned(result, False)
        np.copyto(out, result, casting="unsafe")
        return out

    def backward(grad_output, x=None, axis=None, keepdims=False, *, y=None, where=None, out=None):
        act.require_x(bname, x, y)
        if _lazy.kind(grad_output) or _lazy.kind(x) or _lazy.lazy_where(where, grad_output, x):
            return _lazy.reduction_backward(backward, grad_output, x, axis, keepdims,
                                            _lazy_dtype(bname, out, ("grad_output", grad_output), ("x", x)), where)
        _refuse_masked(bname, ("grad_output", grad_output), ("x", x))
        g = as_input(bname, "grad_output", grad_output)
        x = as_input(bname, "x", x)
        rdt = _result_dtype2(bname, "grad_output", g.dtype, "x", x.dtype)
        axes = normalize_axes(bname, axis, x.ndim)
        reduced = _reduced_shape(x.shape, axes, bool(keepdims))
        try:  # grad_output of the forward's result's shape (or one that broadcasts to it)
            gk = broadcast_input(g, reduced).reshape(_reduced_shape(x.shape, axes, True))
        except ValueError:
            raise ValueError(f"{bname}: grad_output has shape {g.shape}, the forward's result has shape "
                             f"{reduced}") from None
        if out is not None:
            check_out(bname, out, x.shape, rdt)
        cdt = compute_dtype(rdt)
        xc, mask = masked(bname, x, where, cdt)
        if not axes:  # d x / d x
            result = np.broadcast_to(gk, x.shape).astype(cdt)
        elif math.prod(x.shape[a] for a in axes) == 0:
            result = np.zeros(x.shape, cdt)
        else:
            # grad_output / s times exp(x - m): the gradient of m + log(s), softmax's form
            plan = _Plan(kernels, xc, axes)
            m, s = plan.forward()
            with np.errstate(all="ignore"):
                scale = (gk.reshape(m.shape) / s).astype(cdt)
            result = plan.backward(m.astype(cdt), scale, out if mask is None else None)
            if result is out:
                return out
        if mask is not None:  # a masked element's gradient is 0 (in a row with nothing unmasked too)
            result = np.where(mask, result, 0).astype(cdt, copy=False)
        if out is None:
            return _returned(result.astype(rdt, copy=False), False)
        np.copyto(out, result, casting="unsafe")
        return out

    P = inspect.Parameter
    axis_p = P("axis", P.POSITIONAL_OR_KEYWORD, default=None, annotation="int | tuple[int, ...] | None")
    keep_p = P("keepdims", P.POSITIONAL_OR_KEYWORD, default=False, annotation=bool)
    where_p = P("where", P.KEYWORD_ONLY, default=None, annotation="numpy.typing.ArrayLike | None")
    forward.__signature__ = inspect.Signature(
        [P("x", P.POSITIONAL_OR_KEYWORD, annotation=_ARRAY), axis_p, keep_p, where_p, _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    backward.__signature__ = inspect.Signature(
        [P("grad_output", P.POSITIONAL_OR_KEYWORD, annotation=_ARRAY),
         P("x", P.POSITIONAL_OR_KEYWORD, default=None, annotation=f"{_ARRAY} | None"), axis_p, keep_p,
         P("y", P.KEYWORD_ONLY, default=None, annotation=f"{_ARRAY} | None"), where_p, _OUT],
        return_annotation="numpy.ndarray | numpy.floating",
    )
    return _named(forward, fname, _forward_doc(act)), _named(backward, bname, _backward_doc(act))


class Reduction(Kind):
    """One value per row of the reduced axes (logsumexp)."""

    name = "reduction"
    torch_adapter = "fastact._torch_reduction"
    has_ufuncs = has_scalar = False  # a row is not one value
    result_has_x_shape = False  # x's shape without the reduced axes
    example_x = "np.array([[1.0, 2.0, 3.0]])"
    example_ones = "np.ones(1)"
    grad_output_doc = "grad_output : array_like\n    d loss / d f(x), of the forward's result's shape.\n"
    x_doc = "x : array_like\n    The forward's input.\n"
    out_doc = "out : ndarray, optional\n    Where to write the result (x's shape without the reduced axes).\n"
    backward_out_doc = "out : ndarray, optional\n    Where to write grad_x (of x's shape; out=x computes in place).\n"
    bench_kwargs: ClassVar[dict[str, Any]] = {"axis": -1}

    def public_functions(self, act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
        return make_reduction(act, kernels)

    def warm(self, act: Activation, kernels: Kernels, layouts: list[np.ndarray]) -> None:
        for x in layouts:
            for axis in (None, *range(x.ndim)):
                y = act.forward(x, axis=axis)
                act.backward(np.ones_like(y), x, axis=axis)

    def kernel_params(self, act: Activation) -> int:
        return 0

    def params_doc(self, act: Activation) -> str:
        return ("axis : None, int or tuple of ints, default None\n    The axes reduced (None: all of them).\n"
                "keepdims : bool, default False\n    Keep the reduced axes, of length 1.\n"
                "where : array_like of bool, optional\n    Only these elements take part (a row with none gives "
                "-inf, and their gradient is 0).\n")

    def example_args(self, act: Activation) -> str:
        return ", axis=-1"

    def backward_summary(self, act: Activation) -> str:
        return ("Returns grad_output (broadcast along the reduced axes) times softmax(x) along them, of x's shape. "
                "y= is not supported: the result alone does not determine the derivative.")

    def backward_example(self, act: Activation, args: str, printed: str) -> list[str]:
        return [f">>> fa.{act.name}_backward({self.example_ones}, x{args})", printed]

    def apply_params(self, act: Activation) -> list[str]:
        return ["axis", "keepdims"]

    def apply_layout(self, fn: Callable[..., Any], x: np.ndarray, kw: dict[str, Any], backward: bool) -> ApplyLayout:
        from . import KERNELS

        axes = normalize_axes(fn.__name__, kw.get("axis"), x.ndim)
        reduced = _reduced_shape(x.shape, axes, bool(kw.get("keepdims", False)))
        out_shape = x.shape if backward else reduced
        if x.ndim == 0:  # one element: itself, as a row of one reduced over no axis
            return ApplyLayout(fn, {**kw, "axis": ()}, out_shape, reduced, lambda a: a.reshape(1))
        if 0 not in axes:  # axis 0 is kept: each chunk of it is a call of its own
            return ApplyLayout(fn, kw, out_shape, reduced, lambda a: a)
        return _StreamLayout(fn, kw, out_shape, reduced, KERNELS[fn.__name__.removesuffix("_backward")], axes)

    bench_row_length = 1024

    def bench_shape(self, n: int) -> tuple[int, ...]:
        row = min(n, self.bench_row_length)
        return (n // row, row)

    def bench_result_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape[:-1]

    def bench_streams(self, forward: bool) -> int:
        return 1 if forward else 2  # x read (and for the backward grad_x written); the rows' results are small

    def bench_roofline(self, passes: Any, x: np.ndarray, g: np.ndarray, out: np.ndarray, forward: bool,
                       new: bool) -> Callable[[], Any]:
        if forward:
            return lambda: passes.read(x)
        return (lambda: passes.copy(x, np.empty_like(x))) if new else (lambda: passes.copy(x, out))

    def bench_args(self, params: tuple, dtype: np.dtype) -> tuple:
        return ()

    def bench_numpy_args(self, args: tuple) -> tuple:
        return (-1,)  # axis, as bench_kwargs gives fastact

    def bench_torch_args(self, args: tuple) -> tuple:
        return (-1,)  # dim


class _StreamLayout(ApplyLayout):
    """apply over axes that include axis 0 (all of them by default), which the chunks
    cut: each chunk's (m, s) as the in-memory call computes it, combined as the parallel
    pieces of a long row are (_combine); the forward's result written at the end. The
    backward makes that pass first, then a second computing each chunk's
    grad_output / s times exp(x - m) into OUT."""

    def __init__(self, fn: Callable[..., Any], kw: dict[str, Any], out_shape: tuple[int, ...],
                 grad_shape: tuple[int, ...], kernels: Kernels, axes: tuple[int, ...]) -> None:
        super().__init__(fn, kw, out_shape, grad_shape, lambda a: a)
        self.kernels, self.axes = kernels, axes
        self.backward = out_shape != grad_shape
        self.passes = 2 if self.backward else 1
        self.m: Any = None  # the (m, s) of the chunks so far, once the first is done
        self.s: Any = None
        self.factors: Any = None  # the backward's m and grad_output / s, in the compute dtype

    def view(self, a: np.ndarray, role: str) -> np.ndarray:
        return a  # GRAD and the forward's OUT have no axis 0 to cut: they are used whole

    def probe(self) -> Any:
        x1 = np.array(self.xs[:1])
        if not self.backward:
            return self.fn(x1, axis=self.axes, keepdims=self.kw.get("keepdims", False))
        g1 = np.zeros(_reduced_shape(x1.shape, self.axes, bool(self.kw.get("keepdims", False))), self.gs.dtype)
        return self.fn(g1, x1, axis=self.axes, keepdims=self.kw.get("keepdims", False))

    def chunk(self, p: int, s: int, e: int) -> None:
        if self.xs.size == 0:
            return  # a reduction over nothing: finish writes its result
        cdt = compute_dtype(self.os.dtype)
        plan = _Plan(self.kernels, self.xs[s:e].astype(cdt, copy=False), self.axes)
        if p == 0:
            m, t = plan.forward()
            if self.m is None:
                self.m, self.s = m, t
            else:
                self.m, self.s = _combine(np.stack([self.m, m]), np.stack([self.s, t]), 0)
            return
        if self.factors is None:  # once, after the first pass: the same for every chunk
            with np.errstate(all="ignore"):
                scale = (np.broadcast_to(self.gs, self.grad_shape).reshape(self.m.shape) / self.s).astype(cdt)
            self.factors = self.m.astype(cdt), scale
        target = self.os[s:e]
        result = plan.backward(*self.factors, target)
        if result is not target:
            np.copyto(target, result, casting="unsafe")

    def finish(self) -> None:
        if self.xs.size == 0:  # as in memory: the sum of no exponentials is 0, its gradient empty
            self.os[...] = 0 if self.backward else -np.inf
            return
        if self.backward:
            return
        with np.errstate(all="ignore"):
            self.os[...] = (self.m + np.log(self.s)).reshape(self.out_shape)
