"""The public functions' names, signatures' shared parts and docstrings (with examples),
made from the declarations; fastact.ufuncs, fastact.scalar and fastact.torch use them too."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from ._registry import Activation

# the parameters every signature has
_ARRAY = "numpy.typing.ArrayLike"
_OUT = inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="numpy.ndarray | None")


# --- names and docstrings ---------------------------------------------------------------------


def _named(fn: Callable[..., Any], name: str, doc: str) -> Callable[..., Any]:
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = "fastact"
    fn.__doc__ = doc
    return fn


def _params_doc(act: Activation) -> str:
    if act.kind == "rowwise":
        return "axis : int, default -1\n    The axis along which the rows run (any axis, any layout).\n"
    if act.kind == "channelwise":
        return (
            "weight : array_like\n    One slope, or one per channel (x.shape[axis] elements).\n"
            "axis : int, default 1\n    The channel axis. A 0-d or 1-D x has a single channel.\n"
        )
    def one(p: Any) -> str:
        if p.choices:
            return f"{p.name} : {{{', '.join(map(repr, p.choices))}}}, default {p.default!r}\n"
        return f"{p.name} : float\n" if p.required else f"{p.name} : float, default {p.default}\n"

    return "".join(one(p) for p in act.params)


# the docstrings' example inputs; the outputs are in each declaration (Activation.examples)
EXAMPLE_X = {
    "elementwise": "np.array([-2.0, 0.0, 1.5])",
    "rowwise": "np.array([1.0, 2.0, 3.0])",
    "channelwise": "np.array([[-2.0, 1.5], [-1.0, 0.5]])",
}
EXAMPLE_WEIGHT = "np.array([0.25, 0.1])"
EXAMPLE_ROW_GRAD = "np.array([1.0, 0.0, 0.0])"


def example_numbers(printed: str) -> list[float]:
    """The numbers in an example's printed output, in order."""
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?", printed)]


def example_args(act: Activation) -> str:
    """The arguments after x in the examples: the required parameters, by name."""
    if act.kind == "channelwise":
        return ", weight"
    return "".join(f", {p.name}={p.example!r}" for p in act.params if p.required)


def _example(act: Activation, backward: bool) -> str:
    lines = [">>> import numpy as np, fastact as fa", f">>> x = {EXAMPLE_X[act.kind]}"]
    if act.kind == "channelwise":
        lines.append(f">>> weight = {EXAMPLE_WEIGHT}")
    args, (forward_out, backward_out) = example_args(act), act.examples
    name = act.name
    if not backward:
        lines += [f">>> fa.{name}(x{args})", forward_out]
    elif act.kind == "rowwise":
        lines += [f">>> fa.{name}_backward({EXAMPLE_ROW_GRAD}, y=fa.{name}(x))", backward_out]
    elif act.kind == "channelwise":
        lines += [f">>> fa.{name}_backward(np.ones((2, 2)), x{args})  # (grad_x, grad_weight)", backward_out]
    else:
        lines += [f">>> fa.{name}_backward(np.ones(3), x{args})  # f'(x)", backward_out]
        values = act.validate(name, act.example_params)
        if act.supports_y and (act.y_ok is None or act.y_ok(*values)):
            lines += [f">>> fa.{name}_backward(np.ones(3), y=fa.{name}(x{args}){args})  # the same, from y",
                      backward_out]
    return "Examples\n--------\n" + "\n".join(lines) + "\n"


def _forward_doc(act: Activation) -> str:
    return (
        f"{act.summary}\n\n{act.formula}\n\nDerivative: {act.derivative}.\n\n"
        f"Parameters\n----------\nx : array_like\n    float32 and float64 keep their dtype; float16 is "
        f"computed in float32; integers and bools convert as in np.exp.\n{_params_doc(act)}"
        f"out : ndarray, optional\n    Where to write the result; out=x computes in place.\n\n"
        f"Returns\n-------\nndarray (a NumPy scalar for scalar input), or out.\n\n{_example(act, False)}"
    )


def _backward_doc(act: Activation) -> str:
    if act.kind == "channelwise":
        how = "Returns (grad_x, grad_weight): grad_output * df/dx, and grad_output * df/dweight summed " \
              "over every axis but the channel axis (accumulated in float64)."
    elif act.supports_y:
        cond = f" (needs {act.y_condition})" if act.y_condition else ""
        how = f"Returns grad_output * f'(x). Give x, or the forward's output as y={cond}."
    else:
        how = "Returns grad_output * f'(x). y= is not supported: the output does not determine f'."
    inputs = "grad_output : array_like\n    d loss / d f(x), of x's shape.\n"
    if act.kind == "channelwise":
        inputs += "x : array_like\n    The forward's input.\n"
    else:
        inputs += "x : array_like, optional\n    The forward's input (give x or y).\n"
    if act.supports_y:
        inputs += "y : array_like, optional, keyword\n    The forward's output, instead of x.\n"
    out = "out : ndarray, optional\n    Where to write grad_x; out=grad_output computes in place.\n"
    return (f"Backward (gradient) of {act.name}: {act.formula}\n\n{act.derivative}.\n\n{how}\n\n"
            f"Parameters\n----------\n{inputs}{_params_doc(act)}{out}\n{_example(act, True)}")
