"""fastact.torch beyond first-order eager autograd: second derivatives, torch.func and
torch.compile, each compared with PyTorch's own functions (skipped without PyTorch)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import fastact as fa

from .conftest import FINITE_CASES, FIRST_CASES, torch_function, y_supported

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastact.torch")
F = torch.nn.functional

# away from every kink (0, +-lambd, +-1, +-3, 6, threshold's threshold), so that finite
# differences see a smooth function
SMOOTH = [-3.7, -2.2, -1.4, -0.8, -0.3, 0.2, 0.7, 1.6, 2.5, 4.2, 6.9]
KINKS = np.array([0.0, 0.1, 0.5, 1.0, 3.0, 6.0, 20.0])


def _kw(name, params):
    return dict(zip(fa.ACTIVATIONS[name].param_names, params, strict=False))


def _smooth_sample(dtype, n=64, seed=0):
    """Normal samples kept at least 1e-2 from every kink (of either sign)."""
    x = np.random.default_rng(seed).normal(scale=3, size=4 * n)
    far = np.min(np.abs(np.abs(x)[:, None] - KINKS[None, :]), axis=1) > 1e-2
    return torch.from_numpy(x[far][:n].astype(dtype))


def _pytorch(name):
    """PyTorch's function, or a composition of PyTorch's functions where its own has no
    second derivative (hardsigmoid_backward has none; its float64 backward also uses
    float32's 1/6, shared/FACTS.md)."""
    if name == "hardsigmoid":
        return lambda t: F.relu6(t + 3) / 6
    return torch_function(F, name)


def _penalty(act, x, w):
    """The gradient-penalty pattern: d/d(x, w) of sum((d/dx sum(act(x w)))^2)."""
    x, w = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(act(x * w).sum(), x, create_graph=True)
    (g**2).sum().backward()
    return g.detach(), x.grad, w.grad


@pytest.mark.parametrize(("name", "params", "inplace"), [
    pytest.param(*case.values, inplace, id=f"{case.id}-{'in_place' if inplace else 'out_of_place'}")
    for case in FINITE_CASES for inplace in (False, True) if not inplace or ft._torch_has_inplace(case.values[0])
])
def test_gradgradcheck(name, params, inplace):
    kw = {**_kw(name, params), **({"inplace": True} if inplace else {})}
    x = torch.tensor(SMOOTH, dtype=torch.float64, requires_grad=True)
    # in place on a non-leaf, as in a network
    assert torch.autograd.gradgradcheck(lambda t: getattr(ft, name)(t * 1.0, **kw), (x,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "params"), FINITE_CASES)
def test_second_derivatives_match_pytorch(name, params, dtype):
    kw = _kw(name, params)
    x = _smooth_sample(dtype)
    w = torch.tensor(0.7, dtype=x.dtype)
    mine = _penalty(lambda t: getattr(ft, name)(t, **kw), x, w)
    theirs = _penalty(lambda t: _pytorch(name)(t, **kw), x, w)
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-10, 1e-12)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_modules_give_second_derivatives(name, params):
    cls = next(c for c in vars(ft).values() if isinstance(c, type) and issubclass(c, torch.nn.Module)
               and c.__name__.lower() == name.replace("_", ""))
    kw = _kw(name, params)
    x = _smooth_sample(np.float64, seed=1)
    w = torch.tensor(1.3, dtype=torch.float64)
    if name == "hardsigmoid" or not hasattr(torch.nn, cls.__name__):  # PyTorch's function, or a composition
        theirs = functools.partial(_pytorch(name), **kw)
    else:
        theirs = getattr(torch.nn, cls.__name__)(**kw)
    for a, b in zip(_penalty(cls(**kw), x, w), _penalty(theirs, x, w), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("shape", "channels"), [((5,), 1), ((4, 3), 3), ((4, 3), 1), ((2, 3, 4), 3)])
