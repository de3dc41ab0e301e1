"""The activations, one declaration each.

Each declaration gives the scalar forward, its derivative from x and, where the
output determines it, from y; then the parameters as torch.nn.functional names them.
Kernels, ufuncs, public functions, tests and benchmarks are all generated from these.

Conventions (PyTorch's autograd, see shared/FACTS.md): comparisons are written the way
PyTorch writes them, because that is what decides the value at a kink and at NaN.
``x < 0`` keeps ``relu(-0.0) = -0.0`` and ``relu(nan) = nan``.

The derivative at x = NaN has one rule: NaN, except where PyTorch's autograd gives one
finite answer on every code path: relu'(nan) = 1, leaky_relu'(nan) = negative_slope,
threshold'(nan) = 1 and hardsigmoid'(nan) = 0. Elsewhere PyTorch's answer depends on its
path (its elu'(nan) and hardtanh'(nan) are 1 on its scalar tail, NaN and 0 on its
vectorised loop), and NaN gives NaN.

The scalar functions are type-generic: numba compiles them for float32 and float64,
and the dispatch layer casts parameters to the array's dtype first, so a float32
array is computed in float32 (``x * negative_slope`` rounds as PyTorch's does).
Transcendental functions come from ``_math`` (vectorisable, error bounds measured), not
from ``math``, whose libm calls keep a loop from vectorising.
"""

from __future__ import annotations

import math

import numpy as np

from ._math import (
    erfc_scaled,
    exp,
    exp_neg_half_square,
    exp_neg_square_split,
    exp_split,
    expm1,
    fma,
    lit,
    log,
    logsigmoid,
    pick,
    scale_pow2,
    sigmoid,
    softplus,
    tanh,
    x_minus_tanh,
)
from ._registry import (
    PIECEWISE_LINEAR,
    REGISTRY,
    Check,
    Param,
    channelwise,
    elementwise,
    finite,
    finite_nonnegative,
    finite_nonzero,
    finite_positive,
    gated,
    inline_jitable,
    not_nan,
    reduction,
    rowwise,
    simplex,
)

# --- relu -------------------------------------------------------------------------


def relu(x):
    return 0.0 if x < 0.0 else x


def relu_grad(x):
    return 0.0 if x <= 0.0 else 1.0


def relu_grad_from_y(y):
    return 0.0 if y <= 0.0 else 1.0


elementwise(
    "relu",
    relu,
    relu_grad,
    grad2=PIECEWISE_LINEAR,
    grad2_from_y=PIECEWISE_LINEAR,
    grad_from_y=relu_grad_from_y,
    examples=(
        "array([0. , 0. , 1.5])",
        "array([0., 0., 1.])",
    ),
    formula="f(x) = max(x, 0)",
    derivative="f'(x) = 1 if x > 0 else 0 (0 at x = 0)",
    summary="Rectified linear unit.",
    numpy=lambda x: np.maximum(x, 0),
    numpy_grad=lambda g, x: g * (x > 0),
    torch_out=lambda aten, x, out: aten.clamp_min.out(x, 0.0, out=out),
    torch_grad_out=lambda aten, g, v, out, from_y: aten.threshold_backward.grad_input(g, v, 0.0, grad_input=out),
    torch_grad_from=("x", "y"),
)

# --- leaky_relu -------------------------------------------------------------------


def leaky_relu(x, negative_slope):
    return x if x > 0.0 else x * negative_slope


def leaky_relu_grad(x, negative_slope):
    return 1.0 if x > 0.0 else negative_slope


def leaky_relu_grad_from_y(y, negative_slope):
    return 1.0 if y > 0.0 else negative_slope


elementwise(
    "leaky_relu",
    leaky_relu,
    leaky_relu_grad,
    grad2=PIECEWISE_LINEAR,
    grad2_from_y=PIECEWISE_LINEAR,
    params=(Param("negative_slope", 0.01, finite),),
    grad_from_y=leaky_relu_grad_from_y,
    y_ok=lambda negative_slope: negative_slope > 0.0,
    y_condition="negative_slope > 0",
    examples=(
        "array([-0.02,  0.  ,  1.5 ])",
        "array([0.01, 0.01, 1.  ])",
    ),
    formula="f(x) = x if x > 0 else negative_slope * x",
    derivative="f'(x) = 1 if x > 0 else negative_slope (negative_slope at x = 0)",
    summary="Leaky rectified linear unit.",
    numpy=lambda x, s: np.where(x > 0, x, x * s),
    numpy_grad=lambda g, x, s: np.where(x > 0, g, g * s),
    torch_out=lambda aten, x, out, s: aten.leaky_relu.out(x, s, out=out),
    torch_grad_out=lambda aten, g, v, out, from_y, s: (
        aten.leaky_relu_backward.grad_input(
            g, v, s, from_y, grad_input=out)
    ),
    torch_grad_from=("x", "y"),
)

# --- elu --------------------------------------------------------------------------


# The exponential is computed before the comparison, not inside one arm of it: a
# value computed in one arm only is a branch that LLVM must speculate to vectorise, and
# for float64 it did not (the loop ran scalar, 3x slower).
def elu(x, alpha):
    negative = alpha * expm1(x)
    return negative if x <= 0.0 else x


def elu_grad(x, alpha):
    negative = alpha * exp(x)
    return 1.0 if x > 0.0 else negative


def elu_grad_from_y(y, alpha):
    # y = alpha * (exp(x) - 1) for x <= 0, so alpha * exp(x) = y + alpha
    return 1.0 if y > 0.0 else y + alpha


def elu_grad2(x, alpha):
    negative = alpha * exp(x)
    return lit(x, 0.0) if x > 0.0 else negative


def elu_grad2_from_y(y, alpha):
    return lit(y, 0.0) if y > 0.0 else lit(y, 1.0)


elementwise(
    "elu",
    elu,
    elu_grad,
    grad2=elu_grad2,
    grad2_from_y=elu_grad2_from_y,
    params=(Param("alpha", 1.0, finite),),
    grad_from_y=elu_grad_from_y,
    y_ok=lambda alpha: alpha > 0.0,
    y_condition="alpha > 0",
    examples=(
        "array([-0.86466472,  0.        ,  1.5       ])",
        "array([0.13533528, 1.        , 1.        ])",
    ),
    formula="f(x) = x if x > 0 else alpha * (exp(x) - 1)",
    derivative="f'(x) = 1 if x > 0 else alpha * exp(x) (alpha at x = 0)",
    summary="Exponential linear unit.",
    numpy=lambda x, a: np.where(x > 0, x, a * np.expm1(x)),
    numpy_grad=lambda g, x, a: np.where(x > 0, g, g * a * np.exp(x)),
    torch_out=lambda aten, x, out, a: aten.elu.out(x, a, 1.0, 1.0, out=out),
    torch_grad_out=lambda aten, g, v, out, from_y, a: (
        aten.elu_backward.grad_input(
            g, a, 1.0, 1.0, from_y, v, grad_input=out)
    ),
    torch_grad_from=("x", "y"),
)

# --- prelu: leaky_relu with a learned slope per channel -----------------------------


def prelu_grad_weight(x, weight):
    # d/dweight of (x if x > 0 else weight * x)
    return 0.0 if x > 0.0 else x


def _prelu_numpy_grad(g, x, w):
    # both results of prelu_backward, as NumPy would write them: grad_x, and the weight's
    # gradient summed over every axis along which w (shaped to broadcast) has length 1
    axes = tuple(i for i, n in enumerate(w.shape) if n == 1)
    return np.where(x > 0, g, g * w), (g * np.minimum(x, 0)).sum(axis=axes)


channelwise(
    "prelu",
    leaky_relu,
    leaky_relu_grad,
    prelu_grad_weight,
    examples=(
        "array([[-0.5 ,  1.5 ],\n       [-0.25,  0.5 ]])",
        "(array([[0.25, 1.  ],\n       [0.25, 1.  ]]), array([-3.,  0.]))",
    ),
    formula="f(x) = x if x > 0 else weight[c] * x, c the index along axis",
    derivative=(
        "df/dx = 1 if x > 0 else weight[c] (weight[c] at x = 0); "
        "df/dweight[c] = 0 if x > 0 else x, summed over all but axis"
    ),
    summary="Parametric ReLU with one slope per channel.",
    numpy=lambda x, w: np.where(x > 0, x, w * x),  # w shaped to broadcast along the axis
    numpy_grad=_prelu_numpy_grad,
    torch_out=lambda aten, x, out, w: aten._prelu_kernel.default(x, w),
    torch_grad_out=lambda aten, g, x, out, from_y, w: aten._prelu_kernel_backward.default(g, x, w)[0],
)


# --- the ELU relatives --------------------------------------------------------------------

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    negative = lit(x, SELU_ALPHA * SELU_SCALE) * expm1(x)
    return negative if x <= 0.0 else lit(x, SELU_SCALE) * x


