"""The public functions' names, signatures' shared parts and docstrings (with examples),
made from the declarations; fastact.ufuncs, fastact.scalar and fastact.torch use them too."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from ._kinds import kind_of
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


# the examples' shared inputs (each kind's x is its example_x)
EXAMPLE_WEIGHT = "np.array([0.25, 0.1])"
EXAMPLE_ROW_GRAD = "np.array([1.0, 0.0, 0.0])"


def example_numbers(printed: str) -> list[float]:
    """The numbers in an example's printed output, in order."""
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?", printed)]


def example_args(act: Activation) -> str:
    """The arguments after x in the examples."""
    return kind_of(act).example_args(act)


def _example(act: Activation, backward: bool) -> str:
    kind = kind_of(act)
    lines = [">>> import numpy as np, fastact as fa", f">>> x = {kind.example_x}", *kind.example_setup]
    args, (forward_out, backward_out) = kind.example_args(act), act.examples
    if backward:
        lines += kind.backward_example(act, args, backward_out)
    else:
        lines += [f">>> fa.{act.name}(x{args})", forward_out]
    return "Examples\n--------\n" + "\n".join(lines) + "\n"


def _forward_doc(act: Activation) -> str:
    return (
        f"{act.summary}\n\n{act.formula}\n\nDerivative: {act.derivative}.\n\n"
        f"Parameters\n----------\nx : array_like\n    float32 and float64 keep their dtype; float16 is "
        f"computed in float32; integers and bools convert as in np.exp.\n{kind_of(act).forward_params_doc(act)}"
        f"{kind_of(act).out_doc}\n"
        f"Returns\n-------\nndarray (a NumPy scalar for scalar input), or out.\n\n{_example(act, False)}"
    )


def _backward_doc(act: Activation) -> str:
    kind = kind_of(act)
    inputs = kind.grad_output_doc + kind.x_doc
    if act.supports_y:
        inputs += "y : array_like, optional, keyword\n    The forward's output, instead of x.\n"
    return (f"Backward (gradient) of {act.name}: {act.formula}\n\n{act.derivative}.\n\n{kind.backward_summary(act)}\n\n"
            f"Parameters\n----------\n{inputs}{kind.params_doc(act)}{kind.backward_out_doc}\n{_example(act, True)}")
