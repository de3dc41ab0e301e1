"""The element-wise loops: out = f(x, *params) and out = g * df(x, *params), flat and by rows."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import cgutils
from numba.core import types as nbtypes
from numba.extending import intrinsic, overload

from ._math import avx512_in_target

# float16 arrays reach the loops as uint16 views (numba has no float16 arithmetic): each
# element is widened to float32 on load and rounded once to float16 on store, by LLVM's
# fpext / fptrunc of half, which vectorise to vcvtph2ps / vcvtps2ph (F16C, on every AVX2
# CPU; fastact only routes float16 here where the target has it: half_kernels).
# bfloat16 arrays (ml_dtypes) reach them as int16 views, the other 16-bit integer type,
# so that the two formats compile apart: bfloat16 is float32's upper half, widened by a
# shift and rounded to nearest even in integer arithmetic (LLVM's fptrunc to bfloat is a
# libm call on CPUs without AVX512-BF16). For float32 and float64 arrays the three
# helpers are the identity and the cast the loops always made.


@intrinsic
def _half_to_float(typingctx, bits):
    if bits != nbtypes.uint16:
        return None

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return nbtypes.float32(bits), codegen


@intrinsic
def _float_to_half(typingctx, value):
    """The float16 nearest to a float32 (ties to even; overflow to inf, NaN stays NaN), as bits."""
    if value != nbtypes.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return nbtypes.uint16(value), codegen


_half_kernels: bool | None = None


def half_kernels() -> bool:
    """Whether the target numba compiles for converts float16 in hardware (F16C): then
    float16 arrays go through the kernels as uint16 views; else through float32 copies."""
    global _half_kernels
    if _half_kernels is None:
        from numba.core.registry import cpu_target

        features = cpu_target.target_context.codegen().magic_tuple()[2].split(",")
        _half_kernels = "+f16c" in features
    return _half_kernels


# LLVM's tuning for Intel's AVX-512 server CPUs prefers 256-bit vectors (its loops there
# had no zmm instruction; 512 bits measured 1.05-1.4x faster in cache on an Emerald
# Rapids VM, ../FACTS). The CPU's full width is asked for per function, by the attribute
# LLVM's X86 backend reads to override that preference: the kernels' functions get it,
# the user's own numba code does not (NUMBA_CPU_FEATURES=-prefer-256-bit would change
# every function of the process, and every cache key). Zen 4 and 5 use 512 bits already.
_FULL_WIDTH = '"prefer-vector-width"="512"'


@intrinsic
def full_width(typingctx):
    """Marks the function being compiled for 512-bit vectors where the target has AVX-512.
    Called in every loop body of the kernels (through ``narrow``, where they store), so
    that it lands in the function that holds the loop: a prange body's own function too."""

    def codegen(context, builder, signature, args):
        if avx512_in_target(context):
            # llvmlite's FunctionAttributes accepts only the attribute names it knows;
            # a string attribute goes into the set as the text LLVM parses
            set.add(builder.function.attributes, _FULL_WIDTH)
        return context.get_dummy_value()

    return nbtypes.none(), codegen


@intrinsic
def _bfloat_to_float(typingctx, bits):
    if bits != nbtypes.int16:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        return builder.bitcast(builder.shl(builder.zext(args[0], i32), ir.Constant(i32, 16)), ir.FloatType())

    return nbtypes.float32(bits), codegen


@intrinsic
def _float_to_bfloat(typingctx, value):
    """The bfloat16 nearest to a float32 (ties to even; overflow to inf), as bits; NaN
    stays NaN (quiet, its sign and upper payload kept), as ml_dtypes' cast gives."""
    if value != nbtypes.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)

        def c(v):
            return ir.Constant(i32, v)

        b = builder.bitcast(args[0], i32)
        upper = builder.lshr(b, c(16))
        rounded = builder.lshr(builder.add(b, builder.add(c(0x7FFF), builder.and_(upper, c(1)))), c(16))
        nan = builder.icmp_unsigned(">", builder.and_(b, c(0x7FFFFFFF)), c(0x7F800000))
        return builder.trunc(builder.select(nan, builder.or_(upper, c(0x40)), rounded), ir.IntType(16))

    return nbtypes.int16(value), codegen


