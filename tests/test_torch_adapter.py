"""fastact.torch: the adapter's fast path, its fallback, autograd (gradcheck) and the modules."""

from __future__ import annotations

import numpy as np
import pytest

import fastact as fa

from .conftest import CASES, FINITE_CASES, FIRST_CASES, TORCH_COMPOSED, TORCH_NAMES, torch_function, y_supported

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastact.torch")
F = torch.nn.functional

# away from every kink (0, +-lambd, +-1, +-3, 6, threshold's threshold), so that finite
# differences see a smooth function
SMOOTH = [-3.7, -2.2, -1.4, -0.8, -0.3, 0.2, 0.7, 1.6, 2.5, 4.2, 6.9]


def _params(name, params):
    return dict(zip(fa.ACTIVATIONS[name].param_names, params, strict=False))


def _fastact_backward(name, params, g, x):
    """What the adapter's backward computes: from the output where it determines the
    derivative (as PyTorch saves it), else from the input."""
    if y_supported(name, params):
        return getattr(fa, f"{name}_backward")(g, None, *params, y=getattr(fa, name)(x, *params))
    return getattr(fa, f"{name}_backward")(g, x, *params)


def _module_class(name):
    """fastact.torch's module for an activation: leaky_relu -> LeakyReLU."""
    return next(c for c in vars(ft).values() if isinstance(c, type) and issubclass(c, torch.nn.Module)
                and c.__name__.lower() == name.replace("_", ""))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_fast_path_is_fastacts_forward_and_backward(name, params, dtype):
    """Bit for bit fastact's own functions, through a custom autograd node, without copies."""
    x = np.random.default_rng(3).normal(scale=3, size=(7, 9)).astype(dtype)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    y = getattr(ft, name)(t, **_params(name, params))
    assert type(y.grad_fn).__name__.endswith("FunctionBackward")
    np.testing.assert_array_equal(y.detach().numpy(), getattr(fa, name)(x, *params))
    g = np.random.default_rng(4).normal(size=x.shape).astype(dtype)
    y.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(t.grad.numpy(), _fastact_backward(name, params, g, x))


