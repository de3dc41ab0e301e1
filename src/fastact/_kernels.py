"""The loops: numba kernels and ufuncs generated from the registry's scalar functions.

How the kernels are generated and still cache on disk
------------------------------------------------------
Every kernel here is a closure made by a factory over the activation's scalar
functions. numba (0.68) keys a closure's cache entry on its bytecode plus a hash of
its *pickled* closure cells. A jitted dispatcher in a cell pickles with a per-process
uuid, so such a kernel misses the cache in every new process (shared/FACTS.md). Here
the cells hold:

* the plain Python scalar functions, made callable from numba, and inlined into the
  loops at numba's IR level, by ``_registry.inline_jitable``. They pickle *by
  reference* (module and qualified name), which
  is the same in every process, so the cache hits;
* ``SOURCE_TOKEN``, a hash of the files that hold the scalar math (the declarations and
  ``_math.py``). numba checks only
  the source stamp of the file that defines the kernel (this one), so without the
  token an edited declaration would keep running its stale cached machine code.

Each loop body is written once and compiled twice, serial and ``parallel=True``
(``prange`` is ``range`` when parallel is off). The two get distinct ``__qualname__``s
because numba's cache index is named by qualname and line and does not record the
``parallel`` option: with one name, the two variants would overwrite each other.

Numba caches the serial and the parallel variant of every signature separately and
compiles lazily, so a process pays only for the kernels it calls (about 5-20 ms each
from a warm cache); ``python -m fastact warm`` compiles all of them ahead of use.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import platform
import types
import zlib
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from llvmlite import ir
from numba import carray, njit, prange
from numba.core import sigutils
from numba.core import types as nbtypes
from numba.core.caching import IndexDataCacheFile
from numba.core.ccallback import CFunc
from numba.extending import intrinsic, register_jitable
from numba.np.ufunc import _internal as _numba_ufunc_internal

from ._math import exp, unique_symbols
from ._registry import Activation, inline_jitable

_SCALAR_MATH_FILES = ("activations.py", "_math.py")


def _source_token() -> int:
    here = Path(__file__).parent
    crc = 0
    for name in _SCALAR_MATH_FILES:
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


# --- element-wise loops ---------------------------------------------------------------


# The scalar function is called with its parameters spelled out, per arity (0 to 2), not
# as f(x, *params): numba inlines the scalar functions into the loop at its IR level
# (``_registry.inline_jitable``), which it cannot do for a call with *args; left to LLVM,
# a body as large as mish's stays a call, and a loop that makes a call does not vectorise.


def _map_loops(f, nparams, token):
    """out = f(x, *params), over 1-D buffers and over the rows of 2-D strided views.

    In place, the flat loop is called with x=None and reads out: numba prunes the branch
    on an argument typed None, so that specialisation names one array. Given x and out
    as two names for one buffer, LLVM's run-time alias check fails and its scalar
    fallback runs: measured 3-5x slower for sigmoid, elu, gelu and tanh in place at 8,192
    elements (the serial path). The same holds for grad_output=None in _chain_loops."""
    if nparams == 0:

        def flat(x, out, params):
            token  # noqa: B018 -- keeps the token in the closure, hence in the cache key
            src = out if x is None else x
            for i in prange(src.shape[0]):
                out[i] = f(src[i])

        def rows(x, out, params):
            token  # noqa: B018
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = f(x[i, j])

    elif nparams == 1:

        def flat(x, out, params):
            token  # noqa: B018
            a = params[0]
            src = out if x is None else x
            for i in prange(src.shape[0]):
                out[i] = f(src[i], a)

        def rows(x, out, params):
            token  # noqa: B018
            a = params[0]
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = f(x[i, j], a)

    else:

        def flat(x, out, params):
            token  # noqa: B018
            a, b = params[0], params[1]
            src = out if x is None else x
            for i in prange(src.shape[0]):
                out[i] = f(src[i], a, b)

        def rows(x, out, params):
            token  # noqa: B018
            a, b = params[0], params[1]
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = f(x[i, j], a, b)

    return flat, rows


def _chain_loops(df, nparams, token):
    """out = grad_output * df(x, *params): the backward pass through an element-wise f.

    The derivative is cast to the arrays' dtype before the product: scalar math written
    with float64 literals would otherwise widen a float32 loop to float64 and back (4%
    slower, measured, for the same result where the derivative is exact in float32)."""
    if nparams == 0:

        def flat(g, x, out, params):
            token  # noqa: B018
            gsrc = out if g is None else g
            for i in prange(x.shape[0]):
                out[i] = gsrc[i] * out.dtype.type(df(x[i]))

        def rows(g, x, out, params):
            token  # noqa: B018
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = g[i, j] * g.dtype.type(df(x[i, j]))

    elif nparams == 1:

        def flat(g, x, out, params):
            token  # noqa: B018
            a = params[0]
            gsrc = out if g is None else g
            for i in prange(x.shape[0]):
                out[i] = gsrc[i] * out.dtype.type(df(x[i], a))

        def rows(g, x, out, params):
            token  # noqa: B018
            a = params[0]
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = g[i, j] * g.dtype.type(df(x[i, j], a))

    else:

        def flat(g, x, out, params):
            token  # noqa: B018
            a, b = params[0], params[1]
            gsrc = out if g is None else g
            for i in prange(x.shape[0]):
                out[i] = gsrc[i] * out.dtype.type(df(x[i], a, b))

        def rows(g, x, out, params):
            token  # noqa: B018
            a, b = params[0], params[1]
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = g[i, j] * g.dtype.type(df(x[i, j], a, b))

    return flat, rows


# --- ufuncs ----------------------------------------------------------------------------
# Parameters are ufunc inputs, which may vary along the array. A ufunc cannot raise, so
# it tests its parameters (once per run of equal values) and, where they are invalid,
# gives what NumPy's own ufuncs give for a domain error: NaN, with the invalid-value
# warning (np.log(-1.0)); the activation is not computed there, so no other
# floating-point flag (beta = 0's division by zero) is raised.


def _any_value(v):
    return True


def _any_pair(a, b):
    return True


# The predicates combine with & and |, not `and` and `or`: numba inlines them at its IR
# level, where a short-circuit's branches trip its SSA check (NumbaIRAssumptionWarning).


def _choice_ok(v, n):
    # n: how many choices the parameter names (0: not a choice), a compile-time constant
    return (n == 0) | ((v == math.floor(v)) & (v >= 0.0) & (v < n))


# the register class of a float in inline assembly, by architecture (None: no barrier)
_FLOAT_REGISTER = {"x86_64": "x", "amd64": "x", "i386": "x", "i686": "x", "aarch64": "w", "arm64": "w"}.get(
    platform.machine().lower())


@intrinsic
def _opaque(typingctx, x):
    """x, passed through an empty inline-assembly statement: LLVM cannot see its value,
    so arithmetic on it happens at run time and raises the floating-point flags it raises
    (LLVM would fold ``(0 if ok else inf) * (1 if ok else 0)`` to a select of constants)."""
    if not isinstance(x, nbtypes.Float):
        return None

    def codegen(context, builder, signature, args):
        if _FLOAT_REGISTER is None:
            return args[0]
        fnty = ir.FunctionType(args[0].type, [args[0].type])
        return builder.asm(fnty, "", f"={_FLOAT_REGISTER},0", [args[0]], side_effect=False)

    return x(x), codegen


for _fn in (_any_value, _any_pair, _choice_ok):
    inline_jitable(_fn)


def ufunc_checks(act: Activation) -> tuple[tuple, Any]:
    """What the ufuncs test: per parameter (predicate, number of choices), and the check
    across two parameters."""
    if act.kind != "elementwise":  # prelu's weight: any float
        return ((_any_value, 0),), _any_pair
    per_param = tuple((p.check.valid if p.check is not None else _any_value, len(p.choices)) for p in act.params)
    return per_param, (act.params_check.valid if act.params_check is not None else _any_pair)


def _ufunc_scalars(fn, nparams, checks, nin, name):
    """What a ufunc loop calls: ``run(us, vs, dst, a, b)``, of one form whatever the arity,
    sets dst = fn(vs, *params) (times us for a backward) over blocks of grad_output us
    (or unused), x or y vs, with parameters a, b (unused ones are 0); and ``ok(a, b)``,
    whether the parameters are valid.

    nin: the array inputs before the parameters (1, x; or 2, grad_output and x or y).
    name: the ufunc's, which goes into run's and ok's qualified names (see unique_symbols)."""
    per_param, cross = checks
    (ca, na), (cb, nb) = (per_param + ((_any_value, 0),) * 2)[:2]
    # The vectorised loop, spelled out per arity for numba to inline fn (see the note
    # above _map_loops), and a function of its own: numba types a function to a fixed
    # point, so a body as large as gelu's, inlined into the ufunc loop's nest of loops,
    # took it 3x as long to compile (measured).
    if nparams == 0:
        if nin == 1:

            def run(us, vs, dst, a, b):
                for k in range(dst.shape[0]):
                    dst[k] = fn(vs[k])

        else:

            def run(us, vs, dst, a, b):
                for k in range(dst.shape[0]):
                    dst[k] = us[k] * fn(vs[k])

    elif nparams == 1:
        if nin == 1:

            def run(us, vs, dst, a, b):
                for k in range(dst.shape[0]):
                    dst[k] = fn(vs[k], a)

        else:

            def run(us, vs, dst, a, b):
                for k in range(dst.shape[0]):
                    dst[k] = us[k] * fn(vs[k], a)

    elif nin == 1:

        def run(us, vs, dst, a, b):
            for k in range(dst.shape[0]):
                dst[k] = fn(vs[k], a, b)

    else:

        def run(us, vs, dst, a, b):
            for k in range(dst.shape[0]):
                dst[k] = us[k] * fn(vs[k], a, b)

    def ok(a, b):
        return ca(a) & _choice_ok(a, na) & cb(b) & _choice_ok(b, nb) & cross(a, b)

    return register_jitable(unique_symbols(run, f"ufunc.{name}")), register_jitable(unique_symbols(ok, f"ufunc.{name}"))


