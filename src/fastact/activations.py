"""The activations, one declaration each.

Each declaration gives the scalar forward, its derivative from x and, where the
output determines it, from y; then the parameters as torch.nn.functional names them.
Kernels, ufuncs, public functions, tests and benchmarks are all generated from these.

Conventions (PyTorch's autograd, see shared/FACTS.md): comparisons are written the way
PyTorch writes them, because that is what decides the value at a kink and at NaN.
``x < 0`` keeps ``relu(-0.0) = -0.0`` and ``relu(nan) = nan``; relu'(nan) = 1 and
leaky_relu'(nan) = negative_slope, as PyTorch's autograd gives them. Where PyTorch has
no fixed answer (its elu'(nan) is NaN on its vectorised path and 1 on its scalar tail),
NaN gives NaN.

The scalar functions are type-generic: numba compiles them for float32 and float64,
and the dispatch layer casts parameters to the array's dtype first, so a float32
array is computed in float32 (``x * negative_slope`` rounds as PyTorch's does).
Transcendental functions come from ``_math`` (vectorisable, error bounds measured), not
from ``math``, whose libm calls keep a loop from vectorising.
"""

from __future__ import annotations

import numpy as np

from ._math import exp, expm1
from ._registry import Param, channelwise, elementwise, finite

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
    grad_from_y=relu_grad_from_y,
    formula="f(x) = max(x, 0)",
    derivative="f'(x) = 1 if x > 0 else 0 (0 at x = 0)",
    summary="Rectified linear unit.",
    numpy=lambda x: np.maximum(x, 0),
    numpy_grad=lambda g, x: g * (x > 0),
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
    params=(Param("negative_slope", 0.01, finite),),
    grad_from_y=leaky_relu_grad_from_y,
    y_ok=lambda negative_slope: negative_slope > 0.0,
    y_condition="negative_slope > 0",
    formula="f(x) = x if x > 0 else negative_slope * x",
    derivative="f'(x) = 1 if x > 0 else negative_slope (negative_slope at x = 0)",
    summary="Leaky rectified linear unit.",
    numpy=lambda x, s: np.where(x > 0, x, x * s),
    numpy_grad=lambda g, x, s: np.where(x > 0, g, g * s),
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


elementwise(
    "elu",
    elu,
    elu_grad,
    params=(Param("alpha", 1.0, finite),),
    grad_from_y=elu_grad_from_y,
    y_ok=lambda alpha: alpha > 0.0,
    y_condition="alpha > 0",
    formula="f(x) = x if x > 0 else alpha * (exp(x) - 1)",
    derivative="f'(x) = 1 if x > 0 else alpha * exp(x) (alpha at x = 0)",
    summary="Exponential linear unit.",
    numpy=lambda x, a: np.where(x > 0, x, a * np.expm1(x)),
    numpy_grad=lambda g, x, a: np.where(x > 0, g, g * a * np.exp(x)),
)

# --- prelu: leaky_relu with a learned slope per channel -----------------------------


def prelu_grad_weight(x, weight):
    # d/dweight of (x if x > 0 else weight * x)
    return 0.0 if x > 0.0 else x


channelwise(
    "prelu",
    leaky_relu,
    leaky_relu_grad,
    prelu_grad_weight,
    formula="f(x) = x if x > 0 else weight[c] * x, c the index along axis",
    derivative=(
        "df/dx = 1 if x > 0 else weight[c] (weight[c] at x = 0); "
        "df/dweight[c] = 0 if x > 0 else x, summed over all but axis"
    ),
    summary="Parametric ReLU with one slope per channel.",
    numpy=lambda x, w: np.where(x > 0, x, w * x),  # w shaped to broadcast along the axis
    numpy_grad=lambda g, x, w: np.where(x > 0, g, g * w),
)
