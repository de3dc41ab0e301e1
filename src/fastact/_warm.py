"""Ahead-of-use compilation (``python -m fastact warm``): a driver over the public
functions, apart from the loops it compiles, so that _kernels imports no dispatch code."""

from __future__ import annotations

import numpy as np

from . import ACTIVATIONS, KERNELS
from ._arrays import PARALLEL_MIN_SIZE


def cache_directory() -> str:
    """Where numba keeps fastact's compiled kernels: ``__pycache__`` beside the package
    when it is writable, else numba's user-wide cache; ``NUMBA_CACHE_DIR`` overrides both."""
    serial = KERNELS["relu"].forward["flat"][0]
    return str(serial._cache._cache_path)


def warm_all(progress=None, names=None) -> int:
    """Compile, or load from the cache, every kernel and ufunc of the named activations
    (default: all) for every dtype and each layout the dispatcher uses (1-D contiguous
    and strided, 2-D rows, 3-D channels), by calling the public functions. Returns the
    number of compiled signatures of those activations."""
    names = list(ACTIVATIONS) if names is None else list(names)
    n = 2 * PARALLEL_MIN_SIZE
    for name in names:
        act = ACTIVATIONS[name]
        if progress:
            progress(name)
        for dtype in (np.float32, np.float64):
            base = np.linspace(-3, 3, 2 * n, dtype=dtype)
            layouts = [base[:100], base[:n], base[::2], base[: 2 * n].reshape(-1, 64)[:, ::2],
                       base[:200].reshape(10, 20)[:, ::2]]
            if act.kind == "channelwise":
                w = np.linspace(0.1, 0.2, 4, dtype=dtype)
                for x in layouts:
                    for shape, axis in (((4, -1), 0), ((-1, 4), 1)):  # the rows and the columns form
                        x2 = x[: x.shape[0] // 4 * 4].reshape(shape)
                        act.forward(x2, w, axis=axis)
                        act.backward(x2, x2, w, axis=axis)
                        buf = np.ascontiguousarray(x2)
                        act.forward(buf, w, axis=axis, out=buf)  # the in-place variants
                        act.backward(buf, x2, w, axis=axis, out=buf)
                continue
            if act.kind == "rowwise":
                for x in layouts:
                    for axis in range(x.ndim):
                        y = act.forward(x, axis=axis)
                        act.backward(x, y=y, axis=axis)
                        buf = x.copy()
                        act.forward(buf, axis=axis, out=buf)
                continue
            p = act.example_params
            buf = layouts[0].copy()  # the serial loops' in-place specialisations (x=None, g=None)
            act.forward(buf, *p, out=buf)
            act.backward(buf, layouts[0], *p, out=buf)
            for x in layouts:
                act.forward(x, *p)
                act.backward(x, x, *p)
                if act.supports_y:
                    act.backward(x, y=x, **dict(zip(act.param_names, p, strict=True)))
            k = KERNELS[name]
            k.ufunc, k.backward_ufunc  # noqa: B018 -- built on first access
            if act.supports_y:
                k.backward_from_y_ufunc  # noqa: B018
    count = 0
    for k in (KERNELS[name] for name in names):
        for loops in (v for v in vars(k).values() if isinstance(v, dict)):
            count += sum(len(d.signatures) for variants in loops.values() for d in variants)
    return count