@intrinsic
def _load(typingctx, ptr, offset, dtype):
    """The value of type dtype (a NumPy scalar type or dtype) at byte offset from ptr: a
    ufunc loop's strided access."""
    if isinstance(dtype, nbtypes.NumberClass):
        element = dtype.instance_type
    elif isinstance(dtype, nbtypes.DType):
        element = dtype.dtype
    else:
        return None

    def codegen(context, builder, signature, args):
        at = builder.gep(builder.bitcast(args[0], ir.IntType(8).as_pointer()), [args[1]])
        return builder.load(builder.bitcast(at, context.get_value_type(element).as_pointer()))

    return element(nbtypes.voidptr, nbtypes.intp, dtype), codegen


@intrinsic
def _store(typingctx, ptr, offset, value):
    """Store value at byte offset from ptr."""

    def codegen(context, builder, signature, args):
        at = builder.gep(builder.bitcast(args[0], ir.IntType(8).as_pointer()), [args[1]])
        builder.store(args[2], builder.bitcast(at, context.get_value_type(value).as_pointer()))
        return context.get_dummy_value()

    return nbtypes.none(nbtypes.voidptr, nbtypes.intp, value), codegen


@intrinsic
def _address(typingctx, ptr):
    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], context.get_value_type(nbtypes.uintp))

    return nbtypes.uintp(nbtypes.voidptr), codegen


