"""Vectorisable float32 / float64 math for the activations' scalar functions.

numba's ``math.exp`` and ``math.expm1`` are calls into libm, one element at a time, and a
loop that makes them does not vectorise (the llvmlite wheel has no SVML): elu ran at a
tenth of the copy roofline. These versions are straight-line float and integer
arithmetic that LLVM inlines and vectorises.

exp(x) = 2^k * e^r, with k = round(x / ln 2) and r = x - k ln 2 (Cody-Waite: ln 2 split in
a high part exact in a few bits and a low part, so that k ln 2 is subtracted almost
exactly), |r| <= ln 2 / 2. e^r - 1 = r + r^2 P(r), P a minimax polynomial (tools/fit_polynomials.py),
e^r to degree 6 for float32 and 11 for float64 (Taylor's series needs 7 and 13 for an
error below a tenth of an ulp), evaluated by Estrin's scheme (``_polynomial_estrin``; so
is log's series). k is found
with the "magic number" rounding: adding 1.5 * 2^m (m the mantissa bits) leaves
round(t) in the low bits, read back by reinterpreting the float as an integer; this
never converts a float to an integer, which LLVM leaves undefined for NaN. Times 2^k is
one ``vscalef`` (``llvm.ldexp``) where the target has AVX-512: 10-17% less time per element
in cache for sigmoid, silu, tanh and elu (float32, Zen 5). Elsewhere 2^k is built in the
exponent bits, as two factors 2^(k/2), so that subnormal results are rounded once and
overflow gives inf, as vscalef does: the results are the same bits (see _scaling,
tests/test_build.py). Every polynomial step and the
reduction is a fused multiply-add (``fma`` below) where the CPU has FMA: half the
instructions, and one rounding fewer per step.

Measured against mpmath at 50 digits over dense grids from the underflow to the overflow
thresholds (tests/test_math.py asserts these bounds):

    exp      float32: <= 1 ulp   float64: <= 1 ulp
    expm1    float32: <= 2 ulp   float64: <= 2 ulp
    tanh     float32: <= 2 ulp   float64: <= 2 ulp
    sigmoid  float32: <= 2 ulp   float64: <= 2 ulp
    log1p    float32: <= 1 ulp   float64: <= 1 ulp
    log      float32: <= 1 ulp   float64: <= 1 ulp
    erf      float32: <= 2 ulp   float64: <= 2 ulp
    erfc     float32: <= 4 ulp   float64: <= 4 ulp
    softplus float32: <= 2 ulp   float64: <= 2 ulp    (log(1 + e^x), overflow-safe)
    logsigmoid  float32: <= 2 ulp   float64: <= 2 ulp
    x_minus_tanh  float32: <= 3 ulp   float64: <= 3 ulp   (x - tanh(x), no cancellation near 0)
"""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import intrinsic, overload, register_jitable

from ._registry import inline_jitable


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


