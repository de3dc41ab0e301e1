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


# --- the inner loop, on every layout NumPy may hand it --------------------------------------
# 0, 1 and 2 parameters, a choice among them; sizes across the loop's 4096-element blocks
LAYOUT_CASES = ["relu", "sigmoid", "leaky_relu", "elu", "gelu", "softplus", "hardtanh"]


def _view(buf, n, step):
    """n elements of buf with the given step, away from both of its ends."""
    inner = buf[5:-5]
    return inner[::step] if step > 0 else inner[::-1][::-step]


def _guarded(n, dtype, step):
    """A view of n elements with the given step inside a buffer of 7s; the buffer; and
    where the view's elements are not."""
    buf = np.full(10 + n * abs(step), 7.0, dtype)
    outside = np.ones(buf.shape, bool)
    _view(outside, n, step)[...] = False
    return _view(buf, n, step), buf, outside


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LAYOUT_CASES)
def test_ufunc_writes_a_strided_or_reversed_out_where_it_points(name, dtype):
    """out= with any step, inputs with any step: every element where it belongs and nothing
    written around the view (numba's own ufunc loop wrote a strided out= contiguously)."""
    n = 9000
    params = numeric_params(name, first_params(name))
    x = np.linspace(-6, 6, n).astype(dtype)
    want = REFERENCES[name].f(x.astype(np.float64), *first_params(name))
    for u, inputs, ref in ((getattr(fa.ufuncs, name), (x,), want),
                           (getattr(fa.ufuncs, f"{name}_backward"), (np.full_like(x, 0.5), x), None)):
        base = u(*inputs, *params)
        if ref is not None:
            np.testing.assert_allclose(base, ref, rtol=4e-6 if dtype == np.float32 else 4e-15, atol=1e-30)
        for out_step in (1, 2, -1, -3):
            for in_step in (1, 3, -2):
                views = []
                for a in inputs:
                    v, _, _ = _guarded(n, dtype, in_step)
                    v[...] = a
                    views.append(v)
                out, buf, outside = _guarded(n, dtype, out_step)
                assert u(*views, *params, out=out) is out
                np.testing.assert_array_equal(out, base, err_msg=f"out step {out_step}, input step {in_step}")
                assert (buf[outside] == 7.0).all(), f"written outside out= (step {out_step})"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LAYOUT_CASES)
def test_ufunc_in_place(name, dtype):
    """out= the input itself (and, for a backward, grad_output or x): the values of a
    separate output."""
    params = numeric_params(name, first_params(name))
    x = np.linspace(-6, 6, 9001).astype(dtype)
    g = np.linspace(2, -1, x.size).astype(dtype)
    u, b = getattr(fa.ufuncs, name), getattr(fa.ufuncs, f"{name}_backward")
    want, want_b = u(x, *params), b(g, x, *params)
    y = x.copy()
    assert u(y, *params, out=y) is y
    np.testing.assert_array_equal(y, want)
    for which in (0, 1):
        inputs = [g.copy(), x.copy()]
        b(*inputs, *params, out=inputs[which])
        np.testing.assert_array_equal(inputs[which], want_b)
    both = x.copy()
    b(both, both, *params, out=both)
    np.testing.assert_array_equal(both, b(x, x, *params))


def test_ufunc_parameters_that_vary_along_the_array():
    """Runs of equal parameter values, a run of one element, -0.0 apart from 0.0, and an
    invalid value that makes only its own elements NaN."""
    x = np.linspace(-3, 3, 9000).astype(np.float32)
    slope = np.repeat(np.array([0.1, 0.2, 0.3], np.float32), 3000)
    slope[4500] = 0.7
    got = fa.ufuncs.leaky_relu(x, slope)
    np.testing.assert_array_equal(got, np.where(x >= 0, x, x * slope))
    signed = fa.ufuncs.leaky_relu(np.float64(-1.0) * np.ones(4), np.array([0.0, -0.0, 0.0, -0.0]))
    np.testing.assert_array_equal(np.signbit(signed), [True, False, True, False])
    alpha = np.ones(9000)
    alpha[[10, 5000, 5001]] = 0.0  # celu's alpha must not be 0
    with pytest.warns(RuntimeWarning, match="invalid value"):
        got = fa.ufuncs.celu(x.astype(np.float64), alpha)
    bad = alpha == 0.0
    assert np.isnan(got[bad]).all()
    np.testing.assert_allclose(got[~bad], REFERENCES["celu"].f(x.astype(np.float64)[~bad], 1.0), rtol=4e-15)


def test_ufunc_unpickles_in_a_fresh_process():
    import subprocess
    import sys

    blob = pickle.dumps(fa.ufuncs.leaky_relu_backward)
    code = ("import pickle, sys, numpy as np; u = pickle.loads(sys.stdin.buffer.read()); "
            "print(*u(np.array([1.0, -1.0]), np.array([-2.0, 3.0]), 0.5))")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True)
    assert [float(v) for v in out.stdout.split()] == [0.5, -1.0]


LOOPS_ON_FIRST_CALL = """
import sys, threading
import numpy as np, fastact as fa
from fastact import _loops_ufunc as L
u = fa.ufuncs.relu
assert L.UFUNC_LOOPS["relu"].loops == (), "looking a ufunc up compiles nothing"
x = np.linspace(-2, 2, 50_000)
threads = [threading.Thread(target=lambda: u(x)) for _ in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
assert [c.__qualname__ for c in L.UFUNC_LOOPS["relu"].loops] == ["ufunc.relu.float64"]
assert np.array_equal(u(x), np.maximum(x, 0))
compiles, reported = [], []
real = L._compile_loop
def failing_once(*a):
    compiles.append(a[4])
    if len(compiles) == 1:
        raise MemoryError("no room to compile")
    return real(*a)
L._compile_loop = failing_once
sys.unraisablehook = lambda u: reported.append(type(u.exc_value).__name__)
x32 = np.linspace(-2, 2, 7, dtype=np.float32)
first = u(x32[::-1], out=np.full(7, 5.0, np.float32)[::-1])
assert np.isnan(first).all() and reported == ["MemoryError"], (first, reported)
assert np.array_equal(u(x32), np.maximum(x32, 0)) and u(x32).dtype == np.float32
assert np.array_equal(u(x), np.maximum(x, 0)) and len(compiles) == 2, compiles
print("ok")
"""


def test_ufunc_loops_compile_on_their_first_call(tmp_path):
    """A ufunc compiles each dtype's loop on its first call of that dtype, once under
    concurrent first calls, and a loop that fails to compile gives NaN (the error goes to
    sys.unraisablehook, since a ufunc's inner loop cannot raise) and compiles on the next
    call. In a subprocess with an empty cache, so that the loops are really compiled."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", LOOPS_ON_FIRST_CALL], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


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
