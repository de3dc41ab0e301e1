"""The compiled loops of each activation (``Kernels``), made on first use from the loop
factories of ``_loops_*.py`` and cached on disk (see ``_cache.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

import numpy as np

from ._cache import SOURCE_TOKEN, _jit_variants
from ._kinds import kind_of
from ._loops_channel import _channel_loops, _channel_loops_in_place
from ._loops_gated import _gated_loops
from ._loops_map import _chain_loops, _map_loops
from ._loops_reduce import _reduce_backward_loops, _reduce_loops
from ._loops_rows import _rowwise_loops
from ._loops_simplex import _simplex_loops
from ._loops_ufunc import _make_ufunc, ufunc_checks
from ._registry import Activation

# each ufunc of an activation: the Activation's scalar function it computes, its name's
# suffix, and how many arrays it takes
_UFUNCS = {
    "forward": ("forward_scalar", "", 1),
    "backward": ("grad_scalar", "_backward", 2),
    "backward_from_y": ("grad_from_y_scalar", "_backward_from_y", 2),
    "backward2": ("grad2_scalar", "_backward2", 2),
    "backward2_from_y": ("grad2_from_y_scalar", "_backward2_from_y", 2),
}


class Kernels:
    """The compiled loops of one activation, each made on first use."""

    def __init__(self, act: Activation) -> None:
        self.act = act

    def built(self) -> Iterator[tuple[str, Any]]:
        """(a label, the dispatcher) of each loop variant made so far (the cached
        properties' dicts): what the build tests count compilations and signatures of."""
        for attr, loops in self.__dict__.items():
            if isinstance(loops, dict):
                for loop, variants in loops.items():
                    for v in variants:
                        yield f"{self.act.name}.{attr}.{loop}.{v.__qualname__}", v

    def _variants(self, loop_factory, *scalars) -> dict[str, tuple]:
        loops = loop_factory(*scalars, SOURCE_TOKEN)
        return {
            fn.__name__: _jit_variants(fn, f"{self.act.name}.{loop_factory.__name__}.{fn.__name__}")
            for fn in loops
        }

    @cached_property
    def forward(self) -> dict[str, tuple]:
        """{"flat": (serial, parallel), "rows": (serial, parallel)}"""
        return self._variants(_map_loops, self.act.forward_scalar, self._nparams)

    @cached_property
    def backward(self) -> dict[str, tuple]:
        return self._variants(_chain_loops, self.act.grad_scalar, self._nparams)

    @cached_property
    def backward_from_y(self) -> dict[str, tuple]:
        return self._variants(_chain_loops, self.act.grad_from_y_scalar, self._nparams)

    @cached_property
    def channel(self) -> dict[str, tuple]:
        act = self.act
        return self._variants(_channel_loops, act.forward_scalar, act.grad_scalar, act.kind_options["grad_weight"])

    @cached_property
    def channel_in_place(self) -> dict[str, tuple]:
        act = self.act
        return self._variants(_channel_loops_in_place, act.forward_scalar, act.grad_scalar,
                              act.kind_options["grad_weight"])

    @cached_property
    def rowwise(self) -> dict[str, tuple]:
        """{"forward", "backward", "forward_columns", "backward_columns": (serial, parallel)}"""
        act = self.act
        if act.kind_options.get("rule") == "simplex":
            return self._variants(_simplex_loops)  # sparsemax: a threshold per row, not exponentials
        scalars = act.forward_scalar, act.kind_options["row_constant"], act.kind_options["grad_term"], act.grad_scalar
        return self._variants(_rowwise_loops, *scalars)

    @cached_property
    def gated(self) -> dict[str, tuple]:
        """{"forward", "backward": (serial, parallel)}"""
        return self._variants(_gated_loops, self.act.forward_scalar, self.act.grad_scalar)

    @cached_property
    def reduce(self) -> dict[str, tuple]:
        """{"rows", "columns": (serial, parallel)}: each row's maximum and sum of exponentials"""
        return self._variants(_reduce_loops)

    @cached_property
    def reduce_backward(self) -> dict[str, tuple]:
        """{"rows", "columns": (serial, parallel)}: exp(x - m) * scale along each row"""
        return self._variants(_reduce_backward_loops)

    # ufuncs: fa.ufuncs.NAME, and the path for layouts the flat and row loops do not take
    @property
    def _nparams(self) -> int:
        return kind_of(self.act).kernel_params(self.act)

    def _ufunc(self, which: str, bits: bool = False) -> np.ufunc:
        scalar, suffix, nin = _UFUNCS[which]
        name = self.act.name + suffix + ("_bfloat16_bits" if bits else "")
        return _make_ufunc(getattr(self.act, scalar), name, nin, self._nparams, ufunc_checks(self.act), bits=bits)

    @cached_property
    def ufunc(self) -> np.ufunc:
        return self._ufunc("forward")

    @cached_property
    def backward_ufunc(self) -> np.ufunc:
        return self._ufunc("backward")

    @cached_property
    def backward_from_y_ufunc(self) -> np.ufunc:
        return self._ufunc("backward_from_y")

    # the second derivative, h * f''(x) (and from y): what differentiates the backward in
    # fastact.torch. Only double backward needs it, so a ufunc (one compile per dtype) and
    # no prange loops
    @cached_property
    def backward2_ufunc(self) -> np.ufunc:
        return self._ufunc("backward2")

    @cached_property
    def backward2_from_y_ufunc(self) -> np.ufunc:
        return self._ufunc("backward2_from_y")

    # private ufuncs for fa.NAME's bfloat16 layouts the flat kernels do not take: int16
    # (bfloat16's bits) in and out, computed in float32 blocks and rounded once. NumPy
    # registers a legacy loop only for its own types, and ml_dtypes' bfloat16 has a type
    # number only once ml_dtypes is imported, which fastact never does itself.
    @cached_property
    def forward_bfloat16_bits_ufunc(self) -> np.ufunc:
        return self._ufunc("forward", bits=True)

    @cached_property
    def backward_bfloat16_bits_ufunc(self) -> np.ufunc:
        return self._ufunc("backward", bits=True)

    @cached_property
    def backward_from_y_bfloat16_bits_ufunc(self) -> np.ufunc:
        return self._ufunc("backward_from_y", bits=True)
