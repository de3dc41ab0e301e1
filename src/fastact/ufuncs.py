"""The element-wise activations as real NumPy ufuncs.

``fastact.ufuncs.NAME(x, *params)`` and ``fastact.ufuncs.NAME_backward(grad_output,
x, *params)`` are ``numpy.ufunc`` objects (not numba's DUFunc wrappers), with float32
and float64 loops, so ``out=``, ``where=``, broadcasting, ``__array_ufunc__`` dispatch
(dask, xarray) and pickling behave as for NumPy's own ufuncs. Where the CPU converts
float16 in hardware (F16C, on every x86-64 CPU with AVX2), a float16 loop comes first:
float16 in, float16 out, computed in float32 and rounded once, as ``fastact.NAME``.
Parameters are extra inputs: ``fastact.ufuncs.leaky_relu(x, 0.2)``. ``NAME_backward_from_y(grad_output, y,
*params)`` exists where the output determines the derivative.

Looking a ufunc up compiles nothing: each of its loops is compiled (or loaded from numba's
cache) on the first call that uses it, so a float32 caller compiles only the float32 loop.
"""

from __future__ import annotations

import numpy as np

from . import KERNELS, REGISTRY
from ._kinds import kind_of
from ._registry import Activation


def _doc(act: Activation, suffix: str, name: str) -> str:
    """The ufunc's signature, formula, derivative, inputs and a doctest (NumPy 2's ufuncs
    take a docstring; the default is the bare signature)."""
    kind = kind_of(act)
    extra, inputs_doc, note = kind.ufunc_inputs(act)
    args, x, ones = kind.ufunc_example_args(act), kind.example_x, kind.example_ones
    first = {"": "x", "_backward": "grad_output, x", "_backward_from_y": "grad_output, y"}[suffix]
    choices = "".join(f" {p.name}: " + ", ".join(f"{i}.0 = {c!r}" for i, c in enumerate(p.choices)) + "."
                      for p in act.params if p.choices)
    what = {"": "The activation", "_backward": "grad_output * f'(x)",
            "_backward_from_y": "grad_output * f'(x), from y = f(x)"}[suffix]
    call = {"": f"fa.ufuncs.{name}(x{args})", "_backward": f"fa.ufuncs.{name}({ones}, x{args})",
            "_backward_from_y": f"fa.ufuncs.{name}({ones}, fa.ufuncs.{act.name}(x{args}){args})"}[suffix]
    printed = act.examples[0] if suffix == "" else kind.ufunc_example_grad(act)
    inputs = "".join(f"{n} : array_like\n" for n in first.split(", ")) + inputs_doc
    inputs += "out, where, casting, order, dtype, subok\n    As for any NumPy ufunc.\n"
    setup = "".join(line + "\n" for line in (f">>> x = {x}", *kind.example_setup))
    return (
        f"{name}({first}{', ' if extra else ''}{', '.join(extra)}, /, out=None, *, where=True, casting='same_kind', "
        f"order='K', dtype=None, subok=True)\n\n{what}, as a NumPy ufunc (float32 and float64 loops, float16 where the "
        f"CPU has F16C; the "
        f"{kind.ufunc_inputs_phrase} and broadcast).{choices}{note}\n\n"
        f"{act.formula}\n\nDerivative: {act.derivative}.\n\n"
        f"Parameters\n----------\n{inputs}\n"
        f"Examples\n--------\n>>> import numpy as np, fastact as fa\n{setup}"
        f">>> {call}\n{printed}\n"
    )


def _lookup(name: str) -> np.ufunc | None:
    for suffix, attr in (("_backward_from_y", "backward_from_y_ufunc"), ("_backward", "backward_ufunc"), ("", "ufunc")):
        base = name.removesuffix(suffix) if suffix else name
        if suffix and not name.endswith(suffix):
            continue
        act = REGISTRY.get(base)
        if act is None or not kind_of(act).has_ufuncs:  # softmax is not element-wise
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
        if not kind_of(act).has_ufuncs:
            continue
        names += [name, f"{name}_backward"] + ([f"{name}_backward_from_y"] if act.supports_y else [])
    return sorted(names)