def test_prelu_second_derivatives(shape, channels):
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.normal(size=shape)).requires_grad_(True)
    w = torch.linspace(0.1, 0.5, channels, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradgradcheck(ft.prelu, (x, w))
    results = []
    for prelu in (ft.prelu, F.prelu):
        (gx, gw) = torch.autograd.grad(prelu(x * 1.5, w).square().sum(), (x, w), create_graph=True)
        results.append(torch.autograd.grad((gx**2).sum() + (gw**3).sum(), (x, w)))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_second_and_third_derivatives(name, dim):
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(4, 5))).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda t: getattr(ft, name)(t, dim=dim), (x,))
    results = []
    for fn in (getattr(ft, name), getattr(F, name)):
        (g,) = torch.autograd.grad(fn(x * 2, dim=dim).sin().sum(), x, create_graph=True)
        (h,) = torch.autograd.grad((g**2).sum(), x, create_graph=True)
        results.append((g, h, torch.autograd.grad(h.sum(), x)[0]))  # any order: a third derivative too
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_third_derivative_is_refused_by_name():
    x = torch.tensor(SMOOTH, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(ft.gelu(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"fastact\.torch\.gelu: derivatives of third"):
        h.sum().backward()
    # piecewise linear: every higher derivative is 0, as PyTorch's
    (g,) = torch.autograd.grad(ft.leaky_relu(x, 0.2).sum(), x, create_graph=True)
    assert g.grad_fn is not None
    (h,) = torch.autograd.grad(g.sum(), x, allow_unused=True, materialize_grads=True)
    assert torch.equal(h, torch.zeros_like(x))


# --- torch.func ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_torch_func_grad_vmap_jacrev(name, params):
    kw = _kw(name, params)
    mine, theirs = (lambda t: getattr(ft, name)(t, **kw)), (lambda t: _pytorch(name)(t, **kw))
    x = _smooth_sample(np.float64, n=12, seed=4)
    batch = x.reshape(3, 4)

    def both(transform):
        return transform(mine), transform(theirs)

    for a, b in [
        tuple(f(x) for f in both(lambda f: torch.func.grad(lambda t: f(t).sum()))),
        tuple(f(batch) for f in both(lambda f: torch.func.vmap(f))),
        tuple(f(batch) for f in both(lambda f: torch.func.vmap(f, in_dims=1))),
        tuple(f(x) for f in both(torch.func.jacrev)),
        # per-sample gradients and a Hessian's diagonal
        tuple(f(batch) for f in both(lambda f: torch.func.vmap(torch.func.grad(lambda t: f(t).sum())))),
        tuple(f(x) for f in both(lambda f: torch.func.jacrev(torch.func.grad(lambda t: f(t).sum())))),
    ]:
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # the functions ran fastact's kernels, not PyTorch's: bit for bit fastact's forward
    np.testing.assert_array_equal(torch.func.vmap(mine)(batch).numpy(), getattr(fa, name)(batch.numpy(), *params))


def test_torch_func_on_prelu_and_softmax():
    # dim 1 of both a sample (4, 4) and the batch (3, 4, 4) has the 4 channels
    x = torch.from_numpy(np.random.default_rng(5).normal(size=(3, 4, 4)))
    w = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    for mine, theirs in [
        (lambda t: ft.prelu(t, w), lambda t: F.prelu(t, w)),
        (lambda t: ft.softmax(t, dim=1), lambda t: F.softmax(t, dim=1)),
        (lambda t: ft.log_softmax(t, dim=-1), lambda t: F.log_softmax(t, dim=-1)),
    ]:
        torch.testing.assert_close(torch.func.jacrev(mine)(x), torch.func.jacrev(theirs)(x), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(torch.func.vmap(mine)(x), torch.func.vmap(theirs)(x), rtol=1e-12, atol=1e-14)
        g = torch.func.vmap(torch.func.grad(lambda t, f=mine: f(t).sin().sum()))
        h = torch.func.vmap(torch.func.grad(lambda t, f=theirs: f(t).sin().sum()))
        torch.testing.assert_close(g(x), h(x), rtol=1e-12, atol=1e-14)
    # the weight's gradient through torch.func
    gw = torch.func.grad(lambda v: ft.prelu(x, v).sin().sum())(w)
    torch.testing.assert_close(gw, torch.func.grad(lambda v: F.prelu(x, v).sin().sum())(w), rtol=1e-12, atol=1e-14)


# --- torch.compile ---------------------------------------------------------------------------


def _model(module_source):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), module_source.GELU(), torch.nn.Linear(16, 16), module_source.SiLU(),
        torch.nn.Linear(16, 16), module_source.LeakyReLU(0.1, inplace=True), module_source.PReLU(16),
        torch.nn.Linear(16, 16), module_source.Tanh(), torch.nn.Linear(16, 4), module_source.LogSoftmax(dim=1),
    ).double()


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_same_values_and_gradients(backend, monkeypatch):
    if backend == "inductor":
        pytest.importorskip("torch._inductor")
    mine, theirs = _model(ft), _model(torch.nn)
    theirs.load_state_dict(mine.state_dict())
    calls = []
    act = fa.ACTIVATIONS["gelu"]
    real_forward, real_backward = act.forward, act.backward

    def counting(fn, tag):
        def wrapped(*args, **kwargs):
            calls.append(tag)
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(act, "forward", counting(real_forward, "forward"))
    monkeypatch.setattr(act, "backward", counting(real_backward, "backward"))
    compiled = torch.compile(mine, fullgraph=True, backend=backend)  # fullgraph: a graph break raises
    x = torch.randn(32, 8, dtype=torch.float64)
    results = []
    for net in (compiled, theirs):
        net.zero_grad()
        out = net(x)
        out.sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-12, atol=1e-13)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert "forward" in calls and "backward" in calls, "the compiled model ran fastact's kernels"


def test_compile_counts_no_graph_break():
    model = _model(ft)
    explanation = torch._dynamo.explain(model)(torch.randn(4, 8, dtype=torch.float64))
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1


@pytest.mark.parametrize(("name", "params"), FIRST_CASES)
def test_every_function_compiles_fullgraph(name, params):
    kw = _kw(name, params)
    torch._dynamo.reset()  # one lambda's code for every activation: a fresh cache, not a recompile limit
    fn = torch.compile(lambda t: getattr(ft, name)(t, **kw) * 2.0, fullgraph=True, backend="aot_eager")
    x = _smooth_sample(np.float32, n=16, seed=6).requires_grad_(True)
    y = fn(x)
    np.testing.assert_array_equal(y.detach().numpy(), 2.0 * getattr(fa, name)(x.detach().numpy(), *params))
    y.sum().backward()
    xn = x.detach().numpy()
    if y_supported(name, params):
        want = getattr(fa, f"{name}_backward")(np.full_like(xn, 2.0), None, *params, y=getattr(fa, name)(xn, *params))
    else:
        want = getattr(fa, f"{name}_backward")(np.full_like(xn, 2.0), xn, *params)
    np.testing.assert_array_equal(x.grad.numpy(), want)