def selu_grad(x):
    negative = lit(x, SELU_ALPHA * SELU_SCALE) * exp(x)
    return lit(x, SELU_SCALE) if x > 0.0 else negative


def selu_grad_from_y(y):
    return lit(y, SELU_SCALE) if y > 0.0 else y + lit(y, SELU_ALPHA * SELU_SCALE)


def selu_grad2(x):
    negative = lit(x, SELU_ALPHA * SELU_SCALE) * exp(x)
    return lit(x, 0.0) if x > 0.0 else negative


def selu_grad2_from_y(y):
    return lit(y, 0.0) if y > 0.0 else lit(y, 1.0)


elementwise(
    "selu",
    selu,
    selu_grad,
    grad2=selu_grad2,
    grad2_from_y=selu_grad2_from_y,
    grad_from_y=selu_grad_from_y,
    examples=(
        "array([-1.52016647,  0.        ,  1.57605148])",
        "array([0.23793287, 1.75809934, 1.05070099])",
    ),
    formula=f"f(x) = scale * (x if x > 0 else alpha * (exp(x) - 1)), alpha = {SELU_ALPHA}, scale = {SELU_SCALE}",
    derivative="f'(x) = scale if x > 0 else scale * alpha * exp(x) (scale * alpha at x = 0)",
    summary="Scaled exponential linear unit (self-normalising).",
    numpy=lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    numpy_grad=lambda g, x: g * np.where(x > 0, SELU_SCALE, SELU_SCALE * SELU_ALPHA * np.exp(x)),
    torch_out=lambda aten, x, out: aten.elu.out(x, SELU_ALPHA, SELU_SCALE, 1.0, out=out),
    torch_grad_out=lambda aten, g, v, out, from_y: (
        aten.elu_backward.grad_input(
            g, SELU_ALPHA, SELU_SCALE, 1.0, from_y, v, grad_input=out)
    ),
    torch_grad_from=("x", "y"),
)


def celu(x, alpha):
    # q = x / alpha and its rounding error lo: e^(q + lo) - 1 = expm1(q) + e^q lo. For
    # alpha < 0, q is large and positive and exp magnifies the rounding of q by q (44 ulp
    # in float32, 192 in float64 without lo); for alpha > 0 the term is below an ulp
    q = x / alpha
    lo = fma(-q, alpha, x) / alpha
    em = expm1(q)
    t = em + (em + lit(x, 1.0)) * lo
    # em alone where lo is 0 (which keeps expm1(-0.0) = -0.0), NaN (x = -inf) or where em
    # overflowed (inf - inf)
    negative = alpha * (t if (t == t) & (lo != 0.0) else em)
    return negative if x <= 0.0 else x


def celu_grad(x, alpha):
    negative = exp(x / alpha)
    return lit(x, 1.0) if x > 0.0 else negative


def celu_grad_from_y(y, alpha):
    # y = alpha * (exp(x / alpha) - 1) for x <= 0
    return lit(y, 1.0) if y > 0.0 else (y + alpha) / alpha


def celu_grad2(x, alpha):
    negative = exp(x / alpha) / alpha
    return lit(x, 0.0) if x > 0.0 else negative


def celu_grad2_from_y(y, alpha):
    return lit(y, 0.0) if y > 0.0 else lit(y, 1.0) / alpha


elementwise(
    "celu",
    celu,
    celu_grad,
    grad2=celu_grad2,
    grad2_from_y=celu_grad2_from_y,
    params=(Param("alpha", 1.0, finite_nonzero),),
    grad_from_y=celu_grad_from_y,
    y_ok=lambda alpha: alpha > 0.0,
    y_condition="alpha > 0",
    examples=(
        "array([-0.86466472,  0.        ,  1.5       ])",
        "array([0.13533528, 1.        , 1.        ])",
    ),
    formula="f(x) = x if x > 0 else alpha * (exp(x / alpha) - 1)",
    derivative="f'(x) = 1 if x > 0 else exp(x / alpha) (1 at x = 0)",
    summary="Continuously differentiable exponential linear unit.",
    numpy=lambda x, a: np.where(x > 0, x, a * np.expm1(x / a)),
    numpy_grad=lambda g, x, a: g * np.where(x > 0, 1.0, np.exp(x / a)),
    torch_out=lambda aten, x, out, a: aten.elu.out(x, a, 1.0, 1.0 / a, out=out),
    torch_grad_out=lambda aten, g, v, out, from_y, a: (
        aten.elu_backward.grad_input(
            g, a, 1.0, 1.0 / a, from_y, v, grad_input=out)
    ),
    torch_grad_from=("x", "y"),
)

# --- the sigmoid family ----------------------------------------------------------------------
# A scalar function calls each _math function at most once (twice trips a pedantic check in
# numba's IR inliner, a warning that -W error would make fatal); _sigmoid_pair gives both
# sigmoid(x) and sigmoid(-x). Where a derivative multiplies x by something that tends to 0, x is first clamped to where
# that factor has underflowed (so x = +-inf gives the limit, not inf * 0 = nan); the clamps
# are written so that NaN stays NaN.

_SIG_CLAMP32, _SIG_CLAMP64 = 120.0, 760.0  # e^-x underflows to 0 beyond


@inline_jitable
def _clamp_sig(x):
    c = pick(x, _SIG_CLAMP32, _SIG_CLAMP64)
    x = c if x > c else x
    return -c if x < -c else x


@inline_jitable
def _sigmoid_pair(x):
    # sigmoid(x) and sigmoid(-x) = 1 - sigmoid(x), from one exponential, neither cancelling
    e = exp(-abs(x))
    d = lit(x, 1.0) + e
    big, small = lit(x, 1.0) / d, e / d
    return (big if x >= 0.0 else small), (small if x >= 0.0 else big)


def sigmoid_(x):
    return sigmoid(x)


def sigmoid_grad(x):
    # s (1 - s) = e / (1 + e)^2, e = exp(-|x|): no cancellation, one division (not two)
    e = exp(-abs(x))
    d = lit(x, 1.0) + e
    return e / (d * d)


def sigmoid_grad_from_y(y):
    return y * (lit(y, 1.0) - y)


def sigmoid_grad2(x):
    # s (1 - s) (1 - 2 s), with 1 - 2 s as (1 - s) - s: neither factor cancels
    s, t = _sigmoid_pair(x)
    return s * t * (t - s)


def sigmoid_grad2_from_y(y):
    return lit(y, 1.0) - lit(y, 2.0) * y


elementwise(
    "sigmoid",
    sigmoid_,
    sigmoid_grad,
    grad2=sigmoid_grad2,
    grad2_from_y=sigmoid_grad2_from_y,
    grad_from_y=sigmoid_grad_from_y,
    examples=(
        "array([0.11920292, 0.5       , 0.81757448])",
        "array([0.10499359, 0.25      , 0.14914645])",
    ),
    formula="f(x) = 1 / (1 + exp(-x))",
    derivative="f'(x) = f(x) * (1 - f(x))",
    summary="Logistic sigmoid.",
    numpy=lambda x: 1 / (1 + np.exp(-x)),
    numpy_grad=lambda g, x: g * (s := 1 / (1 + np.exp(-x))) * (1 - s),
    torch_out=lambda aten, x, out: aten.sigmoid.out(x, out=out),
    torch_grad_out=lambda aten, g, y, out, from_y: aten.sigmoid_backward.grad_input(g, y, grad_input=out),
    torch_grad_from=("y",),
)


def tanh_(x):
    return tanh(x)


def tanh_grad(x):
    # 1 - tanh(x)^2 = 4 m / (1 + m)^2, m = exp(-2|x|): accurate where tanh(x) is near +-1
    a = abs(_clamp_sig(x))
    m = exp(lit(x, -2.0) * a)
    d = lit(x, 1.0) + m
    return lit(x, 4.0) * m / (d * d)


def tanh_grad_from_y(y):
    return lit(y, 1.0) - y * y


def tanh_grad2(x):
    return lit(x, -2.0) * tanh(x) * tanh_grad(x)


def tanh_grad2_from_y(y):
    return lit(y, -2.0) * y


elementwise(
    "tanh",
    tanh_,
    tanh_grad,
    grad2=tanh_grad2,
    grad2_from_y=tanh_grad2_from_y,
    grad_from_y=tanh_grad_from_y,
    examples=(
        "array([-0.96402758,  0.        ,  0.90514825])",
        "array([0.07065082, 1.        , 0.18070664])",
    ),
    formula="f(x) = tanh(x)",
    derivative="f'(x) = 1 - tanh(x)^2",
    summary="Hyperbolic tangent.",
    numpy=np.tanh,
    numpy_grad=lambda g, x: g * (1 - np.tanh(x) ** 2),
    torch_out=lambda aten, x, out: aten.tanh.out(x, out=out),
    torch_grad_out=lambda aten, g, y, out, from_y: aten.tanh_backward.grad_input(g, y, grad_input=out),
    torch_grad_from=("y",),
)


