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
