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

__all__: list[str] = []

for _name, _act in REGISTRY.items():
    if _act.kind == "rowwise":  # softmax and log_softmax need a whole row
        continue
    for _suffix, _fn in (("", _act.forward_scalar), ("_grad", _act.grad_scalar)):
        _dispatcher = njit(inline="always", cache=False, error_model="numpy")(_fn)
        globals()[_name + _suffix] = _dispatcher
        __all__.append(_name + _suffix)

del _name, _act, _suffix, _fn, _dispatcher
