"""Test cases generated from the registry: every element-wise activation x its parameter sets."""

from __future__ import annotations

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


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``pytest -n auto``), every test of one activation runs on the
    same worker: most of a cold run is numba compiling kernels, and a kernel compiled by
    one worker is then used by the tests that need it, not compiled again by another."""
    for item in items:
        spec = getattr(item, "callspec", None)
        name = spec.params.get("name") if spec is not None else None
        if isinstance(name, str):
            item.add_marker(pytest.mark.xdist_group(name))
    # The subprocess tests of threads and processes run one after another, last: their
    # interpreters load the kernels the other tests compiled instead of compiling the
    # same ones again at the same time (measured cold: 2 x 140 s, run side by side).
    late = [item for item in items if item.path.name == "test_concurrency.py"]
    for item in late:
        item.add_marker(pytest.mark.xdist_group("processes"))
    items[:] = [item for item in items if item.path.name != "test_concurrency.py"] + late


try:
    from xdist.scheduler import LoadGroupScheduling
except ImportError:  # without pytest-xdist, pytest would reject the hook below as unknown
    pass
else:

    def pytest_xdist_make_scheduler(config, log):
        # the groups above, without the user having to add --dist loadgroup
        return LoadGroupScheduling(config, log)


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
