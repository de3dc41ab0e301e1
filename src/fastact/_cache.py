"""How the kernels (the loops of ``_loops_*.py``) are compiled and cached on disk.

Every kernel is a closure made by a factory over the activation's scalar
functions. numba (0.68) keys a closure's cache entry on its bytecode plus a hash of
its *pickled* closure cells. A jitted dispatcher in a cell pickles with a per-process
uuid, so such a kernel misses the cache in every new process (shared/FACTS.md). Here
the cells hold:

* the plain Python scalar functions, made callable from numba, and inlined into the
  loops at numba's IR level, by ``_registry.inline_jitable``. They pickle *by
  reference* (module and qualified name), which
  is the same in every process, so the cache hits;
* ``SOURCE_TOKEN``, a hash of the files the kernels are compiled from (the declarations,
  ``_math.py`` and the loop files). numba checks only the source stamp of the file
  that defines the kernel, so without the token an edited declaration, or a helper
  edited in another loop file, would keep running its stale cached machine code.

Each loop body is written once and compiled twice, serial and ``parallel=True``
(``prange`` is ``range`` when parallel is off). The two get distinct ``__qualname__``s
because numba's cache index is named by qualname and line and does not record the
``parallel`` option: with one name, the two variants would overwrite each other.

Numba caches the serial and the parallel variant of every signature separately and
compiles lazily, so a process pays only for the kernels it calls (about 5-20 ms each
from a warm cache); ``python -m fastact warm`` compiles all of them ahead of use.
"""

from __future__ import annotations

import hashlib
import types
import zlib
from pathlib import Path

from numba import njit
from numba.core.caching import IndexDataCacheFile

# The files whose code the kernels are compiled from: the declarations, the math, and the
# loops. numba checks the source stamp of a kernel's own file only, and a loop file uses
# helpers from others (_loops_rows takes _task_span from _loops_channel).
_KERNEL_SOURCE_FILES = ("activations.py", "_math.py", "_cache.py", "_loops_map.py", "_loops_ufunc.py",
                        "_loops_channel.py", "_loops_rows.py", "_loops_gated.py",
                        "_loops_reduce.py", "_loops_simplex.py")


def _source_token() -> int:
    here = Path(__file__).parent
    crc = 0
    for name in _KERNEL_SOURCE_FILES:
        crc = zlib.crc32((here / name).read_bytes(), crc)
    return crc


SOURCE_TOKEN = _source_token()

# error_model="numpy": division by zero gives inf/nan instead of raising, and it
# drops the checks that keep a loop from vectorising. No fastmath: it would let LLVM
# assume there are no NaNs, and NaN must propagate.
_JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy")


class _KeyedCacheFile(IndexDataCacheFile):
    """numba's on-disk cache, with each compiled signature stored in a file named after
    its index key, where numba numbers the files.

    numba picks the number of a new file from the index as it read it. Two processes
    that compile different signatures of one kernel at once (a cold cache under
    pytest-xdist, a multiprocessing pool, a dask cluster) both take the first free
    number; one's index and the other's machine code survive, and the next process
    loads a kernel compiled for other argument types: "can't unbox array" at best
    (seen here), wrong strides or a crash at worst (numba issues #4807 and #10128).
    With the name a function of the key, a file can only hold that key's code; a
    concurrent save can still drop another's index entry, which costs one compile.
    The data file is written (atomically, by numba) before the index names it."""

    def save(self, key, data):
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
        data_name = self._data_name_pattern.replace("{number:d}", digest)
        self._save_data(data_name, data)
        overloads = self._load_index()
        if overloads.get(key) != data_name:
            overloads[key] = data_name
            self._save_index(overloads)


def _keyed_cache(cache) -> None:
    if type(getattr(cache, "_cache_file", None)) is IndexDataCacheFile:
        cache._cache_file.__class__ = _KeyedCacheFile


def _cached_njit(fn, **options):
    """njit with fastact's options, cached on disk under the keyed cache files."""
    dispatcher = njit(**_JIT_OPTIONS, **options)(fn)
    _keyed_cache(dispatcher._cache)
    return dispatcher


def _jit_variants(fn: types.FunctionType, qualname: str) -> tuple:
    """(serial, parallel) dispatchers compiled from one loop body."""
    variants = []
    for parallel in (False, True):
        clone = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
        )
        clone.__qualname__ = f"{qualname}.{'parallel' if parallel else 'serial'}"
        variants.append(_cached_njit(clone, parallel=parallel))
    return tuple(variants)
