"""Vectorisable float32 / float64 math for the activations' scalar functions.

numba's ``math.exp`` and ``math.expm1`` are calls into libm, one element at a time, and a
loop that makes them does not vectorise (the llvmlite wheel has no SVML): elu ran at a
tenth of the copy roofline. These versions are straight-line float and integer
arithmetic that LLVM inlines and vectorises.

exp(x) = 2^k * e^r, with k = round(x / ln 2) and r = x - k ln 2 (Cody-Waite: ln 2 split in
a high part exact in a few bits and a low part, so that k ln 2 is subtracted almost
exactly), |r| <= ln 2 / 2. e^r and e^r - 1 come from their Taylor series, to degree 7 for
float32 and 13 for float64, where the truncation is below a tenth of an ulp. k is found
with the "magic number" rounding: adding 1.5 * 2^m (m the mantissa bits) leaves
round(t) in the low bits, read back by reinterpreting the float as an integer; this
never converts a float to an integer, which LLVM leaves undefined for NaN. 2^k is built in
the exponent bits; beyond the normal range, as 2^(k +- 100) (float32; 1000 for float64)
times the constant 2^-+100, so that subnormal results are rounded once and overflow gives
inf (see _scale32).

Measured against mpmath at 50 digits over dense grids from the underflow to the overflow
thresholds (tests/test_math.py asserts these bounds):

    exp      float32: <= 1 ulp   float64: <= 1 ulp
    expm1    float32: <= 2 ulp   float64: <= 2 ulp
    tanh     float32: <= 2 ulp   float64: <= 2 ulp
    sigmoid  float32: <= 2 ulp   float64: <= 2 ulp
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload, register_jitable


@intrinsic
def _bits(typingctx, x):
    """The bits of a float as the signed integer of the same width."""
    if not isinstance(x, types.Float):
        return None
    itype = types.int32 if x.bitwidth == 32 else types.int64

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(x.bitwidth))

    return itype(x), codegen


@intrinsic
def _float32_from_bits(typingctx, i):
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32)) if i.bitwidth > 32 else args[0],
                               ir.FloatType())

    return types.float32(i), codegen


@intrinsic
def _float64_from_bits(typingctx, i):
    def codegen(context, builder, signature, args):
        v = args[0] if i.bitwidth == 64 else builder.sext(args[0], ir.IntType(64))
        return builder.bitcast(v, ir.DoubleType())

    return types.float64(i), codegen


# --- float32 ---------------------------------------------------------------------------------

_F32_MAGIC = np.float32(12582912.0)  # 1.5 * 2^23
_F32_LOG2E = np.float32(1.44269504)
_F32_LN2_HI = np.float32(0.693145752)  # ln 2 rounded to 16 bits: k * hi is exact
_F32_LN2_LO = np.float32(1.42860677e-06)
_F32_EXP_LO, _F32_EXP_HI = np.float32(-104.0), np.float32(89.0)  # 0 and inf beyond
_F32_EXPM1_LO = np.float32(-20.0)  # expm1 is -1 to float32 precision below
_F32_EXPM1_TINY = np.float32(2.0**-26)


@register_jitable
def _reduce32(x):
    t = x * _F32_LOG2E + _F32_MAGIC
    k = _bits(t) - _bits(_F32_MAGIC)
    kf = t - _F32_MAGIC
    r = (x - kf * _F32_LN2_HI) - kf * _F32_LN2_LO
    return k, r


@register_jitable
def _expm1_poly32(r):
    # e^r - 1 = r + r^2/2! + ... + r^7/7!
    p = np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    return r + (r * r) * p


_F32_TWO_M100, _F32_TWO_P100 = np.float32(2.0**-100), np.float32(2.0**100)


@register_jitable
def _scale32(v, k):
    # v * 2^k for k in [-150, 129]: 2^k from its exponent bits when it is a normal number,
    # else 2^(k +- 100) times the constant 2^-+100, so that a subnormal result is rounded
    # once and an overflow gives inf. (No arithmetic shift: AVX2 has none for 64-bit lanes,
    # and written the same way in float64, it would keep that loop from vectorising.)
    kk = k + 100 if k < -100 else (k - 100 if k > 100 else k)
    post = _F32_TWO_M100 if k < -100 else (_F32_TWO_P100 if k > 100 else np.float32(1.0))
    return (v * _float32_from_bits((kk + 127) << 23)) * post


@register_jitable
def _exp32(x):
    xc = x if x > _F32_EXP_LO else _F32_EXP_LO  # NaN goes to the bound: no NaN in the integer part
    xc = xc if xc < _F32_EXP_HI else _F32_EXP_HI
    k, r = _reduce32(xc)
    y = _scale32(np.float32(1.0) + _expm1_poly32(r), k)
    return y if x == x else x


@register_jitable
def _expm1_32(x):
    xc = x if x > _F32_EXPM1_LO else _F32_EXPM1_LO
    xc = xc if xc < _F32_EXP_HI else _F32_EXP_HI
    k, r = _reduce32(xc)
    q = _expm1_poly32(r)
    # 2^k (1 + q) - 1 = (2^k - 1) + 2^k q: both parts formed exactly or with one rounding,
    # and q exactly for k = 0. Written with h = 2^(k-1) as 2 ((h - 1/2) + h q), which
    # rounds the same (times 2 is exact) and keeps h finite up to the overflow threshold,
    # where 2^k itself would be inf. One formula, no branches: as branches, or with a
    # second formula for large k, LLVM did not vectorise the float64 loop.
    h = _scale32(np.float32(0.5), k)
    y = np.float32(2.0) * ((h - np.float32(0.5)) + h * q)
    # below 2^-26, expm1(x) rounds to x: this keeps subnormals (which h q would round
    # away) and the sign of zero, and passes NaN through (abs(nan) >= t is false)
    return y if abs(x) >= _F32_EXPM1_TINY else x


# --- float64 ---------------------------------------------------------------------------------

_F64_MAGIC = 6755399441055744.0  # 1.5 * 2^52
_F64_LOG2E = 1.4426950408889634
_F64_LN2_HI = 6.93147180369123816490e-01  # ln 2 with its low 32 bits cleared: k * hi is exact
_F64_LN2_LO = 1.90821492927058770002e-10
_F64_EXP_LO, _F64_EXP_HI = -746.0, 710.0
_F64_EXPM1_LO = -40.0
_F64_EXPM1_TINY = 2.0**-55


@register_jitable
def _reduce64(x):
    t = x * _F64_LOG2E + _F64_MAGIC
    k = _bits(t) - _bits(_F64_MAGIC)
    kf = t - _F64_MAGIC
    r = (x - kf * _F64_LN2_HI) - kf * _F64_LN2_LO
    return k, r


@register_jitable
def _expm1_poly64(r):
    # e^r - 1 = r + r^2/2! + ... + r^13/13!
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    return r + (r * r) * p


_F64_TWO_M1000, _F64_TWO_P1000 = 2.0**-1000, 2.0**1000


@register_jitable
def _scale64(v, k):
    # as _scale32, for k in [-1077, 1025]
    kk = k + 1000 if k < -1000 else (k - 1000 if k > 1000 else k)
    post = _F64_TWO_M1000 if k < -1000 else (_F64_TWO_P1000 if k > 1000 else 1.0)
    return (v * _float64_from_bits((kk + 1023) << 52)) * post


@register_jitable
def _exp64(x):
    xc = x if x > _F64_EXP_LO else _F64_EXP_LO
    xc = xc if xc < _F64_EXP_HI else _F64_EXP_HI
    k, r = _reduce64(xc)
    y = _scale64(1.0 + _expm1_poly64(r), k)
    return y if x == x else x


@register_jitable
def _expm1_64(x):
    xc = x if x > _F64_EXPM1_LO else _F64_EXPM1_LO
    xc = xc if xc < _F64_EXP_HI else _F64_EXP_HI
    k, r = _reduce64(xc)
    q = _expm1_poly64(r)
    h = _scale64(0.5, k)  # as in _expm1_32
    y = 2.0 * ((h - 0.5) + h * q)
    return y if abs(x) >= _F64_EXPM1_TINY else x


# --- built on exp and expm1 -----------------------------------------------------------------------
# tanh(x) = sign(x) e / (e + 2), e = expm1(2 |x|): accurate near 0 (no 1 - 1 cancellation),
# with |x| clamped where tanh is 1 to the dtype's precision (so e cannot overflow; the
# clamp is written so that NaN stays NaN). For tiny |x|, expm1 returns 2 |x| exactly and
# the quotient rounds back to |x|; copysign restores the sign, of zero too.
# sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, e = exp(-|x|): e never
# overflows, and for x << 0 the result keeps e's relative accuracy down to subnormals.

_F32_TANH_ONE, _F64_TANH_ONE = np.float32(10.0), 20.0


@register_jitable
def _tanh32(x):
    a = abs(x)
    a = _F32_TANH_ONE if a > _F32_TANH_ONE else a
    e = _expm1_32(np.float32(2.0) * a)
    return np.copysign(e / (e + np.float32(2.0)), x)


@register_jitable
def _tanh64(x):
    a = abs(x)
    a = _F64_TANH_ONE if a > _F64_TANH_ONE else a
    e = _expm1_64(2.0 * a)
    return np.copysign(e / (e + 2.0), x)


@register_jitable
def _sigmoid32(x):
    e = _exp32(-abs(x))
    one = np.float32(1.0)
    return one / (one + e) if x >= 0 else e / (one + e)


@register_jitable
def _sigmoid64(x):
    e = _exp64(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


# --- the public names: one function per operation, typed by its argument ----------------------


def exp(x):
    """e^x; in numba code, the vectorisable float32 / float64 version."""
    return math.exp(x)


def expm1(x):
    """e^x - 1, accurate near 0; in numba code, the vectorisable float32 / float64 version."""
    return math.expm1(x)


def _by_width(f32, f64):
    def typer(x):
        if isinstance(x, types.Float):
            return f32 if x.bitwidth == 32 else f64
        if isinstance(x, types.Integer):
            return lambda x: f64(np.float64(x))
        return None

    return typer


def tanh(x):
    """tanh(x); in numba code, the vectorisable float32 / float64 version."""
    return math.tanh(x)


def sigmoid(x):
    """1 / (1 + e^-x), overflow-safe; in numba code, the vectorisable version."""
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# inline="always": numba inlines the implementation into the caller's IR. Left to LLVM,
# a body as large as tanh's stays a call, and a loop that makes a call does not vectorise.
overload(exp, inline="always")(_by_width(_exp32, _exp64))
overload(expm1, inline="always")(_by_width(_expm1_32, _expm1_64))
overload(tanh, inline="always")(_by_width(_tanh32, _tanh64))
overload(sigmoid, inline="always")(_by_width(_sigmoid32, _sigmoid64))
