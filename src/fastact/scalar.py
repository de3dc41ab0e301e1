"""Numba functions of one value, to call from your own ``@njit`` code.

``fastact.scalar.NAME(v, *params)`` is the activation and ``fastact.scalar.NAME_grad(v,
*params)`` its derivative, as ``@njit(inline="always")`` functions: numba inlines them
into the caller, so a fused loop such as ``out[i] = scalar.gelu(x[i] + b[i])``
vectorises as if written by hand. They also run from Python, one value at a time.
prelu's is ``prelu(v, weight)`` with a scalar weight. softmax and log_softmax, which
need a whole row, have none.
"""

from __future__ import annotations

from numba import njit

from . import REGISTRY
from ._docs import example_numbers
from ._kinds import kind_of
from ._registry import Activation

__all__: list[str] = []


def _doc(act: Activation, grad: bool) -> str:
    """Formula, derivative, parameters and a doctest, as the array functions' docstrings."""
    v, params, pick = kind_of(act).scalar_example(act)
    listed = kind_of(act).scalar_params_doc(act)
    value = example_numbers(act.examples[1 if grad else 0])[pick]
    call = f"fa.scalar.{act.name}{'_grad' if grad else ''}({', '.join([v, *params])})"
    if grad:
        what = f"The derivative of {act.name}, {act.formula}:\n\n{act.derivative}."
    else:
        what = f"{act.summary}\n\n{act.formula}\n\nDerivative (the _grad function): {act.derivative}."
    return (f"{what}\n\nA numba function of one value, inlined into the @njit code that calls it.\n\n"
            f"Parameters\n----------\nv : float\n{listed}\nExamples\n--------\n>>> import fastact as fa\n"
            f">>> print(f\"{{{call}:.8f}}\")\n{value:.8f}\n")


for _name, _act in REGISTRY.items():
    if not kind_of(_act).has_scalar:  # softmax and log_softmax need a whole row
        continue
    for _suffix, _fn in (("", _act.forward_scalar), ("_grad", _act.grad_scalar)):
        _dispatcher = njit(inline="always", cache=False, error_model="numpy")(_fn)
        _dispatcher.__doc__ = _doc(_act, _suffix == "_grad")
        globals()[_name + _suffix] = _dispatcher
        __all__.append(_name + _suffix)

del _name, _act, _suffix, _fn, _dispatcher
