"""fastact's ufuncs: inner loops as numba cfuncs (cached on disk), registered with NumPy."""

from __future__ import annotations

import ctypes
import math
import platform
import threading
from typing import Any

import numpy as np
from llvmlite import ir
from numba import carray
from numba.core import sigutils
from numba.core import types as nbtypes
from numba.core.ccallback import CFunc
from numba.extending import intrinsic, register_jitable
from numba.np.ufunc import _internal as _numba_ufunc_internal

from ._cache import SOURCE_TOKEN, _keyed_cache
from ._loops_map import half_kernels, narrow, widen
from ._math import unique_symbols
from ._registry import Activation, inline_jitable

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
    """What the ufuncs test: per declared parameter (predicate, number of choices), and the
    check across two parameters. An input that is not a declared parameter (prelu's
    weight) may be any float."""
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
                    dst[k] = narrow(dst, fn(vs[k]))

        else:

            def run(us, vs, dst, a, b):
                for k in range(dst.shape[0]):
                    dst[k] = narrow(dst, us[k] * fn(vs[k]))

    elif nparams == 1:
        if nin == 1:

            def run(us, vs, dst, a, b):
                for k in range(dst.shape[0]):
                    dst[k] = narrow(dst, fn(vs[k], a))

        else:

            def run(us, vs, dst, a, b):
                for k in range(dst.shape[0]):
                    dst[k] = narrow(dst, us[k] * fn(vs[k], a))

    elif nin == 1:

        def run(us, vs, dst, a, b):
            for k in range(dst.shape[0]):
                dst[k] = narrow(dst, fn(vs[k], a, b))

    else:

        def run(us, vs, dst, a, b):
            for k in range(dst.shape[0]):
                dst[k] = narrow(dst, us[k] * fn(vs[k], a, b))

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


@register_jitable
def _widened_block(ptr, step, start, m, size, buffer, like):
    """Elements start to start + m of a 16-bit operand (of like's dtype: the uint16 view
    of float16), widened into the float32 buffer, from any step; in one pass that
    converts in registers where the operand is contiguous."""
    if step == size:
        block = carray(ptr, start + m, like.dtype)[start:]
        for i in range(m):
            buffer[i] = widen(block[i])
    else:
        for i in range(m):
            buffer[i] = widen(_load(ptr, (start + i) * step, like.dtype))
    return buffer[:m]


@register_jitable
def _narrowed_store(ptr, step, start, m, size, values, like):
    """Elements start to start + m of a 16-bit output (of like's dtype) = the float32
    values, each rounded once."""
    if step == size:
        dst = carray(ptr, start + m, like.dtype)[start:]
        for k in range(m):
            dst[k] = narrow(dst, values[k])
    else:
        for k in range(m):
            _store(ptr, (start + k) * step, narrow(like, values[k]))


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


def _ufunc_loop(scalars, nin, nparams, dtype, token, element=None):
    """A ufunc inner loop over the operands (u, when nin == 2), v, the parameters, out,
    computed in dtype; element: the arrays' 16-bit view type where they are float16
    (computed in float32, the parameters float32), else None.

    The elements are taken in runs of equal parameters: the whole loop where the
    parameters are scalars broadcast (step 0, as NumPy passes a Python float), else runs
    as long as the values repeat. A run's parameters are checked once; the run is
    fa.NAME's vectorised loop, over blocks: read in place where contiguous, else
    (strided, or the output itself) gathered into a buffer first, which also lets
    LLVM's alias test pass in place; written in place where contiguous, else scattered
    from a buffer. 16-bit operands are always widened into float32 buffers and the
    results rounded on the way out, so that the float32 loop (compiled once) serves
    them. A run with invalid parameters gives NaN, raising the invalid flag.

    numba's own ufunc loop vectorises only where every input has unit step, which a
    parameter never has; and it takes that path without testing the output's step, so
    that a strided or reversed out= was written contiguously: wrong values, or memory
    past the array. One call site of the scalar math, because each site costs its
    compile time again."""
    run, ok = scalars
    half = element is not None
    size = np.dtype(element if half else dtype).itemsize
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
        like = np.empty(0, element if half else dtype)
        u_is_out = _address(pu) == _address(po)
        v_is_out = _address(pv) == _address(po)
        # nothing to gather or scatter: one run is one call of the vectorised loop
        direct = (sv == size) & ~v_is_out & (so == size) & ((nin == 1) | ((su == size) & ~u_is_out)) & ~half
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
                    _store(po, k * so, narrow(like, invalid))
                i = j
                continue
            for start in range(i, j, max(j - i, 1) if direct else _UFUNC_BLOCK):
                m = min(j - start, j - i if direct else _UFUNC_BLOCK)
                if half:
                    vs = _widened_block(pv, sv, start, m, size, bv, like)
                    us = _widened_block(pu, su, start, m, size, bu, like) if nin == 2 else vs
                    run(us, vs, bo[:m], a, b)
                    _narrowed_store(po, so, start, m, size, bo, like)
                    continue
                vs = _operand_block(pv, sv, start, m, size, bv, v_is_out)
                us = _operand_block(pu, su, start, m, size, bu, u_is_out) if nin == 2 else vs
                dst = carray(po, start + m, dtype)[start:] if so == size else bo[:m]
                run(us, vs, dst, a, b)
                if so != size:
                    for k in range(m):
                        _store(po, (start + k) * so, dst[k])
            i = j

    return loop


class _BuiltUFunc:
    """What a ufunc was built from: the vectorised loop over blocks (a Python function
    numba compiles), and its inner loops (numba cfuncs), in the ufunc's loop order."""

    def __init__(self, run: Any, loops: list) -> None:
        self.run = run
        self._loops = loops  # None where a loop is compiled on its first call

    @property
    def loops(self) -> tuple:
        """The inner loops compiled so far."""
        return tuple(c for c in self._loops if c is not None)


