"""Every public function's docstring: the formula, the derivative, the parameters and an
example that runs as a doctest (the printed outputs were written from the float64
references in tests/references.py, not from fastact)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import fastact as fa
from fastact._kinds import kind_of


def _run(doc: str, name: str) -> None:
    test = doctest.DocTestParser().get_doctest(doc, {}, name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.tries > 0, f"{name}: no example"
    assert runner.failures == 0, f"{name}: the example printed something else"


def _documents(act, doc: str) -> None:
    assert act.formula in doc and act.derivative in doc
    assert "Parameters" in doc and "Examples" in doc


@pytest.mark.parametrize("name", list(fa.ACTIVATIONS))
def test_array_functions(name):
    act = fa.ACTIVATIONS[name]
    for fn in (act.forward, act.backward):
        _documents(act, fn.__doc__)
        for p in act.params:
            assert f"{p.name} :" in fn.__doc__
        _run(fn.__doc__, fn.__name__)


@pytest.mark.parametrize("name", [n for n, a in fa.ACTIVATIONS.items() if kind_of(a).has_scalar])
def test_scalar_functions(name):
    act = fa.ACTIVATIONS[name]
    for suffix in ("", "_grad"):
        fn = getattr(fa.scalar, name + suffix)
        assert act.derivative in fn.__doc__ and "Parameters" in fn.__doc__
        _run(fn.__doc__, f"fastact.scalar.{name}{suffix}")


@pytest.mark.parametrize("name", list(fa.ACTIVATIONS))
def test_torch_adapter(name):
    pytest.importorskip("torch")
    import fastact.torch as ft

    act = fa.ACTIVATIONS[name]
    module = next(c for c in vars(ft).values() if isinstance(c, type) and c.__name__.lower() == name.replace("_", ""))
    for obj in (getattr(ft, name), module):
        _documents(act, obj.__doc__)
        _run(obj.__doc__, obj.__name__)


@pytest.mark.parametrize("name", [n for n, a in fa.ACTIVATIONS.items() if kind_of(a).has_ufuncs])
def test_ufuncs(name):
    probe = np.frompyfunc(abs, 1, 1)
    try:
        probe.__doc__ = "settable"
    except (AttributeError, TypeError):
        pytest.skip("this NumPy's ufuncs take no docstring (fastact keeps NumPy's signature line)")
    act = fa.ACTIVATIONS[name]
    for suffix in ("", "_backward") + (("_backward_from_y",) if act.supports_y else ()):
        u = getattr(fa.ufuncs, name + suffix)
        _documents(act, u.__doc__)
        _run(u.__doc__, f"fastact.ufuncs.{name}{suffix}")


def test_torch_module_docstring():
    pytest.importorskip("torch")
    import fastact.torch as ft

    _run(ft.__doc__, "fastact.torch")


def test_examples_are_written_from_the_references():
    """Each declaration's examples= is what tools/make_examples.py computes from the tests'
    float64 references (run it to rewrite them): the doctests above then hold fastact to
    those values, not to its own."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / "make_examples.py"
    spec = importlib.util.spec_from_file_location("make_examples", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.differences() == {}
    assert set(tool.expected()) == set(fa.ACTIVATIONS)