@intrinsic
def _shift_right_logical(typingctx, i, n):
    """i >> n filling with zeros, for integers known to be >= 0. numba's >> on a signed
    integer is arithmetic, which AVX2 lacks for 64-bit lanes: that would keep a float64
    loop scalar."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        amount = context.cast(builder, args[1], signature.args[1], signature.args[0])
        return builder.lshr(args[0], amount)

    return i(i, n), codegen


def _fma_in_target(context) -> bool:
    # the features the kernels are compiled for (the host's, unless NUMBA_CPU_NAME says otherwise)
    return "+fma" in context.codegen().magic_tuple()[2].split(",")


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c, rounded once (llvm.fma) where the target CPU has FMA instructions; else
    a * b + c as written (without them, llvm.fma is a libm call that keeps a loop scalar).
    numba never contracts a * b + c itself: it compiles without fast-math. Half the
    instructions of a polynomial, and one rounding fewer per step; the error bounds below
    hold either way (the mul-add form is the one they were first measured with), except
    erfc's float32 4 ulp: 4.04 measured without FMA (tests/test_build.py)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        if _fma_in_target(context):
            t = args[0].type
            return builder.call(builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t])), args)
        return builder.fadd(builder.fmul(args[0], args[1]), args[2])

    return a(a, b, c), codegen


def unique_symbols(fn, tag: str):
    """fn, its qualified name made unique by tag, for a function that numba compiles on
    its own (not inlined at its IR level) and that a factory makes more than once with
    different bodies or constants.

    numba names a compiled function after its qualified name and a counter of the
    process that compiled it, and marks it linkonce_odr: of two definitions with one
    name, the loader keeps one, taken to be the same code. Two kernels cached by
    different processes can carry such a name for two different bodies; loaded into one
    process, one kernel then calls the other's (measured: fa.ufuncs.tanh returned
    sigmoid's values after fa.ufuncs.sigmoid and fa.ufuncs.tanh were each first compiled
    in a process of its own; tests/test_build.py)."""
    fn.__qualname__ = f"{fn.__qualname__}[{tag}]"
    return fn


def _polynomial(coefficients: tuple) -> object:
    """p(x) = c[0] x^(n-1) + ... + c[n-1] by Horner's scheme, written out term by term
    (coefficients highest degree first, as np.float32 or float). Generated rather than a
    loop over the tuple: LLVM does not fully unroll a loop of 20-odd steps, and the loop
    that calls it then does not vectorise. (Estrin's scheme with every step but the
    first a Horner step: the generated code is the Horner form.)"""
    return _polynomial_estrin(coefficients, horner_tail=len(coefficients) - 1)


def _polynomial_estrin(coefficients: tuple, horner_tail: int = 0) -> object:
    """The same polynomial by Estrin's scheme: pairs c x + c' of neighbouring terms, then
    pairs of pairs with x^2, x^4, ... A chain of about log2(n) fused multiply-adds
    instead of Horner's n - 1, for the same number of them plus the powers. The loops
    that evaluate exp and log are bound by that chain's latency more than by the count
    of instructions (one 8-wide float32 exp is ~40 instructions; see the README's
    "Speed"). Used where |x| is small (the terms fall fast), so that the sums are
    dominated by the low-order terms, as in Horner's form; the tests hold the bounds.
    ``horner_tail``: the last (lowest) coefficients added by Horner steps after the
    rest: where |x| reaches 1 and the terms alternate in sign (erfc's S), the low-order
    terms that decide the rounding keep Horner's order, and the long high-order part,
    small there, takes Estrin's short chain."""
    names = {f"c{k}": c for k, c in enumerate(coefficients)} | {"fma": fma}
    n = len(coefficients) - horner_tail
    terms = [f"c{n - 1 - i}" for i in range(n)]  # terms[i] multiplies x^i
    lines, power, width = [], "x", 1
    while len(terms) > 1:
        terms = [f"fma({terms[i + 1]}, {power}, {terms[i]})" if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
        if len(terms) > 1:
            width *= 2
            lines.append(f"    x{width} = {power} * {power}\n")
            power = f"x{width}"
    expr = terms[0]
    for k in range(n, len(coefficients)):
        expr = f"fma({expr}, x, c{k})"
    namespace: dict = {}
    exec(f"def polynomial(x):\n{''.join(lines)}    return {expr}\n", names, namespace)
    tag = hashlib.sha256(repr((coefficients, horner_tail)).encode()).hexdigest()[:16]
    return register_jitable(unique_symbols(namespace["polynomial"], tag))


# --- float32 ---------------------------------------------------------------------------------

_F32_MAGIC = np.float32(12582912.0)  # 1.5 * 2^23
_F32_LOG2E = np.float32(1.44269504)
_F32_LN2_HI = np.float32(0.693145752)  # ln 2 rounded to 16 bits: k * hi is exact
_F32_LN2_LO = np.float32(1.42860677e-06)
_F32_EXP_LO, _F32_EXP_HI = np.float32(-104.0), np.float32(89.0)  # 0 and inf beyond
_F32_EXPM1_LO = np.float32(-20.0)  # expm1 is -1 to float32 precision below
_F32_EXPM1_TINY = np.float32(2.0**-26)
_F32_TINY = np.float32(np.finfo(np.float32).tiny)
_F32_INF, _F32_NAN = np.float32(np.inf), np.float32(np.nan)


@register_jitable
def _reduce32(x):
    t = fma(x, _F32_LOG2E, _F32_MAGIC)  # round(x log2 e) in the low bits; any nearby k works
    k = _bits(t) - _bits(_F32_MAGIC)
    kf = t - _F32_MAGIC
    r = fma(-kf, _F32_LN2_LO, fma(-kf, _F32_LN2_HI, x))
    return k, r


# e^r - 1 = r + r^2 P(r), P minimax on |r| <= ln 2 / 2 (fitted by tools/fit_polynomials.py:
# e^r to degree 6 with an error of about 1e-8 of it, where Taylor's series needs degree 7;
# one multiply-add fewer, 5-8% less time per exp in cache, Zen 5)
_F32_EXPM1_P = tuple(np.float32(c) for c in (
    0.0013926213466332444, 0.008363202971575855, 0.04166655443768594, 0.16666576845993977, 0.5
))
_expm1_p32 = _polynomial_estrin(_F32_EXPM1_P)


@register_jitable
def _expm1_poly32(r):
    return fma(r * r, _expm1_p32(r), r)


def avx512_in_target(context) -> bool:
    return "+avx512f" in context.codegen().magic_tuple()[2].split(",")


def _scaling(split):
    """v * 2^k as ``llvm.ldexp`` where the target has AVX-512 (one ``vscalef``, which
    rounds a subnormal result once and overflows to inf, as split does), else split (on
    AVX2, llvm.ldexp is a libm call per element). Chosen at compile time, as fma is; the
    target's features are part of numba's cache key."""

    @intrinsic
    def scale(typingctx, v, k):
        if not (isinstance(v, types.Float) and isinstance(k, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            if not avx512_in_target(context):
                return context.compile_internal(builder, split, signature, args)
            i32 = ir.IntType(32)
            n = context.cast(builder, args[1], signature.args[1], types.int32)
            t = args[0].type
            ldexp = builder.module.declare_intrinsic("llvm.ldexp", [t, i32], ir.FunctionType(t, [t, i32]))
            return builder.call(ldexp, [args[0], n])

        return v(v, k), codegen

    return scale


def _scale32_split(v, k):
    # v * 2^k for k in [-150, 129], as v 2^k1 2^k2 with k1 = floor(k / 2), k2 = k - k1:
    # both factors are normal numbers built in their exponent bits, v 2^k1 is exact, and
    # the second product rounds a subnormal result once and overflows to inf. Fewer
    # instructions than selecting a pre-scale 2^-+1000 for the extremes (float64 did that
    # before it had the logical-shift form of _scale64: 10% slower exp).
    k1 = k >> 1  # arithmetic: AVX2 has it for 32-bit lanes
    k2 = k - k1
    return (v * _float32_from_bits((k1 + 127) << 23)) * _float32_from_bits((k2 + 127) << 23)


_scale32 = _scaling(_scale32_split)


@register_jitable
def _exp32(x):
    # numba's max(x, c) and min(x, c) are x where x is NaN (one vmaxps / vminps each): NaN
    # reaches the integer part as garbage bits, and every product with the NaN r is NaN,
    # so no select for NaN is needed at the end (tests/test_math.py checks exp(NaN))
    xc = min(max(x, _F32_EXP_LO), _F32_EXP_HI)
    k, r = _reduce32(xc)
    return _scale32(np.float32(1.0) + _expm1_poly32(r), k)


@register_jitable
def _expm1_32(x):
    xc = min(max(x, _F32_EXPM1_LO), _F32_EXP_HI)
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
_F64_TINY = float(np.finfo(np.float64).tiny)


@register_jitable
def _reduce64(x):
    t = fma(x, _F64_LOG2E, _F64_MAGIC)
    k = _bits(t) - _bits(_F64_MAGIC)
    kf = t - _F64_MAGIC
    r = fma(-kf, _F64_LN2_LO, fma(-kf, _F64_LN2_HI, x))
    return k, r


# as _expm1_poly32: e^r to degree 11 (fit error about 2e-17 of it; Taylor needs degree 13)
_F64_EXPM1_P = (
    2.5100424157005067e-08, 2.7620138719733994e-07, 2.7557268378684192e-06, 2.480152119021773e-05,
    0.00019841269863105968, 0.0013888888917281794, 0.008333333333330051, 0.04166666666662399,
    0.16666666666666669, 0.5000000000000001
)
_expm1_p64 = _polynomial_estrin(_F64_EXPM1_P)


@register_jitable
def _expm1_poly64(r):
    return fma(r * r, _expm1_p64(r), r)


def _scale64_split(v, k):
    # as _scale32, for k in [-1077, 1025]: k1 = floor(k / 2) taken with a logical shift of
    # k + 2048 >= 0, AVX2 having no arithmetic shift for 64-bit lanes
    e1 = _shift_right_logical(k + 2048, 1) - 1  # k1 + 1023
    return (v * _float64_from_bits(e1 << 52)) * _float64_from_bits((k + 2046 - e1) << 52)


_scale64 = _scaling(_scale64_split)


@register_jitable
def _exp64(x):
    xc = min(max(x, _F64_EXP_LO), _F64_EXP_HI)
    k, r = _reduce64(xc)
    return _scale64(1.0 + _expm1_poly64(r), k)


@register_jitable
def _expm1_64(x):
    xc = min(max(x, _F64_EXPM1_LO), _F64_EXP_HI)
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



# --- log1p and log ------------------------------------------------------------------------------
# log(1 + x) = k ln 2 + log(m) + c / u, with u = 1 + x rounded, c = (1 + x) - u (exact:
# Sterbenz), and u = 2^k m, m in [sqrt(1/2), sqrt(2)) read from u's bits. With f = m - 1
# (exact) and s = f / (2 + f), log(m) = f - (f^2/2 - s (f^2/2 + R(s^2))), R(z) = 2z/3 +
# 2z^2/5 + ... (fdlibm's arrangement, here with Taylor coefficients: |s| <= 0.172, so four
# terms leave 2e-9 of an ulp for float32 and ten 6e-19 for float64). 2^k is taken apart
# without an arithmetic shift or an integer-to-float conversion of 64-bit lanes, which AVX2
# does not have: the exponent field is shifted logically and turned into a float by the
# magic-number trick.

_F32_LOG_R = tuple(np.float32(2.0 / (2 * n + 1)) for n in range(4, 0, -1))
_F64_LOG_R = tuple(2.0 / (2 * n + 1) for n in range(10, 0, -1))
_log_r32, _log_r64 = _polynomial_estrin(_F32_LOG_R), _polynomial_estrin(_F64_LOG_R)
_F32_SQRT_HALF_BITS = 0x3F3504F3  # float32 bits of sqrt(1/2)
_F64_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD
_F32_ONE_BITS, _F64_ONE_BITS = 0x3F800000, 0x3FF0000000000000
_F32_MANTISSA, _F64_MANTISSA = 0x007FFFFF, 0x000FFFFFFFFFFFFF
_F64_TWO52_BITS = 0x4330000000000000  # bits of 2^52: or-ing e into the mantissa gives 2^52 + e


@register_jitable
def _log_core32(u, c, k0):
    # log(2^-k0 u) + c for u > 0 finite normal, |c| small
    i = _bits(u) + (_F32_ONE_BITS - _F32_SQRT_HALF_BITS)
    kf = np.float32(_shift_right_logical(i, 23) - (127 + k0))
    m = _float32_from_bits((i & _F32_MANTISSA) + _F32_SQRT_HALF_BITS)
    f = m - np.float32(1.0)
    s = f / (np.float32(2.0) + f)
    z = s * s
    r = z * _log_r32(z)
    hfsq = np.float32(0.5) * f * f
    return kf * _F32_LN2_HI - ((hfsq - (s * (hfsq + r) + (kf * _F32_LN2_LO + c))) - f)


@register_jitable
def _log_core64(u, c, k0):
    i = _bits(u) + (_F64_ONE_BITS - _F64_SQRT_HALF_BITS)
    e = _shift_right_logical(i, 52)
    kf = (_float64_from_bits(e | _F64_TWO52_BITS) - 4503599627370496.0) - (1023.0 + k0)
    m = _float64_from_bits((i & _F64_MANTISSA) + _F64_SQRT_HALF_BITS)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    r = z * _log_r64(z)
    hfsq = 0.5 * f * f
    return kf * _F64_LN2_HI - ((hfsq - (s * (hfsq + r) + (kf * _F64_LN2_LO + c))) - f)


@register_jitable
def _log1p32(x):
    one = np.float32(1.0)
    u = one + x
    # (1 + x) - u, exactly: u - 1 is exact for u < 2, u - x for u >= 2 (Sterbenz)
    c = (x - (u - one)) if u < np.float32(2.0) else (one - (u - x))
    uc = u if u > _F32_TINY else one  # keep garbage bits out of the core; selected away below
    y = _log_core32(uc, c / uc, 0)
    y = y if abs(x) >= _F32_EXPM1_TINY else x  # log1p(x) rounds to x: keeps -0.0, subnormals
    y = y if x < _F32_INF else x  # +inf, and NaN
    y = -_F32_INF if x == -one else y
    return _F32_NAN if x < -one else y


@register_jitable
def _log1p64(x):
    u = 1.0 + x
    c = (x - (u - 1.0)) if u < 2.0 else (1.0 - (u - x))
    uc = u if u > _F64_TINY else 1.0
    y = _log_core64(uc, c / uc, 0.0)
    y = y if abs(x) >= _F64_EXPM1_TINY else x
    y = y if x < math.inf else x
    y = -math.inf if x == -1.0 else y
    return math.nan if x < -1.0 else y


@register_jitable
def _log32(x):
    sub = x < _F32_TINY  # subnormals: scaled up by 2^24 first
    u = x * np.float32(16777216.0) if sub else x
    u = u if u > np.float32(0.0) else np.float32(1.0)  # 0, x < 0 and NaN are selected below
    y = _log_core32(u, np.float32(0.0), 24 if sub else 0)
    y = y if x < _F32_INF else x
    y = -_F32_INF if x == np.float32(0.0) else y
    return _F32_NAN if x < np.float32(0.0) else y


@register_jitable
def _log64(x):
    sub = x < _F64_TINY
    u = x * 18014398509481984.0 if sub else x  # 2^54
    u = u if u > 0.0 else 1.0  # 0, x < 0 and NaN are selected below
    y = _log_core64(u, 0.0, 54.0 if sub else 0.0)
    y = y if x < math.inf else x
    y = -math.inf if x == 0.0 else y
    return math.nan if x < 0.0 else y


# --- erfc and erf ---------------------------------------------------------------------------------
# erfc(a) = exp(-a^2) t S(w) for a >= 1, t = 3 / (3 + a), w = (3 - a) / (3 + a): S is one
# polynomial over all of [-1, 1] (fitted by tools/fit_polynomials.py; fit error 2e-9 for float32,
# 8e-19 for float64). Below a = 1, erfc = 1 - erf, erf from its Taylor series.
# exp(-a^2) is where accuracy is lost: a^2 rounded to the dtype is off by up to a^2 eps/2,
# which exp turns into a relative error a^2 eps/2 (50 ulp at a = 10). So a is split into
# a head with the low half of its mantissa cleared (its square is exact) and the rest:
# exp(-a^2) = exp(-hi^2) exp(-(a - hi)(a + hi)). erf(x) = 1 - erfc(x) for |x| >= 1; below,
# its Taylor series (11 / 19 terms), which keeps erf's relative accuracy down to 0.

_F32_ERFC_S = (
    -6.75137733896641e-06, 2.2577891624552017e-05, 8.887825679693029e-05, -0.00016920326064163454,
    -0.001009694561764489, -0.00041086091772635154, 0.008942033506395134, 0.039844125596778676,
    0.1034891192634025, 0.19674265533491886, 0.2944648172805376, 0.35800230416939344
)
_F64_ERFC_S = (
    4.602455470929251e-11, 5.435083796935658e-11, -5.579980245298447e-10, -3.2378192554408563e-10,
    3.688904057387729e-09, -3.333892283030237e-10, -1.8319120410774863e-08, 1.5361870843850486e-08,
    7.923193773060127e-08, -1.359941527655318e-07, -3.338098330962519e-07, 9.218034395033095e-07,
    1.583410435857924e-06, -5.82352900492245e-06, -1.0132807973960568e-05, 3.58538325696817e-05,
    9.225929643450368e-05, -0.00018276989824211033, -0.0010113540018224193, -0.0004041388756031271,
    0.00894241154156999, 0.039842587095755236, 0.10348908730018729, 0.19674278570136747, 0.2944648177232946,
    0.3580023023627799
)
_F32_ERFC_S = tuple(np.float32(c) for c in _F32_ERFC_S)
_F32_ERF_TAYLOR = tuple(
    np.float32(2.0 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1))) for n in range(10, -1, -1)
)
_F64_ERF_TAYLOR = tuple(
    2.0 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(18, -1, -1)
)
_erfc_s32, _erfc_s64 = _polynomial_estrin(_F32_ERFC_S, 4), _polynomial_estrin(_F64_ERFC_S, 4)
_erf_taylor32, _erf_taylor64 = _polynomial(_F32_ERF_TAYLOR), _polynomial(_F64_ERF_TAYLOR)
_F32_ERFC_ZERO, _F64_ERFC_ZERO = np.float32(11.0), 28.0  # erfc underflows to 0 beyond


def exp_neg_square(a, scale):
    """exp(-scale a^2) for a >= 0 (not NaN, not inf) and scale a power of two, without the
    error of rounding a^2, which exp would magnify a^2 times (in numba code)."""
    return math.exp(-scale * a * a)


# With FMA: a^2 = s + t exactly (t = fma(a, a, -s)), and exp(-scale (s + t)) =
# exp(-scale s) (1 - scale t), since |scale t| <= 2^-24 s (2^-53 s) is so small that the
# next term is below the precision for every a where exp is not 0. One exp.
def _exp_neg_square32_fma(a, scale):
    s = a * a
    e = _exp32(-(scale * s))
    return fma(e, -(scale * fma(a, a, -s)), e)


def _exp_neg_square64_fma(a, scale):
    s = a * a
    e = _exp64(-(scale * s))
    return fma(e, -(scale * fma(a, a, -s)), e)


# Without FMA (fma is then a multiply and an add, see fma): a = hi + lo with halves whose
# squares are exact, and two exps; the correction above would round twice.
def _exp_neg_square32_split(a, scale):
    hi = _float32_from_bits(_bits(a) & -4096)
    return _exp32(-(scale * (hi * hi))) * _exp32(-(scale * ((a - hi) * (a + hi))))


def _exp_neg_square64_split(a, scale):
    hi = _float64_from_bits(_bits(a) & -134217728)  # low 27 bits cleared
    return _exp64(-(scale * (hi * hi))) * _exp64(-(scale * ((a - hi) * (a + hi))))


def _by_width_and_fma(fma32, split32, fma64, split64):
    """An overload's typing function for f(a, scale): the variant for a's width and for
    whether the target CPU has FMA."""

    def typer(a, scale):
        from numba.core.registry import cpu_target

        if not isinstance(a, types.Float):
            return None
        fused = _fma_in_target(cpu_target.target_context)
        if a.bitwidth == 32:
            return fma32 if fused else split32
        return fma64 if fused else split64

    return typer


overload(exp_neg_square, inline="always")(_by_width_and_fma(
    _exp_neg_square32_fma, _exp_neg_square32_split, _exp_neg_square64_fma, _exp_neg_square64_split))


def exp_neg_square_split(a, scale):
    """exp(-scale a^2) as (m, k), m 2^k, as exp_split gives e^x: for a product whose 2^k is
    applied once at the end (in numba code). a >= 0, scale a power of two, -scale a^2 in
    exp_split's range."""
    return exp_split(-scale * a * a)


# the same two ways as exp_neg_square, the correction applied to the mantissa
def _exp_neg_square_split32_fma(a, scale):
    s = a * a
    m, k = _exp_split32(-(scale * s))
    return fma(m, -(scale * fma(a, a, -s)), m), k


def _exp_neg_square_split64_fma(a, scale):
    s = a * a
    m, k = _exp_split64(-(scale * s))
    return fma(m, -(scale * fma(a, a, -s)), m), k


def _exp_neg_square_split32_split(a, scale):
    hi = _float32_from_bits(_bits(a) & -4096)
    m1, k1 = _exp_split32(-(scale * (hi * hi)))
    m2, k2 = _exp_split32(-(scale * ((a - hi) * (a + hi))))
    return m1 * m2, k1 + k2


def _exp_neg_square_split64_split(a, scale):
    hi = _float64_from_bits(_bits(a) & -134217728)
    m1, k1 = _exp_split64(-(scale * (hi * hi)))
    m2, k2 = _exp_split64(-(scale * ((a - hi) * (a + hi))))
    return m1 * m2, k1 + k2


overload(exp_neg_square_split, inline="always")(_by_width_and_fma(
    _exp_neg_square_split32_fma, _exp_neg_square_split32_split,
    _exp_neg_square_split64_fma, _exp_neg_square_split64_split))


@inline_jitable
def _erfc_scaled32(x):
    # erfc(x) exp(x^2), x >= 0
    d = np.float32(3.0) + x
    return (np.float32(3.0) / d) * _erfc_s32((np.float32(3.0) - x) / d)


@inline_jitable
def _erfc_scaled64(x):
    d = 3.0 + x
    return (3.0 / d) * _erfc_s64((3.0 - x) / d)


@inline_jitable  # inlined before LLVM sees it: left to LLVM, erf stays a call
def _erfc_positive32(a):
    # erfc(a) for a >= 0 or NaN
    ac = a if a < _F32_ERFC_ZERO else _F32_ERFC_ZERO
    e = exp_neg_square(ac, np.float32(1.0)) * _erfc_scaled32(ac)
    e = e if a >= np.float32(0.5) else np.float32(1.0) - a * _erf_taylor32(a * a)
    return np.float32(0.0) if a >= _F32_ERFC_ZERO else e


@inline_jitable
def _erfc_positive64(a):
    ac = a if a < _F64_ERFC_ZERO else _F64_ERFC_ZERO
    e = exp_neg_square(ac, 1.0) * _erfc_scaled64(ac)
    e = e if a >= 0.5 else 1.0 - a * _erf_taylor64(a * a)
    return 0.0 if a >= _F64_ERFC_ZERO else e


@register_jitable
def _erfc32(x):
    e = _erfc_positive32(abs(x))
    return e if x >= np.float32(0.0) else np.float32(2.0) - e


@register_jitable
def _erfc64(x):
    e = _erfc_positive64(abs(x))
    return e if x >= 0.0 else 2.0 - e


@register_jitable
def _erf32(x):
    a = abs(x)
    near = x * _erf_taylor32(x * x)
    far = np.copysign(np.float32(1.0) - _erfc_positive32(a), x)
    return far if a >= np.float32(1.0) else near


@register_jitable
def _erf64(x):
    a = abs(x)
    near = x * _erf_taylor64(x * x)
    far = np.copysign(1.0 - _erfc_positive64(a), x)
    return far if a >= 1.0 else near


# --- softplus and log-sigmoid ---------------------------------------------------------------------
# softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e), e = e^-|x| in (0, 1]: never overflows,
# and keeps its relative accuracy where it is tiny (x << 0). logsigmoid(x) = -softplus(-x).
# On [0, 1], log1p(e) = e + e^2 Q(2e - 1), Q fitted by tools/fit_polynomials.py (fit error
# 1.5e-8 of Q for float32, 3e-17 for float64): the leading e is exact, the correction is
# at most 0.44 of the result, and there is no division; the general log1p (two divisions,
# the exponent taken apart) made softplus cost three sigmoids.

_F32_LOG1P_UNIT_Q = (
    5.471957017194043e-06, -1.7878429745443886e-05, 4.5216276874882866e-05, -0.00015127904174892285,
    0.0005250516096734956, -0.001810250511683717, 0.006385379816056457, -0.023307427229555387,
    0.08961246948895142, -0.37813957086093075
)
_F32_LOG1P_UNIT_Q = tuple(np.float32(c) for c in _F32_LOG1P_UNIT_Q)
_F64_LOG1P_UNIT_Q = (
    -2.1876198595496595e-11, 6.848793479502996e-11, -9.997873709207846e-11, 3.15723393354488e-10,
    -1.2581637488498596e-09, 3.9843915951692175e-09, -1.2332080241890691e-08, 3.933302127676199e-08,
    -1.262103514068782e-07, 4.060172891352897e-07, -1.3129821442926962e-06, 4.27271867815502e-06,
    -1.4006510768805742e-05, 4.632040896796652e-05, -0.000154842198578417, 0.0005246482021877381,
    -0.0018089489478267618, 0.006385430763207315, -0.02330759159091626, 0.08961246846801814,
    -0.37813956756734246
)
# Horner's steps for the last three terms: a sixth as many results 2 ulp off as Estrin's all the way
_log1p_unit_q32, _log1p_unit_q64 = _polynomial_estrin(_F32_LOG1P_UNIT_Q, 3), _polynomial_estrin(_F64_LOG1P_UNIT_Q, 3)


@inline_jitable  # as register_jitable, float64's 21 terms stay a call, and the loop scalar
def _log1p_exp_neg32(a):
    # log1p(e^-a) for a >= 0 or NaN
    e = _exp32(-a)
    return fma(e * e, _log1p_unit_q32(fma(np.float32(2.0), e, np.float32(-1.0))), e)


@inline_jitable
def _log1p_exp_neg64(a):
    # e^-a = 2^k (s + s_lo), s = 1 + p rounded and s_lo its rounding error (exact: |p| < 1).
    # Without s_lo, e's half ulp reached the result magnified where log1p(e) is in a lower
    # binade than e: 2 ulp, against 1 with it (float32: 2 either way, so it does without).
    k, r = _reduce64(max(-a, _F64_EXP_LO))
    p = _expm1_poly64(r)
    s = 1.0 + p
    s_lo = (1.0 - s) + p
    e, e_lo = _scale64(s, k), _scale64(s_lo, k)
    # log1p(e + e_lo) = log1p(e) + e_lo / (1 + e): the quotient to 12% is enough (|e_lo| < ulp)
    q = _log1p_unit_q64(fma(2.0, e, -1.0))
    return e + fma(e * e, q, e_lo * fma(-0.5, e, 1.0))


@register_jitable
def _softplus32(x):
    return max(x, np.float32(0.0)) + _log1p_exp_neg32(abs(x))


@register_jitable
def _softplus64(x):
    return max(x, 0.0) + _log1p_exp_neg64(abs(x))


@register_jitable
def _logsigmoid32(x):
    return min(x, np.float32(0.0)) - _log1p_exp_neg32(abs(x))


@register_jitable
def _logsigmoid64(x):
    return min(x, 0.0) - _log1p_exp_neg64(abs(x))


# --- x - tanh(x) ---------------------------------------------------------------------------------
# For |x| <= 1.5, x^3 T(x^2 / 1.125 - 1) with T fitted by tools/fit_polynomials.py: the
# subtraction cancels there (x - tanh(x) ~ x^3 / 3).

_F32_TANHSHRINK_T = (
    -8.701546970785435e-07, 2.7786175035052793e-06, -6.26234353724518e-06, 1.999719992963294e-05,
    -6.679274121928241e-05, 0.00021328565621107692, -0.0006795515267508672, 0.002169992506250475,
    -0.006930044556315551, 0.022137095170730415, -0.07085696065274305, 0.230249702013723
)
_F32_TANHSHRINK_T = tuple(np.float32(c) for c in _F32_TANHSHRINK_T)
_F64_TANHSHRINK_T = (
    3.271337278758641e-12, -1.0446182790732857e-11, 1.4547036025870876e-11, -4.645225620003546e-11,
    1.9535892785605769e-10, -6.238290021138901e-10, 1.9250278058310845e-09, -6.147086229086667e-09,
    1.9689112441087793e-08, -6.287216817491341e-08, 2.0073128802963582e-07, -6.409842666566952e-07,
    2.0468334484639778e-06, -6.536041544455576e-06, 2.0871181554779952e-05, -6.664680694049725e-05,
    0.0002128196527358922, -0.0006795862340067498, 0.0021701033349954047, -0.006930041560310504,
    0.022137085603752594, -0.07085696069441098, 0.23024970214677892
)
# float64 by Estrin (18% faster in cache); float32 measured 10% slower that way, so Horner
_tanhshrink_t32, _tanhshrink_t64 = _polynomial(_F32_TANHSHRINK_T), _polynomial_estrin(_F64_TANHSHRINK_T, 4)


@register_jitable
def _x_minus_tanh32(x):
    z = x * x
    near = x * z * _tanhshrink_t32((z - np.float32(1.125)) * np.float32(1.0 / 1.125))
    return near if abs(x) <= np.float32(1.5) else x - tanh(x)  # tanh: the inlined overload, below


@register_jitable
def _x_minus_tanh64(x):
    z = x * x
    near = x * z * _tanhshrink_t64((z - 1.125) * (1.0 / 1.125))
    return near if abs(x) <= 1.5 else x - tanh(x)


@register_jitable
def _exp_neg_half_square32(x):
    a = abs(x)
    a = a if a < _F32_ERFC_ZERO * np.float32(1.5) else _F32_ERFC_ZERO * np.float32(1.5)  # underflowed; NaN stays
    return exp_neg_square(a, np.float32(0.5))


@register_jitable
def _exp_neg_half_square64(x):
    a = abs(x)
    a = a if a < _F64_ERFC_ZERO * 1.5 else _F64_ERFC_ZERO * 1.5
    return exp_neg_square(a, 0.5)


# --- the public names: one function per operation, typed by its argument ----------------------


def exp(x):
    """e^x; in numba code, the vectorisable float32 / float64 version."""
    return math.exp(x)


def expm1(x):
    """e^x - 1, accurate near 0; in numba code, the vectorisable float32 / float64 version."""
    return math.expm1(x)


def exp_split(x):
    """(m, k) with e^x = m 2^k, m in [1/sqrt 2, sqrt 2] and k an integer, for x in
    [-120, 88] (float32) or [-1400, 709] (float64): x is not clamped. With scale_pow2,
    the 2^k of a product with e^x is applied once, at the end, so that a subnormal result
    (x e^x for x << 0) is rounded once instead of twice (in numba code)."""
    k = round(x * 1.4426950408889634)
    return math.exp(x - k * 0.6931471805599453), k


def scale_pow2(v, k):
    """v 2^k, rounded once (to a subnormal, to 0, or to inf) (in numba code)."""
    return math.ldexp(v, k)


@register_jitable
def _exp_split32(x):
    k, r = _reduce32(x)
    return np.float32(1.0) + _expm1_poly32(r), k


@register_jitable
def _exp_split64(x):
    k, r = _reduce64(x)
    return 1.0 + _expm1_poly64(r), k


@overload(exp_split, inline="always")
def _exp_split(x):
    if isinstance(x, types.Float):
        return _exp_split32 if x.bitwidth == 32 else _exp_split64
    return None


@overload(scale_pow2, inline="always")
def _scale_pow2(v, k):
    # k < 2^8 (float32) or 2^11 (float64) in magnitude, as _scale32 and _scale64 take it
    if isinstance(v, types.Float):
        return (lambda v, k: _scale32(v, k)) if v.bitwidth == 32 else (lambda v, k: _scale64(v, k))
    return None


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


# A function that calls one of these twice (sigmoid(x) * sigmoid(-x)) makes numba's pedantic
# IR check warn that an inlined helper's variable "is not in scope"; the compiled code is
# right (tests/test_math.py, and every activation's tests). Silenced for these helpers only.
warnings.filterwarnings(
    "ignore",
    message=r"variable '_(exp|expm1|tanh|sigmoid|log1p|log|erfc?|softplus|logsigmoid|x_minus_tanh|erfc_scaled"
    r"|exp_neg_half_square|exp_split|scale_pow2)(32|64)_",
    category=NumbaIRAssumptionWarning,
)

# inline="always": numba inlines the implementation into the caller's IR. Left to LLVM,
# a body as large as tanh's stays a call, and a loop that makes a call does not vectorise.
overload(exp, inline="always")(_by_width(_exp32, _exp64))
overload(expm1, inline="always")(_by_width(_expm1_32, _expm1_64))
overload(tanh, inline="always")(_by_width(_tanh32, _tanh64))
overload(sigmoid, inline="always")(_by_width(_sigmoid32, _sigmoid64))


def log1p(x):
    """log(1 + x), accurate near 0; in numba code, the vectorisable float32 / float64 version."""
    return math.log1p(x)


def log(x):
    """Natural logarithm; in numba code, the vectorisable version (log(0) = -inf, log(x < 0) = nan)."""
    return math.log(x)


def erf(x):
    """The error function; in numba code, the vectorisable version."""
    return math.erf(x)


def erfc(x):
    """1 - erf(x), accurate where it is tiny; in numba code, the vectorisable version."""
    return math.erfc(x)


def softplus(x):
    """log(1 + e^x), overflow-safe; in numba code, the vectorisable version."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def logsigmoid(x):
    """log(1 / (1 + e^-x)) = -softplus(-x), overflow-safe; in numba code, the vectorisable version."""
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


def x_minus_tanh(x):
    """x - tanh(x), without its cancellation near 0; in numba code, the vectorisable version."""
    return x - math.tanh(x)


def exp_neg_half_square(x):
    """exp(-x^2 / 2), without the error of rounding x^2 first; in numba code, the vectorisable version."""
    return math.exp(-0.5 * x * x)


def erfc_scaled(x):
    """exp(x^2) erfc(x) for x >= 0 (erfc(x) = exp(-x^2) erfc_scaled(x)); in numba code, the vectorisable version."""
    return math.exp(x * x) * math.erfc(x)


overload(x_minus_tanh, inline="always")(_by_width(_x_minus_tanh32, _x_minus_tanh64))
overload(exp_neg_half_square, inline="always")(_by_width(_exp_neg_half_square32, _exp_neg_half_square64))
overload(erfc_scaled, inline="always")(_by_width(_erfc_scaled32, _erfc_scaled64))
overload(log1p, inline="always")(_by_width(_log1p32, _log1p64))
overload(log, inline="always")(_by_width(_log32, _log64))
overload(erf, inline="always")(_by_width(_erf32, _erf64))
overload(erfc, inline="always")(_by_width(_erfc32, _erfc64))
overload(softplus, inline="always")(_by_width(_softplus32, _softplus64))
overload(logsigmoid, inline="always")(_by_width(_logsigmoid32, _logsigmoid64))


def lit(x, value):
    """value as a float of x's type: float32 code stays float32 (a Python float literal in
    numba is a float64, which would widen float32 arithmetic and halve its vector width)."""
    return value


def _lit(x, value):
    if isinstance(x, types.Float):
        ftype = np.float32 if x.bitwidth == 32 else np.float64
        return lambda x, value: ftype(value)
    if isinstance(x, types.Integer):
        return lambda x, value: np.float64(value)
    return None


overload(lit, inline="always")(_lit)


def pick(x, value32, value64):
    """value32 as a float32 when x is a float32, else value64 as a float64: a constant that
    depends on the precision (where a function has underflowed, say)."""
    return value64


def _pick(x, value32, value64):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x, value32, value64: np.float32(value32)
    if isinstance(x, (types.Float, types.Integer)):
        return lambda x, value32, value64: np.float64(value64)
    return None


overload(pick, inline="always")(_pick)
