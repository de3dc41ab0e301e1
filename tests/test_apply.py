"""python -m fastact apply: chunked over memory-mapped .npy files, equal to the in-memory
call, and nothing half-written when something is wrong."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

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


@pytest.mark.parametrize(("shape", "axis"), [((300, 40), -1), ((300, 40), 0), ((5, 6, 70), 1), ((2000,), 0),
                                           ((8, 3, 50), 0)])
@pytest.mark.parametrize("name", ["glu", "swiglu", "geglu", "reglu"])
def test_gated_halves_per_chunk(tmp_path, name, shape, axis):
    """Whole rows per chunk (the split form), or with the halved axis first, pieces of the
    two halves (the two-array form): the in-memory call's values either way."""
    x = np.random.default_rng(12).normal(size=shape).astype(np.float32) * 3
    src = save(tmp_path / "x.npy", x)
    run(name, src, tmp_path / "y.npy", f"axis={axis}")
    want = getattr(fa, name)(x, axis=axis)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
    g = np.random.default_rng(13).normal(size=want.shape).astype(np.float32)
    grad = save(tmp_path / "g.npy", g)
    run(name, src, tmp_path / "gx.npy", f"axis={axis}", backward=grad)
    np.testing.assert_array_equal(np.load(tmp_path / "gx.npy"), getattr(fa, f"{name}_backward")(g, x, axis=axis))
    assert leftovers(tmp_path) == []


def test_gated_errors(tmp_path):
    src = save(tmp_path / "x.npy", np.ones((4, 6)))
    with pytest.raises(_apply.ApplyError, match="--in-place: glu's result has shape"):
        run("glu", src, None, in_place=True)
    with pytest.raises(_apply.ApplyError, match="odd"):
        run("swiglu", save(tmp_path / "odd.npy", np.ones((4, 5))), tmp_path / "o.npy")
    grad = save(tmp_path / "g.npy", np.ones((4, 6)))
    with pytest.raises(_apply.ApplyError, match=r"GRAD .* has shape \(4, 6\); glu's result .* has shape \(4, 3\)"):
        run("glu", src, tmp_path / "o.npy", backward=grad)
    with pytest.raises(_apply.ApplyError, match="C order"):
        run("glu", save(tmp_path / "f.npy", np.asfortranarray(np.ones((4, 6)))), tmp_path / "o.npy")
    assert not (tmp_path / "o.npy").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize(("shape", "axis"), [((300, 40), None), ((300, 40), "0"), ((300, 40), "-1"),
                                           ((2000,), None), ((7, 30, 20), "0,2"), ((7, 30, 20), "1")])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_any_axes(tmp_path, dtype, shape, axis, keepdims):
    """Axes without axis 0 (which the chunks cut): a call per chunk. With it, each chunk's
    maximum and float64 sum combined (as the in-memory call combines its parallel pieces),
    and the backward a second pass: within the README's bound of the reference."""
    from .test_reduction import assert_backward_close, assert_close

    x = (np.random.default_rng(14).normal(size=shape) * 5).astype(dtype)
    x.flat[7] = -np.inf
    src = save(tmp_path / "x.npy", x)
    params = ([] if axis is None else [f"axis={axis}"]) + [f"keepdims={keepdims}"]
    ax = None if axis is None else tuple(int(a) for a in axis.split(","))
    run("logsumexp", src, tmp_path / "y.npy", *params)
    y = np.load(tmp_path / "y.npy")
    want = fa.logsumexp(x, axis=ax, keepdims=keepdims)
    assert y.shape == np.shape(want) and y.dtype == want.dtype
    if dtype != np.float16:  # the reference's helpers are for the dtypes the README bounds
        assert_close(y, x, ax, keepdims)
    else:  # the float64 result rounded once: the in-memory one, or (float64 sums in another order) its neighbour
        np.testing.assert_allclose(y.astype(np.float64), want.astype(np.float64), rtol=2**-10)
    g = np.random.default_rng(15).normal(size=y.shape).astype(dtype)
    run("logsumexp", src, tmp_path / "gx.npy", *params, backward=save(tmp_path / "g.npy", g))
    gx = np.load(tmp_path / "gx.npy")
    assert gx.shape == x.shape and gx.dtype == dtype
    if dtype != np.float16:
        assert_backward_close(gx, g, x, ax)
    else:
        np.testing.assert_allclose(gx, fa.logsumexp_backward(g, x, axis=ax, keepdims=keepdims), rtol=2e-3)
    assert leftovers(tmp_path) == []


