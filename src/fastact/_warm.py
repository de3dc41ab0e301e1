"""Ahead-of-use compilation (``python -m fastact warm``): a driver over the public
functions, apart from the loops it compiles, so that _kernels imports no dispatch code."""

from __future__ import annotations

import numpy as np

from . import ACTIVATIONS, KERNELS
from ._arrays import PARALLEL_MIN_SIZE
from ._kinds import kind_of


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
            kind_of(act).warm(act, KERNELS[name], layouts)
    count = 0
    for k in (KERNELS[name] for name in names):
        for loops in (v for v in vars(k).values() if isinstance(v, dict)):
            count += sum(len(d.signatures) for variants in loops.values() for d in variants)
    return count
