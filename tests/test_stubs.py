"""The public API's type stub (src/fastact/__init__.pyi): what mypy and IDEs see of the
functions that fastact makes at import. It must match the registry, and a type checker
must see the real signatures through it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastact as fa
from fastact._stubs import init_stub

PACKAGE = Path(fa.__file__).parent


def test_stub_matches_the_registry():
    committed = (PACKAGE / "__init__.pyi").read_text()
    assert committed == init_stub(), "the stub is out of date: run python tools/make_stubs.py"


def test_the_package_says_it_is_typed():
    assert (PACKAGE / "py.typed").is_file()


def test_stub_names_every_public_function_with_its_parameters():
    stub = (PACKAGE / "__init__.pyi").read_text()
    for name, act in fa.ACTIVATIONS.items():
        for fn in (name, f"{name}_backward"):
            assert f"def {fn}(" in stub
        for p in getattr(act, "params", ()):
            assert f"{p.name}: " in stub.split(f"def {name}(", 1)[1].split("\n", 1)[0]
    assert "approximate: Literal['none', 'tanh'] = 'none'" in stub
    assert sorted(fa.__all__) == sorted(n for n in dir(fa) if n not in ("ufuncs", "scalar"))


USER_FILE = textwrap.dedent("""
    import numpy as np
    import fastact as fa

    x = np.linspace(-3.0, 3.0, 7)
    y = fa.gelu(x, approximate="tanh")
    reveal_type(y)
    g = fa.gelu_backward(np.ones(7), x, approximate="tanh")
    s = fa.softmax(x, axis=0)
    gx, gw = fa.prelu_backward(np.ones(7), x, np.array(0.25))
    fa.leaky_relu(x, 0.2)
    fa.gelu(x, aproximate="tanh")
    fa.gelu(x, approximate="erf")
    fa.softmax(x, dim=0)
""")


def mypy_messages(tmp_path, source: str) -> dict[str, str]:
    """mypy's messages on a user's file, by the stripped text of the line they are about."""
    user = tmp_path / "user.py"
    user.write_text(source)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--hide-error-context", "--cache-dir",
         str(tmp_path / "cache"), "--follow-imports=silent", user.name],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    lines = source.splitlines()
    messages: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if line.startswith(f"{user.name}:"):
            number, text = line.split(":", 2)[1:]
            key = lines[int(number) - 1].strip()
            messages[key] = f"{messages.get(key, '')} {text.strip()}".strip()
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return messages


needs_mypy = pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")


@needs_mypy
def test_mypy_sees_the_real_signatures(tmp_path):
    flagged = mypy_messages(tmp_path, USER_FILE)
    assert 'Revealed type is "numpy.ndarray' in flagged.pop("reveal_type(y)"), flagged
    typo = flagged.pop('fa.gelu(x, aproximate="tanh")')
    assert 'Unexpected keyword argument "aproximate"' in typo and '"gelu"' in typo
    assert "gelu" in flagged.pop('fa.gelu(x, approximate="erf")')
    assert 'Unexpected keyword argument "dim"' in flagged.pop("fa.softmax(x, dim=0)")
    assert not flagged, f"mypy flagged correct calls: {flagged}"


def _torch_or_skip():
    return pytest.importorskip("torch")


def test_torch_stub_matches_the_registry():
    _torch_or_skip()
    from fastact._stubs import torch_stub

    assert (PACKAGE / "torch.pyi").read_text() == torch_stub(), "out of date: run python tools/make_stubs.py"


def test_torch_functionals_show_their_parameters():
    _torch_or_skip()
    import inspect

    import fastact.torch as ft

    assert str(inspect.signature(ft.leaky_relu)) == (
        "(input: 'torch.Tensor', negative_slope: 'float' = 0.01, *, inplace: 'bool' = False) -> 'torch.Tensor'")
    assert str(inspect.signature(ft.threshold)) == (
        "(input: 'torch.Tensor', threshold: 'float', value: 'float', *, inplace: 'bool' = False) -> 'torch.Tensor'")
    assert list(inspect.signature(ft.gelu).parameters) == ["input", "approximate"]


TORCH_USER_FILE = textwrap.dedent("""
    import torch
    import fastact.torch as ft

    x = torch.linspace(-3.0, 3.0, 7)
    y = ft.gelu(x, approximate="tanh")
    reveal_type(y)
    m = ft.GELU(approximate="tanh")
    z = m(x)
    ft.leaky_relu(x, 0.2, inplace=False)
    ft.gelu(x, aproximate="tanh")
""")


@needs_mypy
def test_mypy_sees_the_torch_signatures(tmp_path):
    _torch_or_skip()
    flagged = mypy_messages(tmp_path, TORCH_USER_FILE)
    assert 'Revealed type is "torch._tensor.Tensor"' in flagged.pop("reveal_type(y)"), flagged
    assert 'Unexpected keyword argument "aproximate" for "gelu"' in flagged.pop('ft.gelu(x, aproximate="tanh")')
    assert not flagged, f"mypy flagged correct calls: {flagged}"
