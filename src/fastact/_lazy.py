"""fastact's functions on dask arrays and xarray DataArrays, lazily.

An element-wise activation runs fastact's own function on each block (``map_blocks``),
its vectorised kernels, rather than handing dask its ufunc (numba's generic ufunc loop,
several times slower per element); a DataArray gets the same on its data and keeps
its dimensions, coordinates and attributes. (The backward of two DataArrays, which xarray
aligns by dimension names, and other array types go through the ufunc protocol:
``_arrays._deferred``.) softmax, log_softmax and prelu are not element-wise: a row
of softmax needs its whole row, and prelu's weight gradient is a sum over everything but
the channel axis. Here a dask array is
rechunked so that each block holds whole rows (whole channel runs for prelu) and fastact's
own function runs on each block, lazily; prelu's weight gradient is a per-block float64
sum, added up by dask. A DataArray gets the same call on its data (NumPy or dask) and
keeps its dimensions and coordinates. Nothing here imports dask or xarray.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ._arrays import normalize_axis


def kind(a: Any) -> str | None:
    """'dask' for a dask array, 'xarray' for a DataArray, else None."""
    module = type(a).__module__
    if module.startswith("dask.") and hasattr(a, "map_blocks") and hasattr(a, "rechunk"):
        return "dask"
    if module.startswith("xarray.") and hasattr(a, "dims") and hasattr(a, "copy"):
        return "xarray"
    return None


def lazy_where(where: Any, *arrays: Any) -> bool:
    """True when where= is given and it or one of the operands is a dask array or a
    DataArray: the masked call then goes through this module."""
    return where is not None and any(kind(a) for a in (where, *arrays))


def _mask_for(function: str, where: Any, like: Any) -> Any:
    """where= as a boolean dask array of like's shape (like: a dask array), checked as
    fastact checks a NumPy mask, before anything is deferred."""
    import dask.array as da  # like is a dask array, so dask is there

    dtype = np.dtype(getattr(where, "dtype", None) or np.asarray(where).dtype)
    if dtype != np.bool_:
        raise TypeError(f"{function}: where must be an array of booleans, got dtype {dtype}")
    try:
        if np.broadcast_shapes(np.shape(where), like.shape) != like.shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"{function}: where has shape {np.shape(where)}, which does not broadcast to "
                         f"{like.shape}") from None
    return da.broadcast_to(da.asarray(where), like.shape).rechunk(like.chunks)


def _where_data(where: Any, like: Any) -> Any:
    """where= for a DataArray like: a DataArray mask aligned to like's dimensions (by
    name, as xarray broadcasts), its data in like's order; anything else as it is."""
    if where is None or kind(where) != "xarray":
        return where
    return where.broadcast_like(like).transpose(*like.dims).data


def _axis(function: str, axis: Any, ndim: int) -> int:

    return normalize_axis(function, axis, ndim)


def _data(a: Any) -> Any:
    return a.data if kind(a) == "xarray" else a


def elementwise_forward(fn: Any, x: Any, args: tuple, kwargs: dict, rdt: np.dtype) -> Any:
    """fn(x, *args, **kwargs) per block of a dask array, or on a DataArray's data."""
    if kind(x) == "xarray":
        data = x.data
        lazy = kind(data) is not None
        return x.copy(data=elementwise_forward(fn, data, args, kwargs, rdt) if lazy else fn(data, *args, **kwargs))
    # meta=: the result's type, so that dask does not call fn on an empty block to learn it
    return x.map_blocks(partial(_forward_block, fn=fn, args=args, kwargs=kwargs), dtype=rdt,
                        meta=np.empty((0,) * x.ndim, rdt))


def _forward_block(block: np.ndarray, *, fn: Any, args: tuple, kwargs: dict) -> np.ndarray:
    return fn(block, *args, **kwargs)  # the block first, then the positional parameters


def _grad_block(g: np.ndarray, v: np.ndarray, *, fn: Any, from_y: bool, args: tuple, kwargs: dict) -> np.ndarray:
    return fn(g, None, *args, y=v, **kwargs) if from_y else fn(g, v, *args, **kwargs)


def elementwise_backward(fn: Any, g: Any, v: Any, from_y: bool, args: tuple, kwargs: dict,
                         rdt: np.dtype) -> Any | None:
    """fn(g, v) per pair of blocks where both are dask arrays or arrays of one shape
    (None otherwise: the ufunc protocol then broadcasts, or aligns DataArrays)."""
    if kind(g) == "xarray" or kind(v) == "xarray" or np.shape(g) != np.shape(v):
        return None
    import dask.array as da  # one of them is a dask array, so dask is there

    v = da.asarray(v)
    g = da.asarray(g).rechunk(v.chunks)
    return da.map_blocks(partial(_grad_block, fn=fn, from_y=from_y, args=args, kwargs=kwargs), g, v, dtype=rdt,
                         meta=np.empty((0,) * v.ndim, rdt))