def silu(x):
    # x / (1 + e) for x >= 0 and x e / (1 + e) for x < 0, e = exp(-|x|) = m 2^k: the 2^k is
    # applied last, so a subnormal result (x << 0) is rounded once; x times an already
    # subnormal sigmoid(x) rounded twice (52 ulp at x = -104 in float32). x = -inf gives
    # -0.0 (the product underflows with its sign), not -inf * 0
    xc = _clamp_sig(x)
    m, k = exp_split(-abs(xc))
    d = lit(x, 1.0) + scale_pow2(m, k)
    positive = x / d
    # x (m / d) 2^k: where e is normal, m / d 2^k is e / (1 + e) exactly, so this rounds as
    # x sigmoid(x) did; where the result is subnormal, only the last product rounds it
    negative = scale_pow2(xc * (m / d), k)
    return positive if x >= 0.0 else negative


def silu_grad(x):
    # s (1 + x (1 - s)), s = sigmoid(x), is (d + x e) / d^2 for x >= 0 and e (d + x) / d^2
    # for x < 0, with e = exp(-|x|) = m 2^k and d = 1 + e: one division (the two
    # sigmoids took two), and as in silu the 2^k of x < 0 applied last
    xc = _clamp_sig(x)
    m, k = exp_split(-abs(xc))
    e = scale_pow2(m, k)
    d = lit(x, 1.0) + e
    q = (fma(xc, e, d) if x >= 0.0 else m * (d + xc)) / (d * d)
    return q if x >= 0.0 else scale_pow2(q, k)


def silu_grad2(x):
    # s (1 - s) (2 + x (1 - 2 s))
    xc = _clamp_sig(x)
    s, t = _sigmoid_pair(xc)
    return s * t * (lit(x, 2.0) + xc * (t - s))


elementwise(
    "silu",
    silu,
    silu_grad,
    grad2=silu_grad2,
    examples=(
        "array([-0.23840584,  0.        ,  1.22636171])",
        "array([-0.09078425,  0.5       ,  1.04129415])",
    ),
    formula="f(x) = x * sigmoid(x)",
    derivative="f'(x) = sigmoid(x) * (1 + x * (1 - sigmoid(x)))",
    summary="Sigmoid-weighted linear unit (swish).",
    numpy=lambda x: x / (1 + np.exp(-x)),
    numpy_grad=lambda g, x: g * (s := 1 / (1 + np.exp(-x))) * (1 + x * (1 - s)),
    torch_out=lambda aten, x, out: aten.silu.out(x, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y: aten.silu_backward.grad_input(g, x, grad_input=out),
)

_MISH_CLAMP32, _MISH_CLAMP64 = 20.0, 40.0  # tanh(softplus(x)) is 1 to the dtype's precision beyond


@inline_jitable
def _mish_parts(x):
    # tanh(softplus(x)) = n / (n + 2), n = e^x (e^x + 2); and 1 - that = 2 / (n + 2)
    c = pick(x, _MISH_CLAMP32, _MISH_CLAMP64)
    e = exp(c if x > c else x)
    n = e * (e + lit(x, 2.0))
    d = n + lit(x, 2.0)
    return n / d, lit(x, 2.0) / d


def mish(x):
    # x n / (n + 2), n = e (e + 2), e = exp(x) = m 2^k: for x < 0, x m (e + 2) / (n + 2)
    # with the 2^k applied last, as in silu (a subnormal result rounded once)
    xc = _clamp_sig(x)
    c = pick(x, _MISH_CLAMP32, _MISH_CLAMP64)
    m, k = exp_split(c if xc > c else xc)
    e = scale_pow2(m, k)
    e2 = e + lit(x, 2.0)
    d = e * e2 + lit(x, 2.0)
    positive = x * (e * e2 / d)
    negative = scale_pow2(xc * (m * e2 / d), k)  # as x tanh(softplus(x)) rounded, where e is normal
    return positive if x >= 0.0 else negative


def mish_grad(x):
    xc = _clamp_sig(x)
    t, one_minus_t = _mish_parts(xc)
    return t + xc * sigmoid(xc) * one_minus_t * (lit(x, 1.0) + t)


def mish_grad2(x):
    # with T = tanh(softplus(x)), s = sigmoid(x): (1 - T^2) s (2 + x (1 - s - 2 T s))
    xc = _clamp_sig(x)
    t, one_minus_t = _mish_parts(xc)
    s = sigmoid(xc)
    return one_minus_t * (lit(x, 1.0) + t) * s * (lit(x, 2.0) + xc * (lit(x, 1.0) - s - lit(x, 2.0) * t * s))


elementwise(
    "mish",
    mish,
    mish_grad,
    grad2=mish_grad2,
    examples=(
        "array([-0.25250148,  0.        ,  1.40337827])",
        "array([-0.10835509,  0.6       ,  1.08848799])",
    ),
    formula="f(x) = x * tanh(softplus(x))",
    derivative="f'(x) = tanh(softplus(x)) + x * sigmoid(x) * (1 - tanh(softplus(x))^2)",
    summary="Mish: a self-regularised non-monotonic activation.",
    numpy=lambda x: x * np.tanh(np.logaddexp(0, x)),
    numpy_grad=lambda g, x: g * ((t := np.tanh(np.logaddexp(0, x))) + x / (1 + np.exp(-x)) * (1 - t * t)),
    torch_out=lambda aten, x, out: aten.mish.out(x, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y: aten.mish_backward(g, x),
)


def softplus_(x, beta, threshold):
    z = x * beta
    # beta is the same for the whole array: the test is hoisted out of the loop, and the
    # default beta = 1 pays no division (x / 1 is x, so the results are the same)
    y = softplus(z)
    if beta != 1.0:
        y = y / beta
    return x if z > threshold else y


def softplus_grad(x, beta, threshold):
    z = x * beta
    s = sigmoid(z)
    return lit(x, 1.0) if z > threshold else s


def softplus_grad2(x, beta, threshold):
    z = x * beta
    s, t = _sigmoid_pair(z)
    return lit(x, 0.0) if z > threshold else beta * (s * t)


elementwise(
    "softplus",
    softplus_,
    softplus_grad,
    grad2=softplus_grad2,
    params=(Param("beta", 1.0, finite_nonzero), Param("threshold", 20.0, not_nan)),
    examples=(
        "array([0.12692801, 0.69314718, 1.70141328])",
        "array([0.11920292, 0.5       , 0.81757448])",
    ),
    formula="f(x) = log(1 + exp(beta * x)) / beta, or x where beta * x > threshold",
    derivative="f'(x) = sigmoid(beta * x), or 1 where beta * x > threshold",
    summary="Softplus, a smooth ReLU (computed without overflow for any threshold).",
    numpy=lambda x, b, t: np.where(x * b > t, x, np.logaddexp(0, x * b) / b),
    numpy_grad=lambda g, x, b, t: g * np.where(x * b > t, 1.0, 1 / (1 + np.exp(-x * b))),
    torch_out=lambda aten, x, out, b, t: aten.softplus.out(x, b, t, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y, b, t: aten.softplus_backward.grad_input(g, x, b, t, grad_input=out),
)


_LOG_SIGMOID_BUFFERS: dict = {}


def _torch_log_sigmoid_buffer(x):
    """The buffer that PyTorch's log_sigmoid_forward fills and its backward reads, made once
    per input tensor (a training step's forward makes it once): its peers then write into
    existing memory, as fastact does."""
    key = (x.data_ptr(), tuple(x.shape), x.dtype)
    if key not in _LOG_SIGMOID_BUFFERS:
        import torch

        _LOG_SIGMOID_BUFFERS.clear()
        _LOG_SIGMOID_BUFFERS[key] = torch.ops.aten.log_sigmoid_forward.default(x)[1]
    return _LOG_SIGMOID_BUFFERS[key]


def logsigmoid_(x):
    return logsigmoid(x)


def logsigmoid_grad(x):
    return sigmoid(-x)


def logsigmoid_grad2(x):
    s, t = _sigmoid_pair(x)
    return -(s * t)


elementwise(
    "logsigmoid",
    logsigmoid_,
    logsigmoid_grad,
    grad2=logsigmoid_grad2,
    examples=(
        "array([-2.12692801, -0.69314718, -0.20141328])",
        "array([0.88079708, 0.5       , 0.18242552])",
    ),
    formula="f(x) = log(sigmoid(x)) = -softplus(-x)",
    derivative="f'(x) = 1 - sigmoid(x) = sigmoid(-x)",
    summary="Logarithm of the sigmoid (computed without overflow).",
    numpy=lambda x: -np.logaddexp(0, -x),
    numpy_grad=lambda g, x: g / (1 + np.exp(x)),
    torch_out=lambda aten, x, out: aten.log_sigmoid_forward.output(
        x, output=out, buffer=_torch_log_sigmoid_buffer(x))[0],
    torch_grad_out=lambda aten, g, x, out, from_y: aten.log_sigmoid_backward.grad_input(
        g, x, _torch_log_sigmoid_buffer(x), grad_input=out),
)

# --- gelu ------------------------------------------------------------------------------------

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715
_GELU_CLAMP32, _GELU_CLAMP64 = 20.0, 40.0  # gelu (both forms) and its derivative are x or 0, and 1 or 0, beyond


@inline_jitable
def _gelu_erf_parts(x):
    # Phi(x) = erfc(-x / sqrt 2) / 2, and the normal density. The tail erfc(|x| / sqrt 2) / 2 =
    # exp(-x^2 / 2) erfc_scaled(|x| / sqrt 2) / 2 keeps its relative accuracy for x << 0.
    c = pick(x, _GELU_CLAMP32, _GELU_CLAMP64)  # Phi is 0 or 1 and the density 0 beyond
    a = abs(x)
    a = c if a > c else a
    e = exp_neg_half_square(a)
    tail = lit(x, 0.5) * e * erfc_scaled(a * lit(x, _SQRT_HALF))
    phi_cdf = tail if x < 0.0 else lit(x, 1.0) - tail
    return phi_cdf, e * lit(x, _INV_SQRT_2PI)


@inline_jitable
def _gelu_tanh_u2(x):
    # 2u, where 0.5 (1 + tanh(u)) = sigmoid(2u): the sigmoid form has no cancellation for x << 0
    return lit(x, 2.0 * _SQRT_2_OVER_PI) * (x + lit(x, _GELU_C) * (x * x * x))


# 2u = K x + K C x^3 as a pair of floats (K = 2 sqrt(2 / pi), C = 0.044715, each constant
# as hi + lo too): sigmoid(2u) ~ e^(2u) for x << 0 multiplies the relative error of 2u by
# |2u| (up to ~100), which a 2u rounded in the working precision turned into 178 ulp
# (float32) and 625 ulp (float64); with its rounding error kept, e^(2u + lo) = e^(2u) (1 + lo).
_GELU_K32, _GELU_KC32 = (1.5957691669464111, -4.534068054340423e-08), (0.07135481387376785, 2.3988324659995897e-09)
_GELU_K64, _GELU_KC64 = (1.5957691216057308, -9.96930880911092e-17), (0.07135481627260025, -6.175149918155315e-19)


@inline_jitable
def _gelu_tanh_u2_pair(x):
    k_hi, k_lo = pick(x, _GELU_K32[0], _GELU_K64[0]), pick(x, _GELU_K32[1], _GELU_K64[1])
    kc_hi, kc_lo = pick(x, _GELU_KC32[0], _GELU_KC64[0]), pick(x, _GELU_KC32[1], _GELU_KC64[1])
    p = k_hi * x
    p_lo = fma(k_hi, x, -p) + k_lo * x
    x2 = x * x
    x3 = x2 * x
    x3_lo = fma(x2, x, -x3) + fma(x, x, -x2) * x
    q = kc_hi * x3
    q_lo = fma(kc_hi, x3, -q) + (kc_lo * x3 + kc_hi * x3_lo)
    u2 = p + q
    b = u2 - p  # TwoSum: u2 + (p - (u2 - b)) + (q - b) is p + q exactly
    return u2, ((p - (u2 - b)) + (q - b)) + (p_lo + q_lo)


# Where the forward is 0 (x Phi(x), x sigmoid(2u) underflow) or x: clamps that keep 2^k
# within what scale_pow2 takes
_GELU_ERF_CLAMP32, _GELU_ERF_CLAMP64 = 14.5, 39.0
_GELU_TANH_CLAMP32, _GELU_TANH_CLAMP64 = 12.0, 26.0


def gelu(x, approximate):
    # approximate is 0.0 ("none") or 1.0 ("tanh"): the same for the whole array, so the
    # branch is hoisted out of the loop and each form vectorises on its own. For x < 0 the
    # result is x times a factor m 2^k with the 2^k applied last, so a subnormal result is
    # rounded once (as in silu: x times an already subnormal Phi(x) rounded twice)
    if approximate == 0.0:
        # x Phi(x); Phi(-a) = exp(-a^2 / 2) erfc_scaled(a / sqrt 2) / 2 = h 2^k
        c = pick(x, _GELU_ERF_CLAMP32, _GELU_ERF_CLAMP64)
        xc = -c if x < -c else x
        a = abs(xc)
        a = c if a > c else a
        m, k = exp_neg_square_split(a, lit(x, 0.5))
        h = lit(x, 0.5) * m * erfc_scaled(a * lit(x, _SQRT_HALF))
        positive = x * (lit(x, 1.0) - scale_pow2(h, k))
        negative = scale_pow2(xc * h, k)
        return positive if x >= 0.0 else negative
    # x sigmoid(2u), e^(-|2u|) = m 2^k with 2u's rounding error put back into m
    c = pick(x, _GELU_TANH_CLAMP32, _GELU_TANH_CLAMP64)
    xc = c if x > c else x
    xc = -c if xc < -c else xc
    u2, lo = _gelu_tanh_u2_pair(xc)
    m, k = exp_split(-abs(u2))
    m = fma(m, lo if x < 0.0 else -lo, m)
    q = lit(x, 1.0) / (lit(x, 1.0) + scale_pow2(m, k))
    positive = x * q
    negative = scale_pow2(xc * m * q, k)
    return positive if x >= 0.0 else negative


def gelu_grad(x, approximate):
    if approximate == 0.0:
        phi_cdf, density = _gelu_erf_parts(x)
        xc = _clamp_sig(x)  # the density has underflowed there: x * 0, not inf * 0
        return phi_cdf + xc * density
    c = pick(x, _GELU_CLAMP32, _GELU_CLAMP64)
    xc = c if x > c else x
    xc = -c if xc < -c else xc
    s, t = _sigmoid_pair(_gelu_tanh_u2(xc))
    du2 = lit(x, 2.0 * _SQRT_2_OVER_PI) * (lit(x, 1.0) + lit(x, 3.0 * _GELU_C) * (xc * xc))
    return s + xc * (s * t) * du2


def _np_erf(x):
    """erf as a NumPy user has it: SciPy's ufunc where SciPy is installed (NumPy has none),
    else math.erf element by element."""
    try:
        from scipy.special import erf
    except ImportError:
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return erf(x)


def _np_gelu(x, approximate="none"):
    if approximate in ("none", 0.0):
        return 0.5 * x * (1 + _np_erf(x / math.sqrt(2)))
    return 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x**3)))