_UFUNC_BLOCK = 4096  # elements gathered at a time: 16 or 32 KiB per buffer


@register_jitable
def _operand_block(ptr, step, start, m, size, buffer, in_place):
    """Elements start to start + m of a ufunc operand, as a contiguous array: a view where
    the operand is contiguous and not the output itself; else gathered into buffer (from
    any step, 0 and negative included, and before the output is written over)."""
    if step == size:
        block = carray(ptr, start + m, buffer.dtype)[start:]
        if not in_place:
            return block
        for i in range(m):
            buffer[i] = block[i]
        return buffer[:m]
    for i in range(m):
        buffer[i] = _load(ptr, (start + i) * step, buffer.dtype)
    return buffer[:m]


# NumPy calls a ufunc's inner loop as loop(args, dimensions, steps, data): a pointer and a
# byte step per operand (the inputs, then the output), and the element count.
_LOOP_SIGNATURE = sigutils.normalize_signature(nbtypes.void(
    nbtypes.CPointer(nbtypes.voidptr), nbtypes.CPointer(nbtypes.intp), nbtypes.CPointer(nbtypes.intp),
    nbtypes.voidptr,
))


@register_jitable
def _same(p, q):
    # the same parameter value: -0.0 and 0.0 differ (a slope's sign reaches the result);
    # NaN is never the same, so that it is tested where it occurs
    return (p == q) & (math.copysign(1.0, p) == math.copysign(1.0, q))


def _ufunc_loop(scalars, nin, nparams, dtype, token):
    """A ufunc inner loop over the operands (u, when nin == 2), v, the parameters, out.

    The elements are taken in runs of equal parameters: the whole loop where the
    parameters are scalars broadcast (step 0, as NumPy passes a Python float), else runs
    as long as the values repeat. A run's parameters are checked once; the run is
    fa.NAME's vectorised loop, over blocks: read in place where contiguous, else
    (strided, or the output itself) gathered into a buffer first, which also lets
    LLVM's alias test pass in place; written in place where contiguous, else scattered
    from a buffer. A run with invalid parameters gives NaN, raising the invalid flag.

    numba's own ufunc loop vectorises only where every input has unit step, which a
    parameter never has; and it takes that path without testing the output's step, so
    that a strided or reversed out= was written contiguously: wrong values, or memory
    past the array. One call site of the scalar math, because each site costs its
    compile time again."""
    run, ok = scalars
    size = np.dtype(dtype).itemsize
    io = nin + nparams  # the output's operand number
    ia = nin if nparams >= 1 else io  # an absent parameter names the output, and is not read
    ib = nin + 1 if nparams == 2 else io

    def loop(args, dims, steps, data):
        token  # noqa: B018
        n = dims[0]
        pu, pv, pa, pb, po = args[0], args[nin - 1], args[ia], args[ib], args[io]
        su, sv, so = steps[0], steps[nin - 1], steps[io]
        sa = steps[ia] if nparams >= 1 else 0
        sb = steps[ib] if nparams == 2 else 0
        bu = np.empty(_UFUNC_BLOCK if nin == 2 else 0, dtype)
        bv = np.empty(_UFUNC_BLOCK, dtype)
        bo = np.empty(_UFUNC_BLOCK, dtype)
        u_is_out = _address(pu) == _address(po)
        v_is_out = _address(pv) == _address(po)
        # nothing to gather or scatter: one run is one call of the vectorised loop
        direct = (sv == size) & ~v_is_out & (so == size) & ((nin == 1) | ((su == size) & ~u_is_out))
        i = 0
        while i < n:
            a = _load(pa, i * sa, dtype) if nparams >= 1 else dtype(0.0)
            b = _load(pb, i * sb, dtype) if nparams == 2 else dtype(0.0)
            j = i + 1 if (sa != 0) | (sb != 0) else n
            while j < n and _same(_load(pa, j * sa, dtype), a) and _same(_load(pb, j * sb, dtype), b):
                j += 1
            if not ok(a, b):
                # NaN from inf * 0, which raises the invalid flag that NumPy's ufunc
                # machinery reports, as for its own domain errors (np.log(-1.0))
                invalid = _opaque(dtype(math.inf)) * dtype(0.0)
                for k in range(i, j):
                    _store(po, k * so, invalid)
                i = j
                continue
            for start in range(i, j, max(j - i, 1) if direct else _UFUNC_BLOCK):
                m = min(j - start, j - i if direct else _UFUNC_BLOCK)
                vs = _operand_block(pv, sv, start, m, size, bv, v_is_out)
                us = _operand_block(pu, su, start, m, size, bu, u_is_out) if nin == 2 else vs
                dst = carray(po, start + m, dtype)[start:] if so == size else bo[:m]
                run(us, vs, dst, a, b)
                if so != size:
                    for k in range(m):
                        _store(po, (start + k) * so, dst[k])
            i = j

    return loop


