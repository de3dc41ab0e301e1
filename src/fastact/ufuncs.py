"""The element-wise activations as real NumPy ufuncs.

``fastact.ufuncs.NAME(x, *params)`` and ``fastact.ufuncs.NAME_backward(grad_output,
x, *params)`` are ``numpy.ufunc`` objects (not numba's DUFunc wrappers), with float32
and float64 loops, so ``out=``, ``where=``, broadcasting, ``__array_ufunc__`` dispatch
(dask, xarray) and pickling behave as for NumPy's own ufuncs. Parameters are extra
inputs: ``fastact.ufuncs.leaky_relu(x, 0.2)``. ``NAME_backward_from_y(grad_output, y,
*params)`` exists where the output determines the derivative.

Each ufunc is built (or loaded from numba's cache) the first time it is looked up.
"""

from __future__ import annotations

import numpy as np

from . import KERNELS, REGISTRY
from ._docs import EXAMPLE_WEIGHT, EXAMPLE_X
from ._registry import Activation


def _doc(act: Activation, kind: str, name: str) -> str:
    """The ufunc's signature, formula, derivative, inputs and a doctest (NumPy 2's ufuncs
    take a docstring; the default is the bare signature)."""
    channelwise = act.kind == "channelwise"
    # the inputs after x: the parameters, or prelu's weight (which broadcasts against x as
    # any ufunc input does: along x's last axis, not along an axis= of fa.prelu's)
    extra = ["weight"] if channelwise else list(act.param_names)
    if channelwise:
        args, x, printed_grad = ", weight", EXAMPLE_X["channelwise"], _first_array(act.examples[1])
    else:
        # as the ufuncs take them: a choice (gelu's approximate) by its index
        args = "".join(f", {v!r}" for v in act.validate(act.name, act.example_params))
        x, printed_grad = EXAMPLE_X["elementwise"], act.examples[1]
    first = {"": "x", "_backward": "grad_output, x", "_backward_from_y": "grad_output, y"}[kind]
    choices = "".join(f" {p.name}: " + ", ".join(f"{i}.0 = {c!r}" for i, c in enumerate(p.choices)) + "."
                      for p in act.params if p.choices)
    what = {"": "The activation", "_backward": "grad_output * f'(x)",
            "_backward_from_y": "grad_output * f'(x), from y = f(x)"}[kind]
    ones = "np.ones((2, 2))" if channelwise else "np.ones(3)"
    call = {"": f"fa.ufuncs.{name}(x{args})", "_backward": f"fa.ufuncs.{name}({ones}, x{args})",
            "_backward_from_y": f"fa.ufuncs.{name}({ones}, fa.ufuncs.{act.name}(x{args}){args})"}[kind]
    printed = act.examples[0] if kind == "" else printed_grad
    inputs = "".join(f"{n} : array_like\n" for n in first.split(", "))
    if channelwise:
        inputs += "weight : array_like\n    The slopes, broadcast against x (one per column of a 2-D x).\n"
        note = " The weight's gradient, a sum over elements, is not a ufunc: use fa.prelu_backward."
    else:
        inputs += "".join(f"{p.name} : float or array_like\n" for p in act.params)
        note = (" Invalid parameter values (as fa." + act.name + " would refuse them) give NaN and NumPy's "
                "invalid-value RuntimeWarning, as NumPy's own ufuncs do for a domain error.") if act.params else ""
    inputs += "out, where, casting, order, dtype, subok\n    As for any NumPy ufunc.\n"
    setup = f">>> x = {x}\n" + (f">>> weight = {EXAMPLE_WEIGHT}\n" if channelwise else "")
    return (
        f"{name}({first}{', ' if extra else ''}{', '.join(extra)}, /, out=None, *, where=True, casting='same_kind', "
        f"order='K', dtype=None, subok=True)\n\n{what}, as a NumPy ufunc (float32 and float64 loops; the "
        f"{'weight is an input' if channelwise else 'parameters are inputs'} and broadcast).{choices}{note}\n\n"
        f"{act.formula}\n\nDerivative: {act.derivative}.\n\n"
        f"Parameters\n----------\n{inputs}\n"
        f"Examples\n--------\n>>> import numpy as np, fastact as fa\n{setup}"
        f">>> {call}\n{printed}\n"
    )


def _first_array(printed: str) -> str:
    """The first array of a printed tuple of arrays ("(array(...), array(...))")."""
    return printed[1:printed.index(")") + 1] if printed.startswith("(") else printed


def _lookup(name: str) -> np.ufunc | None:
    for suffix, attr in (("_backward_from_y", "backward_from_y_ufunc"), ("_backward", "backward_ufunc"), ("", "ufunc")):
        base = name.removesuffix(suffix) if suffix else name
        if suffix and not name.endswith(suffix):
            continue
        act = REGISTRY.get(base)
        if act is None or act.kind == "rowwise":  # softmax is not element-wise
            return None
        if attr == "backward_from_y_ufunc" and not act.supports_y:
            return None
        ufunc = getattr(KERNELS[base], attr)
        try:
            ufunc.__doc__ = _doc(act, suffix, name)
        except (AttributeError, TypeError):  # a NumPy whose ufuncs take no docstring: its default
            pass
        return ufunc
    return None


def __getattr__(name: str) -> np.ufunc:
    ufunc = _lookup(name)
    if ufunc is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = ufunc  # so that pickle finds it here by name
    return ufunc


def __dir__() -> list[str]:
    names = []
    for name, act in REGISTRY.items():
        if act.kind == "rowwise":
            continue
        names += [name, f"{name}_backward"] + ([f"{name}_backward_from_y"] if act.supports_y else [])
    return sorted(names)