def _np_gelu_grad(g, x, approximate="none"):
    if approximate in ("none", 0.0):
        cdf = 0.5 * (1 + _np_erf(x / math.sqrt(2)))
        return g * (cdf + x * np.exp(-0.5 * x * x) * _INV_SQRT_2PI)
    t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x**3))
    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x * x))


def gelu_grad2(x, approximate):
    # "none": density (2 - x^2); "tanh": with t = tanh(u) and u = sqrt(2 / pi) (x + 0.044715 x^3),
    # (1 - t^2) (u' - x t u'^2 + x u'' / 2), 1 +- t written through sigmoid(+-2u) as in gelu_grad
    c = pick(x, _GELU_CLAMP32, _GELU_CLAMP64)
    xc = c if x > c else x
    xc = -c if xc < -c else xc
    if approximate == 0.0:
        return exp_neg_half_square(abs(xc)) * lit(x, _INV_SQRT_2PI) * (lit(x, 2.0) - xc * xc)
    s, t = _sigmoid_pair(_gelu_tanh_u2(xc))
    du = lit(x, _SQRT_2_OVER_PI) * (lit(x, 1.0) + lit(x, 3.0 * _GELU_C) * (xc * xc))
    half_x_d2u = lit(x, 3.0 * _SQRT_2_OVER_PI * _GELU_C) * (xc * xc)
    return lit(x, 4.0) * (s * t) * (du - xc * (s - t) * du * du + half_x_d2u)