def _whole(a: Any, axis: int) -> Any:
    return a.rechunk({axis: -1}) if a.ndim else a


def _row_forward(x: np.ndarray, where: np.ndarray | None = None, *, fn: Any, axis: int) -> np.ndarray:
    return fn(x, axis=axis) if where is None else fn(x, axis=axis, where=where)


def rowwise_forward(fn: Any, x: Any, axis: Any, rdt: np.dtype, where: Any = None) -> Any:
    """Each block of whole rows along axis (and its block of where=, if given)."""
    if kind(x) == "xarray":
        return x.copy(data=_row_forward(x.data, _where_data(where, x), fn=fn, axis=axis))
    import dask.array as da  # x or where is a dask array, so dask is there

    x = da.asarray(x)
    ax = _axis(fn.__name__, axis, x.ndim)
    x = _whole(x, ax)
    blocks = (x,) if where is None else (x, _mask_for(fn.__name__, _data(where), x))
    return da.map_blocks(partial(_row_forward, fn=fn, axis=ax), *blocks, dtype=rdt,
                         meta=np.empty((0,) * x.ndim, rdt))


def _row_backward(g: np.ndarray, v: np.ndarray, where: np.ndarray | None = None, *, fn: Any, axis: int,
                  from_y: bool) -> np.ndarray:
    return fn(g, None if from_y else v, y=v if from_y else None, axis=axis, where=where)


def rowwise_backward(fn: Any, g: Any, v: Any, from_y: bool, axis: Any, rdt: np.dtype, where: Any = None) -> Any:
    like = g if kind(g) == "xarray" else v
    if kind(like) == "xarray":
        return like.copy(data=rowwise_backward(fn, _data(g), _data(v), from_y, axis, rdt, _where_data(where, like)))
    if kind(g) != "dask" and kind(v) != "dask" and kind(where) != "dask":
        return _row_backward(np.asarray(g), np.asarray(v), where, fn=fn, axis=axis, from_y=from_y)
    import dask.array as da  # one of them is a dask array, so dask is there

    g, v = da.asarray(g), da.asarray(v)
    try:  # broadcast as on NumPy arrays
        shape = np.broadcast_shapes(g.shape, v.shape)
    except ValueError:
        raise ValueError(f"{fn.__name__}: grad_output has shape {g.shape}, which does not match "
                         f"{'y' if from_y else 'x'}'s shape {v.shape}") from None
    g, v = da.broadcast_to(g, shape), da.broadcast_to(v, shape)
    ax = _axis(fn.__name__, axis, v.ndim)
    v = _whole(v, ax)
    blocks = (g.rechunk(v.chunks), v) if where is None else (g.rechunk(v.chunks), v, _mask_for(fn.__name__, where, v))
    return da.map_blocks(partial(_row_backward, fn=fn, axis=ax, from_y=from_y), *blocks, dtype=rdt,
                         meta=np.empty((0,) * v.ndim, rdt))


def _per_channel(fn: Any, x: Any, w: np.ndarray, axis: Any) -> int | None:
    """The channel axis when the weight has one slope per channel, else None (one slope
    for everything). Checks the weight's length as fastact.prelu does."""
    channels = x.shape[_axis(fn.__name__, axis, x.ndim)] if x.ndim >= 2 else 1
    if w.ndim > 1 or w.size not in (1, channels):
        raise ValueError(
            f"{fn.__name__}: weight must have 1 or {channels} (x.shape[axis]) elements, got shape {w.shape}"
        )
    return _axis(fn.__name__, axis, x.ndim) if w.size > 1 else None


def prelu_forward(fn: Any, x: Any, weight: Any, axis: Any, rdt: np.dtype) -> Any:
    if kind(x) == "xarray":
        return x.copy(data=fn(x.data, weight, axis=axis))
    w = np.asarray(weight)
    ax = _per_channel(fn, x, w, axis)
    if ax is not None:
        x = _whole(x, ax)  # every block sees all channels: the weight goes in whole
    return x.map_blocks(partial(fn, weight=w, axis=axis), dtype=rdt)


def _prelu_grad_x(g: np.ndarray, x: np.ndarray, *, fn: Any, weight: np.ndarray, axis: int) -> np.ndarray:
    return fn(g, x, weight, axis=axis)[0]


def _prelu_grad_weight(g: np.ndarray, x: np.ndarray, *, fn: Any, weight: np.ndarray, axis: Any,
                       channel_axis: int | None) -> np.ndarray:
    """The block's weight gradient in float64, shaped to sit at the block's place in a
    grid of blocks: 1 along every axis but the channel axis."""
    partial_sum = fn(g, x, weight.astype(np.float64), axis=axis)[1]
    shape = [1] * x.ndim
    if channel_axis is not None:
        shape[channel_axis] = weight.size
    return partial_sum.reshape(shape)


