"""fastact: neural-network activation functions for NumPy arrays, compiled with numba.

For every activation NAME in :data:`ACTIVATIONS`::

    y  = fastact.NAME(x, <params>, *, out=None)
    gx = fastact.NAME_backward(grad_output, x=None, <params>, *, y=None, out=None)

except prelu (``prelu(x, weight, *, axis=1)``, whose backward also returns the weight's
gradient) and softmax / log_softmax, which take ``axis=-1`` instead of parameters.

``fastact.ufuncs.NAME`` are the same activations as NumPy ufuncs, and
``fastact.scalar.NAME`` / ``NAME_grad`` are numba functions to call from your own
``@njit`` code. Parameter names and defaults are those of ``torch.nn.functional``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import _threading

_threading.configure()  # before anything can start numba's threads

# the kinds' modules, each registering its kind (_kinds.Kind) on import
from . import _channelwise, _elementwise, _gated, _reduction, _rowwise  # noqa: E402
from . import activations as _activations  # noqa: E402  (declares into the registry)
from ._kernels import Kernels as _Kernels  # noqa: E402
from ._kinds import kind_of as _kind_of  # noqa: E402
from ._registry import REGISTRY, Activation  # noqa: E402

try:
    __version__ = version("fastact")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

ACTIVATIONS: dict[str, Activation] = REGISTRY
"""name -> :class:`~fastact._registry.Activation`: its public ``forward`` and
``backward`` functions, ``params`` with defaults, ``supports_y``, formula, derivative."""

KERNELS: dict[str, _Kernels] = {}

for _name, _act in REGISTRY.items():
    _kernels = KERNELS[_name] = _Kernels(_act)
    _act.forward, _act.backward = _kind_of(_act).public_functions(_act, _kernels)
    globals()[_name] = _act.forward
    globals()[f"{_name}_backward"] = _act.backward

del _name, _act, _kernels, _activations, _channelwise, _elementwise, _gated, _reduction, _rowwise
del PackageNotFoundError, version, annotations

# numba initialises its compiler (about 0.25 s of imports and registrations) on the first
# load of any cached function in a process. Doing it here puts that one-time cost in the
# import, so that the first call of each function costs only its own cache load (~10 ms).
# It is done synchronously: a background thread holding numba's compiler lock across a
# fork(), or while numba extensions are imported, could hang the process.
from numba.core.registry import cpu_target as _cpu_target  # noqa: E402

_cpu_target.target_context.refresh()
del _cpu_target

__all__ = ["ACTIVATIONS", "__version__"] + [
    n for name in REGISTRY for n in (name, f"{name}_backward")
]


_SUBMODULES = ("ufuncs", "scalar")


def __dir__() -> list[str]:
    # what a user may use: the functions, ACTIVATIONS and the submodules (KERNELS and
    # REGISTRY are the submodules' own, not hidden but not offered)
    return sorted([*__all__, *_SUBMODULES])


def __getattr__(name: str):
    # ufuncs and scalar are imported on first use: they build numba objects
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