class _BuiltUFunc(NamedTuple):
    run: Any  # the vectorised loop over blocks, a Python function numba compiles
    loops: tuple  # the float32 and float64 inner loops, numba cfuncs


# what each ufunc was built from, by name: for the tests of its machine code and its cache
UFUNC_LOOPS: dict[str, _BuiltUFunc] = {}


def _make_ufunc(scalar_fn, name: str, nin: int, nparams: int, checks) -> np.ufunc:
    """The ufunc name(*arrays, *params), with a float32 and a float64 loop, each a numba
    cfunc cached on disk (the loop and the scalar math inlined into it)."""
    scalars = _ufunc_scalars(scalar_fn, nparams, checks, nin, name)
    loops = []
    for dtype in (np.float32, np.float64):
        loop = _ufunc_loop(scalars, nin, nparams, dtype, SOURCE_TOKEN)
        loop.__qualname__ = f"ufunc.{name}.{np.dtype(dtype).name}"
        compiled = CFunc(loop, _LOOP_SIGNATURE, locals={}, options=dict(nogil=True, error_model="numpy"))
        compiled.enable_caching()
        _keyed_cache(compiled._cache)
        compiled.compile()
        loops.append(compiled)
    UFUNC_LOOPS[name] = _BuiltUFunc(scalars[0], tuple(loops))
    keepalive = list(loops)
    nargs = nin + nparams
    types_ = [[np.dtype(t).num] * (nargs + 1) for t in (np.float32, np.float64)]
    ufunc = _numba_ufunc_internal.fromfunc(
        name, None, [c.address for c in loops], types_, nargs, 1, [None, None], keepalive,
        _numba_ufunc_internal.PyUFunc_None,
    )
    _restore_numpy_output_flags(ufunc)
    # pickle finds a ufunc by __module__ and __name__; without a module it scans every
    # loaded module (slow, and it wakes lazy modules and their deprecation warnings)
    ufunc.__module__ = "fastact.ufuncs"
    return ufunc