# what each ufunc was built from, by name: for the tests of its machine code and its cache
UFUNC_LOOPS: dict[str, _BuiltUFunc] = {}

# NumPy's inner-loop signature: void(char **args, npy_intp *dims, npy_intp *steps, void *data)
_LOOP_CTYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

_ELEMENT_NAMES = {np.uint16: "float16", np.int16: "bfloat16"}


def _compile_loop(scalars, nin: int, nparams: int, name: str, dtype, element) -> CFunc:
    loop = _ufunc_loop(scalars, nin, nparams, dtype, SOURCE_TOKEN, element)
    loop.__qualname__ = f"ufunc.{name}.{_ELEMENT_NAMES.get(element) or np.dtype(dtype).name}"
    compiled = CFunc(loop, _LOOP_SIGNATURE, locals={}, options=dict(nogil=True, error_model="numpy"))
    compiled.enable_caching()
    _keyed_cache(compiled._cache)
    compiled.compile()
    return compiled


def _stand_in(built: _BuiltUFunc, index: int, compile_, nargs: int, out_type, holder: list):
    """A stand-in for loop `index`, compiled on its first call: it compiles the loop (or
    loads it from the cache), puts the loop's address in the ufunc's table, where NumPy
    looks it up on each call, and runs it. So a ufunc costs nothing to look up, and its
    first call compiles only the loop for its dtype (cold, on a 2-core Xeon: gelu's float32
    loop took 5.5 s, its three loops 14 s)."""
    lock = threading.Lock()
    element = {np.float16: ctypes.c_uint16, np.int16: ctypes.c_int16, np.float32: ctypes.c_float,
               np.float64: ctypes.c_double}[out_type]
    nan = {np.float16: 0x7E00, np.int16: 0x7FC0}.get(out_type, math.nan)  # (bfloat16's NaN, as bits)

    def first_call(args, dims, steps, data):
        # ctypes takes the GIL for a callback, which NumPy released around the loop
        try:
            with lock:
                compiled = built._loops[index]
                if compiled is None:
                    compiled = compile_()
                    table = ctypes.cast(_UFuncHead.from_address(id(holder[0])).functions,
                                        ctypes.POINTER(ctypes.c_void_p))
                    if table[index] == ctypes.cast(stand_in, ctypes.c_void_p).value:
                        table[index] = compiled.address
                    built._loops[index] = compiled
        except BaseException:
            # nothing raised here can leave a ufunc's inner loop: ctypes reports it to
            # sys.unraisablehook ("Exception ignored on calling ctypes callback"), an
            # interrupt (Ctrl-C during the compile) too. The output is NaN rather than
            # what it held, and the next call compiles again.
            n, (out, step) = ctypes.c_ssize_t.from_address(dims).value, _operand(args, steps, nargs)
            for k in range(n):
                element.from_address(out + k * step).value = nan
            raise
        _LOOP_CTYPE(compiled.address)(args, dims, steps, data)

    stand_in = _LOOP_CTYPE(first_call)
    return stand_in


def _operand(args: int, steps: int, i: int) -> tuple[int, int]:
    """Operand i's data pointer and step, from a ufunc inner loop's arguments."""
    return ctypes.c_void_p.from_address(args + 8 * i).value, ctypes.c_ssize_t.from_address(steps + 8 * i).value


def _make_ufunc(scalar_fn, name: str, nin: int, nparams: int, checks, bits: bool = False) -> np.ufunc:
    """The ufunc name(*arrays, *params), with a float16 (where the target converts it in
    hardware: half_kernels), a float32 and a float64 loop, each a numba cfunc cached on
    disk (the loop and the scalar math inlined into it). The float16 loop comes first, so
    that NumPy, which takes the first loop its inputs cast to safely, gives float16 for
    float16 arrays (and for int8, as np.exp); its parameters are float32, as fa.NAME's.
    Each loop is compiled on its first call. With bits, the one loop is bfloat16's, on
    its int16 bits in and out."""
    scalars = _ufunc_scalars(scalar_fn, nparams, checks, nin, name)
    nargs = nin + nparams
    variants = [(np.float32, None, [np.float32] * (nargs + 1)), (np.float64, None, [np.float64] * (nargs + 1))]
    if bits:
        variants = [(np.float32, np.int16, [np.int16] * nin + [np.float32] * nparams + [np.int16])]
    elif half_kernels():
        variants.insert(0, (np.float32, np.uint16, [np.float16] * nin + [np.float32] * nparams + [np.float16]))
    built = UFUNC_LOOPS[name] = _BuiltUFunc(scalars[0], [None] * len(variants))
    holder: list = []  # the ufunc, for the stand-ins, which are made before it
    stand_ins = []  # which NumPy holds only as addresses, kept alive by the ufunc
    for i, (dtype, element, types) in enumerate(variants):
        def compile_(dtype=dtype, element=element):
            return _compile_loop(scalars, nin, nparams, name, dtype, element)
        stand_ins.append(_stand_in(built, i, compile_, nargs, types[-1], holder))
    addresses = [ctypes.cast(f, ctypes.c_void_p).value for f in stand_ins]
    types_ = [[np.dtype(t).num for t in types] for _, _, types in variants]
    ufunc = _numba_ufunc_internal.fromfunc(
        name, None, addresses, types_, nargs, 1, [None] * len(variants), stand_ins,
        _numba_ufunc_internal.PyUFunc_None,
    )
    holder.append(ufunc)
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