elementwise(
    "gelu",
    gelu,
    gelu_grad,
    grad2=gelu_grad2,
    params=(Param("approximate", "none", choices=("none", "tanh")),),
    examples=(
        "array([-0.04550026,  0.        ,  1.3997892 ])",
        "array([-0.0852318 ,  0.5       ,  1.12746919])",
    ),
    formula=(
        "f(x) = x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2))); approximate='tanh': "
        "x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))"
    ),
    derivative=(
        "f'(x) = Phi(x) + x * exp(-x^2 / 2) / sqrt(2 pi); approximate='tanh': the derivative of that "
        "formula, 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2 / pi) (1 + 3 * 0.044715 x^2)"
    ),
    summary="Gaussian error linear unit (exact, or the tanh approximation).",
    numpy=_np_gelu,
    numpy_grad=_np_gelu_grad,
    torch_out=lambda aten, x, out, approximate: aten.gelu.out(x, approximate=approximate, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y, approximate: aten.gelu_backward.grad_input(
        g, x, approximate=approximate, grad_input=out),
)

# --- piecewise linear ------------------------------------------------------------------------
# PyTorch's autograd gives 0 at the bounds, and at NaN (shared/FACTS.md).


def _ordered(min_val, max_val):
    return min_val <= max_val


def hardtanh(x, min_val, max_val):
    return min_val if x < min_val else (max_val if x > max_val else x)


def hardtanh_grad(x, min_val, max_val):
    inside = (lit(x, 1.0) if x < max_val else lit(x, 0.0)) if x > min_val else lit(x, 0.0)
    return inside if x == x else x  # NaN: NaN (see the module's docstring)


elementwise(
    "hardtanh",
    hardtanh,
    hardtanh_grad,
    grad2=PIECEWISE_LINEAR,
    params=(Param("min_val", -1.0, not_nan), Param("max_val", 1.0, not_nan)),
    params_check=Check(_ordered, lambda lo, hi: f"min_val ({lo}) must not be greater than max_val ({hi})"),
    examples=(
        "array([-1.,  0.,  1.])",
        "array([0., 1., 0.])",
    ),
    formula="f(x) = min(max(x, min_val), max_val)",
    derivative="f'(x) = 1 if min_val < x < max_val else 0 (0 at both bounds)",
    summary="Hard tanh: x clipped to [min_val, max_val].",
    numpy=lambda x, lo, hi: np.clip(x, lo, hi),
    numpy_grad=lambda g, x, lo, hi: g * ((x > lo) & (x < hi)),
    torch_out=lambda aten, x, out, lo, hi: aten.hardtanh.out(x, lo, hi, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y, lo, hi: (
        aten.hardtanh_backward.grad_input(
            g, x, lo, hi, grad_input=out)
    ),
)


def relu6(x):
    return lit(x, 0.0) if x < 0.0 else (lit(x, 6.0) if x > 6.0 else x)


def relu6_grad(x):
    inside = (lit(x, 1.0) if x < 6.0 else lit(x, 0.0)) if x > 0.0 else lit(x, 0.0)
    return inside if x == x else x


elementwise(
    "relu6",
    relu6,
    relu6_grad,
    grad2=PIECEWISE_LINEAR,
    examples=(
        "array([0. , 0. , 1.5])",
        "array([0., 0., 1.])",
    ),
    formula="f(x) = min(max(x, 0), 6)",
    derivative="f'(x) = 1 if 0 < x < 6 else 0 (0 at 0 and at 6)",
    summary="ReLU capped at 6.",
    numpy=lambda x: np.clip(x, 0, 6),
    numpy_grad=lambda g, x: g * ((x > 0) & (x < 6)),
    torch_out=lambda aten, x, out: aten.hardtanh.out(x, 0.0, 6.0, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y: aten.hardtanh_backward.grad_input(g, x, 0.0, 6.0, grad_input=out),
)


def hardsigmoid(x):
    v = x + lit(x, 3.0)
    v = lit(x, 0.0) if v < 0.0 else (lit(x, 6.0) if v > 6.0 else v)
    return v / lit(x, 6.0)


def hardsigmoid_grad(x):
    return (lit(x, 1.0 / 6.0) if x < 3.0 else lit(x, 0.0)) if x > -3.0 else lit(x, 0.0)


elementwise(
    "hardsigmoid",
    hardsigmoid,
    hardsigmoid_grad,
    grad2=PIECEWISE_LINEAR,
    examples=(
        "array([0.16666667, 0.5       , 0.75      ])",
        "array([0.16666667, 0.16666667, 0.16666667])",
    ),
    formula="f(x) = min(max(x + 3, 0), 6) / 6",
    derivative="f'(x) = 1/6 if -3 < x < 3 else 0 (0 at -3 and 3)",
    summary="Piecewise-linear sigmoid.",
    numpy=lambda x: np.clip(x + 3, 0, 6) / 6,
    numpy_grad=lambda g, x: g * np.where((x > -3) & (x < 3), 1 / 6, 0.0),
    torch_out=lambda aten, x, out: aten.hardsigmoid.out(x, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y: aten.hardsigmoid_backward.grad_input(g, x, grad_input=out),
)


def hardswish(x):
    v = x + lit(x, 3.0)
    v = lit(x, 0.0) if v < 0.0 else (lit(x, 6.0) if v > 6.0 else v)
    y = x * (v / lit(x, 6.0))  # not (x * v) / 6, which overflows for x near the largest float
    return lit(x, -0.0) if x <= -3.0 else y  # the limit -0.0 for x = -inf too, not -inf * 0


def hardswish_grad(x):
    inside = x / lit(x, 3.0) + lit(x, 0.5)
    return lit(x, 0.0) if x <= -3.0 else (lit(x, 1.0) if x >= 3.0 else inside)


def hardswish_grad2(x):
    return (lit(x, 1.0 / 3.0) if x < 3.0 else lit(x, 0.0)) if x > -3.0 else lit(x, 0.0)


# what hardswish and hard_silu (JAX's and Keras's name for it) share
_HARDSWISH = dict(
    grad2=hardswish_grad2,
    examples=(
        "array([-0.33333333,  0.        ,  1.125     ])",
        "array([-0.16666667,  0.5       ,  1.        ])",
    ),
    derivative="f'(x) = 0 if x <= -3, 1 if x >= 3, else x / 3 + 1/2",
    numpy=lambda x: x * np.clip(x + 3, 0, 6) / 6,
    numpy_grad=lambda g, x: g * np.where(x <= -3, 0.0, np.where(x >= 3, 1.0, x / 3 + 0.5)),
    torch_out=lambda aten, x, out: aten.hardswish.out(x, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y: aten.hardswish_backward.out(g, x, out=out),
)

elementwise(
    "hardswish",
    hardswish,
    hardswish_grad,
    formula="f(x) = x * (min(max(x + 3, 0), 6) / 6)",
    summary="Hard swish (MobileNetV3).",
    **_HARDSWISH,
)


def threshold(x, threshold, value):
    return value if x <= threshold else x


def threshold_grad(x, threshold, value):
    return lit(x, 0.0) if x <= threshold else lit(x, 1.0)


elementwise(
    "threshold",
    threshold,
    threshold_grad,
    grad2=PIECEWISE_LINEAR,
    # PyTorch takes any threshold and value, NaN included (threshold NaN: x <= NaN is false, so f(x) = x)
    params=(Param("threshold", None, example=0.1), Param("value", None, example=20.0)),
    examples=(
        "array([20. , 20. ,  1.5])",
        "array([0., 0., 1.])",
    ),
    formula="f(x) = x if x > threshold else value",
    derivative="f'(x) = 1 if x > threshold else 0",
    summary="Replaces values up to threshold by value.",
    numpy=lambda x, t, v: np.where(x > t, x, v),
    numpy_grad=lambda g, x, t, v: g * (x > t),
    torch_out=lambda aten, x, out, t, v: aten.threshold.out(x, t, v, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y, t, v: aten.threshold_backward.grad_input(g, x, t, grad_input=out),
)


def softshrink(x, lambd):
    return x - lambd if x > lambd else (x + lambd if x < -lambd else x * lit(x, 0.0))


def shrink_grad(x, lambd):
    outside = lit(x, 1.0) if x > lambd else (lit(x, 1.0) if x < -lambd else lit(x, 0.0))
    return outside if x == x else x


elementwise(
    "softshrink",
    softshrink,
    shrink_grad,
    grad2=PIECEWISE_LINEAR,
    params=(Param("lambd", 0.5, finite_nonnegative),),
    examples=(
        "array([-1.5,  0. ,  1. ])",
        "array([1., 0., 1.])",
    ),
    formula="f(x) = x - lambd if x > lambd, x + lambd if x < -lambd, else 0",
    derivative="f'(x) = 1 if |x| > lambd else 0",
    summary="Soft shrinkage.",
    numpy=lambda x, lam: np.where(x > lam, x - lam, np.where(x < -lam, x + lam, 0.0)),
    numpy_grad=lambda g, x, lam: g * (np.abs(x) > lam),
    torch_out=lambda aten, x, out, lam: aten.softshrink.out(x, lam, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y, lam: aten.softshrink_backward.grad_input(g, x, lam, grad_input=out),
)


def hardshrink(x, lambd):
    return (lit(x, 0.0) if x <= lambd else x) if x >= -lambd else x


elementwise(
    "hardshrink",
    hardshrink,
    shrink_grad,
    grad2=PIECEWISE_LINEAR,
    # PyTorch takes a negative lambd here, on purpose (every x is then outside: f(x) = x);
    # softshrink's must be >= 0, as PyTorch's
    params=(Param("lambd", 0.5, finite),),
    examples=(
        "array([-2. ,  0. ,  1.5])",
        "array([1., 0., 1.])",
    ),
    formula="f(x) = x if |x| > lambd else 0",
    derivative="f'(x) = 1 if |x| > lambd else 0",
    summary="Hard shrinkage.",
    numpy=lambda x, lam: np.where(np.abs(x) > lam, x, 0.0),
    numpy_grad=lambda g, x, lam: g * (np.abs(x) > lam),
    torch_out=lambda aten, x, out, lam: aten.hardshrink.out(x, lam, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y, lam: aten.hardshrink_backward.grad_input(g, x, lam, grad_input=out),
)

# --- JAX's and Keras's names -------------------------------------------------------------------

elementwise(
    "hard_silu",
    hardswish,
    hardswish_grad,
    formula="f(x) = x * (min(max(x + 3, 0), 6) / 6), hardswish under JAX's and Keras's name",
    summary="Hard SiLU (JAX, Keras): the same function as hardswish.",
    **_HARDSWISH,
)

# beyond, x^2 + b is x^2 to the dtype's precision (and x^2 would overflow float32 near 1.8e19)
_SQUAREPLUS_BIG32, _SQUAREPLUS_BIG64 = 2.0**32, 2.0**500


@inline_jitable
def _two_sum_low(a, b, s):
    # the rounding error of s = a + b (Knuth's TwoSum: exact)
    bb = s - a
    return (a - (s - bb)) + (b - bb)


@inline_jitable
def _squareplus_root(x, b):
    """(s, s_lo, big): sqrt(x^2 + b) as s + s_lo, to about twice the dtype's precision: the
    sum's and the square's rounding errors (TwoSum, fma) and the root's residual carried
    into a correction. With s alone, each rounding is an ulp of a result near 1 (3 ulp at
    x = -0.02, float32). big: where x^2 + b is x^2; s is then |x| (and no x^2 to overflow)."""
    a = abs(x)
    p = x * x
    t = p + b
    e = _two_sum_low(p, b, t) + fma(x, x, -p)
    root = np.sqrt(t)
    low = (fma(-root, root, t) + e) / (root + root)
    big = a > pick(x, _SQUAREPLUS_BIG32, _SQUAREPLUS_BIG64)
    return (a if big else root), (lit(x, 0.0) if big else low), big


def squareplus(x, b):
    # (x + s) / 2 cancels for x << 0; there (s + x)(s - x) = b gives (b / 2) / (s - x).
    # Where s is |x|, f(x) is x for x > 0 (x + s would overflow near the largest float)
    s, s_lo, big = _squareplus_root(x, b)
    hi = x + s
    positive = (hi + (_two_sum_low(x, s, hi) + s_lo)) * lit(x, 0.5)
    d = s - x
    negative = b * lit(x, 0.5) / (d + (_two_sum_low(s, -x, d) + s_lo))
    # where s is |x|: b / (4 |x|), as s - x = 2 |x| would overflow near the largest float
    return (x if big else positive) if x >= 0.0 else (b * lit(x, 0.25) / -x if big else negative)


def squareplus_grad(x, b):
    # (1 + x / s) / 2 = b / (2 s (s - x)) for x < 0, without the cancellation, and
    # 1 - b / (2 s (s + x)) for x >= 0, whose term is at most 1/2 (and 0, not inf / inf,
    # at x = inf)
    s, s_lo, big = _squareplus_root(x, b)
    t = b * lit(x, 0.5) / (s + s_lo)
    plus, minus = x + s, s - x
    plus = plus + (_two_sum_low(x, s, plus) + s_lo)
    minus = minus + (_two_sum_low(s, -x, minus) + s_lo)
    # where s is |x|: the terms without their corrections (inf - inf there), and 0 below
    # the largest floats (t / 2|x| would take s - x = 2|x| past overflow; it is 0 there anyway)
    negative = (b * lit(x, 0.25) / -x) / -x if big else t / minus
    return (lit(x, 1.0) if big else lit(x, 1.0) - t / plus) if x >= 0.0 else negative


def squareplus_grad_from_y(y, b):
    # x = y - b / (4 y) and s = y + b / (4 y): f'(x) = y^2 / (y^2 + b / 4)
    return lit(y, 1.0) if y >= lit(y, _SQUAREPLUS_BIG32) else y * y / fma(y, y, b * lit(y, 0.25))


def squareplus_grad2(x, b):
    s = _squareplus_root(x, b)[0]
    return b * lit(x, 0.5) / s / (s * s)


def squareplus_grad2_from_y(y, b):
    # d/dy of y^2 / (y^2 + c), c = b / 4: 2 y c / (y^2 + c)^2
    c = b * lit(y, 0.25)
    d = fma(y, y, c)
    return lit(y, 0.0) if y >= lit(y, _SQUAREPLUS_BIG32) else lit(y, 2.0) * y * c / (d * d)


elementwise(
    "squareplus",
    squareplus,
    squareplus_grad,
    grad2=squareplus_grad2,
    grad_from_y=squareplus_grad_from_y,
    grad2_from_y=squareplus_grad2_from_y,
    params=(Param("b", 4.0, finite_positive),),
    examples=(
        "array([0.41421356, 1.        , 2.        ])",
        "array([0.14644661, 0.5       , 0.8       ])",
    ),
    formula="f(x) = (x + sqrt(x^2 + b)) / 2",
    derivative="f'(x) = (1 + x / sqrt(x^2 + b)) / 2",
    summary="Squareplus (So, 2021; JAX, Keras): a smooth ReLU from a square root.",
    numpy=lambda x, b: (x + np.sqrt(x * x + b)) / 2,
    numpy_grad=lambda g, x, b: g * (1 + x / np.sqrt(x * x + b)) / 2,
)


def sparse_plus(x):
    inside = (x + lit(x, 1.0)) * (x + lit(x, 1.0)) * lit(x, 0.25)
    return lit(x, 0.0) if x <= -1.0 else (x if x >= 1.0 else inside)


def sparse_plus_grad(x):
    inside = (x + lit(x, 1.0)) * lit(x, 0.5)
    return lit(x, 0.0) if x <= -1.0 else (lit(x, 1.0) if x >= 1.0 else inside)


def sparse_plus_grad_from_y(y):
    # y = (x + 1)^2 / 4 inside, so f'(x) = (x + 1) / 2 = sqrt(y); y = 0 for x <= -1, where f' = 0
    return lit(y, 1.0) if y >= 1.0 else np.sqrt(y)


def sparse_plus_grad2(x):
    inside = lit(x, 0.5) if x < 1.0 else lit(x, 0.0)
    return inside if x > -1.0 else lit(x, 0.0)


def sparse_plus_grad2_from_y(y):
    # d/dy sqrt(y) = 1 / (2 sqrt(y)) inside, 0 where y >= 1. At y = 0 (x <= -1) it is taken
    # as 0, not inf: there the chain multiplies it by f'(x) = 0, and inf * 0 would make a
    # second derivative NaN where it is 0
    inside = lit(y, 0.5) / np.sqrt(y) if y > 0.0 else y * lit(y, 0.0)
    return lit(y, 0.0) if y >= 1.0 else inside


elementwise(
    "sparse_plus",
    sparse_plus,
    sparse_plus_grad,
    grad2=sparse_plus_grad2,
    grad_from_y=sparse_plus_grad_from_y,
    grad2_from_y=sparse_plus_grad2_from_y,
    examples=(
        "array([0.  , 0.25, 1.5 ])",
        "array([0. , 0.5, 1. ])",
    ),
    formula="f(x) = 0 if x <= -1, (x + 1)^2 / 4 if -1 < x < 1, x if x >= 1",
    derivative="f'(x) = 0 if x <= -1, (x + 1) / 2 if -1 < x < 1, 1 if x >= 1",
    summary="Sparse plus (JAX, Keras): a softplus that is exactly 0 below -1.",
    numpy=lambda x: np.where(x <= -1, 0.0, np.where(x >= 1, x, (x + 1) ** 2 / 4)),
    numpy_grad=lambda g, x: g * np.where(x <= -1, 0.0, np.where(x >= 1, 1.0, (x + 1) / 2)),
)


def sparse_sigmoid(x):
    inside = (x + lit(x, 1.0)) * lit(x, 0.5)
    return lit(x, 0.0) if x <= -1.0 else (lit(x, 1.0) if x >= 1.0 else inside)


def sparse_sigmoid_grad(x):
    inside = lit(x, 0.5) if x < 1.0 else lit(x, 0.0)
    g = inside if x > -1.0 else lit(x, 0.0)
    return g if x == x else x  # NaN at NaN, as every derivative


def sparse_sigmoid_grad_from_y(y):
    inside = lit(y, 0.5) if y < 1.0 else lit(y, 0.0)
    g = inside if y > 0.0 else lit(y, 0.0)
    return g if y == y else y


elementwise(
    "sparse_sigmoid",
    sparse_sigmoid,
    sparse_sigmoid_grad,
    grad2=PIECEWISE_LINEAR,
    grad_from_y=sparse_sigmoid_grad_from_y,
    grad2_from_y=PIECEWISE_LINEAR,
    examples=(
        "array([0. , 0.5, 1. ])",
        "array([0. , 0.5, 0. ])",
    ),
    formula="f(x) = 0 if x <= -1, (x + 1) / 2 if -1 < x < 1, 1 if x >= 1",
    derivative="f'(x) = 1/2 if -1 < x < 1 else 0 (0 at -1 and 1)",
    summary="Sparse sigmoid (JAX, Keras): a sigmoid that is exactly 0 and 1 beyond +-1.",
    numpy=lambda x: np.clip((x + 1) / 2, 0, 1),
    numpy_grad=lambda g, x: g * np.where((x > -1) & (x < 1), 0.5, 0.0),
)

# --- the rest --------------------------------------------------------------------------------

_SOFTSIGN_ONE = 2.0**60  # x / (1 + |x|) is +-1 to float64 precision beyond


def softsign(x):
    a = abs(x)
    y = x / (lit(x, 1.0) + a)
    return np.copysign(lit(x, 1.0), x) if a > lit(x, _SOFTSIGN_ONE) else y  # inf / inf would be nan


def softsign_grad(x):
    r = lit(x, 1.0) / (lit(x, 1.0) + abs(x))
    return r * r  # not 1 / (d * d): d * d overflows where the result is still a subnormal


def softsign_grad2(x):
    r = lit(x, 1.0) / (lit(x, 1.0) + abs(x))
    return lit(x, -2.0) * np.sign(x) * (r * r * r)


elementwise(
    "softsign",
    softsign,
    softsign_grad,
    grad2=softsign_grad2,
    examples=(
        "array([-0.66666667,  0.        ,  0.6       ])",
        "array([0.11111111, 1.        , 0.16      ])",
    ),
    formula="f(x) = x / (1 + |x|)",
    derivative="f'(x) = 1 / (1 + |x|)^2",
    summary="Softsign.",
    numpy=lambda x: x / (1 + np.abs(x)),
    numpy_grad=lambda g, x: g / (1 + np.abs(x)) ** 2,
    torch_out=lambda aten, x, out: aten.div.out(x, aten.add.Scalar(aten.abs.default(x), 1.0), out=out),
)


def tanhshrink(x):
    return x_minus_tanh(x)


def tanhshrink_grad(x):
    t = tanh(x)
    return t * t


def tanhshrink_grad2(x):
    return lit(x, 2.0) * tanh(x) * tanh_grad(x)


elementwise(
    "tanhshrink",
    tanhshrink,
    tanhshrink_grad,
    grad2=tanhshrink_grad2,
    examples=(
        "array([-1.03597242,  0.        ,  0.59485175])",
        "array([0.92934918, 0.        , 0.81929336])",
    ),
    formula="f(x) = x - tanh(x)",
    derivative="f'(x) = tanh(x)^2",
    summary="x minus its tanh (computed without the cancellation near 0).",
    numpy=lambda x: x - np.tanh(x),
    numpy_grad=lambda g, x: g * np.tanh(x) ** 2,
    torch_out=lambda aten, x, out: aten.sub.out(x, aten.tanh.default(x), out=out),
)


# --- softmax and log_softmax: normalised over the rows along an axis ----------------------
# The kernels give these, in float64 whatever the array's dtype: the row maximum m, each
# e = exp(x - m) and s = sum(e) >= 1, so nothing overflows (inputs of 1e3 are fine), and
# a row holding nan or +inf, or only -inf, gives nan throughout, as PyTorch's does.


def softmax_constant(s):
    # the reciprocal once per row, a product per element: a float64 division per element
    # was the row's slowest step; the product's extra rounding is one float64 ulp (within
    # float64's bound, and invisible once a float32 result is rounded)
    return 1.0 / s


def softmax_element(x, e, m, c):
    return e * c


def softmax_grad_term(g, y):
    # in y's dtype (the kernels sum the terms in float64): float32 math vectorises twice
    # as wide, and a product's rounding is within the backward's bound
    return g * y


def softmax_grad(g, y, r):
    return y * (g - lit(y, r))


def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


rowwise(
    "softmax",
    softmax_element,
    softmax_constant,
    softmax_grad_term,
    softmax_grad,
    examples=(
        "array([0.09003057, 0.24472847, 0.66524096])",
        "array([ 0.08192507, -0.02203304, -0.05989202])",
    ),
    formula="f(x)_i = exp(x_i) / sum_j exp(x_j), over the elements j of x_i's row along axis",
    derivative="df_i/dx_j = f_i * (delta_ij - f_j), so grad_x_i = y_i * (g_i - sum_j g_j * y_j)",
    summary="Softmax along an axis (each row sums to 1).",
    numpy=_np_softmax,
    numpy_grad=lambda g, y, axis=-1: y * (g - (g * y).sum(axis=axis, keepdims=True)),
    torch_out=lambda aten, x, out, dim: aten._softmax.out(x, dim, False, out=out),
    torch_grad_out=lambda aten, g, y, out, from_y, dim: aten._softmax_backward_data.out(
        g, y, dim, y.dtype, grad_input=out),
)


def softmin_grad(g, y, r):
    # y = softmax(-x): the gradient of x is minus softmax's
    return y * (lit(y, r) - g)


rowwise(
    "softmin",
    softmax_element,
    softmax_constant,
    softmax_grad_term,
    softmin_grad,
    negated=True,
    examples=(
        "array([0.66524096, 0.24472847, 0.09003057])",
        "array([-0.22269543,  0.1628034 ,  0.05989202])",
    ),
    formula="f(x)_i = exp(-x_i) / sum_j exp(-x_j), over the elements j of x_i's row along axis: softmax(-x)",
    derivative="df_i/dx_j = -f_i * (delta_ij - f_j), so grad_x_i = y_i * (sum_j g_j * y_j - g_i)",
    summary="Softmin along an axis (softmax of -x: each row sums to 1, the smallest element weighs most).",
    numpy=lambda x, axis=-1: _np_softmax(-x, axis),
    numpy_grad=lambda g, y, axis=-1: y * ((g * y).sum(axis=axis, keepdims=True) - g),
    torch_out=lambda aten, x, out, dim: aten._softmax.out(aten.neg.default(x), dim, False, out=out),
    torch_grad_out=lambda aten, g, y, out, from_y, dim: aten._softmax_backward_data.out(
        aten.neg.default(g), y, dim, y.dtype, grad_input=out),
)


def log_softmax_constant(s):
    return log(s)


def log_softmax_element(x, e, m, c):
    # (x - m) first: exact (in float64) where x is near the maximum, where it matters
    return (float(x) - float(m)) - c


def log_softmax_grad_term(g, y):
    return float(g)


def log_softmax_grad(g, y, r):
    return g - exp(y) * lit(y, r)  # in y's dtype: float32 math vectorises twice as wide


rowwise(
    "log_softmax",
    log_softmax_element,
    log_softmax_constant,
    log_softmax_grad_term,
    log_softmax_grad,
    masked_value=-math.inf,  # log(0): a masked element, or a row with nothing unmasked (JAX's)
    examples=(
        "array([-2.40760596, -1.40760596, -0.40760596])",
        "array([ 0.90996943, -0.24472847, -0.66524096])",
    ),
    formula="f(x)_i = x_i - log(sum_j exp(x_j)), over the elements j of x_i's row along axis",
    derivative="df_i/dx_j = delta_ij - softmax(x)_j, so grad_x_i = g_i - exp(y_i) * sum_j g_j",
    summary="Logarithm of the softmax along an axis, computed without forming the softmax.",
    numpy=lambda x, axis=-1: (
        (d := x - x.max(axis=axis, keepdims=True)) - np.log(np.exp(d).sum(axis=axis, keepdims=True))
    ),
    numpy_grad=lambda g, y, axis=-1: g - np.exp(y) * g.sum(axis=axis, keepdims=True),
    torch_out=lambda aten, x, out, dim: aten._log_softmax.out(x, dim, False, out=out),
    torch_grad_out=lambda aten, g, y, out, from_y, dim: (
        aten._log_softmax_backward_data.out(
            g, y, dim, y.dtype, out=out)
    ),
)


# --- sparsemax: the rows projected onto the probability simplex ---------------------------
# Martins & Astudillo (2016); Keras's keras.ops.sparsemax and the entmax libraries. PyTorch
# and JAX have none. Its loops are _loops_simplex's. A tie at the threshold (x_i = tau)
# gives y_i = 0, and the backward's support is y > 0, as the entmax libraries take it.


def _np_sparsemax(x, axis=-1):
    z = np.moveaxis(x, axis, -1)
    desc = -np.sort(-z, axis=-1)
    total = np.cumsum(desc, axis=-1)
    k = np.arange(1, z.shape[-1] + 1)
    size = (1 + k * desc > total).sum(axis=-1, keepdims=True)
    tau = (np.take_along_axis(total, size - 1, axis=-1) - 1) / size
    return np.moveaxis(np.maximum(z - tau, 0), -1, axis)


def _np_sparsemax_grad(g, y, axis=-1):
    support = y > 0
    mean = (g * support).sum(axis=axis, keepdims=True) / support.sum(axis=axis, keepdims=True)
    return np.where(support, g - mean, 0)


simplex(
    "sparsemax",
    examples=("array([0., 0., 1.])", "array([0., 0., 0.])"),
    formula="f(x)_i = max(x_i - tau, 0), tau such that sum_j max(x_j - tau, 0) = 1 over x_i's row along axis: "
            "the Euclidean projection of the row onto the probability simplex",
    derivative="df_i/dx_j = s_i (delta_ij - s_j / |S|), s the support (y > 0), so grad_x_i = s_i (g_i - "
               "mean of g over the support)",
    summary="Sparsemax along an axis: each row projected onto the probability simplex (sums to 1, exactly 0 "
            "below a threshold).",
    numpy=_np_sparsemax,
    numpy_grad=_np_sparsemax_grad,
    module_name="Sparsemax",
)


# --- the gated activations: value * f(gate), over the two halves of x along an axis --------
# glu gates as PyTorch's F.glu (the first half times the sigmoid of the second); the
# others as the LLM MLPs that compose them (F.silu(a) * b: the first half through the
# activation). The halves may also be given as two arrays, in the same order.


def _halves(x, axis):
    return np.split(x, 2, axis=axis)


def _np_gated(f, gate):
    def forward(x, *params, axis=-1):
        h = _halves(x, axis)
        return h[1 - gate] * f(h[gate], *params)

    return forward


def _np_gated_grad(f, df, gate):
    def backward(g, x, *params, axis=-1):
        h = _halves(x, axis)
        value, at = h[1 - gate], h[gate]
        grads = [None, None]
        grads[gate], grads[1 - gate] = g * value * df(at, *params), g * f(at, *params)
        return np.concatenate(grads, axis=axis)

    return backward


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _torch_halves(x, dim):
    h = x.shape[dim] // 2
    return x.narrow(dim, 0, h), x.narrow(dim, h, h)


def _torch_gated_out(f):
    """PyTorch's composition f(a) * b, written into out (f's result a new tensor)."""
    def out_op(aten, x, out, dim, *params):
        a, b = _torch_halves(x, dim)
        return aten.mul.out(f(aten, a, *params), b, out=out)

    return out_op


def _torch_gated_grad_out(f, df):
    """The backward of PyTorch's composition f(a) * b, as its autograd runs it: its
    operators' results new tensors, the two gradients written into out's halves."""
    def grad_op(aten, g, x, out, from_y, dim, *params):
        a, b = _torch_halves(x, dim)
        ga, gb = _torch_halves(out, dim)
        df(aten, aten.mul.Tensor(g, b), a, ga, *params)
        aten.mul.out(g, f(aten, a, *params), out=gb)
        return out

    return grad_op


def _np_silu(x):
    return x * _np_sigmoid(x)


gated(
    "glu",
    REGISTRY["sigmoid"],
    gate=1,
    examples=(
        "array([-0.62245933,  0.36485105])",
        "array([ 0.62245933,  0.18242552, -0.23500371,  0.2982929 ])",
    ),
    formula="f(x) = a * sigmoid(b), where a and b are the first and second halves of x along axis",
    derivative="df/da = sigmoid(b), df/db = a * sigmoid(b) * (1 - sigmoid(b))",
    summary="Gated linear unit (PyTorch's F.glu): the first half gated by the sigmoid of the second.",
    numpy=_np_gated(_np_sigmoid, 1),
    numpy_grad=_np_gated_grad(_np_sigmoid, lambda b: _np_sigmoid(b) * (1 - _np_sigmoid(b)), 1),
    torch_out=lambda aten, x, out, dim: aten.glu.out(x, dim, out=out),
    torch_grad_out=lambda aten, g, x, out, from_y, dim: aten.glu_backward.grad_input(g, x, dim, grad_input=out),
)

gated(
    "swiglu",
    REGISTRY["silu"],
    gate=0,
    examples=(
        "array([-0.13447071, -2.64239123])",
        "array([ 0.03616474, -1.63617637, -0.26894142,  1.76159416])",
    ),
    formula="f(x) = silu(a) * b, where a and b are the first and second halves of x along axis",
    derivative="df/da = b * silu'(a), df/db = silu(a)",
    summary="SwiGLU (Shazeer, 2020; the MLP of LLaMA-style models): silu of the first half times the second.",
    numpy=_np_gated(_np_silu, 0),
    numpy_grad=_np_gated_grad(_np_silu, lambda a: _np_sigmoid(a) * (1 + a * (1 - _np_sigmoid(a))), 0),
    torch_out=_torch_gated_out(lambda aten, a: aten.silu.default(a)),
    torch_grad_out=_torch_gated_grad_out(lambda aten, a: aten.silu.default(a),
                                         lambda aten, h, a, out: aten.silu_backward.grad_input(h, a, grad_input=out)),
    module_name="SwiGLU",
)

gated(
    "geglu",
    REGISTRY["gelu"],
    gate=0,
    examples=(
        "array([-0.07932763, -2.9317496 ])",
        "array([-0.04165774, -1.6278477 , -0.15865525,  1.95449974])",
    ),
    formula="f(x) = gelu(a, approximate) * b, where a and b are the first and second halves of x along axis",
    derivative="df/da = b * gelu'(a), df/db = gelu(a)",
    summary="GEGLU (Shazeer, 2020): gelu of the first half (erf form, or approximate='tanh') times the second.",
    numpy=_np_gated(_np_gelu, 0),
    numpy_grad=_np_gated_grad(_np_gelu, lambda a, approximate="none": _np_gelu_grad(1.0, a, approximate), 0),
    torch_out=_torch_gated_out(lambda aten, a, approximate="none": aten.gelu.default(a, approximate=approximate)),
    torch_grad_out=_torch_gated_grad_out(
        lambda aten, a, approximate="none": aten.gelu.default(a, approximate=approximate),
        lambda aten, h, a, out, approximate="none": aten.gelu_backward.grad_input(
            h, a, approximate=approximate, grad_input=out)),
    module_name="GEGLU",
)

gated(
    "reglu",
    REGISTRY["relu"],
    gate=0,
    examples=(
        "array([ 0., -3.])",
        "array([ 0. , -1.5,  0. ,  2. ])",
    ),
    formula="f(x) = relu(a) * b, where a and b are the first and second halves of x along axis",
    derivative="df/da = b if a > 0 else 0, df/db = relu(a)",
    summary="ReGLU (Shazeer, 2020): relu of the first half times the second.",
    numpy=_np_gated(lambda a: np.maximum(a, 0), 0),
    numpy_grad=_np_gated_grad(lambda a: np.maximum(a, 0), lambda a: (a > 0).astype(a.dtype), 0),
    torch_out=_torch_gated_out(lambda aten, a: aten.relu.default(a)),
    torch_grad_out=_torch_gated_grad_out(lambda aten, a: aten.relu.default(a),
                                         lambda aten, h, a, out: aten.threshold_backward.grad_input(h, a, 0.0,
                                                                                                  grad_input=out)),
    module_name="ReGLU",
)


# --- logsumexp: a reduction over axes -------------------------------------------------------


def _np_logsumexp(x, axis=None, keepdims=False):
    try:  # SciPy's, where installed: the natural expression of its users
        from scipy.special import logsumexp
    except ImportError:
        m = np.max(x, axis=axis, keepdims=True)
        with np.errstate(all="ignore"):
            r = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
        return r if keepdims else np.squeeze(r, axis=axis)
    return logsumexp(x, axis=axis, keepdims=keepdims)


def _np_logsumexp_grad(g, x, axis=None, keepdims=False):
    lse = _np_logsumexp(x, axis=axis, keepdims=True)
    if not keepdims:
        g = np.expand_dims(g, axis if axis is not None else tuple(range(x.ndim)))
    return g * np.exp(x - lse)


reduction(
    "logsumexp",
    module_name="LogSumExp",
    examples=(
        "array([3.40760596])",
        "array([[0.09003057, 0.24472847, 0.66524096]])",
    ),
    formula="f(x) = log(sum_i exp(x_i)), over the axes reduced (all of them by default)",
    derivative="df/dx_i = exp(x_i - f(x)) = softmax(x)_i, over the reduced axes",
    summary="Log of the sum of exponentials, overflow-safe (PyTorch's torch.logsumexp, SciPy's, JAX's).",
    numpy=_np_logsumexp,
    numpy_grad=_np_logsumexp_grad,
    torch_out=lambda aten, x, out, dim: aten.logsumexp.out(x, [dim], False, out=out),
)