class _UFuncHead(ctypes.Structure):
    """The leading fields of NumPy 2's public PyUFuncObject (numpy/ufuncobject.h),
    whose layout NumPy keeps ABI-stable across 2.x."""

    _fields_ = [
        ("ob_refcnt", ctypes.c_ssize_t), ("ob_type", ctypes.c_void_p),
        ("nin", ctypes.c_int), ("nout", ctypes.c_int), ("nargs", ctypes.c_int), ("identity", ctypes.c_int),
        ("functions", ctypes.c_void_p), ("data", ctypes.c_void_p),
        ("ntypes", ctypes.c_int), ("reserved1", ctypes.c_int),
        ("name", ctypes.c_char_p), ("types", ctypes.c_void_p), ("doc", ctypes.c_void_p),
        ("ptr", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("userloops", ctypes.c_void_p),
        ("core_enabled", ctypes.c_int), ("core_num_dim_ix", ctypes.c_int),
        ("core_num_dims", ctypes.c_void_p), ("core_dim_ixs", ctypes.c_void_p),
        ("core_offsets", ctypes.c_void_p), ("core_signature", ctypes.c_void_p),
        ("type_resolver", ctypes.c_void_p), ("dict", ctypes.c_void_p),
        ("vectorcall", ctypes.c_void_p), ("reserved3", ctypes.c_void_p),
        ("op_flags", ctypes.POINTER(ctypes.c_uint32)),
    ]


# numba marks a ufunc's outputs READWRITE | UPDATEIFCOPY | ALLOCATE (numba/np/ufunc/_internal.c),
# which makes NumPy reject where= ("An iterator operand was flagged as the ARRAYMASK, but
# no WRITEMASKED operands were given"). NumPy's own ufuncs leave these flags at 0.
_NUMBA_OUTPUT_FLAGS = 0x00010000 | 0x00800000 | 0x01000000


def _restore_numpy_output_flags(ufunc: np.ufunc) -> bool:
    """Give the ufunc NumPy's default output flags, so that where= works. The struct is
    only written after every field read through it matches what Python reports, so on an
    unexpected layout nothing changes (and where= stays unsupported). True if restored."""
    if np.lib.NumpyVersion(np.__version__) < "2.0.0" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    head = _UFuncHead.from_address(id(ufunc))
    if (
        (head.nin, head.nout, head.nargs, head.ntypes) != (ufunc.nin, ufunc.nout, ufunc.nargs, ufunc.ntypes)
        or head.name != ufunc.__name__.encode()
        or not head.op_flags
    ):
        return False
    flags = [head.op_flags[i] for i in range(ufunc.nargs)]
    if flags[: ufunc.nin] != [0] * ufunc.nin or flags[ufunc.nin:] != [_NUMBA_OUTPUT_FLAGS] * ufunc.nout:
        return False
    for i in range(ufunc.nin, ufunc.nargs):
        head.op_flags[i] = 0
    return True


# --- channel-wise loops (prelu) -------------------------------------------------------
# The input is viewed in 2-D, in one of two ways:
# * rows: (outer * channels, inner), the channel of row r is r % channels. Work is cut
#   into tasks of (row, block of columns), so that a few long rows (a 1-D input is a
#   single row) still spread over the threads;
# * columns: (outer, channels) when inner == 1, as for an (N, C) input: the channel is
#   the column, and rows are shared out in blocks.
# Every inner loop indexes a slice from 0. numba wraps negative indices, and for an
# index that starts at a computed offset (x[r, k] for k from k0) LLVM cannot prove the
# wrap-around test false, so it stays in the loop and the loop does not vectorise
# (measured: float32 ran 2-10x below the copy roofline).

_SUM_BLOCK = 4096  # terms summed by one vectorised pass before compensated accumulation


@register_jitable(fastmath={"reassoc"})
def _sum_reassociated(a):
    # Reassociation lets LLVM vectorise the sum into several partial sums: faster, and
    # no less accurate. Kept out of the kernels, whose other arithmetic must stay exact.
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


@register_jitable
def _task_span(t, n_blocks, block, length):
    """Row and column range of task t, when each row is cut into n_blocks blocks."""
    r = t // n_blocks
    k0 = (t - r * n_blocks) * block
    return r, k0, min(k0 + block, length)


@register_jitable
def _neumaier_add(s, compensation, value):
    """(s + value, the updated compensation): Neumaier's compensated summation step."""
    total = s + value
    if abs(s) >= abs(value):
        compensation += (s - total) + value
    else:
        compensation += (value - total) + s
    return total, compensation


@register_jitable
def _neumaier_total(s, compensation):
    # Once s is infinite or NaN, the compensation is NaN (inf - inf) and s alone is the
    # sum (-inf for terms that reach -inf, as a plain sum gives).
    return s + compensation if math.isfinite(s) else s


@_cached_njit
def channel_totals_rows(partial, channels, n_blocks, out):
    """prelu's weight gradient from the rows form's task sums: row r is channel
    r % channels, and its n_blocks task sums follow each other in partial. out has one
    element per channel, or one for a single weight shared by every channel. Neumaier
    compensation across the tasks; in the weight's dtype without a warning where the
    sum overflows it (inf, as a plain sum)."""
    rows = partial.shape[0] // n_blocks
    step = channels if out.shape[0] > 1 else 1
    for c in range(out.shape[0]):
        s = 0.0
        compensation = 0.0
        for r in range(c, rows, step):
            for t in range(r * n_blocks, (r + 1) * n_blocks):
                s, compensation = _neumaier_add(s, compensation, partial[t])
        out[c] = _neumaier_total(s, compensation)


@_cached_njit
def channel_totals_columns(partial, compensations, out):
    """The same from the columns form's per-block sums and compensations
    (n_row_blocks, channels)."""
    n_blocks, channels = partial.shape
    for c in range(out.shape[0]):
        j0, j1 = (c, c + 1) if out.shape[0] > 1 else (0, channels)
        s = 0.0
        compensation = 0.0
        for j in range(j0, j1):
            for b in range(n_blocks):
                s, compensation = _neumaier_add(s, compensation, partial[b, j])
                compensation += compensations[b, j]  # NaN only where partial[b, j] is not finite
        out[c] = _neumaier_total(s, compensation)


def _channel_loops(f, df, dw, token, in_place=False):
    """in_place: out is the array that is read (x in a forward, g in a backward), and
    the rows are read from out itself. With two names for one array, LLVM's run-time
    alias check fails and it runs the scalar fallback: measured 2x slower than out of
    place, where a single name lets it vectorise. A closure cell, like the token: the
    two variants are cached apart."""

    def forward(x, w, out, block):
        token  # noqa: B018
        rows, length = x.shape
        channels = w.shape[0]
        n_blocks = (length + block - 1) // block
        for t in prange(rows * n_blocks):
            r, k0, k1 = _task_span(t, n_blocks, block, length)
            wc = w[r % channels]
            outr = out[r, k0:k1]
            xr = outr if in_place else x[r, k0:k1]
            for k in range(xr.shape[0]):
                outr[k] = f(xr[k], wc)

    def backward(g, x, w, out, partial, block):
        # out = g * df (grad_x), and partial[t] = sum of g * dw over task t's block, in
        # float64: terms (exact in float64 for float32 input) summed _SUM_BLOCK at a time
        # by a vectorised pass, the pass sums added with Neumaier compensation. Each
        # sub-block is read before it is written, so out may be g.
        token  # noqa: B018
        rows, length = x.shape
        channels = w.shape[0]
        n_blocks = (length + block - 1) // block
        for t in prange(rows * n_blocks):
            r, k0, k1 = _task_span(t, n_blocks, block, length)
            wc = w[r % channels]
            terms = np.empty(min(_SUM_BLOCK, k1 - k0))
            s = 0.0
            compensation = 0.0
            for b0 in range(k0, k1, _SUM_BLOCK):
                b1 = min(b0 + _SUM_BLOCK, k1)
                xb, ob = x[r, b0:b1], out[r, b0:b1]
                gb = ob if in_place else g[r, b0:b1]
                for k in range(xb.shape[0]):
                    terms[k] = np.float64(gb[k]) * np.float64(dw(xb[k], wc))
                for k in range(xb.shape[0]):
                    ob[k] = gb[k] * gb.dtype.type(df(xb[k], wc))
                s, compensation = _neumaier_add(s, compensation, _sum_reassociated(terms[: xb.shape[0]]))
            partial[t] = _neumaier_total(s, compensation)

    def forward_columns(x, w, out, n_row_blocks):
        token  # noqa: B018
        n, channels = x.shape
        for b in prange(n_row_blocks):
            for i in range(b * n // n_row_blocks, (b + 1) * n // n_row_blocks):
                outr = out[i]
                xr = outr if in_place else x[i]
                for j in range(channels):
                    outr[j] = f(xr[j], w[j])

    def backward_columns(g, x, w, out, partial, compensation, n_row_blocks):
        # per row block and channel, in float64 with Neumaier compensation; the
        # updates of different channels are independent, so the loop over j vectorises
        token  # noqa: B018
        n, channels = x.shape
        for b in prange(n_row_blocks):
            pb, cb = partial[b], compensation[b]
            for i in range(b * n // n_row_blocks, (b + 1) * n // n_row_blocks):
                xr, outr = x[i], out[i]
                gr = outr if in_place else g[i]
                for j in range(channels):
                    term = np.float64(gr[j]) * np.float64(dw(xr[j], w[j]))
                    pb[j], cb[j] = _neumaier_add(pb[j], cb[j], term)
                for j in range(channels):  # after the sums: out may be g
                    outr[j] = gr[j] * gr.dtype.type(df(xr[j], w[j]))

    return forward, backward, forward_columns, backward_columns


def _channel_loops_in_place(f, df, dw, token):
    return _channel_loops(f, df, dw, token, in_place=True)


# --- row-wise loops (softmax, log_softmax) ---------------------------------------------
# The array is viewed in one of two forms:
# * rows: (rows, n), the axis last. A task takes a run of rows; each row is read three
#   times (maximum, exponentials, output), from cache when it fits there;
# * columns: (outer, n, inner), the axis in the middle and inner > 1 (softmax over
#   axis 0 of a C-ordered matrix). A task takes a block of inner positions and keeps
#   their maxima and sums in small arrays, so that every inner loop runs along memory
#   and vectorises across rows instead of along them.
# Sums are taken in float64 whatever the dtype: the terms are positive (forward) or of
# either sign (backward), and a float32 running sum would lose digits over long rows.
# exp(x - m) is computed in the array's dtype (vectorised float32 math is twice as fast).
#
# A row's last n % _TAIL elements are copied into a padded buffer of _TAIL and computed
# there: LLVM's vectorised loops step 16-64 elements at a time and leave the rest to a
# scalar loop, and a scalar exp costs 10-20 times a vector lane's (measured: rows of 63
# float32 elements took 1.8 ns per element, rows of 64 0.7). _TAIL is a multiple of every
# step LLVM takes, so loops over the body and over the buffer run no scalar remainder.
# In place, a kernel is called with x (or grad_output, or y) None and reads out: given
# two names for one buffer, LLVM's run-time alias check fails and the loop runs scalar.

_COLUMN_BLOCK = 512
_TAIL = 64
_ROW_BLOCK = 2048


@intrinsic
def _maxnum(typingctx, a, b):
    """LLVM's maxnum: the larger of a and b, the other where one is NaN."""
    if not (isinstance(a, nbtypes.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maxnum", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)

    return a(a, b), codegen


@intrinsic
def _add_reassociable(typingctx, a, b):
    """a + b, marked reassociable: a loop that accumulates through it vectorises into
    partial sums (faster, and no less accurate), while the kernel's other arithmetic
    keeps its exact order."""
    if not (isinstance(a, nbtypes.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fadd(*args, flags=("reassoc",))

    return a(a, b), codegen


@register_jitable
def _max_of(a, m):
    # LLVM vectorises a reduction through maxnum (measured: 8x faster than through a
    # compare and select, which it vectorises only under function-wide no-NaN
    # attributes that numba does not set). Where the row holds a NaN, the value returned
    # does not matter: that element's exp(x - m) is NaN whatever m is, and it makes the
    # sum, hence every output of the row, NaN.
    for k in range(a.shape[0]):
        m = _maxnum(m, a[k])
    return m


@register_jitable
def _sum_of(a, count):
    """The sum in float64 of a[:count], over all of a (a vectorised pass of constant
    length when a is a tail buffer)."""
    s = 0.0
    for k in range(a.shape[0]):
        s = _add_reassociable(s, float(a[k]) if k < count else 0.0)
    return s


@register_jitable
def _load_tail(src, start, buf):
    """buf = src[start:], padded with src[0]."""
    tail = src[start:]  # indexed from 0, so that no wrap-around test stays in the loop
    pad = src[0]
    for j in range(buf.shape[0]):
        buf[j] = pad
    for j in range(tail.shape[0]):
        buf[j] = tail[j]


@register_jitable
def _store_tail(buf, dst, start):
    tail = dst[start:]
    for j in range(tail.shape[0]):
        tail[j] = buf[j]


@register_jitable
def _corrected(e, lo):
    # e (1 + lo); lo is NaN when x - m is infinite (x = -inf: e = 0, exactly right), and
    # NaN x stays NaN in e. A function of its own: a conditional expression in a body
    # that numba inlines at its IR level makes its SSA check warn.
    return e if lo != lo else e + e * lo


def exp_below_max(x, m):
    """exp(x - m) for x <= m, in x's dtype. x - m is rounded, and
    exp magnifies that error by |x - m| (100 ulp at x - m = -100); its rounding error
    (Knuth's TwoSum, exact) restores it: exp(d + lo) = exp(d) (1 + lo)."""
    d = x - m
    b = d - x
    lo = (x - (d - b)) + (-m - b)
    return _corrected(exp(d), lo)


inline_jitable(exp_below_max)


@register_jitable
def _exps_and_sum(src, dst, m, used):
    """dst = exp(src - m); the sum in float64 of dst[:used]."""
    for k in range(src.shape[0]):
        dst[k] = exp_below_max(src[k], m)
    return _sum_of(dst, used)


def _rowwise_loops(element, row_constant, term, grad, token, tails=False):
    # tails: whether the rows have a tail (n % _TAIL); the two are compiled apart, since
    # the tail's code slows the body's loops even where it does not run (measured: rows
    # of 64 float32 elements 0.57 -> 0.78 ns per element).
    # A row's body and its padded tail are two loops of their own, each over slices made
    # once: a loop over the two parts, with the arrays chosen inside it, made numba keep
    # reference counts in the loop (measured: 8x slower on rows of 64).
    # A task's rows go by blocks of about _ROW_BLOCK elements, each pass over all rows of
    # the block before the next pass: a short row's passes are each a chain of dependent
    # steps (a reduction, then the exponentials that need its result, ...), and the rows of
    # a block give the processor independent chains to overlap (measured: rows of 64
    # float32 elements 0.84 -> 0.58 ns per element).

    def forward(x, out, rows_per_task):
        token  # noqa: B018
        rows, n = out.shape
        body = n - n % _TAIL if tails else n  # without tails, n is a multiple of _TAIL
        count = n - body
        block = max(1, _ROW_BLOCK // n)
        n_tasks = (rows + rows_per_task - 1) // rows_per_task
        for t in prange(n_tasks):
            # in x's dtype: a float64 scratch would make LLVM vectorise the float32 exp
            # eight lanes at a time instead of sixteen (measured: 2x slower)
            e = np.empty((block, body), out.dtype)
            xt = np.empty((block, _TAIL), out.dtype)
            et = np.empty((block, _TAIL), out.dtype)
            ot = np.empty(_TAIL, out.dtype)
            maxima = np.empty(block, out.dtype)
            constants = np.empty(block)
            first, last = t * rows_per_task, min((t + 1) * rows_per_task, rows)
            for b in range(first, last, block):
                nb = min(block, last - b)
                for i in range(nb):
                    xr = out[b + i] if x is None else x[b + i]
                    m = xr[0]
                    if count:
                        _load_tail(xr, body, xt[i])
                        m = _max_of(xt[i], m)
                    maxima[i] = _max_of(xr[:body], m)
                for i in range(nb):
                    xr = out[b + i] if x is None else x[b + i]
                    s = _exps_and_sum(xr[:body], e[i], maxima[i], body)
                    if count:
                        s += _exps_and_sum(xt[i], et[i], maxima[i], count)
                    constants[i] = s
                for i in range(nb):  # a loop of its own, vectorised across the rows (log_softmax's log)
                    constants[i] = row_constant(constants[i])
                for i in range(nb):
                    outr = out[b + i]
                    xb = outr[:body] if x is None else x[b + i, :body]
                    ob, eb = outr[:body], e[i]
                    m, c = maxima[i], constants[i]
                    for k in range(body):  # reads xb[k] before writing ob[k]: they may be one
                        ob[k] = ob.dtype.type(element(xb[k], eb[k], m, c))
                    if count:
                        xti, eti = xt[i], et[i]
                        for k in range(_TAIL):
                            ot[k] = ot.dtype.type(element(xti[k], eti[k], m, c))
                        _store_tail(ot, outr, body)

    def backward(g, y, out, rows_per_task):
        token  # noqa: B018
        rows, n = out.shape
        body = n - n % _TAIL if tails else n  # without tails, n is a multiple of _TAIL
        count = n - body
        block = max(1, _ROW_BLOCK // n)
        n_tasks = (rows + rows_per_task - 1) // rows_per_task
        for t in prange(n_tasks):
            gt = np.empty((block, _TAIL), out.dtype)
            yt = np.empty((block, _TAIL), out.dtype)
            ot = np.empty(_TAIL, out.dtype)
            sums = np.empty(block)
            first, last = t * rows_per_task, min((t + 1) * rows_per_task, rows)
            for b in range(first, last, block):
                nb = min(block, last - b)
                for i in range(nb):
                    gb = out[b + i, :body] if g is None else g[b + i, :body]
                    yb = out[b + i, :body] if y is None else y[b + i, :body]
                    s = 0.0
                    for k in range(body):
                        s = _add_reassociable(s, np.float64(term(gb[k], yb[k])))
                    if count:
                        gti, yti = gt[i], yt[i]
                        _load_tail(out[b + i] if g is None else g[b + i], body, gti)
                        _load_tail(out[b + i] if y is None else y[b + i], body, yti)
                        for k in range(_TAIL):
                            s = _add_reassociable(s, np.float64(term(gti[k], yti[k])) if k < count else 0.0)
                    sums[i] = s
                for i in range(nb):
                    outr = out[b + i]
                    ob = outr[:body]
                    gb = ob if g is None else g[b + i, :body]
                    yb = ob if y is None else y[b + i, :body]
                    s = sums[i]
                    for k in range(body):
                        ob[k] = ob.dtype.type(grad(gb[k], yb[k], s))
                    if count:
                        gti, yti = gt[i], yt[i]
                        for k in range(_TAIL):
                            ot[k] = ot.dtype.type(grad(gti[k], yti[k], s))
                        _store_tail(ot, outr, body)

    def forward_columns(x, out, block):
        # Not in place (x given), each row's exponentials are kept in out until the
        # output pass; in place, x must survive until then and they are computed twice.
        token  # noqa: B018
        outer, n, inner = out.shape
        n_blocks = (inner + block - 1) // block
        for t in prange(outer * n_blocks):
            o, j0, j1 = _task_span(t, n_blocks, block, inner)
            w = j1 - j0
            m = np.empty(w, out.dtype)
            e = np.empty(w, out.dtype)  # one row's exponentials: in x's dtype, as in forward
            s = np.zeros(w)
            c = np.empty(w)
            src = out if x is None else x
            m[:] = src[o, 0, j0:j1]
            for k in range(1, n):
                m_in = src[o, k, j0:j1]
                for j in range(w):
                    m[j] = _maxnum(m[j], m_in[j])
            for k in range(n):
                xk, ok = src[o, k, j0:j1], out[o, k, j0:j1]
                ek = e if x is None else ok
                for j in range(w):
                    ek[j] = exp_below_max(xk[j], m[j])
                for j in range(w):
                    s[j] += ek[j]
            for j in range(w):
                c[j] = row_constant(s[j])
            for k in range(n):
                xk, ok = src[o, k, j0:j1], out[o, k, j0:j1]
                if x is None:
                    for j in range(w):
                        e[j] = exp_below_max(xk[j], m[j])
                    for j in range(w):  # reads ok[j] before writing it
                        ok[j] = ok.dtype.type(element(ok[j], e[j], m[j], c[j]))
                else:
                    for j in range(w):
                        ok[j] = ok.dtype.type(element(xk[j], ok[j], m[j], c[j]))

    def backward_columns(g, y, out, block):
        token  # noqa: B018
        outer, n, inner = out.shape
        n_blocks = (inner + block - 1) // block
        ga = out if g is None else g
        ya = out if y is None else y
        for t in prange(outer * n_blocks):
            o, j0, j1 = _task_span(t, n_blocks, block, inner)
            w = j1 - j0
            s = np.zeros(w)
            for k in range(n):
                gk, yk = ga[o, k, j0:j1], ya[o, k, j0:j1]
                for j in range(w):
                    s[j] += term(gk[j], yk[j])
            for k in range(n):
                gk, yk, ok = ga[o, k, j0:j1], ya[o, k, j0:j1], out[o, k, j0:j1]
                for j in range(w):
                    ok[j] = ok.dtype.type(grad(gk[j], yk[j], s[j]))

    return forward, backward, forward_columns, backward_columns


def _rowwise_tail_loops(element, row_constant, term, grad, token):
    """forward and backward for rows whose length is not a multiple of _TAIL."""
    return _rowwise_loops(element, row_constant, term, grad, token, tails=True)[:2]


class Kernels:
    """The compiled loops of one activation, each made on first use."""

    def __init__(self, act: Activation) -> None:
        self.act = act

    def _variants(self, loop_factory, *scalars) -> dict[str, tuple]:
        loops = loop_factory(*scalars, SOURCE_TOKEN)
        return {
            fn.__name__: _jit_variants(fn, f"{self.act.name}.{loop_factory.__name__}.{fn.__name__}")
            for fn in loops
        }

    @cached_property
    def forward(self) -> dict[str, tuple]:
        """{"flat": (serial, parallel), "rows": (serial, parallel)}"""
        return self._variants(_map_loops, self.act.forward_scalar, self._nparams)

    @cached_property
    def backward(self) -> dict[str, tuple]:
        return self._variants(_chain_loops, self.act.grad_scalar, self._nparams)

    @cached_property
    def backward_from_y(self) -> dict[str, tuple]:
        return self._variants(_chain_loops, self.act.grad_from_y_scalar, self._nparams)

    @cached_property
    def channel(self) -> dict[str, tuple]:
        act = self.act
        return self._variants(_channel_loops, act.forward_scalar, act.grad_scalar, act.grad_weight_scalar)

    @cached_property
    def channel_in_place(self) -> dict[str, tuple]:
        act = self.act
        return self._variants(_channel_loops_in_place, act.forward_scalar, act.grad_scalar, act.grad_weight_scalar)

    @cached_property
    def rowwise(self) -> dict[str, tuple]:
        """{"forward", "backward", "forward_columns", "backward_columns", and for rows whose
        length is not a multiple of _TAIL "forward_tails", "backward_tails": (serial, parallel)}"""
        act = self.act
        scalars = act.forward_scalar, act.row_constant_scalar, act.grad_term_scalar, act.grad_scalar
        with_tails = self._variants(_rowwise_tail_loops, *scalars)
        return self._variants(_rowwise_loops, *scalars) | {f"{k}_tails": v for k, v in with_tails.items()}

    # ufuncs: fa.ufuncs.NAME, and the path for layouts the flat and row loops do not take
    @property
    def _nparams(self) -> int:
        return len(self.act.params) if self.act.kind == "elementwise" else 1

    def _ufunc(self, scalar_fn, suffix: str, nin: int) -> np.ufunc:
        n = self._nparams
        return _make_ufunc(scalar_fn, self.act.name + suffix, nin, n, ufunc_checks(self.act))

    @cached_property
    def ufunc(self) -> np.ufunc:
        return self._ufunc(self.act.forward_scalar, "", 1)

    @cached_property
    def backward_ufunc(self) -> np.ufunc:
        return self._ufunc(self.act.grad_scalar, "_backward", 2)

    @cached_property
    def backward_from_y_ufunc(self) -> np.ufunc:
        return self._ufunc(self.act.grad_from_y_scalar, "_backward_from_y", 2)

    # the second derivative, h * f''(x) (and from y): what differentiates the backward in
    # fastact.torch. Only double backward needs it, so a ufunc (one compile per dtype) and
    # no prange loops
    @cached_property
    def backward2_ufunc(self) -> np.ufunc:
        return self._ufunc(self.act.grad2_scalar, "_backward2", 2)

    @cached_property
    def backward2_from_y_ufunc(self) -> np.ufunc:
        return self._ufunc(self.act.grad2_from_y_scalar, "_backward2_from_y", 2)