def test_logsumexp_special_rows_and_empty(tmp_path):
    inf, nan = np.inf, np.nan
    x = np.array([[1e3, 0.0], [-inf, 0.0], [inf, 1.0], [-inf, -inf], [nan, 0.0]] * 40)
    src = save(tmp_path / "x.npy", x)
    for params, ax in (([], None), (["axis=0"], 0), (["axis=1"], 1)):
        run("logsumexp", src, tmp_path / "y.npy", *params)
        np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), fa.logsumexp(x, axis=ax))
    empty = save(tmp_path / "e.npy", np.zeros((0, 3)))
    run("logsumexp", empty, tmp_path / "y.npy")
    assert np.load(tmp_path / "y.npy") == -inf
    run("logsumexp", empty, tmp_path / "gx.npy", backward=save(tmp_path / "g.npy", np.float64(1.0)))
    assert np.load(tmp_path / "gx.npy").shape == (0, 3)
    with pytest.raises(_apply.ApplyError, match="keepdims is true or false"):
        run("logsumexp", src, tmp_path / "o.npy", "keepdims=maybe")
    with pytest.raises(_apply.ApplyError, match="--in-place: logsumexp's result"):
        run("logsumexp", src, None, in_place=True)


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


# --- bad targets, signals, a full disk, permissions ----------------------------------------------


def _cli(*args):
    return main(["apply", *map(str, args), "--quiet"])