@intrinsic
def prefetch(typingctx, a, i):
    """Asks for the cache line of element i of the C-contiguous array a, counted in its
    order in memory (read, kept in every cache level); an address outside the array is
    not an error, as a prefetch never faults."""
    if not isinstance(a, nbtypes.Array) or a.layout != "C" or not isinstance(i, nbtypes.Integer):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        pointer = builder.gep(data, [args[1]])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # (address, 0: read, 3: keep in all levels, 1: data)
        builder.call(fn, [pointer, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return nbtypes.none(a, i), codegen


def per_line(a):
    """How many of array a's elements a 64-byte cache line holds, a constant of its type
    (``a.itemsize`` is read from the array at run time)."""


@overload(per_line, inline="always")
def _per_line(a):
    n = 64 // (a.dtype.bitwidth // 8)
    return lambda a: n


def widen(v):
    """An element as the loops compute with it."""


def computed(a, v):
    """v in the compute dtype of array a's elements."""


def narrow(a, v):
    """v as an element of array a; the function it is compiled into is marked for the
    CPU's full vector width (``full_width``)."""


@overload(widen, inline="always")
def _widen(v):
    if v == nbtypes.uint16:
        return lambda v: _half_to_float(v)
    if v == nbtypes.int16:
        return lambda v: _bfloat_to_float(v)
    return lambda v: v


@overload(computed, inline="always")
def _computed(a, v):
    if a.dtype in (nbtypes.uint16, nbtypes.int16):
        return lambda a, v: np.float32(v)
    return lambda a, v: a.dtype.type(v)


@overload(narrow, inline="always")
def _narrow(a, v):
    if a.dtype == nbtypes.uint16:

        def to_half(a, v):
            full_width()
            return _float_to_half(np.float32(v))

        return to_half

    if a.dtype == nbtypes.int16:

        def to_bfloat(a, v):
            full_width()
            return _float_to_bfloat(np.float32(v))

        return to_bfloat

    def to_dtype(a, v):
        full_width()
        return a.dtype.type(v)

    return to_dtype


def compute_empty(shape, a):
    """An uninitialised array of the compute dtype of array a's elements (float32 for
    the 16-bit views): the loops' scratch."""


@overload(compute_empty, inline="always")
def _compute_empty(shape, a):
    if a.dtype in (nbtypes.uint16, nbtypes.int16):
        return lambda shape, a: np.empty(shape, np.float32)
    return lambda shape, a: np.empty(shape, a.dtype)


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
                out[i] = narrow(out, f(widen(src[i])))

        def rows(x, out, params):
            token  # noqa: B018
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = narrow(out, f(widen(x[i, j])))

    elif nparams == 1:

        def flat(x, out, params):
            token  # noqa: B018
            a = params[0]
            src = out if x is None else x
            for i in prange(src.shape[0]):
                out[i] = narrow(out, f(widen(src[i]), a))

        def rows(x, out, params):
            token  # noqa: B018
            a = params[0]
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = narrow(out, f(widen(x[i, j]), a))

    else:

        def flat(x, out, params):
            token  # noqa: B018
            a, b = params[0], params[1]
            src = out if x is None else x
            for i in prange(src.shape[0]):
                out[i] = narrow(out, f(widen(src[i]), a, b))

        def rows(x, out, params):
            token  # noqa: B018
            a, b = params[0], params[1]
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = narrow(out, f(widen(x[i, j]), a, b))

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
                out[i] = narrow(out, widen(gsrc[i]) * computed(out, df(widen(x[i]))))

        def rows(g, x, out, params):
            token  # noqa: B018
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = narrow(out, widen(g[i, j]) * computed(out, df(widen(x[i, j]))))

    elif nparams == 1:

        def flat(g, x, out, params):
            token  # noqa: B018
            a = params[0]
            gsrc = out if g is None else g
            for i in prange(x.shape[0]):
                out[i] = narrow(out, widen(gsrc[i]) * computed(out, df(widen(x[i]), a)))

        def rows(g, x, out, params):
            token  # noqa: B018
            a = params[0]
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = narrow(out, widen(g[i, j]) * computed(out, df(widen(x[i, j]), a)))

    else:

        def flat(g, x, out, params):
            token  # noqa: B018
            a, b = params[0], params[1]
            gsrc = out if g is None else g
            for i in prange(x.shape[0]):
                out[i] = narrow(out, widen(gsrc[i]) * computed(out, df(widen(x[i]), a, b)))

        def rows(g, x, out, params):
            token  # noqa: B018
            a, b = params[0], params[1]
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = narrow(out, widen(g[i, j]) * computed(out, df(widen(x[i, j]), a, b)))

    return flat, rows
