"""The gated activations (glu, swiglu, geglu, reglu) against the float64 references of
tests/references.py: both forms, every axis and layout, out= and in place, 16-bit
floats, broadcasting, the parallel path, bad input, dask and xarray."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastact as fa
from fastact._arrays import PARALLEL_MIN_SIZE

from .conftest import Guard
from .dense import bit_grid, edge_grids
from .references import (
    GATED,
    GATED_PARAM_SETS,
    REFERENCES,
    gated_backward,
    gated_bounds,
    gated_forward,
    sample,
    ulp_distance,
)

NAMES = list(GATED)
CASES = [pytest.param(name, params, id=f"{name}{list(params) if params else ''}")
         for name in NAMES for params in GATED_PARAM_SETS.get(name, ((),))]
DTYPES = [np.float32, np.float64]


def _kw(name, params):
    return dict(zip(fa.ACTIVATIONS[name].param_names, params, strict=False))


def _split(x, axis):
    return np.split(x, 2, axis=axis)


def _agree(got, want, bound, scale, reach):
    """Within bound ulp of the float64 reference, or within bound * eps * scale (the
    magnitude of the terms the result is made of, where it cancels: silu' near its root),
    or within tiny * reach: f(gate), computed in the dtype, may underflow (by up to the
    smallest normal) before it is multiplied by reach, the factors it is multiplied by."""
    got = np.asarray(got)
    dt = got.dtype
    with np.errstate(all="ignore"):
        rounded = want.astype(dt)
        ok = ulp_distance(got, rounded) <= bound
        err = np.abs(got.astype(np.float64) - want)
        eps, tiny = float(np.finfo(dt).eps), float(np.finfo(dt).tiny)
        ok |= err <= bound * eps * scale + tiny * np.maximum(1.0, reach)
    return ok


def _scales(name, first, second, params, g=None):
    """The magnitudes of the forward's, and of the two gradients' terms."""
    ref = REFERENCES[GATED[name][0]]
    gate_first = GATED[name][1] == 0
    gate, value = (first, second) if gate_first else (second, first)
    gate, value = gate.astype(np.float64), np.abs(value.astype(np.float64))
    with np.errstate(all="ignore"):
        f = ref.terms(gate, *params) if ref.terms else np.abs(ref.f(gate, *params))
        if g is None:
            return value * f, value
        g = np.abs(g.astype(np.float64))
        df = ref.grad_terms(gate, *params) if ref.grad_terms else np.abs(ref.df(gate, *params))
        grad_gate, grad_value = (g * value * df, g * value), (g * f, g)
    return (grad_gate, grad_value) if gate_first else (grad_value, grad_gate)


def _check_forward(name, params, got, first, second):
    want = gated_forward(name, first, second, params)
    ok = _agree(got, want, gated_bounds(name, got.dtype)[0], *_scales(name, first, second, params))
    assert ok.all(), f"{name}: {first[~ok][:5]}, {second[~ok][:5]} gave {got[~ok][:5]}, want {want[~ok][:5]}"


def _check_backward(name, params, got, g, first, second):
    wants = gated_backward(name, g, first, second, params)
    scales = _scales(name, first, second, params, g)
    bound = gated_bounds(name, got[0].dtype)[1]
    for half, gr, want, scale in zip(("first", "second"), got, wants, scales, strict=True):
        ok = _agree(gr, want, bound, *scale)
        assert ok.all(), (f"{name}, grad of the {half} half: at {first[~ok][:4]}, {second[~ok][:4]} (g "
                          f"{np.broadcast_to(g, ok.shape)[~ok][:4]}) gave {gr[~ok][:4]}, want {want[~ok][:4]}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "params"), CASES)
def test_values_of_both_forms(name, params, dtype, no_warnings):
    first, second = sample(dtype, 3000, seed=1), sample(dtype, 3000, seed=2)
    g = sample(dtype, 3000, seed=3)
    kw = _kw(name, params)
    x = np.concatenate([first, second])
    _check_forward(name, params, fa.ACTIVATIONS[name].forward(x, **kw), first, second)
    pair = fa.ACTIVATIONS[name].forward(first, second, **kw)
    _check_forward(name, params, pair, first, second)
    np.testing.assert_array_equal(pair, fa.ACTIVATIONS[name].forward(x, **kw))  # one kernel: the same bits
    grad_x = fa.ACTIVATIONS[name].backward(g, x, **kw)
    assert grad_x.shape == x.shape and grad_x.dtype == dtype
    _check_backward(name, params, _split(grad_x, 0), g, first, second)
    ga, gb = fa.ACTIVATIONS[name].backward(g, first, second, **kw)
    _check_backward(name, params, (ga, gb), g, first, second)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "params"), CASES)
def test_dense_grids(name, params, dtype, no_warnings):
    """The README's bounds on the dense grids of tests/dense.py: the gate a stride through
    every binade's bit patterns (subnormals included) and linear grids where results
    underflow or cancel, each gate beside values of several magnitudes, forward and both
    gradients."""
    gate = np.concatenate([bit_grid(dtype, 3000), edge_grids(dtype)])
    value = np.resize(np.array([1.0, -2.5, 0.75, 1e-3, 3e4], dtype), gate.shape)
    first, second = (gate, value) if GATED[name][1] == 0 else (value, gate)
    kw = _kw(name, params)
    with np.errstate(over="ignore"):
        g = np.resize(np.array([1.0, -0.5, 7.0], dtype), gate.shape)
    _check_forward(name, params, fa.ACTIVATIONS[name].forward(first, second, **kw), first, second)
    _check_backward(name, params, fa.ACTIVATIONS[name].backward(g, first, second, **kw), g, first, second)


def _layouts(dtype):
    rng = np.random.default_rng(5)
    base = rng.normal(0, 2, (6, 8, 10)).astype(dtype)
    return {
        "C": base,
        "Fortran": np.asfortranarray(base),
        "strided": rng.normal(0, 2, (6, 16, 10)).astype(dtype)[:, ::2],
        "negative": base[::-1, :, ::-1],
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_every_axis_and_layout(name, dtype):
    for label, x in _layouts(dtype).items():
        for axis in (0, 1, 2, -1):
            first, second = _split(x, axis)
            y = fa.ACTIVATIONS[name].forward(x, axis=axis)
            assert y.shape == first.shape, (label, axis)
            _check_forward(name, (), y, first, second)
            g = np.random.default_rng(axis + 7).normal(size=y.shape).astype(dtype)
            grad = fa.ACTIVATIONS[name].backward(g, x, axis=axis)
            assert grad.shape == x.shape, (label, axis)
            _check_backward(name, (), _split(grad, axis), g, first, second)


@pytest.mark.parametrize("name", NAMES)
def test_out_in_place_and_overlap(name):
    f, b = fa.ACTIVATIONS[name].forward, fa.ACTIVATIONS[name].backward
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 12))
    g = rng.normal(size=(5, 6))
    want_y, want_grad = f(x), b(g, x)
    out = np.empty((5, 6))
    assert f(x, out=out) is out
    np.testing.assert_array_equal(out, want_y)
    # the split backward in place: grad_x over x
    xx = x.copy()
    assert b(g, xx, out=xx) is xx
    np.testing.assert_array_equal(xx, want_grad)
    # the two-array forms in place, over either input
    a, c = x[:, :6].copy(), x[:, 6:].copy()
    want_pair = f(a, c)
    aa = a.copy()
    assert f(aa, c, out=aa) is aa
    np.testing.assert_array_equal(aa, want_pair)
    ga, gc = b(g, a, c)
    a2, c2 = a.copy(), c.copy()
    got = b(g, a2, c2, out=(a2, c2))
    assert got[0] is a2 and got[1] is c2
    np.testing.assert_array_equal(a2, ga)
    np.testing.assert_array_equal(c2, gc)
    # an out that partly overlaps the input gives what a separate out gives
    buf = x.copy()
    got = f(buf, out=buf[:, 3:9])
    np.testing.assert_array_equal(got, want_y)
    buf = np.concatenate([g, g], axis=1).copy()
    shifted = np.concatenate([np.zeros((5, 1)), x], axis=1)[:, :12].copy()
    shifted[:, :] = x
    big = np.zeros((5, 13))
    big[:, 1:] = x
    got = b(g, big[:, 1:], out=big[:, :12])
    np.testing.assert_array_equal(got, want_grad)


@pytest.mark.parametrize("name", NAMES)
def test_broadcasting_and_conversion(name):
    f, b = fa.ACTIVATIONS[name].forward, fa.ACTIVATIONS[name].backward
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 5))
    c = rng.normal(size=(5,))
    y = f(a, c)
    _check_forward(name, (), y, a, np.broadcast_to(c, a.shape))
    g = rng.normal(size=(4, 5))
    ga, gc = b(g, a, c)
    assert ga.shape == a.shape and gc.shape == c.shape
    full = gated_backward(name, g, a, np.broadcast_to(c, a.shape))
    np.testing.assert_allclose(ga, full[0], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(gc, full[1].sum(axis=0), rtol=1e-12, atol=1e-12)
    # integers and lists become float64, as in np.exp; a scalar pair gives a NumPy scalar
    assert f([1, 2, 3, 4]).dtype == np.float64
    assert isinstance(f(1.0, 2.0), np.float64)
    assert f(np.arange(4, dtype=np.int16)).dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_parallel_path_matches_serial(name):
    x = np.random.default_rng(2).normal(size=(2 * PARALLEL_MIN_SIZE + 6)).astype(np.float32)
    g = np.random.default_rng(3).normal(size=x.size // 2).astype(np.float32)
    f, b = fa.ACTIVATIONS[name].forward, fa.ACTIVATIONS[name].backward
    y, grad = f(x), b(g, x)
    first, second = _split(x, 0)
    _check_forward(name, (), y, first, second)
    _check_backward(name, (), _split(grad, 0), g, first, second)
    rows = x[:-6].reshape(-1, 2048)  # many rows, split along axis 0: one long row per half
    _check_forward(name, (), f(rows, axis=0), *_split(rows, 0))
    # the serial kernel on a slice gives the same bits as the parallel one
    np.testing.assert_array_equal(f(first[:2048], second[:2048]), y[:2048])


@pytest.mark.parametrize("cols", [600, 1000, 1088])
@pytest.mark.parametrize("name", NAMES)
def test_large_split_form_prefetching_pieces(name, cols):
    """Out of cache (over 2^20 result elements), rows of 512 or more go in pieces of 64
    columns, each asking for the lines of a piece further on: a row's last piece is short
    (600, 1000) or whole (1088), the lines asked for lie in the next row, two rows on
    (600: none asked for), or past the task's."""
    rng = np.random.default_rng(5)
    rows = (1 << 20) // cols + 3
    x = rng.normal(0, 3, (rows, 2 * cols)).astype(np.float32)
    g = rng.normal(0, 1, (rows, cols)).astype(np.float32)
    first, second = (np.ascontiguousarray(h) for h in _split(x, 1))
    f, b = fa.ACTIVATIONS[name].forward, fa.ACTIVATIONS[name].backward
    y = f(x)
    _check_forward(name, (), y.ravel(), first.ravel(), second.ravel())
    np.testing.assert_array_equal(y, f(first, second))  # the two-array form: no pieces, the same bits
    grad = b(g, x)
    _check_backward(name, (), [h.ravel() for h in _split(grad, 1)], g.ravel(), first.ravel(), second.ravel())
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # the serial kernel: one task of every row
    try:
        np.testing.assert_array_equal(f(x), y)
        np.testing.assert_array_equal(b(g, x), grad)
    finally:
        numba.set_num_threads(threads)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_16_bit_floats_round_the_float32_result_once(name, dtype):
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dt = np.dtype(ml_dtypes.bfloat16)
    else:
        dt = np.dtype(np.float16)
    rng = np.random.default_rng(4)
    x = (rng.normal(0, 3, 4000)).astype(dt)
    g = rng.normal(0, 1, 2000).astype(dt)
    f, b = fa.ACTIVATIONS[name].forward, fa.ACTIVATIONS[name].backward
    y = f(x)
    assert y.dtype == dt
    want = f(x.astype(np.float32)).astype(dt)
    np.testing.assert_array_equal(y.astype(np.float32), want.astype(np.float32))
    grad = b(g, x)
    assert grad.dtype == dt
    want = b(g.astype(np.float32), x.astype(np.float32)).astype(dt)
    np.testing.assert_array_equal(grad.astype(np.float32), want.astype(np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_before_writing(name):
    f, b = fa.ACTIVATIONS[name].forward, fa.ACTIVATIONS[name].backward
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    g = np.ones((3, 2))
    out = np.full((3, 2), 7.0)
    guard = Guard(x, g, out)
    with pytest.raises(ValueError, match=f"{name}: x.shape\\[0\\] is 3, which is odd"):
        f(x, axis=0, out=out)
    with pytest.raises(ValueError, match=f"{name}: x is 0-d"):
        f(np.float64(1.0))
    with pytest.raises(np.exceptions.AxisError, match=name):
        f(x, axis=2)
    with pytest.raises(ValueError, match="out has shape"):
        f(x, out=np.empty((3, 4)))
    with pytest.raises(TypeError, match="out has dtype"):
        f(x, out=np.empty((3, 2), np.float32))
    ro = np.empty((3, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        f(x, out=ro)
    with pytest.raises(TypeError, match=f"{name}: x has dtype complex128"):
        f(x.astype(complex))
    with pytest.raises(ValueError, match="do not broadcast"):
        f(x, np.ones(5))
    with pytest.raises(TypeError, match=f"{name}_backward: the derivative of {name} cannot be computed from the"):
        b(g, y=x)
    with pytest.raises(TypeError, match="missing required argument 'x'"):
        b(g)
    with pytest.raises(ValueError, match=f"{name}_backward: grad_output has shape"):
        b(np.ones((3, 3)), x, out=x.copy())
    with pytest.raises(TypeError, match="out must be a tuple of two arrays"):
        b(g, x[:, :2], x[:, 2:], out=np.empty((3, 2)))
    with pytest.raises(ValueError, match="share memory"):
        b(g, x[:, :2], x[:, 2:], out=(out, out))
    with pytest.raises(TypeError, match="unexpected keyword argument 'aproximate'"):
        f(x, aproximate="tanh")
    guard.check()


def test_geglu_approximate_is_checked():
    with pytest.raises(ValueError, match="geglu: parameter 'approximate' must be one of 'none', 'tanh'"):
        fa.geglu(np.ones(4), approximate="fast")
    x = np.linspace(-3, 3, 8)
    np.testing.assert_allclose(fa.geglu(x, approximate="tanh"),
                               gated_forward("geglu", x[:4], x[4:], ("tanh",)), rtol=1e-14)


def test_conventions_at_the_edges():
    # glu gates the second half (PyTorch's F.glu); nan propagates; the gates' limits hold
    x = np.array([2.0, np.nan, 1.0, -np.inf, np.inf, 3.0])
    np.testing.assert_array_equal(fa.glu(x), [0.0, np.nan, 1 / (1 + np.exp(-3.0))])
    np.testing.assert_array_equal(fa.swiglu(np.array([-np.inf, np.inf, 0.0, 2.0])), [0.0, np.inf])
    np.testing.assert_array_equal(fa.reglu(np.array([0.0, -1.0, 5.0, 5.0])), [0.0, -0.0])  # relu'(0) = 0
    np.testing.assert_array_equal(fa.reglu_backward(np.ones(2), np.array([0.0, 1.0, 5.0, 5.0])), [0, 5, 0, 1])


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(NAMES), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       axis=st.integers(-3, 2), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31))
def test_any_shape_and_axis(name, shape, axis, dtype, seed):
    if not -len(shape) <= axis < len(shape):
        return
    shape[axis] *= 2
    x = np.random.default_rng(seed).normal(0, 3, shape).astype(dtype)
    first, second = _split(x, axis)
    _check_forward(name, (), fa.ACTIVATIONS[name].forward(x, axis=axis), first, second)
    g = np.random.default_rng(seed + 1).normal(size=first.shape).astype(dtype)
    _check_backward(name, (), _split(fa.ACTIVATIONS[name].backward(g, x, axis=axis), axis), g, first, second)


def test_dask_and_xarray_lazily():
    da = pytest.importorskip("dask.array")
    xr = pytest.importorskip("xarray")
    x = np.random.default_rng(6).normal(size=(6, 8))
    d = da.from_array(x, chunks=(3, 2))
    lazy = fa.swiglu(d)
    assert isinstance(lazy, da.Array) and lazy.shape == (6, 4)
    np.testing.assert_array_equal(lazy.compute(), fa.swiglu(x))
    g = np.ones((6, 4))
    np.testing.assert_array_equal(fa.swiglu_backward(da.from_array(g, chunks=2), d).compute(), fa.swiglu_backward(g, x))
    ga, gb = fa.glu_backward(da.from_array(g, chunks=2), d[:, :4], d[:, 4:])
    want = fa.glu_backward(g, x[:, :4], x[:, 4:])
    np.testing.assert_allclose(ga.compute(), want[0], rtol=1e-15)
    np.testing.assert_allclose(gb.compute(), want[1], rtol=1e-15)
    np.testing.assert_array_equal(fa.glu(d, axis=0).compute(), fa.glu(x, axis=0))
    arr = xr.DataArray(x, dims=("batch", "feature"), coords={"batch": np.arange(6)}, attrs={"units": "m"})
    out = fa.geglu(arr)
    assert isinstance(out, xr.DataArray) and out.dims == ("batch", "feature") and out.shape == (6, 4)
    assert list(out.coords["batch"].values) == list(range(6)) and out.attrs == {"units": "m"}
    np.testing.assert_array_equal(out.values, fa.geglu(x))


# torch.compile (seconds per function) for glu (PyTorch's) and swiglu (fastact's own): the
# other two are made by the same factory as swiglu
COMPILED = ("glu", "swiglu")


def test_torch_adapter_against_pytorch_compositions():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    import fastact.torch as ft

    composed = {
        "glu": lambda t, dim=-1: F.glu(t, dim),
        "swiglu": lambda t, dim=-1: F.silu(t.chunk(2, dim)[0]) * t.chunk(2, dim)[1],
        "geglu": lambda t, dim=-1: F.gelu(t.chunk(2, dim)[0]) * t.chunk(2, dim)[1],
        "reglu": lambda t, dim=-1: F.relu(t.chunk(2, dim)[0]) * t.chunk(2, dim)[1],
    }
    modules = {"glu": ft.GLU, "swiglu": ft.SwiGLU, "geglu": ft.GEGLU, "reglu": ft.ReGLU}
    assert issubclass(ft.GLU, torch.nn.GLU)
    for name, ref in composed.items():
        f = getattr(ft, name)
        for dim in (0, 1, -1):
            x = torch.randn(4, 6, 8, dtype=torch.float64, requires_grad=True)
            g = torch.randn_like(ref(x, dim))
            (want,) = torch.autograd.grad(ref(x, dim), x, g)
            got_y = f(x, dim)
            (got,) = torch.autograd.grad(got_y, x, g)
            torch.testing.assert_close(got_y, ref(x, dim), rtol=1e-13, atol=1e-15)
            torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-15)
        x = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradgradcheck(lambda t, f=f: f(t), (x,))
        torch.testing.assert_close(modules[name](dim=0)(x), ref(x, 0))
        if name in COMPILED:
            compiled = torch.compile(lambda t, f=f: f(t), fullgraph=True)
            torch.testing.assert_close(compiled(x), ref(x))
        # a strided tensor goes to PyTorch's composition, with the same values
        torch.testing.assert_close(f(x.detach().T), ref(x.detach().T))
    t = torch.randn(2, 8)
    torch.testing.assert_close(ft.geglu(t, approximate="tanh"), F.gelu(t[:, :4], approximate="tanh") * t[:, 4:])
    torch.testing.assert_close(torch.func.vmap(ft.swiglu)(t), composed["swiglu"](t))


def test_torch_two_tensor_form_against_pytorch_compositions():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    import fastact.torch as ft

    composed = {
        "glu": lambda a, b: a * torch.sigmoid(b),
        "swiglu": lambda a, b: F.silu(a) * b,
        "geglu": lambda a, b: F.gelu(a) * b,
        "reglu": lambda a, b: F.relu(a) * b,
    }
    modules = {"glu": ft.GLU, "swiglu": ft.SwiGLU, "geglu": ft.GEGLU, "reglu": ft.ReGLU}
    for name, ref in composed.items():
        f = getattr(ft, name)
        a, b = (torch.randn(4, 6, dtype=torch.float64, requires_grad=True) for _ in range(2))
        y = f(a, b=b)
        assert type(y.grad_fn).__name__.endswith("PairFunctionBackward")  # fastact's fused pass
        g = torch.randn_like(y)
        torch.testing.assert_close(y, ref(a, b), rtol=1e-13, atol=1e-15)
        for got, want in zip(torch.autograd.grad(y, (a, b), g), torch.autograd.grad(ref(a, b), (a, b), g),
                             strict=True):
            torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-15)
        small = (a[:2, :3].detach().clone().requires_grad_(), b[:2, :3].detach().clone().requires_grad_())
        assert torch.autograd.gradcheck(lambda s, t, f=f: f(s, b=t), small)
        assert torch.autograd.gradgradcheck(lambda s, t, f=f: f(s, b=t), small)
        torch.testing.assert_close(modules[name]()(a, b), ref(a, b))
        if name in COMPILED:
            compiled = torch.compile(lambda s, t, f=f: f(s, b=t), fullgraph=True)
            torch.testing.assert_close(compiled(a, b), ref(a, b))
        # each sample's gradients under vmap, b shared by the batch
        per_sample = torch.func.vmap(torch.func.grad(lambda s, t, f=f: f(s, b=t).sum(), argnums=(0, 1)),
                                     in_dims=(0, None))(a.detach(), b[0].detach())
        want = torch.func.vmap(torch.func.grad(lambda s, t, ref=ref: ref(s, t).sum(), argnums=(0, 1)),
                               in_dims=(0, None))(a.detach(), b[0].detach())
        for got_i, want_i in zip(per_sample, want, strict=True):
            torch.testing.assert_close(got_i, want_i, rtol=1e-13, atol=1e-15)
        # float32 and float16 tensors take the fused path too, as fastact.NAME(a, b) computes them
        for dtype in (torch.float32, torch.float16):
            s, t = torch.randn(3, 5).to(dtype), torch.randn(3, 5).to(dtype)
            assert torch.equal(f(s, b=t), torch.from_numpy(getattr(fa, name)(s.numpy(), t.numpy())))
        # broadcasting, mixed dtypes and strided tensors go to PyTorch's composition
        torch.testing.assert_close(f(a, b=b[0]), ref(a, b[0]))
        torch.testing.assert_close(f(a.float(), b=b), ref(a.float(), b))
        torch.testing.assert_close(f(a.detach().T, b=b.detach().T), ref(a.detach().T, b.detach().T))
        with pytest.raises(TypeError, match=f"fastact.torch.{name}: dim must be an int"):
            f(a, b)
