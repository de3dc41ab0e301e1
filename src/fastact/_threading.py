"""Choose a numba threading layer that survives threads and fork.

numba's ``workqueue`` layer aborts the process when two Python threads launch parallel
kernels at once, and GNU OpenMP (``omp``) aborts a child forked after a parallel
kernel ran (shared/FACTS.md). TBB survives both, but ``pip install tbb`` puts
``libtbb.so.12`` in ``<prefix>/lib``, where the loader does not look, so numba
reports "TBB is required" and falls back. Loading the library first, by its path,
fixes that.

When TBB cannot be loaded, fastact asks numba for its ``forksafe`` selection, which on
Linux skips GNU OpenMP and ends at ``workqueue``: a child forked after a parallel
kernel then still works, and because the layer in force is not thread-safe, fastact
serialises its own parallel launches with a lock, so calls from many threads cannot
abort the process either. Slower under contention, never unsafe.

A threading layer the user chose (``NUMBA_THREADING_LAYER``, or numba's config set
before fastact was imported) is left alone; the lock still applies to it when it is
not thread-safe.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import itertools
import os
import threading
from importlib import metadata
from pathlib import Path

import numba

_THREAD_SAFE_LAYERS = {"tbb", "omp"}

launch_lock = threading.Lock()
TBB_LIBRARY: str | None = None
USER_CHOSE = False


def _load_tbb() -> str | None:
    try:
        files = metadata.files("tbb") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        name = Path(str(f)).name
        if name.startswith("libtbb.so.") or name in ("tbb12.dll", "libtbb.12.dylib"):
            path = os.path.realpath(f.locate())
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            return path
    return None


def configure() -> None:
    global TBB_LIBRARY, USER_CHOSE
    USER_CHOSE = "NUMBA_THREADING_LAYER" in os.environ or numba.config.THREADING_LAYER != "default"
    if USER_CHOSE:
        return
    TBB_LIBRARY = _load_tbb()
    # numba's default order would take GNU OpenMP next, which aborts forked children
    numba.config.THREADING_LAYER = "tbb" if TBB_LIBRARY is not None else "forksafe"


def active_layer() -> str | None:
    """The layer in force, or None before the first parallel launch."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


def needs_launch_lock() -> bool:
    layer = active_layer()
    if layer is None:
        # not started yet: the layer numba will pick is the configured one if set
        configured = numba.config.THREADING_LAYER
        return configured not in _THREAD_SAFE_LAYERS
    return layer not in _THREAD_SAFE_LAYERS


def _thread_count_function():
    """numba's C function behind get_num_threads (75 ns a call), where this numba has it;
    else get_num_threads itself (0.5 us: it checks the thread pool on every call)."""
    try:
        from numba.np.ufunc import parallel

        numba.get_num_threads()  # starts the thread pool, which the C function needs
        fn = parallel._get_num_threads
        if callable(fn) and fn() == numba.get_num_threads():
            return fn
    except (ImportError, AttributeError, TypeError):
        pass
    return numba.get_num_threads


_thread_count = None


def one_thread() -> bool:
    """Whether numba's parallel kernels would run on one thread in this (Python) thread
    (numba.set_num_threads(1), NUMBA_NUM_THREADS=1): then the serial loop does the same
    work without the cost of a launch."""
    global _thread_count
    if _thread_count is None:
        _thread_count = _thread_count_function()
    return _thread_count() == 1


_pool = None  # (the process id it was made in, the executor)


def split(fn, shape: tuple[int, ...]) -> None:
    """fn(slab) for slabs of `shape` along its longest axis, one per thread numba's
    kernels would use here: the calling thread takes the last, a pool of Python threads
    the others. For work numba's threads cannot run, a NumPy ufunc over any strides, which
    releases the GIL in its loop (gelu, float16 x[:, :1000] of (4096, 2048): 9.0 ms on one
    thread, 4.1-4.5 ms on two, Xeon). The pool is made again in a forked child, where the
    parent's threads do not exist."""
    global _pool
    axis = max(range(len(shape)), key=shape.__getitem__)
    n = max(1, min(numba.get_num_threads(), shape[axis]))
    if n == 1:
        fn(None)
        return
    cuts = [shape[axis] * i // n for i in range(n + 1)]
    slabs = [(slice(None),) * axis + (slice(a, b),) for a, b in itertools.pairwise(cuts)]
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), concurrent.futures.ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                                 thread_name_prefix="fastact"))
    futures = [_pool[1].submit(fn, slab) for slab in slabs[:-1]]
    try:
        fn(slabs[-1])
    finally:  # nothing returns (or raises) while a slab is still being written
        concurrent.futures.wait(futures)
    for f in futures:
        f.result()
