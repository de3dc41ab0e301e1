"""Arrays for the kernels: dtypes and conversion, out= and overlap checks, the views the
kernels take, serial against parallel, and the element-wise run over those views.

Every check runs before anything is written.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from . import _threading
from ._kernels import Kernels
from ._loops_map import half_kernels
from ._memo import Memo

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
    # 16-bit floats (or the integer views the kernels take them as) compute in float32
    return PARALLEL_MIN_SIZES.get((F32 if dtype.itemsize == 2 else dtype, direction), PARALLEL_MIN_SIZE)

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


def is_bfloat16(dtype: np.dtype) -> bool:
    """ml_dtypes' bfloat16 (found by name: an array of it means ml_dtypes is imported)."""
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16"


def result_dtype(function: str, argument: str, dtype: np.dtype) -> np.dtype:
    """The dtype NumPy's own ufuncs (np.exp) give for this input dtype."""
    if dtype is F32 or dtype is F64:
        return dtype
    kind = dtype.kind
    if kind == "f" and dtype.itemsize <= 8:
        return dtype.newbyteorder("=")  # float16, or a byte-swapped float32/64
    if kind in "biu":
        return np.result_type(dtype, F16)  # bool, int8 -> float16; int16 -> float32; ...
    if is_bfloat16(dtype):
        return dtype
    raise TypeError(
        f"{function}: {argument} has dtype {dtype}, which fastact does not support "
        f"(it computes in float32 and float64 and accepts float16, bfloat16, integer and bool input)"
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
    # float16 and bfloat16 (the 16-bit result dtypes) compute in float32
    return F32 if dtype.itemsize == 2 else dtype


def as_input(function: str, argument: str, value: Any) -> np.ndarray:
    """value as an ndarray of a supported dtype (not yet converted); raises TypeError."""
    a = value if type(value) is np.ndarray else np.asarray(value)
    if not (a.dtype is F32 or a.dtype is F64):
        result_dtype(function, argument, a.dtype)
    return a


class _Alias:
    """Holds a writable __array_interface__ to an array's memory, and the array."""

    __slots__ = ("__array_interface__", "array")


def broadcast_input(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """np.broadcast_to(a, shape) as the kernels read it: a itself where it has the shape,
    else the broadcast view as a writable alias of the same memory. np.broadcast_to's views
    are read-only, and numba types a read-only array apart from a writable one: each
    kernel would compile (seconds) and cache a second copy for them. The kernels never
    write their inputs; the alias (about 2 microseconds) only keeps them to one signature."""
    if a.shape == shape:
        return a
    b = np.broadcast_to(a, shape)
    if not b.size:
        return b
    holder = _Alias()
    interface = dict(b.__array_interface__)
    interface["data"] = (interface["data"][0], False)
    holder.__array_interface__, holder.array = interface, b
    alias = np.asarray(holder)
    # the interface spells a dtype NumPy does not know by name (ml_dtypes' bfloat16) as void
    return alias if alias.dtype == b.dtype else alias.view(b.dtype)


def as_mask(function: str, where: Any, shape: tuple[int, ...]) -> np.ndarray:
    """where= as a boolean array of shape (broadcast), or a clear error naming it."""
    w = np.asarray(where)
    if w.dtype != np.bool_:
        raise TypeError(f"{function}: where must be an array of booleans, got dtype {w.dtype}")
    try:
        return broadcast_input(w, shape)
    except ValueError:
        raise ValueError(f"{function}: where has shape {w.shape}, which does not broadcast to {shape}") from None


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


def _pairable(inputs: tuple[np.ndarray, ...], out: np.ndarray, fresh_out: bool) -> bool:
    """The inputs have out's shape, and out does not partly overlap one of them."""
    return all(a.shape == out.shape for a in inputs) and (fresh_out or not overlaps_partly(out, *inputs))


def _threshold(dtype: np.dtype, loops: str, size: int) -> int:
    """The size from which the parallel kernels run."""
    threshold = parallel_min_size(dtype, "forward" if loops == "forward" else "backward")
    if size >= threshold and _threading.one_thread():  # a parallel launch would only add its cost
        threshold = size + 1
    return threshold


def _run_flat(kernels: Kernels, loops: str, views: list, in_place: bool, params: tuple, size: int,
              threshold: int) -> None:
    serial, parallel = getattr(kernels, loops)["flat"]
    if size < threshold:
        if in_place:  # the serial loop reads out (see _loops_map._map_loops)
            views[0] = None
        serial(*views, params)
    else:
        _launch(parallel, *views, params)


def run_elementwise(
    kernels: Kernels, loops: str, inputs: tuple[np.ndarray, ...], out: np.ndarray, params: tuple,
    fresh_out: bool = False,
) -> None:
    """out = loop(*inputs) over any layout. ``loops`` names the Kernels attribute
    ("forward", "backward", "backward_from_y"); its ufunc is only built if needed.
    ``fresh_out``: out was just allocated, so it cannot overlap an input."""
    size = out.size
    threshold = _threshold(out.dtype, loops, size)
    if _pairable(inputs, out, fresh_out):
        arrays = (*inputs, out)
        views = _flat_views(arrays)
        if views is not None:
            _run_flat(kernels, loops, views, out is inputs[0], params, size, threshold)
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


U16, I16 = np.dtype(np.uint16), np.dtype(np.int16)


# remembered: bfloat16's test reads dtype.name, 0.4 of a small call's 2-4 microseconds
_HALF_VIEWS = Memo(16)


def half_view(dtype: np.dtype) -> np.dtype | None:
    """The integer dtype a 16-bit float dtype reaches the kernels as (_loops_map: float16
    as uint16, bfloat16 as int16), or None where the kernels do not take it in one pass."""
    view = _HALF_VIEWS.get(dtype, False)
    if view is False:
        if dtype == F16:
            view = U16 if half_kernels() else None
        else:
            view = I16 if is_bfloat16(dtype) else None
        _HALF_VIEWS.remember(dtype, view)
    return view


def kernel_dtype(rdt: np.dtype, cdt: np.dtype) -> np.dtype:
    """The dtype of the arrays the kernels are given for a result dtype rdt computed in
    cdt: a 16-bit rdt whose integer view the kernels take (half_view) stays 16-bit, read
    in one pass, computed in float32 and rounded once on store; anything else is cdt."""
    return rdt if rdt != cdt and half_view(rdt) is not None else cdt


def kernel_view(a: np.ndarray) -> np.ndarray:
    """a as the kernels take it: a 16-bit float array as its integer view."""
    return a if a.dtype.itemsize != 2 else a.view(half_view(a.dtype))


def run_half(kernels: Kernels, loops: str, inputs: tuple[np.ndarray, ...], out: np.ndarray, params: tuple,
             fresh_out: bool = False) -> bool:
    """out = loop(*inputs) for 16-bit float arrays (float16 or bfloat16) of one shape and
    dtype (the caller has checked the dtypes), in one pass (each element read, computed in
    float32, the result rounded once), where their flat views pair up and out does not
    partly overlap an input; the float32 thresholds apply. Other layouts of float16 go
    through the ufunc's float16 loop (in float32 blocks; on slabs in threads above the
    parallel threshold, unless out partly overlaps an input), and bfloat16 through the
    same kind of loop in a private ufunc on its int16 bits. False, with nothing
    written, where neither holds: the caller then computes through float32 copies."""
    view = half_view(out.dtype)
    if view is None:
        return False
    # flat views only: the 2-D rows loop, over numba's arrays of unknown strides, does not
    # vectorise, and took 3x the time of float32 copies (gelu, float16 x[:, :1000] of a
    # (4096, 2048) array: 45 against 13 ms; a strided flat view, x[:, ::2]: 12 against 15
    # ms one pass; 1.1 ms contiguous)
    views = _flat_views((*inputs, out)) if _pairable(inputs, out, fresh_out) else None
    if views is not None:
        _run_flat(kernels, loops, [v.view(view) for v in views], out is inputs[0], params, out.size,
                  _threshold(F32, loops, out.size))
        return True
    # the ufunc's float16 loop widens blocks into float32 and reads any strides (and NumPy
    # buffers a partial overlap): on one thread, 4-10x faster than two threads through
    # float32 copies (Xeon, AVX-512: x[:, :1000] of (4096, 2048), 3.8-8.7 against 37-60 ms).
    # bfloat16, which NumPy cannot register a loop for, through a private ufunc on its bits.
    # (tested on the caller's arrays: bfloat16's int16 views below are new objects)
    split = out.size >= _threshold(F32, loops, out.size) and all(a is out or not np.may_share_memory(a, out)
                                                                 for a in inputs)
    if view == U16:
        ufunc = getattr(kernels, f"{loops}_ufunc" if loops != "forward" else "ufunc")
    else:
        ufunc = getattr(kernels, f"{loops}_bfloat16_bits_ufunc")
        inputs, out = tuple(a.view(view) for a in inputs), out.view(view)
    # float32 parameters: Python floats for float16 (which NumPy lets take the loop's
    # float32 ones), NumPy's for int16 (with which a Python float would promote to float64)
    run = functools.partial(_ufunc_slab, ufunc, inputs, tuple(map(float if view == U16 else np.float32, params)), out)
    if split:
        _threading.split(run, out.shape)
    else:
        run(None)
    return True


def _ufunc_slab(ufunc: np.ufunc, inputs: tuple, params: tuple, out: np.ndarray, slab: tuple | None) -> None:
    """ufunc(*inputs, *params, out=out) on operands of one shape, or on index slab of them."""
    if slab is not None:  # (an input broadcast along the slabs' axis has length 1 there)
        inputs, out = tuple(np.broadcast_to(a, out.shape)[slab] for a in inputs), out[slab]
    with np.errstate(all="ignore"):  # as run_elementwise's ufunc path
        ufunc(*inputs, *params, out=out)


def _fortran(a: np.ndarray) -> bool:
    return a.ndim >= 2 and a.flags.f_contiguous and not a.flags.c_contiguous


def _returned(result: np.ndarray, out_given: bool) -> Any:
    # as ufuncs do: a 0-d result comes back as a NumPy scalar unless out= was given
    return result[()] if result.ndim == 0 and not out_given else result


def normalize_axis(function: str, axis: Any, ndim: int) -> int:
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