def prelu_backward(fn: Any, g: Any, x: Any, weight: Any, axis: Any, rdt: np.dtype) -> tuple[Any, Any]:
    if kind(x) == "xarray" or kind(g) == "xarray":
        like = x if kind(x) == "xarray" else g
        gx, gw = prelu_backward(fn, _data(g), _data(x), weight, axis, rdt)
        return like.copy(data=gx), gw
    if kind(g) != "dask" and kind(x) != "dask":
        return fn(np.asarray(g), np.asarray(x), weight, axis=axis)
    import dask.array as da  # one of them is a dask array, so dask is there

    w = np.asarray(weight)
    g, x = da.asarray(g), da.asarray(x)
    if g.shape != x.shape:
        raise ValueError(f"{fn.__name__}: grad_output has shape {g.shape}, which does not match x's shape {x.shape}")
    ax = _per_channel(fn, x, w, axis)
    if ax is not None:
        x = _whole(x, ax)
    g = g.rechunk(x.chunks)
    grad_x = da.map_blocks(partial(_prelu_grad_x, fn=fn, weight=w, axis=axis), g, x, dtype=rdt)
    grid = tuple((w.size,) if i == ax else (1,) * len(c) for i, c in enumerate(x.chunks))
    partials = da.map_blocks(partial(_prelu_grad_weight, fn=fn, weight=w, axis=axis, channel_axis=ax), g, x,
                             dtype=np.float64, chunks=grid)
    wdt = w.dtype if w.dtype in (np.float16, np.float32, np.float64) else np.dtype(np.float64)
    grad_weight = partials.sum(axis=tuple(i for i in range(x.ndim) if i != ax)).astype(wdt).reshape(w.shape)
    return grad_x, grad_weight


def _halved_like(like: Any, axis: int, data: Any) -> Any:
    """A DataArray of the split form's result: like's dimensions and attributes, its
    coordinates but those along the halved dimension (which no longer match it)."""
    dim = like.dims[axis]
    half = like.isel({dim: slice(0, data.shape[axis])})
    half = half.drop_vars([c for c in half.coords if dim in half.coords[c].dims])
    return half.copy(data=data)


