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
        return getattr(KERNELS[base], attr)
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