def _numpy_16(t):
    """A 16-bit tensor as fastact's NumPy functions take it (bfloat16 as ml_dtypes')."""
    if t.dtype == torch.bfloat16:
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_16_bit_tensors_take_the_fast_path(name, params, dtype):
    """float16 and bfloat16 tensors: bit for bit fastact's own 16-bit functions (each the
    float32 result rounded once), forward and backward, through the custom autograd node."""
    if dtype == torch.bfloat16:
        pytest.importorskip("ml_dtypes")
    t = (torch.randn(7, 9, generator=torch.Generator().manual_seed(3)) * 3).to(dtype).requires_grad_(True)
    y = getattr(ft, name)(t, **_params(name, params))
    assert type(y.grad_fn).__name__.endswith("FunctionBackward") and y.dtype == dtype
    x = _numpy_16(t.detach())
    want = getattr(fa, name)(x, *params)
    assert np.array_equal(_numpy_16(y.detach()).view(np.uint16), want.view(np.uint16))
    g = torch.randn(7, 9, generator=torch.Generator().manual_seed(4)).to(dtype)
    y.backward(g)
    want_g = _fastact_backward(name, params, _numpy_16(g), x)
    assert t.grad.dtype == dtype
    assert np.array_equal(_numpy_16(t.grad).view(np.uint16), want_g.view(np.uint16))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_16_bit_second_derivatives_and_the_other_kinds(dtype):
    if dtype == torch.bfloat16:
        pytest.importorskip("ml_dtypes")
    x = torch.linspace(-3, 3, 12, dtype=torch.float64).to(dtype).reshape(3, 4).requires_grad_(True)
    (g,) = torch.autograd.grad(ft.silu(x).sum(), x, create_graph=True)
    g.sum().backward()  # fastact's declared second derivative, in float32, rounded to dtype
    assert x.grad.dtype == dtype
    x64 = x.detach().double().requires_grad_(True)
    (g64,) = torch.autograd.grad(F.silu(x64).sum(), x64, create_graph=True)
    g64.sum().backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, atol=0.02, rtol=0.02)
    for got, want in ((ft.softmax(x, dim=1), fa.softmax(_numpy_16(x.detach()), axis=1)),
                      (ft.prelu(x, torch.tensor([0.25], dtype=dtype)),
                       fa.prelu(_numpy_16(x.detach()), _numpy_16(torch.tensor([0.25], dtype=dtype))))):
        assert got.dtype == dtype and np.array_equal(_numpy_16(got.detach()).view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize(("name", "params"), FINITE_CASES)
def test_gradcheck(name, params):
    x = torch.tensor(SMOOTH, dtype=torch.float64, requires_grad=True)
    kw = _params(name, params)
    assert torch.autograd.gradcheck(lambda t: getattr(ft, name)(t, **kw), (x,))


@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_module_is_a_drop_in_subclass(name, params):
    cls = _module_class(name)
    base = getattr(torch.nn, cls.__name__, None)
    if base is None:
        pytest.skip(f"torch.nn has no {cls.__name__} (tests/test_declaring.py tests fastact's own modules)")
    kw = _params(name, params)
    mine, reference = cls(**kw), base(**kw)
    assert isinstance(mine, base)
    assert repr(mine) == repr(reference)
    x = torch.from_numpy(np.random.default_rng(5).normal(scale=3, size=(6, 5)))
    np.testing.assert_array_equal(mine(x).numpy(), getattr(fa, name)(x.numpy(), *params))
    # within PyTorch's agreement with fastact (tests/test_torch.py checks it bound by bound)
    np.testing.assert_allclose(mine(x).numpy(), reference(x).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_in_place_where_pytorch_has_it(name, params):
    cls = _module_class(name)
    kw = _params(name, params)
    if not ft._torch_has_inplace(name):
        with pytest.raises(TypeError):
            cls(inplace=True, **kw)
        return
    base = torch.from_numpy(np.random.default_rng(6).normal(scale=3, size=40)).requires_grad_(True)
    inner = base * 1.0  # not a leaf, as in a network
    address = inner.data_ptr()
    out = cls(inplace=True, **kw)(inner)
    assert out.data_ptr() == address, "in place must write into the input's memory"
    out.backward(torch.ones_like(out))
    x = base.detach().numpy()
    np.testing.assert_array_equal(out.detach().numpy(), getattr(fa, name)(x, *params))
    np.testing.assert_array_equal(base.grad.numpy(), _fastact_backward(name, params, np.ones_like(x), x))


def test_no_copies_on_the_fast_path(monkeypatch):
    """fastact reads the tensor's memory and its result is the returned tensor's memory."""
    act = fa.ACTIVATIONS["silu"]
    seen = {}

    def spy(x, *args, **kwargs):
        seen["x"], seen["y"] = x, act.__dict__["forward"].__wrapped__(x, *args, **kwargs)
        return seen["y"]

    spy.__wrapped__ = act.forward
    monkeypatch.setattr(act, "forward", spy)
    x = torch.randn(1000, dtype=torch.float32, requires_grad=True)
    y = ft.silu(x)
    assert seen["x"].ctypes.data == x.data_ptr()
    assert seen["y"].ctypes.data == y.data_ptr()
    h = torch.randn(1000, dtype=torch.float64)
    assert ft.relu(h, inplace=True).data_ptr() == h.data_ptr()


@pytest.mark.parametrize("make", [
    lambda: torch.randn(6, 4).t(),  # not contiguous
    lambda: torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
], ids=["transposed", "channels_last"])
@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_fallback_is_pytorch(name, params, make):
    x = make().requires_grad_(True)
    kw = _params(name, params)
    if name in TORCH_COMPOSED or name in TORCH_NAMES:  # fastact computes these for any tensor PyTorch takes
        pytest.skip(f"torch.nn.functional has no {name} to fall back to")
    torch_fn = torch_function(F, name)
    y = getattr(ft, name)(x, **kw)
    want = torch_fn(x.detach(), **kw)
    assert not type(y.grad_fn).__name__.endswith("FunctionBackward")
    assert torch.equal(y.detach(), want)


@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)])
def test_prelu(shape):
    c = shape[1] if len(shape) > 1 else 1
    x = torch.from_numpy(np.random.default_rng(7).normal(size=shape)).requires_grad_(True)
    m = ft.PReLU(c).double()
    with torch.no_grad():
        m.weight.copy_(torch.linspace(0.1, 0.5, c, dtype=torch.float64))
    assert list(m.state_dict()) == ["weight"]
    y = m(x)
    assert type(y.grad_fn).__name__ == "PReLUFunctionBackward"
    y.backward(torch.ones_like(y))
    gx, gw = fa.prelu_backward(np.ones(shape), x.detach().numpy(), m.weight.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), gx)
    np.testing.assert_array_equal(m.weight.grad.numpy(), gw)
    xs = torch.tensor(SMOOTH, dtype=torch.float64).reshape(1, 1, -1).requires_grad_(True)
    w = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ft.prelu, (xs, w))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax(name, dim):
    x = torch.from_numpy(np.random.default_rng(8).normal(size=(4, 6))).requires_grad_(True)
    y = getattr(ft, name)(x, dim=dim)
    np.testing.assert_array_equal(y.detach().numpy(), getattr(fa, name)(x.detach().numpy(), axis=dim))
    np.testing.assert_allclose(y.detach().numpy(), getattr(F, name)(x.detach(), dim=dim).numpy(), rtol=1e-13)
    assert torch.autograd.gradcheck(lambda t: getattr(ft, name)(t, dim=dim), (x,))
    module = getattr(ft, "Softmax" if name == "softmax" else "LogSoftmax")(dim=dim)
    assert repr(module) == repr(getattr(torch.nn, type(module).__name__)(dim=dim))
    # dtype= and dim=None are PyTorch's
    assert getattr(ft, name)(x, dim=dim, dtype=torch.float32).dtype == torch.float32


