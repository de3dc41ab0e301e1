"""Declaring an activation is all it takes: one the registry does not have (and PyTorch
does not either) works through every surface. The declaration is appended to a copy of
the package's activations.py, and the copy is used in a subprocess, so that the suite's
own registry stays as it is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastact

DECLARATION = textwrap.dedent('''

    def _temp_cube(x):
        return x * x * x


    def _temp_cube_grad(x):
        return lit(x, 3.0) * x * x


    def _temp_cube_grad2(x):
        return lit(x, 6.0) * x


    elementwise(
        "temp_cube",
        _temp_cube,
        _temp_cube_grad,
        grad2=_temp_cube_grad2,
        examples=("array([-8.   ,  0.   ,  3.375])", "array([12.  ,  0.  ,  6.75])"),
        formula="f(x) = x^3",
        derivative="f'(x) = 3 x^2",
        summary="A cube: a test's declaration.",
        numpy=lambda x: x**3,
        numpy_grad=lambda g, x: 3 * g * x**2,
    )
''')

USE = textwrap.dedent('''
    import json, importlib.util
    import numpy as np
    from numba import njit
    import fastact as fa

    x = np.array([-2.0, 0.0, 1.5, 3.0])
    g = np.array([1.0, 2.0, 3.0, 4.0])
    report = {
        "forward": fa.temp_cube(x).tolist(),
        "backward": fa.temp_cube_backward(g, x).tolist(),
        "float32": str(fa.temp_cube(x.astype(np.float32)).dtype),
        "ufunc": fa.ufuncs.temp_cube(x).tolist(),
        "public": "temp_cube" in fa.__all__ and "temp_cube_backward" in dir(fa),
        "doc": "f(x) = x^3" in fa.temp_cube.__doc__,
    }

    @njit
    def through_scalar(v):
        return fa.scalar.temp_cube(v) + fa.scalar.temp_cube_grad(v)

    report["scalar"] = through_scalar(2.0)
    if importlib.util.find_spec("torch") is not None:
        import torch
        import fastact.torch as ft
        from fastact._stubs import torch_stub

        t = torch.tensor(x, requires_grad=True)
        y = ft.temp_cube(t)
        y.backward(torch.tensor(g))
        m = ft.TempCube()
        strided = torch.arange(8.0, dtype=torch.float64)[::2]
        try:
            ft.temp_cube(torch.ones(3, dtype=torch.int32))
            refused = ""
        except TypeError as e:
            refused = str(e)
        inplace = torch.tensor(x)
        ft.temp_cube(inplace, inplace=True)
        report["torch"] = {
            "forward": y.tolist(), "grad": t.grad.tolist(), "module": m(torch.tensor(x)).tolist(),
            "module_repr": repr(m), "is_module": isinstance(m, torch.nn.Module),
            "strided": ft.temp_cube(strided).tolist(), "refused": refused, "inplace": inplace.tolist(),
            "half": ft.temp_cube(torch.full((3,), 2.0, dtype=torch.float16)).tolist(),
            "stub": "class TempCube(torch.nn.Module):" in torch_stub(),
        }
    print(json.dumps(report))
''')


def test_a_new_declaration_works_everywhere(tmp_path):
    package = tmp_path / "src" / "fastact"
    shutil.copytree(Path(fastact.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    with open(package / "activations.py", "a") as f:
        f.write(DECLARATION)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "src"), NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", USE], env=env, capture_output=True, text=True, timeout=900,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    x, g = [-2.0, 0.0, 1.5, 3.0], [1.0, 2.0, 3.0, 4.0]
    cube, grad = [v**3 for v in x], [gi * 3 * v**2 for gi, v in zip(g, x, strict=True)]
    assert r["forward"] == cube and r["ufunc"] == cube and r["backward"] == grad
    assert r["float32"] == "float32" and r["public"] and r["doc"]
    assert r["scalar"] == 8.0 + 12.0
    if "torch" not in r:
        pytest.skip("PyTorch is not installed: fastact.torch's part of the declaration untested")
    t = r["torch"]
    assert t["forward"] == cube and t["grad"] == grad and t["module"] == cube and t["inplace"] == cube
    assert t["is_module"] and t["module_repr"] == "TempCube(inplace=False)"
    assert t["strided"] == [0.0, 8.0, 64.0, 216.0]
    assert "fastact.torch.temp_cube: PyTorch has no temp_cube" in t["refused"] and "int32" in t["refused"]
    assert t["half"] == [8.0, 8.0, 8.0]
    assert t["stub"]


def _declare(**overrides):
    from fastact._registry import Param, elementwise

    fields = dict(name="temp_bad", forward=lambda x: x, grad=lambda x: 1.0, grad2="piecewise linear",
                  formula="f(x) = x", derivative="f'(x) = 1", summary="A test's declaration.",
                  examples=("", ""))
    fields.update(overrides)
    if "params" in fields:
        fields["params"] = tuple(Param(n, 1.0) for n in fields["params"])
    return elementwise(fields.pop("name"), fields.pop("forward"), fields.pop("grad"), **fields)


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(params=("a", "b", "c"), forward=lambda x, a, b, c: x, grad=lambda x, a, b, c: 1.0),
     r"elementwise\('temp_bad'\): 3 parameters; the kernels take at most 2"),
    (dict(params=("a",)), r"elementwise\('temp_bad'\): forward= takes 1 arguments, expected 2"),
    (dict(grad=lambda x, y: 1.0), r"grad= takes 2 arguments, expected 1"),
    (dict(name="gelu"), r"elementwise\('gelu'\): an activation of that name is already declared"),
    (dict(name="not a name"), r"must be a public Python identifier"),
])
def test_a_bad_declaration_is_refused_with_a_clear_message(overrides, message):
    before = dict(fastact.ACTIVATIONS)
    with pytest.raises((TypeError, ValueError), match=message):
        _declare(**overrides)
    assert fastact.ACTIVATIONS == before