def gated_forward(fn: Any, x: Any, b: Any, axis: Any, kwargs: dict, rdt: np.dtype) -> Any:
    """The split form: each block holds x's whole length along axis (both halves); the
    two-array form: the blocks of x and b side by side."""
    if kind(x) == "xarray" or kind(b) == "xarray":
        if b is None:
            ax = _axis(fn.__name__, axis, x.ndim)
            return _halved_like(x, ax, fn(x.data, axis=ax, **kwargs))
        like = x if kind(x) == "xarray" else b
        return like.copy(data=fn(_data(x), _data(b), **kwargs)) if np.shape(x) == np.shape(b) else \
            fn(np.asarray(x), np.asarray(b), **kwargs)
    import dask.array as da  # one of them is a dask array, so dask is there

    if b is None:
        ax = _axis(fn.__name__, axis, x.ndim)
        x = _whole(x, ax)
        chunks = tuple((c[0] // 2,) if i == ax else c for i, c in enumerate(x.chunks))
        return x.map_blocks(partial(fn, axis=ax, **kwargs), dtype=rdt, chunks=chunks, meta=np.empty((0,) * x.ndim, rdt))
    x, b = da.broadcast_arrays(da.asarray(x), da.asarray(b))
    b = b.rechunk(x.chunks)
    return da.map_blocks(partial(fn, **kwargs), x, b, dtype=rdt, meta=np.empty((0,) * x.ndim, rdt))


def _gated_grad_block(g: np.ndarray, x: np.ndarray, b: np.ndarray, *, fn: Any, which: int, kwargs: dict) -> np.ndarray:
    return fn(g, x, b, **kwargs)[which]


def gated_backward(fn: Any, g: Any, x: Any, b: Any, axis: Any, kwargs: dict, rdt: np.dtype) -> Any:
    if kind(x) == "xarray" or kind(g) == "xarray" or kind(b) == "xarray":
        if b is None:
            return x.copy(data=fn(_data(g), _data(x), axis=axis, **kwargs)) if kind(x) == "xarray" else \
                fn(_data(g), _data(x), axis=axis, **kwargs)
        grads = fn(_data(g), _data(x), _data(b), **kwargs)
        return tuple(v.copy(data=gr) if kind(v) == "xarray" and v.shape == gr.shape else gr
                     for v, gr in zip((x, b), grads, strict=True))
    import dask.array as da  # one of them is a dask array, so dask is there

    if b is None:
        x = da.asarray(x)
        ax = _axis(fn.__name__, axis, x.ndim)
        x = _whole(x, ax)
        g = da.asarray(g)
        g = g.rechunk(tuple((c[0] // 2,) if i == ax else c for i, c in enumerate(x.chunks)))
        return da.map_blocks(partial(fn, axis=ax, **kwargs), g, x, dtype=rdt, chunks=x.chunks,
                             meta=np.empty((0,) * x.ndim, rdt))
    # each gradient of the broadcast shape, block by block (the pair computed once per
    # gradient), then summed over the axes its operand was broadcast along
    from ._gated import _unbroadcast

    shapes = (np.shape(x), np.shape(b))
    g, xb, bb = da.broadcast_arrays(da.asarray(g), da.asarray(x), da.asarray(b))
    xb, bb = xb.rechunk(g.chunks), bb.rechunk(g.chunks)
    return tuple(
        _unbroadcast(da.map_blocks(partial(_gated_grad_block, fn=fn, which=i, kwargs=kwargs), g, xb, bb, dtype=rdt,
                                   meta=np.empty((0,) * g.ndim, rdt)), shapes[i])
        for i in range(2))


def _reduce_block(x: np.ndarray, where: np.ndarray | None = None, *, fn: Any, axis: Any,
                  keepdims: bool) -> np.ndarray:
    return fn(x, axis=axis, keepdims=keepdims, where=where)


def reduction_forward(fn: Any, x: Any, axis: Any, keepdims: bool, rdt: np.dtype, where: Any = None) -> Any:
    """A DataArray through xarray's reduce (its dimensions named); a dask array with the
    reduced axes whole in each block (all of it in one block for axis=None), where=
    rechunked as x."""
    from ._reduction import normalize_axes

    if kind(x) == "xarray":
        if where is None:
            return x.reduce(fn, axis=axis, keepdims=keepdims)
        return x.reduce(fn, axis=axis, keepdims=keepdims, where=_where_data(where, x))
    import dask.array as da  # x or where is a dask array, so dask is there

    x = da.asarray(x)
    axes = normalize_axes(fn.__name__, axis, x.ndim)
    meta = np.empty((0,) * x.ndim, rdt)
    whole = x.rechunk({a: -1 for a in axes}) if axes else x
    blocks = (whole,) if where is None else (whole, _mask_for(fn.__name__, where, whole))
    if not axes:
        return da.map_blocks(partial(_reduce_block, fn=fn, axis=(), keepdims=False), *blocks, dtype=rdt, meta=meta)
    kept = da.map_blocks(partial(_reduce_block, fn=fn, axis=axes, keepdims=True), *blocks, dtype=rdt, meta=meta,
                         chunks=tuple((1,) if i in axes else c for i, c in enumerate(whole.chunks)))
    return kept if keepdims else kept.squeeze(axis=axes)


def _reduce_grad_block(g: np.ndarray, x: np.ndarray, where: np.ndarray | None = None, *, fn: Any,
                       axis: Any) -> np.ndarray:
    return fn(g, x, axis=axis, keepdims=True, where=where)


def reduction_backward(fn: Any, g: Any, x: Any, axis: Any, keepdims: bool, rdt: np.dtype, where: Any = None) -> Any:
    from ._reduction import _reduced_shape, normalize_axes

    if kind(x) == "xarray" or kind(g) == "xarray":
        mask = _where_data(where, x if kind(x) == "xarray" else g)
        result = reduction_backward(fn, _data(g), _data(x), axis, keepdims, rdt, mask)
        return x.copy(data=result) if kind(x) == "xarray" else result
    if kind(g) != "dask" and kind(x) != "dask" and kind(where) != "dask":
        return fn(np.asarray(g), np.asarray(x), axis=axis, keepdims=keepdims, where=where)
    import dask.array as da  # one of them is a dask array, so dask is there

    x = da.asarray(x)
    axes = normalize_axes(fn.__name__, axis, x.ndim)
    x = x.rechunk({a: -1 for a in axes}) if axes else x
    reduced = _reduced_shape(x.shape, axes, keepdims)
    try:
        g = da.broadcast_to(da.asarray(g), reduced).reshape(_reduced_shape(x.shape, axes, True))
    except ValueError:
        raise ValueError(f"{fn.__name__}: grad_output has shape {np.shape(g)}, the forward's result has shape "
                         f"{reduced}") from None
    g = g.rechunk(tuple((1,) if i in axes else c for i, c in enumerate(x.chunks)))
    blocks = (g, x) if where is None else (g, x, _mask_for(fn.__name__, where, x))
    return da.map_blocks(partial(_reduce_grad_block, fn=fn, axis=axes), *blocks, dtype=rdt, chunks=x.chunks,
                         meta=np.empty((0,) * x.ndim, rdt))
