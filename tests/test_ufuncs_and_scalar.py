"""fastact.ufuncs are real NumPy ufuncs; fastact.scalar functions run inside user numba code."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from numba import njit

import fastact as fa

from .conftest import ELEMENTWISE
from .references import REFERENCES, first_params, numeric_params, ulp_distance


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_ufunc_is_a_numpy_ufunc(name):
    u = getattr(fa.ufuncs, name)
    nparams = len(fa.ACTIVATIONS[name].params)
    assert isinstance(u, np.ufunc)
    assert u.nin == 1 + nparams and u.nout == 1
    assert u.__name__ == name
    assert u.__module__ == "fastact.ufuncs"
    assert pickle.loads(pickle.dumps(u)) is u
    b = getattr(fa.ufuncs, f"{name}_backward")
    assert b.nin == 2 + nparams and pickle.loads(pickle.dumps(b)) is b


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_ufunc_out_where_and_broadcasting(name):
    u = getattr(fa.ufuncs, name)
    ref_params = first_params(name)
    params = numeric_params(name, ref_params)  # a choice goes in as its index
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    want = REFERENCES[name].f(x, *ref_params)
    np.testing.assert_allclose(u(x, *params), want, rtol=4e-15)
    out = np.full_like(x, 9.0)
    mask = x > -1
    assert u(x, *params, out=out, where=mask) is out
    np.testing.assert_allclose(out, np.where(mask, want, 9.0), rtol=4e-15)
    col = x[:, :1]  # broadcasting of the input against out
    out2 = np.empty((3, 4))
    u(col, *params, out=out2)
    np.testing.assert_allclose(out2, np.broadcast_to(REFERENCES[name].f(col, *ref_params), (3, 4)), rtol=4e-15)
    assert u(np.float32(-1.0), *params).dtype == np.float32


def test_ufunc_unpickles_in_a_fresh_process():
    import subprocess
    import sys

    blob = pickle.dumps(fa.ufuncs.leaky_relu_backward)
    code = ("import pickle, sys, numpy as np; u = pickle.loads(sys.stdin.buffer.read()); "
            "print(*u(np.array([1.0, -1.0]), np.array([-2.0, 3.0]), 0.5))")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True)
    assert [float(v) for v in out.stdout.split()] == [0.5, -1.0]


def test_ufunc_dispatches_through_array_ufunc():
    class Tagged(np.ndarray):
        pass

    x = np.linspace(-1, 1, 4).view(Tagged)
    assert type(fa.ufuncs.relu(x)) is Tagged


def test_backward_from_y_ufuncs_exist_where_supported():
    for name in ELEMENTWISE:
        has = hasattr(fa.ufuncs, f"{name}_backward_from_y")
        assert has == fa.ACTIVATIONS[name].supports_y
    assert set(dir(fa.ufuncs)) >= set(ELEMENTWISE)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_scalar_functions_from_python_and_numba(name):
    f, df = getattr(fa.scalar, name), getattr(fa.scalar, f"{name}_grad")
    ref_params = first_params(name)
    params = numeric_params(name, ref_params)
    ref = REFERENCES[name]
    for v in (-2.5, -0.0, 0.0, 0.7, 3.0):
        assert f(v, *params) == pytest.approx(float(ref.f(np.float64(v), *ref_params)), rel=4e-15)
        assert df(v, *params) == pytest.approx(float(ref.df(np.float64(v), *ref_params)), rel=4e-15)


def test_scalar_fused_into_a_user_kernel():
    relu, leaky_grad = fa.scalar.relu, fa.scalar.leaky_relu_grad

    @njit
    def bias_relu(x, b, out):
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                out[i, j] = relu(x[i, j] + b[j])

    @njit
    def leaky_grad_sum(x, s):
        t = 0.0
        for v in x:
            t += leaky_grad(v, s)
        return t

    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    b = np.array([0.5, -0.5, 0.0], np.float32)
    out = np.empty_like(x)
    bias_relu(x, b, out)
    np.testing.assert_array_equal(out, np.maximum(x + b, 0))
    assert leaky_grad_sum(np.array([-1.0, 2.0, 0.0]), 0.1) == pytest.approx(1.2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_user_kernel_vectorises(dtype):
    """The README's bias + activation kernel: the scalar functions inline into the user's
    loop and it compiles to packed AVX instructions (bench/fused_bias.py times it against
    the copy roofline). error_model="numpy", as fastact's own kernels use: Python's
    division checks would keep the loop scalar."""
    gelu = fa.scalar.gelu

    @njit(error_model="numpy")
    def bias_gelu(x, b, out):
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                out[i, j] = gelu(x[i, j] + b[j], 0.0)

    x = np.linspace(-6, 6, 24, dtype=dtype).reshape(4, 6)
    b = np.linspace(-1, 1, 6, dtype=dtype)
    out = np.empty_like(x)
    bias_gelu(x, b, out)
    want = REFERENCES["gelu"].f((x + b).astype(np.float64), "none")
    assert (ulp_distance(out, want.astype(dtype)) <= REFERENCES["gelu"].max_ulp[np.dtype(dtype).name] + 1).all()
    asm = "".join(bias_gelu.inspect_asm().values())
    # packed arithmetic on 256-bit (AVX2) or 512-bit registers (LLVM's choice for Zen 4/5),
    # e.g. vfmadd...ps/pd %ymm
    packed = re.findall(r"\bv(?:fmadd|mul|add)\w*p[sd]\s+[^\n]*%[yz]mm", asm)
    assert len(packed) >= 8, "the fused loop did not vectorise"


PICKLERS = ["pickle", "cloudpickle"]


@pytest.mark.parametrize("pickler", PICKLERS)
def test_public_functions_and_ufuncs_pickle(pickler):
    """By reference (module and name), as NumPy's ufuncs do, so they travel to other processes."""
    p = pytest.importorskip(pickler)
    for name, act in fa.ACTIVATIONS.items():
        for fn in (act.forward, act.backward):
            assert p.loads(p.dumps(fn)) is fn
        if act.kind == "elementwise":
            for u in (getattr(fa.ufuncs, name), getattr(fa.ufuncs, f"{name}_backward")):
                assert p.loads(p.dumps(u)) is u


def test_pickled_functions_run_in_another_process():
    import subprocess
    import sys

    payload = pickle.dumps([fa.gelu, fa.softmax, fa.ufuncs.leaky_relu, fa.prelu_backward])
    code = (
        "import pickle, sys; import numpy as np\n"
        "gelu, softmax, leaky, prelu_backward = pickle.loads(sys.stdin.buffer.read())\n"
        "x = np.array([-1.0, 0.0, 2.0])\n"
        "print(gelu(x)[0] < 0, softmax(x).sum().round(12), leaky(x, 0.5)[0], prelu_backward(x, x, [0.1])[1][0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, check=True, timeout=300)
    assert done.stdout.split() == [b"True", b"1.0", b"-0.5", b"1.0"]
