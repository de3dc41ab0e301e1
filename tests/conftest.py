"""Test cases generated from the registry: every element-wise activation x its parameter sets."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import fastact as fa

from .references import REFERENCES, first_params

ELEMENTWISE = [name for name, act in fa.ACTIVATIONS.items() if act.kind == "elementwise"]
DTYPES = [np.float32, np.float64]
# torch.nn.functional's name for an activation PyTorch has under another name
TORCH_NAMES = {"hard_silu": "hardswish"}


def _torch_squareplus(t, b=4.0):
    import torch

    # stable in both directions (hypot: no overflow of t^2), and each branch's input kept
    # inside its branch, so that the other's gradient is not inf * 0
    neg, pos = torch.where(t < 0, t, -1.0), torch.where(t < 0, 1.0, t)
    root = torch.tensor(b, dtype=t.dtype).sqrt()
    s_neg, s_pos = torch.hypot(neg, root), torch.hypot(pos, root)
    # s - x as s (1 - x / s): 2 |x| would overflow near the largest float
    return torch.where(t < 0, b / 2 / s_neg / (1 - neg / s_neg), (pos + s_pos) / 2)


def _torch_sparse_plus(t):
    import torch

    inside = torch.where(t.isnan() | ((t > -1) & (t < 1)), t, 0.0)  # NaN stays NaN
    return torch.where(t <= -1, 0.0 * t, torch.where(t >= 1, t, (inside + 1) ** 2 / 4))


def _torch_sparse_sigmoid(t):
    import torch

    # hardtanh's derivative is 0 at its bounds, as fastact's sparse_sigmoid's at -1 and 1
    return (torch.nn.functional.hardtanh(t) + 1) / 2


# for the activations PyTorch lacks: PyTorch compositions of the same function (autograd
# differentiates them to any order)
TORCH_COMPOSED = {"squareplus": _torch_squareplus, "sparse_plus": _torch_sparse_plus,
                  "sparse_sigmoid": _torch_sparse_sigmoid}


def torch_function(F, name):
    """PyTorch's function for an activation (F: torch.nn.functional), or a composition of
    PyTorch's operations where it has none."""
    if name in TORCH_COMPOSED:
        return TORCH_COMPOSED[name]
    return getattr(F, TORCH_NAMES.get(name, name))

CASES = [
    pytest.param(name, params, id=f"{name}{list(params) if params else ''}")
    for name in ELEMENTWISE
    for params in REFERENCES[name].param_sets
    if name in REFERENCES
]
FIRST_CASES = [pytest.param(name, first_params(name), id=name) for name in ELEMENTWISE]
# the cases whose function is finite on finite input (not threshold with value=nan), for
# finite differences
FINITE_CASES = [case for case in CASES if not any(isinstance(p, float) and p != p for p in case.values[1])]


def pytest_collection_modifyitems(config, items):
    # The subprocess tests of threads and processes come last (see _GroupScheduling).
    late = [item for item in items if item.path.name == "test_concurrency.py"]
    items[:] = [item for item in items if item.path.name != "test_concurrency.py"] + late


def _group(nodeid: str) -> str:
    """The scheduling unit of a test under pytest-xdist: its activation, when its
    parameter id starts with one (``test_x[gelu-float32]``, ``test_y[leaky_relu[0.2]]``);
    all of test_concurrency.py as one; otherwise the test itself."""
    if "test_concurrency.py::" in nodeid:
        return "processes"
    bracket = nodeid.find("[")
    if bracket >= 0:
        first = re.split(r"[-\[\]]", nodeid[bracket + 1:], maxsplit=1)[0]
        if first in fa.ACTIVATIONS:
            return first
    return nodeid


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # without pytest-xdist, pytest would reject the hook below as unknown
    pass
else:

    class _GroupScheduling(LoadScopeScheduling):
        """Under ``pytest -n auto``, every test of one activation runs on the same worker:
        most of a cold run is numba compiling kernels, and a kernel compiled by one worker
        is then loaded from the cache by the tests that need it, not compiled again by
        another at the same time. The subprocess tests of threads and processes run one
        after another as one unit, after the larger units (units are scheduled largest
        first), so that their interpreters load the kernels the other tests compiled
        (measured cold: 146 s each when run beside the rest, 4 s with a warm cache).
        (pytest-xdist's own xdist_group marker does not reach its scheduler under pytest
        9, which builds node ids from ``Node._id``; the groups are read from the ids here.)"""

        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    def pytest_xdist_make_scheduler(config, log):
        return _GroupScheduling(config, log)


@pytest.fixture
def no_warnings():
    """Any warning raised inside the block fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def call_forward(name, x, params, **kw):
    return getattr(fa, name)(x, *params, **kw)


def call_backward(name, g, x, params, **kw):
    return getattr(fa, f"{name}_backward")(g, x, *params, **kw)


def y_supported(name, params) -> bool:
    act = fa.ACTIVATIONS[name]
    return act.supports_y and REFERENCES[name].y_ok(*params)


class Guard:
    """Snapshots of the caller's arrays, to prove nothing was written."""

    def __init__(self, *arrays):
        self.arrays = [a for a in arrays if isinstance(a, np.ndarray)]
        self.before = [a.tobytes() for a in self.arrays]

    def check(self):
        for a, b in zip(self.arrays, self.before, strict=True):
            assert a.tobytes() == b, "an array the caller passed was modified"