def test_an_existing_directory_as_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    src = save(tmp_path / "x.npy", np.linspace(-1, 1, 1000))
    (tmp_path / "out").mkdir()
    monkeypatch.setattr(fa, "relu", lambda *a, **k: pytest.fail("computed before refusing the target"))
    assert _cli("relu", src, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a directory" in err and "Traceback" not in err
    assert leftovers(tmp_path) == [] and list((tmp_path / "out").iterdir()) == []
    x2 = save(tmp_path / "x2.npy", np.ones((2, 3)))
    g2 = save(tmp_path / "g2.npy", np.ones((2, 3)))
    assert _cli("prelu", x2, tmp_path / "o.npy", "--param", "weight=0.1,0.2,0.3", "--backward", g2,
                "--weight-grad", tmp_path / "out") == 2
    assert "--weight-grad" in capsys.readouterr().err and leftovers(tmp_path) == []


@pytest.mark.parametrize(("args", "words"), [
    (("--chunk-mb", "0"), "--chunk-mb must be a positive number of MiB, got 0"),
    (("--chunk-mb", "-5"), "--chunk-mb must be a positive number of MiB, got -5"),
])
def test_chunk_size_must_be_positive(tmp_path, capsys, args, words):
    src = save(tmp_path / "x.npy", np.ones(10))
    assert _cli("relu", src, tmp_path / "o.npy", *args) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "o.npy").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(("name", "params", "words"), [
    ("prelu", (), "prelu needs --param weight=0.25 (one slope) or --param weight=0.1,0.2,... (one per channel)"),
    ("threshold", (), "threshold needs --param threshold=VALUE and --param value=VALUE"),
    ("threshold", ("--param", "threshold=0.5"), "threshold needs --param value=VALUE"),
    ("relu", ("--param", "alpha=1"), "--param 'alpha=1': relu takes no parameters"),
    ("elu", ("--param", "slope=1"), "NAME one of elu's parameters (alpha)"),
])
def test_parameter_errors_name_the_option(tmp_path, capsys, name, params, words):
    src = save(tmp_path / "x.npy", np.ones((4, 3)))
    assert _cli(name, src, tmp_path / "o.npy", *params) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not (tmp_path / "o.npy").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask):
    src = save(tmp_path / "x.npy", np.ones((4, 3)))
    g = save(tmp_path / "g.npy", np.ones((4, 3)))
    old = os.umask(umask)
    try:
        assert _cli("relu", src, tmp_path / "y.npy") == 0
        assert _cli("prelu", src, tmp_path / "gx.npy", "--param", "weight=0.1,0.2,0.3", "--backward", g,
                    "--weight-grad", tmp_path / "gw.npy") == 0
    finally:
        os.umask(old)
    for name in ("y.npy", "gx.npy", "gw.npy"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


# The child: fastact apply, each chunk slowed so that the parent's signal arrives mid-run.
SLOW_APPLY = textwrap.dedent("""
    import sys, time
    import fastact
    real = fastact.gelu
    def slow(*args, **kwargs):
        time.sleep(0.02)
        return real(*args, **kwargs)
    fastact.gelu = slow
    from fastact.__main__ import main
    sys.exit(main(["apply", "gelu", sys.argv[1], sys.argv[2], "--chunk-mb", "1", "--quiet"]))
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_mid_run_leaves_nothing_behind(tmp_path, signum):
    src = save(tmp_path / "x.npy", np.linspace(-3, 3, 1 << 22))  # 32 chunks of 1 MiB
    dst = tmp_path / "y.npy"
    child = subprocess.Popen([sys.executable, "-c", SLOW_APPLY, str(src), str(dst)],
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not leftovers(tmp_path):  # the output exists: the work has begun
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline, "the child never started writing"
        time.sleep(0.002)
    time.sleep(0.1)  # a few chunks in
    child.send_signal(signum)
    err = child.communicate(timeout=60)[1]
    assert child.returncode == 128 + signum, err
    assert f"stopped by {signum.name}" in err and "Traceback" not in err
    assert leftovers(tmp_path) == [] and not dst.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_whose_exception_is_lost_still_stops_the_run(tmp_path, capsys, monkeypatch, signum):
    """A signal's exception raised inside a C callback (numba compiling through llvmlite on
    a cold cache) is printed as ignored and lost; the run still stops at the next chunk,
    with nothing written and nothing printed but the one line."""
    from fastact.__main__ import main

    src = save(tmp_path / "x.npy", np.linspace(-3, 3, 1 << 18))
    real, calls = fa.relu, []

    def swallowing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            try:
                os.kill(os.getpid(), signum)
                time.sleep(0.01)  # the handler runs here
            except BaseException:  # what a C callback does with it
                pass
        return real(*args, **kwargs)

    monkeypatch.setattr(fa, "relu", swallowing)
    code = main(["apply", "relu", str(src), str(tmp_path / "y.npy"), "--chunk-mb", "1", "--quiet"])
    assert code == 128 + signum
    err = capsys.readouterr().err
    assert "stopped by" in err and "Traceback" not in err
    assert leftovers(tmp_path) == [] and not (tmp_path / "y.npy").exists()
    assert len(calls) == 2, "the run stopped at the chunk after the signal"


def test_a_full_disk_is_an_error_before_the_work(tmp_path, capsys, monkeypatch):
    """posix_fallocate failing with ENOSPC (as on a full disk): exit 2, one line, nothing left."""
    src = save(tmp_path / "x.npy", np.linspace(-1, 1, 10_000))

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    sizes = []
    real = fa.relu

    def counting(x, *args, **kwargs):
        sizes.append(np.size(x))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(fa, "relu", counting)
    with pytest.raises(_apply.ApplyError, match=r"cannot be written: 80,128 bytes needed \(not enough space"):
        _apply.apply("relu", src, tmp_path / "y.npy", [], None, False, progress=False)
    assert leftovers(tmp_path) == [] and not (tmp_path / "y.npy").exists()
    assert sizes == [1], "only the one-element check ran before the disk was found full"


def test_a_full_tmpfs(tmp_path, capsys):
    """A real small file system (a 1 MiB tmpfs), where this machine lets the test mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the simulated ENOSPC test covers the path)")
    try:
        src = save(tmp_path / "x.npy", np.linspace(-1, 1, 1 << 18))  # 2 MiB of float64
        assert _cli("relu", src, mount / "y.npy") == 2
        err = capsys.readouterr().err
        assert "not enough space on the device" in err and err.count("\n") == 1
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_version_and_warm_some_functions(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"fastact {fa.__version__}"
    assert main(["warm", "--functions", "relu,relu6"]) == 0
    out = capsys.readouterr()
    assert "kernels ready" in out.out and out.err.split() == ["relu", "relu6"]
    assert main(["warm", "--functions", "relu", "nope"]) == 2
    assert "unknown activation(s): nope" in capsys.readouterr().err
