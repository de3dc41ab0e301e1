"""python -m fastact apply: chunked over memory-mapped .npy files, equal to the in-memory
call, and nothing half-written when something is wrong."""

from __future__ import annotations

import numpy as np
import pytest

import fastact as fa
from fastact import _apply
from fastact.__main__ import main

from .references import sample

CHUNK = 4096  # bytes per chunk in these tests: many chunks, ragged ends


def run(name, src, dst, *params, backward=None, in_place=False, weight_grad=None):
    return _apply.apply(name, src, dst, list(params), backward, in_place, chunk_bytes=CHUNK, progress=False,
                        weight_grad=weight_grad)


def save(path, a):
    np.save(path, a)
    return path


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if ".partial" in p.name)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16])
def test_forward_and_backward_equal_the_in_memory_call(tmp_path, dtype, order):
    x = np.asarray(sample(np.float64, 3000, seed=3)[:3000].reshape(60, 50), order=order)
    x = np.nan_to_num(x, nan=0.5, posinf=7.0, neginf=-7.0).clip(-1e4, 1e4).astype(dtype)
    g = np.asarray(np.random.default_rng(4).normal(size=x.shape), order=order).astype(dtype)
    src, grad = save(tmp_path / "x.npy", x), save(tmp_path / "g.npy", g)
    run("leaky_relu", src, tmp_path / "y.npy", "negative_slope=0.2")
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, fa.leaky_relu(x, 0.2))
    assert y.dtype == fa.leaky_relu(x[:1], 0.2).dtype and y.flags.f_contiguous == (order == "F")
    run("elu", src, tmp_path / "gx.npy", "alpha=0.5", backward=grad)
    np.testing.assert_array_equal(np.load(tmp_path / "gx.npy"), fa.elu_backward(g, x, alpha=0.5))
    assert leftovers(tmp_path) == []


def test_in_place_forward_and_backward(tmp_path):
    x = np.random.default_rng(5).normal(size=(7, 1001)).astype(np.float32)
    g = np.random.default_rng(6).normal(size=x.shape).astype(np.float32)
    src, grad = save(tmp_path / "x.npy", x), save(tmp_path / "g.npy", g)
    assert run("gelu", src, None, "approximate=tanh", in_place=True) == src
    np.testing.assert_array_equal(np.load(src), fa.gelu(x, approximate="tanh"))
    save(src, x)
    assert run("sigmoid", src, None, backward=grad, in_place=True) == grad  # out=grad_output
    np.testing.assert_array_equal(np.load(grad), fa.sigmoid_backward(g, x))
    np.testing.assert_array_equal(np.load(src), x)  # the input was not written


@pytest.mark.parametrize("shape", [(300, 40), (5, 3, 333), (2000,)])
def test_softmax_whole_rows_per_chunk(tmp_path, shape):
    x = (np.random.default_rng(7).normal(size=shape) * 4).astype(np.float64)
    g = np.random.default_rng(8).normal(size=shape)
    src, grad = save(tmp_path / "x.npy", x), save(tmp_path / "g.npy", g)
    run("log_softmax", src, tmp_path / "y.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), fa.log_softmax(x))
    run("softmax", src, tmp_path / "gx.npy", backward=grad)
    np.testing.assert_array_equal(np.load(tmp_path / "gx.npy"), fa.softmax_backward(g, x))


def test_prelu_forward(tmp_path):
    x = np.random.default_rng(9).normal(size=(400, 3, 10)).astype(np.float32)
    src = save(tmp_path / "x.npy", x)
    run("prelu", src, tmp_path / "y.npy", "weight=0.1,0.2,0.3")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), fa.prelu(x, np.array([0.1, 0.2, 0.3], np.float32)))


def test_prelu_backward_with_its_weight_gradient(tmp_path):
    x = np.random.default_rng(10).normal(size=(400, 3, 10)).astype(np.float32)
    g = np.random.default_rng(11).normal(size=x.shape).astype(np.float32)
    src, grad = save(tmp_path / "x.npy", x), save(tmp_path / "g.npy", g)
    run("prelu", src, tmp_path / "gx.npy", "weight=0.1,0.2,0.3", backward=grad, weight_grad=tmp_path / "gw.npy")
    w = np.array([0.1, 0.2, 0.3])
    want_x, _ = fa.prelu_backward(g, x, w)
    np.testing.assert_array_equal(np.load(tmp_path / "gx.npy"), want_x)
    # summed over chunks in float64: against the exact sum of the float64 products
    exact = np.where(x < 0, g.astype(np.float64) * x, 0).sum(axis=(0, 2))
    got = np.load(tmp_path / "gw.npy")
    assert got.dtype == np.float64 and got.shape == (3,)
    np.testing.assert_allclose(got, exact, rtol=1e-13)
    assert leftovers(tmp_path) == []
    for kw, words in [({}, "--weight-grad"), ({"weight_grad": tmp_path / "no" / "gw.npy"}, "cannot be written")]:
        with pytest.raises(_apply.ApplyError, match=words):
            run("prelu", src, tmp_path / "o.npy", "weight=0.1,0.2,0.3", backward=grad, **kw)
        assert not (tmp_path / "o.npy").exists() and leftovers(tmp_path) == []
    with pytest.raises(_apply.ApplyError, match="prelu with --backward only"):
        run("relu", src, tmp_path / "o.npy", weight_grad=tmp_path / "gw2.npy")


