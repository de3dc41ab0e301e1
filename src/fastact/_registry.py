"""The activation registry: what an activation *is*, declared once.

An activation is a few plain scalar Python functions (the forward, its derivative
from x, and where possible its derivative from the forward's output y) plus its
parameters. Everything else -- the numba kernels, the ufuncs, the public
``fa.NAME`` / ``fa.NAME_backward`` functions, the tests and the benchmarks -- is
derived from these declarations by iterating :data:`REGISTRY`.

The scalar functions are registered with :func:`inline_jitable` so that numba code can
call them (inlined), while the module attribute stays the plain Python function. That
matters for the on-disk cache: see ``_cache.py``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from numba.extending import overload

from ._memo import Memo

__all__ = ["PIECEWISE_LINEAR", "Activation", "Check", "Param", "REGISTRY", "elementwise", "channelwise", "rowwise",
           "simplex", "gated", "reduction"]

_JITABLE: set[Callable[..., Any]] = set()


def inline_jitable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Make fn callable from numba code, inlined there at numba's IR level; returns fn.

    As ``register_jitable``, the module attribute stays the plain Python function
    (picklable by reference, which the on-disk cache needs: see ``_cache.py``). Unlike
    it, the body is inlined before LLVM sees it: LLVM leaves a body as large as mish's as
    a call, and a loop that makes a call does not vectorise. Registered once, since
    activations share scalar math (prelu is leaky_relu with a weight per channel).
    """
    if fn in _JITABLE:
        return fn
    # numba wants the typing function's parameters named as the implementation's
    names = list(inspect.signature(fn).parameters)
    namespace: dict[str, Any] = {}
    exec(f"def typer({', '.join(names)}):\n    return fn\n", {"fn": fn}, namespace)
    overload(fn, inline="always")(namespace["typer"])
    _JITABLE.add(fn)
    return fn


# grad2= of an activation whose derivative is piecewise constant: its second derivative is
# 0 wherever it exists (relu, hardtanh, the shrinks), which PyTorch's autograd gives too
PIECEWISE_LINEAR = "piecewise linear"


@dataclass(frozen=True)
class Check:
    """A condition on parameter values: ``valid(*values)``, a predicate that numba can
    inline (the ufuncs, which cannot raise, test it in their loop and give NaN with
    NumPy's invalid-value warning where it fails), and ``describe(*values)``, what the
    exception raised by the public functions says is wrong."""

    valid: Callable[..., bool]
    describe: Callable[..., str]

    def __post_init__(self) -> None:
        inline_jitable(self.valid)


@dataclass(frozen=True)
class Param:
    """A float parameter of an activation, named and defaulted as in torch.nn.functional.

    ``check`` is the :class:`Check` its values must pass (None: any float).
    """

    name: str
    default: float | str | None  # None: required (threshold's threshold and value)
    check: Check | None = None
    # a parameter that names a variant (gelu's approximate): the accepted strings; the
    # kernels get the index of the given one as a float
    choices: tuple[str, ...] = ()
    # for a required parameter: a typical value, for benchmarks and warm-up
    example: float | None = None

    @property
    def required(self) -> bool:
        return self.default is None

    def validate(self, function: str, value: Any) -> float:
        if self.choices:
            if isinstance(value, str) and value in self.choices:
                return float(self.choices.index(value))
            raise ValueError(
                f"{function}: parameter {self.name!r} must be one of {', '.join(map(repr, self.choices))}, "
                f"got {value!r}"
            )
        if value is None and self.required:
            raise TypeError(f"{function}() missing required argument {self.name!r}")
        try:
            if isinstance(value, (str, bytes)):  # float("0.5") would take it; NumPy's ufuncs do not
                raise TypeError
            if getattr(value, "ndim", 0) != 0:  # one number: a 0-d array is one, [0.5] and array([0.5]) are not
                raise TypeError
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"{function}: parameter {self.name!r} must be a real number, got {value!r}"
            ) from None
        if self.check is not None and not self.check.valid(v):
            raise ValueError(f"{function}: parameter {self.name!r} {self.check.describe(v)}, got {v!r}")
        return v


def _is_finite(v):
    return math.isfinite(v)