def test_bad_parameters_name_the_argument():
    x = torch.randn(4)
    with pytest.raises(ValueError, match="approximate"):
        ft.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="beta"):
        ft.softplus(x, beta=0)
    with pytest.raises(TypeError, match="threshold"):
        ft.threshold(x, 0.5)
    before = x.clone()
    with pytest.raises(ValueError, match="min_val"):
        ft.hardtanh(x, 2.0, 1.0, inplace=True)
    assert torch.equal(x, before)


def test_in_place_on_a_leaf_that_requires_grad_raises_before_writing():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    before = x.detach().clone()
    with pytest.raises(RuntimeError, match="leaf Variable"):
        ft.relu(x, inplace=True)
    assert torch.equal(x.detach(), before)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        torch.nn.functional.relu(x, inplace=True)  # the same as PyTorch


def test_mlp_trains_like_pytorchs():
    """The same network with PyTorch's and fastact's activations: the same loss and gradients."""
    torch.manual_seed(0)
    layers = [torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32), torch.nn.SiLU(),
              torch.nn.Linear(32, 4), torch.nn.LogSoftmax(dim=1)]
    theirs = torch.nn.Sequential(*layers).double()
    mine = torch.nn.Sequential(*[
        getattr(ft, type(m).__name__)(**({"dim": 1} if isinstance(m, torch.nn.LogSoftmax) else {}))
        if type(m).__module__.startswith("torch.nn.modules.activation") else m
        for m in theirs
    ])
    assert sum(isinstance(m, ft.GELU | ft.SiLU | ft.LogSoftmax) for m in mine) == 3
    x = torch.randn(64, 16, dtype=torch.float64)
    target = torch.randint(0, 4, (64,))
    grads = []
    for net in (theirs, mine):
        net.zero_grad()
        loss = F.nll_loss(net(x), target)
        loss.backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_every_activation_is_adapted():
    for name in fa.ACTIVATIONS:
        assert getattr(ft, name).__module__ == "fastact.torch"
        cls = _module_class(name)
        # torch.nn's class where PyTorch has the activation, else a fastact module
        assert issubclass(cls, getattr(torch.nn, cls.__name__, torch.nn.Module))
        assert cls.__module__ == "fastact.torch"