def test_cli(tmp_path, capsys):
    x = np.linspace(-3, 3, 10_001)
    src = save(tmp_path / "x.npy", x)
    assert main(["apply", "hardtanh", str(src), str(tmp_path / "y.npy"), "--param", "min_val=-2",
                 "--param", "max_val=2", "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.clip(x, -2, 2))
    assert main(["apply", "hardtanh", str(src), str(tmp_path / "z.npy"), "--param", "min_val=3"]) == 2
    assert "min_val" in capsys.readouterr().err
    assert not (tmp_path / "z.npy").exists() and leftovers(tmp_path) == []


def test_errors_leave_nothing_behind(tmp_path):
    x = np.linspace(-1, 1, 5000).astype(np.float32)
    src = save(tmp_path / "x.npy", x)
    (tmp_path / "text.npy").write_text("not an array")
    save(tmp_path / "c.npy", x.astype(np.complex64))
    save(tmp_path / "g4.npy", np.ones(4, np.float32))
    save(tmp_path / "i.npy", np.arange(10))
    save(tmp_path / "x2.npy", np.ones((50, 100), np.float32))
    save(tmp_path / "g2f.npy", np.asfortranarray(np.ones((50, 100), np.float32)))
    cases = [
        (("relu", tmp_path / "text.npy", tmp_path / "o.npy"), {}, "not a .npy file"),
        (("relu", tmp_path / "missing.npy", tmp_path / "o.npy"), {}, "no such file"),
        (("relu", tmp_path / "c.npy", tmp_path / "o.npy"), {}, "complex64"),
        (("elu", src, tmp_path / "o.npy", "alpha=x"), {}, "not a number"),
        (("elu", src, tmp_path / "o.npy", "slope=1"), {}, "alpha"),
        (("gelu", src, tmp_path / "o.npy", "approximate=fast"), {}, "approximate"),
        (("relu", src, tmp_path / "o.npy"), {"backward": tmp_path / "g4.npy"}, "shape"),
        (("relu", src, tmp_path / "no" / "dir" / "o.npy"), {}, "cannot be written"),
        (("relu", src, src), {}, "--in-place"),
        (("relu", src, None), {}, "OUT.npy, or --in-place"),
        (("relu", tmp_path / "i.npy", None), {"in_place": True}, "float64"),
        (("nope", src, tmp_path / "o.npy"), {}, "unknown activation"),
        (("relu", tmp_path / "x2.npy", tmp_path / "o.npy"), {"backward": tmp_path / "g2f.npy"}, "memory order"),
        (("prelu", tmp_path / "x2.npy", tmp_path / "o.npy", "weight=1,2"), {}, "weight"),
        (("softmax", tmp_path / "x2.npy", tmp_path / "o.npy", "axis=0"), {}, "last axis"),
    ]
    for args, kw, words in cases:
        with pytest.raises(_apply.ApplyError, match=words):
            run(*args, **kw)
        assert not (tmp_path / "o.npy").exists() and leftovers(tmp_path) == []
    np.testing.assert_array_equal(np.load(src), x)
    np.testing.assert_array_equal(np.load(tmp_path / "i.npy"), np.arange(10))


def test_a_failure_mid_run_leaves_no_output(tmp_path, monkeypatch):
    src = save(tmp_path / "x.npy", np.linspace(-1, 1, 10_000))
    calls = []
    real = fa.relu

    def failing(*args, **kw):
        calls.append(1)
        if len(calls) == 3:  # the probe, a chunk, then this one
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(fa, "relu", failing)
    with pytest.raises(KeyboardInterrupt):
        run("relu", src, tmp_path / "o.npy")
    assert not (tmp_path / "o.npy").exists() and leftovers(tmp_path) == []