def _is_finite_nonzero(v):
    return math.isfinite(v) & (v != 0.0)  # & rather than and: see _kernels' predicates


def _is_finite_nonnegative(v):
    return math.isfinite(v) & (v >= 0.0)


def _is_finite_positive(v):
    return math.isfinite(v) & (v > 0.0)


def _is_not_nan(v):
    return v == v


def _not_finite_or(problem: str) -> Callable[[float], str]:
    return lambda v: "must be finite" if not math.isfinite(v) else problem


finite = Check(_is_finite, lambda v: "must be finite")
finite_nonzero = Check(_is_finite_nonzero, _not_finite_or("must not be 0"))
finite_nonnegative = Check(_is_finite_nonnegative, _not_finite_or("must be >= 0"))
finite_positive = Check(_is_finite_positive, _not_finite_or("must be > 0"))
not_nan = Check(_is_not_nan, lambda v: "must not be nan")


# (function, raw parameter values) -> validated values, for repeated calls
_VALIDATED = Memo(256)


@dataclass(eq=False)
class Activation:
    """One activation: its scalar math and how it is parametrised.

    Scalar functions take the value first, then the parameters in declaration order:
    ``forward(x, *params)``, ``grad(x, *params)`` (= f'(x)) and
    ``grad_from_y(y, *params)`` (= f'(x) expressed through y = f(x)).
    ``y_ok(*params)`` says for which parameter values ``grad_from_y`` is exact
    (leaky_relu's y determines x only when negative_slope > 0).
    ``grad2(x, *params)`` (= f''(x)) and ``grad2_from_y(y, *params)`` (= the derivative of
    ``grad_from_y`` with respect to y) make the backward differentiable, for second
    derivatives in ``fastact.torch``; ``PIECEWISE_LINEAR`` where they are 0.

    ``kind`` is "elementwise" (a scalar function of one element), "channelwise"
    (prelu: the parameter is a per-channel weight array along an axis), "rowwise"
    (softmax, log_softmax: each element depends on every element of its row along an
    axis; see :func:`rowwise` for what their scalar functions are), "gated" (glu,
    swiglu: one half of the input, through an element-wise activation, times the other;
    see :func:`gated`) or "reduction" (logsumexp: one value per row, no scalar functions).
    """

    name: str
    forward_scalar: Callable[..., float]
    grad_scalar: Callable[..., float]
    params: tuple[Param, ...] = ()
    grad_from_y_scalar: Callable[..., float] | None = None
    grad2_scalar: Callable[..., float] | str | None = None
    grad2_from_y_scalar: Callable[..., float] | str | None = None
    y_ok: Callable[..., bool] | None = None
    y_condition: str = ""
    formula: str = ""
    derivative: str = ""
    summary: str = ""
    # what the docstrings' examples print (forward, backward), as NumPy's repr: written by
    # tools/make_examples.py from the tests' float64 references, and checked by running
    # them as doctests
    examples: tuple[str, str] = ("", "")
    kind: str = "elementwise"
    # fastact.torch's module class name for an activation PyTorch lacks ("" : the name in
    # CamelCase, sparse_plus -> SparsePlus)
    module_name: str = ""
    # a check across parameters (hardtanh's min_val <= max_val), of the validated values
    params_check: Check | None = None
    # what only the kind's own modules read (gated: "base", the element-wise activation's
    # name, and "gate", the half it applies to: 0 the first, 1 the second; rowwise:
    # "negated", "masked_value", "row_constant" and "grad_term", the scalar functions of
    # the row's constant and of the backward's per-element term, and "rule", "simplex"
    # for sparsemax's loops; channelwise: "grad_weight", d f / d weight)
    kind_options: dict[str, Any] = field(default_factory=dict)
    # the natural NumPy expressions, numpy(x, *params) and numpy_grad(g, x, *params):
    # the peer that benchmarks compare against
    numpy: Callable[..., Any] | None = field(default=None, repr=False)
    numpy_grad: Callable[..., Any] | None = field(default=None, repr=False)
    # PyTorch's own operators, for benchmarks like for like (see fastact._bench), given
    # torch.ops.aten: torch_out(aten, x, out, *params) writes f(x) into out (element-wise,
    # softmax: an aten .out overload; another form returns a new tensor), and
    # torch_grad_out(aten, grad, v, out, from_y, *params) the backward, from v = x, or from
    # v = y where from_y (torch_grad_from: which of "x" and "y" it takes)
    torch_out: Callable[..., Any] | None = field(default=None, repr=False)
    torch_grad_out: Callable[..., Any] | None = field(default=None, repr=False)
    torch_grad_from: tuple[str, ...] = ("x",)
    # filled in by fastact.__init__ once the public functions exist
    forward: Callable[..., Any] | None = field(default=None, repr=False)
    backward: Callable[..., Any] | None = field(default=None, repr=False)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def defaults(self) -> dict[str, float | None]:
        return {p.name: p.default for p in self.params}

    @property
    def example_params(self) -> tuple[Any, ...]:
        """The defaults, with the example value for each required parameter."""
        return tuple(p.example if p.required else p.default for p in self.params)

    @property
    def supports_y(self) -> bool:
        return self.grad_from_y_scalar is not None

    def validate(self, function: str, values: tuple[Any, ...]) -> tuple[float, ...]:
        key = (function, values)
        try:
            return _VALIDATED[key]
        except (KeyError, TypeError):  # not seen yet, or unhashable (an array)
            pass
        checked = tuple(p.validate(function, v) for p, v in zip(self.params, values, strict=True))
        if self.params_check is not None and not self.params_check.valid(*checked):
            raise ValueError(f"{function}: {self.params_check.describe(*checked)}")
        return _VALIDATED.remember(key, checked)

    def require_x(self, function: str, x: Any, y: Any) -> None:
        """For a backward that needs x (the forward's input), given x or y=: raises
        unless x alone is given (y= as check_y refuses it)."""
        if y is not None:
            self.check_y(function, ())
        if x is None:
            raise TypeError(f"{function}() missing required argument 'x' (the forward's input)")

    def check_y(self, function: str, values: tuple[float, ...]) -> None:
        if self.grad_from_y_scalar is None:
            raise TypeError(
                f"{function}: the derivative of {self.name} cannot be computed from the "
                f"output y=; pass x (the forward's input) instead"
            )
        if self.y_ok is not None and not self.y_ok(*values):
            raise TypeError(
                f"{function}: y= needs {self.y_condition} (otherwise the output does not "
                f"determine the derivative); pass x instead"
            )


REGISTRY: dict[str, Activation] = {}


def _jitable(fn: Callable[..., float] | str | None) -> Callable[..., float] | str | None:
    return fn if fn is None or fn == PIECEWISE_LINEAR else inline_jitable(fn)


# The loops spell the scalar call out per arity (_kernels: _map_loops, _ufunc_scalars), so
# that numba can inline it; more parameters would need another spelling there.
MAX_PARAMS = 2


def _check_declaration(kind: str, name: str, params: tuple[Param, ...], scalars: dict[str, Any]) -> None:
    """A clear error at declaration, rather than a numba typing error at first use."""
    where = f"{kind}({name!r})"
    if name in REGISTRY:
        raise ValueError(f"{where}: an activation of that name is already declared")
    if not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"{where}: the name must be a public Python identifier")
    if len(params) > MAX_PARAMS:
        raise TypeError(f"{where}: {len(params)} parameters; the kernels take at most {MAX_PARAMS}")
    for role, (fn, arity) in scalars.items():
        if not callable(fn):
            continue
        try:
            n = len(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        if n != arity:
            raise TypeError(f"{where}: {role}= takes {n} arguments, expected {arity}")


def _register(**fields: Any) -> Activation:
    for key in ("forward_scalar", "grad_scalar", "grad_from_y_scalar", "grad2_scalar", "grad2_from_y_scalar"):
        fields[key] = _jitable(fields.get(key))
    act = Activation(**fields)
    REGISTRY[act.name] = act
    return act


def elementwise(
    name: str,
    forward: Callable[..., float],
    grad: Callable[..., float],
    *,
    grad2: Callable[..., float] | str,
    params: tuple[Param, ...] = (),
    grad_from_y: Callable[..., float] | None = None,
    grad2_from_y: Callable[..., float] | str | None = None,
    y_ok: Callable[..., bool] | None = None,
    y_condition: str = "",
    formula: str,
    derivative: str,
    summary: str,
    examples: tuple[str, str],
    numpy: Callable[..., Any] | None = None,
    numpy_grad: Callable[..., Any] | None = None,
    params_check: Check | None = None,
    torch_out: Callable[..., Any] | None = None,
    torch_grad_out: Callable[..., Any] | None = None,
    torch_grad_from: tuple[str, ...] = ("x",),
) -> Activation:
    """Declare an element-wise activation and add it to the registry."""
    n = 1 + len(params)  # x, then the parameters
    _check_declaration("elementwise", name, params, {
        "forward": (forward, n), "grad": (grad, n), "grad2": (grad2, n),
        "grad_from_y": (grad_from_y, n), "grad2_from_y": (grad2_from_y, n)})
    if (grad_from_y is None) != (grad2_from_y is None):
        raise TypeError(f"{name}: grad2_from_y= goes with grad_from_y=, the derivative of the one is the other")
    return _register(
        name=name, forward_scalar=forward, grad_scalar=grad, params=params, grad_from_y_scalar=grad_from_y,
        grad2_scalar=grad2, grad2_from_y_scalar=grad2_from_y,
        y_ok=y_ok, y_condition=y_condition, formula=formula, derivative=derivative, summary=summary,
        examples=examples, numpy=numpy, numpy_grad=numpy_grad, params_check=params_check,
        torch_out=torch_out, torch_grad_out=torch_grad_out, torch_grad_from=torch_grad_from,
    )


def channelwise(
    name: str,
    forward: Callable[..., float],
    grad: Callable[..., float],
    grad_weight: Callable[..., float],
    *,
    formula: str,
    derivative: str,
    summary: str,
    examples: tuple[str, str],
    numpy: Callable[..., Any] | None = None,
    numpy_grad: Callable[..., Any] | None = None,
    torch_out: Callable[..., Any] | None = None,
    torch_grad_out: Callable[..., Any] | None = None,
) -> Activation:
    """Declare an activation whose one parameter is a weight per channel (prelu)."""
    _check_declaration("channelwise", name, (), {
        "forward": (forward, 2), "grad": (grad, 2), "grad_weight": (grad_weight, 2)})
    return _register(
        name=name, forward_scalar=forward, grad_scalar=grad, kind="channelwise",
        kind_options={"grad_weight": _jitable(grad_weight)},
        formula=formula, derivative=derivative, summary=summary, examples=examples, numpy=numpy, numpy_grad=numpy_grad,
        torch_out=torch_out, torch_grad_out=torch_grad_out,
    )


def rowwise(
    name: str,
    element: Callable[..., float],
    row_constant: Callable[[float], float],
    grad_term: Callable[..., float],
    grad: Callable[..., float],
    *,
    formula: str,
    derivative: str,
    summary: str,
    examples: tuple[str, str],
    numpy: Callable[..., Any] | None = None,
    numpy_grad: Callable[..., Any] | None = None,
    torch_out: Callable[..., Any] | None = None,
    torch_grad_out: Callable[..., Any] | None = None,
    negated: bool = False,
    masked_value: float = 0.0,
) -> Activation:
    """Declare a normalisation over the rows along an axis (softmax, log_softmax).

    The kernels compute, per row, m = max(x) and s = sum(exp(x - m)) (in float64), then
    ``c = row_constant(s)`` and each output ``element(x, e, m, c)`` with e = exp(x - m).
    The backward works from the output y: ``r = sum(grad_term(g, y))`` over the row (in
    float64), then ``grad(g, y, r)`` per element, r rounded to the array's dtype. Given x
    instead, y is computed first.
    ``negated``: the kernels see -x (softmin is softmax(-x); grad is then the derivative
    with respect to x, its sign included). ``masked_value``: the output of an element
    masked out by where=, and of every element of a row with nothing unmasked.
    """
    _check_declaration("rowwise", name, (), {
        "element": (element, 4), "row_constant": (row_constant, 1), "grad_term": (grad_term, 2), "grad": (grad, 3)})
    return _register(
        name=name, forward_scalar=element, grad_scalar=grad, grad_from_y_scalar=grad,
        kind="rowwise", kind_options={
            "negated": negated, "masked_value": masked_value,
            "row_constant": _jitable(row_constant), "grad_term": _jitable(grad_term)},
        formula=formula, derivative=derivative, summary=summary, examples=examples, numpy=numpy, numpy_grad=numpy_grad,
        torch_out=torch_out, torch_grad_out=torch_grad_out, torch_grad_from=("y",),
    )


def simplex(
    name: str,
    *,
    formula: str,
    derivative: str,
    summary: str,
    examples: tuple[str, str],
    numpy: Callable[..., Any] | None = None,
    numpy_grad: Callable[..., Any] | None = None,
    module_name: str = "",
) -> Activation:
    """Declare a projection of the rows along an axis onto the probability simplex
    (sparsemax), a row-wise activation: its loops (``_loops_simplex``) find each row's
    threshold tau, give max(x - tau, 0), and the backward from the output y (its
    support, y > 0: grad_output less its mean over the support, 0 off it)."""
    _check_declaration("rowwise", name, (), {})
    return _register(
        name=name, forward_scalar=None, grad_scalar=None, kind="rowwise", module_name=module_name,
        kind_options={"rule": "simplex", "negated": False, "masked_value": 0.0},
        formula=formula, derivative=derivative, summary=summary, examples=examples, numpy=numpy, numpy_grad=numpy_grad,
        torch_grad_from=("y",),
    )


def gated(
    name: str,
    base: Activation,
    *,
    gate: int,
    formula: str,
    derivative: str,
    summary: str,
    examples: tuple[str, str],
    numpy: Callable[..., Any] | None = None,
    numpy_grad: Callable[..., Any] | None = None,
    torch_out: Callable[..., Any] | None = None,
    torch_grad_out: Callable[..., Any] | None = None,
    module_name: str = "",
) -> Activation:
    """Declare a gated activation: value * base(gate), where gate and value are the two
    halves of x along an axis (or two arrays), ``gate`` saying which half goes through
    the element-wise activation ``base`` (0: the first, 1: the second); base's
    parameters are the gated activation's. Its scalar functions are base's."""
    where = f"gated({name!r})"
    if base.kind != "elementwise":
        raise TypeError(f"{where}: base must be an element-wise activation, got {base.name} ({base.kind})")
    if gate not in (0, 1):
        raise ValueError(f"{where}: gate must be 0 (the first half) or 1 (the second), got {gate!r}")
    _check_declaration("gated", name, base.params, {})
    return _register(
        name=name, forward_scalar=base.forward_scalar, grad_scalar=base.grad_scalar, params=base.params,
        grad2_scalar=base.grad2_scalar, params_check=base.params_check, kind="gated",
        kind_options={"base": base.name, "gate": gate}, module_name=module_name,
        formula=formula, derivative=derivative, summary=summary, examples=examples, numpy=numpy, numpy_grad=numpy_grad,
        torch_out=torch_out, torch_grad_out=torch_grad_out,
    )


def reduction(
    name: str,
    *,
    formula: str,
    derivative: str,
    summary: str,
    examples: tuple[str, str],
    numpy: Callable[..., Any] | None = None,
    numpy_grad: Callable[..., Any] | None = None,
    torch_out: Callable[..., Any] | None = None,
    torch_grad_out: Callable[..., Any] | None = None,
    module_name: str = "",
) -> Activation:
    """Declare a reduction over axes (logsumexp): its loops (``_loops_reduce``) give each
    row's maximum m and sum of exp(x - m); the value is m + log(s) and the gradient
    softmax(x) along the reduced axes times grad_output."""
    _check_declaration("reduction", name, (), {})
    return _register(
        name=name, forward_scalar=None, grad_scalar=None, kind="reduction", module_name=module_name,
        formula=formula, derivative=derivative, summary=summary, examples=examples, numpy=numpy, numpy_grad=numpy_grad,
        torch_out=torch_out, torch_grad_out=torch_grad_out,
    )
