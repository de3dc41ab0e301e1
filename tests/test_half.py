"""16-bit floats through the element-wise kernels in one pass: float16, and bfloat16
(ml_dtypes) where installed. Each result is the float32 result rounded once to the 16-bit
type (the float32 results are held to their references by test_elementwise.py and
test_accuracy_dense.py), on every one of the 65,536 values of each, into new memory, into
out=, in place, serial and parallel."""

from __future__ import annotations

import numpy as np
import pytest

import fastact as fa
from fastact._arrays import PARALLEL_MIN_SIZES, half_kernels

from .conftest import ELEMENTWISE
from .references import first_params, numeric_params

try:
    import ml_dtypes
except ImportError:  # bfloat16's tests skip
    ml_dtypes = None

F16, F32 = np.float16, np.float32
BF16 = ml_dtypes.bfloat16 if ml_dtypes is not None else None
HALVES = [pytest.param(F16, id="float16"),
          pytest.param(BF16, id="bfloat16", marks=pytest.mark.skipif(BF16 is None, reason="needs ml_dtypes"))]
assert 1 << 16 >= PARALLEL_MIN_SIZES[np.dtype(F32), "forward"]  # the parallel path; the first 999 the serial one


def every(dtype):
    """Every value of a 16-bit float type, NaNs and infinities included."""
    return np.arange(1 << 16, dtype=np.uint16).view(dtype)


def same(got, want):
    assert got.dtype == want.dtype and got.dtype.itemsize == 2
    bits_equal = got.view(np.uint16) == want.view(np.uint16)
    ok = bits_equal | (np.isnan(got.astype(F32)) & np.isnan(want.astype(F32)))
    if not ok.all():
        x = every(got.dtype)[:ok.size]
        raise AssertionError(f"{np.count_nonzero(~ok)} differ, first at x = {x[~ok][:3]}: {got[~ok][:3]} vs "
                             f"{want[~ok][:3]}")


def rounded(values32, dtype=F16):
    with np.errstate(over="ignore", invalid="ignore"):
        return values32.astype(dtype)


@pytest.mark.parametrize("half", HALVES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_16_bit_value_is_the_float32_result_rounded_once(name, half):
    act = fa.ACTIVATIONS[name]
    p = act.example_params
    f, fb = getattr(fa, name), getattr(fa, f"{name}_backward")
    x16 = every(half)
    g = np.random.default_rng(3).normal(size=x16.size).astype(half)
    want = rounded(f(x16.astype(F32), *p), half)
    want_b = rounded(fb(g.astype(F32), x16.astype(F32), *p), half)
    for x, w, gx, wb in ((x16, want, g, want_b), (x16[:999], want[:999], g[:999], want_b[:999])):
        same(f(x, *p), w)
        out = np.empty_like(x)
        assert f(x, *p, out=out) is out
        same(out, w)
        buf = x.copy()
        same(f(buf, *p, out=buf), w)
        same(fb(gx, x, *p), wb)
        gbuf = gx.copy()
        same(fb(gbuf, x, *p, out=gbuf), wb)
    if act.supports_y:
        y = f(x16.astype(F32), *p)
        values = act.validate(name, p)
        if act.y_ok is None or act.y_ok(*values):
            y16 = rounded(y, half)
            kwargs = dict(zip(act.param_names, p, strict=True))
            same(fb(g, y=y16, **kwargs), rounded(fb(g.astype(F32), y=y16.astype(F32), **kwargs), half))


@pytest.mark.parametrize("half", HALVES)
def test_small_16_bit_calls(half):
    """Below the parallel size, where a call takes the small-call path: a 0-d array gives a
    16-bit scalar; a read-only input, a strided 1-D backward and an out of the other
    16-bit dtype as a larger call gives them."""
    x = np.array([-2.5, -0.5, 0.0, 0.75, 3.0, np.inf, -np.inf, np.nan], F32).astype(half)
    want = rounded(fa.silu(x.astype(F32)), half)
    r = fa.silu(np.array(x[3]))
    assert type(r) is np.dtype(half).type and r.view(np.uint16) == want[3:4].view(np.uint16)[0]
    frozen = x.copy()
    frozen.flags.writeable = False
    same(fa.silu(frozen), want)
    with pytest.raises(ValueError, match="silu: out is read-only"):
        fa.silu(frozen, out=frozen)
    g = np.linspace(-2, 2, 2 * x.size).astype(half)
    xs = np.repeat(x, 2)
    same(fa.silu_backward(g[::2], xs[::2]), rounded(fa.silu_backward(g[::2].astype(F32), x.astype(F32)), half))
    other = BF16 if half is F16 else F16
    if other is not None:
        with pytest.raises(TypeError, match="silu: out has dtype"):
            fa.silu(x, out=np.empty(x.shape, other))


@pytest.mark.parametrize("half", HALVES)
def test_16_bit_layouts_the_flat_kernels_do_not_take(half):
    """Strided, reversed, broadcast, a strided out and an out partly overlapping x give
    the same values (float16 through the ufunc's float16 loop where the CPU has F16C,
    else through float32 copies)."""
    x = every(half)[::3]
    same(fa.gelu(x), rounded(fa.gelu(x.astype(F32)), half))
    same(fa.elu(x[::-1], 0.5), rounded(fa.elu(x[::-1].astype(F32), 0.5), half))
    ones = np.ones(x.size, F32)
    same(fa.silu_backward(ones.astype(half), x), rounded(fa.silu_backward(ones, x.astype(F32)), half))
    out = np.empty((2, x.size), half)[:, ::2][0]  # a strided out
    fa.sigmoid(every(half)[: out.size], out=out)
    same(out, rounded(fa.sigmoid(every(half)[: out.size].astype(F32)), half))
    grid = every(half)[: 256 * 255].reshape(256, 255)
    g = np.random.default_rng(5).normal(size=(1, 255)).astype(half)  # broadcast along the rows
    got = fa.tanh_backward(g, y=fa.tanh(grid))
    assert got.shape == grid.shape
    same(got.ravel(), rounded(fa.tanh_backward(g.astype(F32), y=fa.tanh(grid).astype(F32)), half).ravel())
    buf = every(half)[:5000].copy()
    want = rounded(fa.softsign(buf[1:].astype(F32)), half)
    fa.softsign(buf[1:], out=buf[:-1])  # out one element behind x
    same(buf[:-1], want)


@pytest.mark.parametrize("half", HALVES)
def test_large_16_bit_layouts_split_across_threads(half):
    """Above the parallel threshold, 16-bit layouts the flat kernels do not take run a
    ufunc's loop (float16's own; bfloat16's private one, on its bits) on slabs of the
    longest axis, one per thread: the same values in every layout (the longest axis first
    or last, in place on a strided x, a strided out, two inputs, one broadcast along the
    slabs' axis, a parameter), on one thread too, and serially where out partly overlaps
    an input."""
    import numba

    values = np.tile(every(half), 8)  # every value, 2^19 elements
    layouts = [values.reshape(1024, 512)[:, :300], values.reshape(8, 256, 256)[:, ::2, :].transpose(2, 1, 0)]
    for x in layouts:
        assert x.size > 1 << 16 and not x.flags.c_contiguous
        want = rounded(fa.mish(x.astype(F32)), half)
        same(fa.mish(x).ravel(), want.ravel())
        out = np.empty((2, *x.shape), half)[1]
        same(fa.mish(x, out=out).ravel(), want.ravel())
        same(fa.elu(x, 0.5).ravel(), rounded(fa.elu(x.astype(F32), 0.5), half).ravel())
        g = x[::-1].copy()
        same(fa.mish_backward(g, x).ravel(), rounded(fa.mish_backward(g.astype(F32), x.astype(F32)), half).ravel())
        row = x[:1] * half(0.5)  # broadcast along axis 0, the longest
        got = fa.silu_backward(row, x)
        assert got.shape == x.shape
        same(got.ravel(), rounded(fa.silu_backward(row.astype(F32), x.astype(F32)), half).ravel())
        same(fa.sigmoid_backward(g, y=x).ravel(),
             rounded(fa.sigmoid_backward(g.astype(F32), y=x.astype(F32)), half).ravel())
        inplace = x.copy(order="F")[::-1]
        fa.mish(inplace, out=inplace)
        same(inplace.ravel(), rounded(fa.mish(x[::-1].astype(F32)), half).ravel())
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        same(fa.mish(layouts[0]).ravel(), rounded(fa.mish(layouts[0].astype(F32)), half).ravel())
    finally:
        numba.set_num_threads(before)
    buf = values[: 1 << 18].copy()
    want = rounded(fa.softsign(buf[1:].astype(F32)), half)
    fa.softsign(buf[1:], out=buf[:-1])  # out one element behind x: NumPy buffers it, in one call
    same(buf[:-1], want)
    if half is BF16:  # through the private ufuncs on bfloat16's bits, not float32 copies
        kernels = fa.KERNELS["mish"]
        assert {"forward_bfloat16_bits_ufunc", "backward_bfloat16_bits_ufunc"} <= set(vars(kernels))
        labels = [label for label, _ in kernels.built()]  # which the build tests read
        assert labels and all(label.startswith("mish.") for label in labels)


def test_the_slab_pool_works_in_a_forked_child(tmp_path):
    """A child forked after the pool of slab threads started (which it does not inherit)
    makes its own."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os
        import numpy as np, fastact as fa
        x = np.ones((1024, 512), np.float16)[:, :300]
        fa.silu(x)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if np.all(fa.silu(x) == np.float16(0.7310586)) else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr[-3000:]


# no, one and two parameters; with a y= backward; a parameter whose values can be invalid
UFUNC_NAMES = ["gelu", "silu", "leaky_relu", "hardtanh", "softplus", "elu", "sigmoid"]
needs_f16c = pytest.mark.skipif(not half_kernels(), reason="this CPU target has no F16C: no float16 loops")


@needs_f16c
@pytest.mark.parametrize("name", UFUNC_NAMES)
def test_float16_ufunc_loops_on_every_value(name):
    """fa.ufuncs take float16 to float16 through their own loop (listed first, so that NumPy
    picks it): every value, the float32 result rounded once, into out= (strided and
    reversed too), in place, with parameters broadcast or varying along the array."""
    with np.errstate(invalid="ignore", over="ignore"):  # NumPy reports the NaN inputs' compares
        _float16_ufunc_loops_on_every_value(name)


def _float16_ufunc_loops_on_every_value(name):
    act = fa.ACTIVATIONS[name]
    p = numeric_params(name, first_params(name))
    u, ub = getattr(fa.ufuncs, name), getattr(fa.ufuncs, f"{name}_backward")
    n = len(p)
    assert u.types[:3] == ["e" + "f" * n + "->e", "f" * (n + 1) + "->f", "d" * (n + 1) + "->d"]
    assert ub.types[0] == "ee" + "f" * n + "->e"
    x16 = every(F16)
    x32 = x16.astype(F32)
    g = np.random.default_rng(7).normal(size=x16.size).astype(F16)
    want = rounded(u(x32, *p))
    same(u(x16, *p), want)
    if not n:  # int8 to float16, as np.exp (with a Python float parameter, NumPy gives float64)
        i8 = np.arange(-128, 128, dtype=np.int8)
        same(u(i8), rounded(u(i8.astype(F32))))
    out = np.empty(2 * x16.size, F16)
    assert u(x16[::-1], *p, out=out[::-2]).base is out
    same(out[::-2][::-1], want)
    buf = x16.copy()
    u(buf, *p, out=buf)
    same(buf, want)
    same(ub(g, x16, *p), rounded(ub(g.astype(F32), x32, *p)))
    if act.supports_y:
        y16 = rounded(u(x32, *p))
        same(getattr(fa.ufuncs, f"{name}_backward_from_y")(g[::2], y16[::2], *p),
             rounded(getattr(fa.ufuncs, f"{name}_backward_from_y")(g[::2].astype(F32), y16[::2].astype(F32), *p)))
    if n:  # the first parameter varying along the array: runs of equal values
        other = {"gelu": 1.0, "leaky_relu": 0.3, "hardtanh": -2.0, "softplus": 3.0, "elu": 0.25}[name]
        first = np.where(np.arange(x16.size) // 7 % 2 == 1, np.float32(other), np.float32(p[0]))
        rest = p[1:]
        expected = np.where(first == np.float32(other), u(x32, other, *rest), u(x32, *p))
        same(u(x16, first, *rest), rounded(expected))


@needs_f16c
def test_float16_ufunc_invalid_parameters_give_nan():
    x = every(F16)[:1000]
    with np.errstate(invalid="ignore"):
        got = fa.ufuncs.hardtanh(x, 2.0, -1.0)  # min_val above max_val
    assert got.dtype == F16 and np.isnan(got).all()


@pytest.mark.skipif(BF16 is None, reason="needs ml_dtypes")
def test_bfloat16_in_every_function():
    """bfloat16 in, bfloat16 out, computed in float32, for the row-wise (sparsemax
    through float32 copies) and channel-wise functions too, with NaN kept NaN; mixed with
    float32, the result is float32, as NumPy promotes them."""
    x = np.array([[-3.0, -0.5, 0.0, 2.0], [np.nan, 1.0, -1.0, 4.0]], F32).astype(BF16)
    w = np.array([0.25, 0.5], F32).astype(BF16)
    for got, want in (
        (fa.softmax(x), fa.softmax(x.astype(F32))), (fa.log_softmax(x, axis=0), fa.log_softmax(x.astype(F32), axis=0)),
        (fa.prelu(x, w, axis=0), fa.prelu(x.astype(F32), w.astype(F32), axis=0)),
        (fa.softmax_backward(x, y=fa.softmax(x)), fa.softmax_backward(x.astype(F32), y=fa.softmax(x).astype(F32))),
        (fa.sparsemax(x, axis=0), fa.sparsemax(x.astype(F32), axis=0)),
    ):
        same(got, rounded(want, BF16))
    assert np.isnan(fa.gelu(x)[1, 0].astype(F32))
    assert fa.gelu(x, out=None).dtype == BF16 and fa.gelu_backward(x, x.astype(F32)).dtype == F32


def _rows_reference(name, x, axis):
    """softmax, log_softmax or softmin of x in float64, NumPy's expression."""
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf in rows: NaN results
        x = np.asarray(x, np.float64)
        if name == "softmin":
            x = -x
        d = x - x.max(axis=axis, keepdims=True)
        if name == "log_softmax":
            return d - np.log(np.exp(d).sum(axis=axis, keepdims=True))
        e = np.exp(d)
        return e / e.sum(axis=axis, keepdims=True)


def _within_an_ulp(got, ref, half):
    """|got - ref| within one unit in the last place of the 16-bit type at ref, where
    ref is finite (a result rounded once from a float32 within a few float32 ulps);
    beyond the type's range (log_softmax of float16), the infinity of ref's sign."""
    mantissa, emin, overflow = (10, -14, 65520.0) if half is F16 else (7, -126, 3.3961e38)
    g = got.astype(np.float64)
    beyond = np.abs(np.nan_to_num(ref)) >= overflow
    assert (g[beyond] == np.copysign(np.inf, ref[beyond])).all()
    finite = np.isfinite(ref) & ~beyond
    with np.errstate(divide="ignore"):
        exponent = np.maximum(np.floor(np.log2(np.abs(np.where(finite, ref, 1.0)))), emin)
    err = np.abs(g[finite] - ref[finite])
    assert (err <= np.ldexp(1.0, (exponent - mantissa).astype(int))[finite]).all(), err.max()


# (shape, axis): rows of 256 (one at a time), of 64 and of 32 (in blocks), columns of a
# matrix and of a 3-D array (the axis in the middle)
_ROW_LAYOUTS = [((256, 256), -1), ((1024, 64), 1), ((2048, 32), -1), ((256, 256), 0), ((16, 64, 64), 1)]


@pytest.mark.parametrize("half", HALVES)
def test_16_bit_rows_in_one_pass(half):
    """softmax, log_softmax and softmin of every 16-bit value in rows and columns,
    serial and parallel, into new memory, out=, a strided out and in place, and their
    backward from y and from x: the float32 result rounded once (the kernels' integer
    views, no float32 copies), within an ulp of a float64 reference."""
    if half is F16 and not half_kernels():
        pytest.skip("this CPU target has no F16C: float16 goes through float32 copies")
    x16 = every(half)[np.random.default_rng(5).permutation(1 << 16)]
    g16 = np.random.default_rng(6).normal(size=x16.size).astype(half)
    for name in ("softmax", "log_softmax", "softmin"):
        f, fb = getattr(fa, name), getattr(fa, f"{name}_backward")
        # the other two share softmax's loops (with their own element functions)
        layouts = _ROW_LAYOUTS if name == "softmax" else _ROW_LAYOUTS[:1] if name == "softmin" else _ROW_LAYOUTS[::3]
        for shape, axis in layouts:
            for x, g in ((x16.reshape(shape), g16.reshape(shape)),
                         (x16[:1024].reshape(4, 256), g16[:1024].reshape(4, 256))):  # serial
                x32 = x.astype(F32)
                want = rounded(f(x32, axis=axis), half)
                got = f(x, axis=axis)
                same(got, want)
                _within_an_ulp(got, _rows_reference(name, x, axis), half)
                out = np.empty_like(x)
                assert f(x, axis=axis, out=out) is out
                same(out, want)
                buf = x.copy()
                same(f(buf, axis=axis, out=buf), want)
                y16 = want
                want_b = rounded(fb(g.astype(F32), y=y16.astype(F32), axis=axis), half)
                same(fb(g, y=y16, axis=axis), want_b)
                gbuf = g.copy()
                same(fb(gbuf, y=y16, axis=axis, out=gbuf), want_b)
        x, g = x16.reshape(256, 256), g16.reshape(256, 256)
        wide = np.empty((256, 512), half)
        same(f(x, out=wide[:, ::2]), rounded(f(x.astype(F32)), half))
        # from x, the output is computed in float32 first: the gradient is rounded once
        same(fb(g, x), rounded(fb(g.astype(F32), x.astype(F32)), half))
        fortran = np.asfortranarray(x)
        same(f(fortran, axis=0), rounded(f(x.astype(F32), axis=0), half))
    view = "uint16" if half is F16 else "int16"
    for direction in ("forward", "backward", "forward_columns", "backward_columns"):
        for variant in fa.KERNELS["softmax"].rowwise[direction]:  # (serial, parallel)
            assert any(f"({view}" in str(sig) for sig in variant.signatures), (direction, variant.signatures)


@pytest.mark.skipif(BF16 is None, reason="needs ml_dtypes")
def test_bfloat16_runs_the_one_pass_kernels():
    """A bfloat16 call runs the kernels on int16 views, serial and parallel (float16's are
    uint16: the two formats compile apart)."""
    for x in (every(BF16)[:999], every(BF16)):
        fa.selu(x)
        fa.selu_backward(x, x)
    for loops in (fa.KERNELS["selu"].forward["flat"], fa.KERNELS["selu"].backward["flat"]):
        for variant in loops:  # (serial, parallel)
            assert any("int16" in str(sig) and "uint16" not in str(sig) for sig in variant.signatures), \
                variant.signatures


def test_float16_runs_the_one_pass_kernels():
    """On a target with F16C, a float16 call runs the kernels on uint16 views (not float32
    copies): their uint16 signatures are compiled, serial and parallel."""
    if not half_kernels():
        pytest.skip("this CPU target has no F16C: float16 goes through float32 copies")
    for x in (every(F16)[:999], every(F16)):
        fa.elu(x)
        fa.elu_backward(x, x)
    for loops in (fa.KERNELS["elu"].forward["flat"], fa.KERNELS["elu"].backward["flat"]):
        for variant in loops:  # (serial, parallel)
            assert any("uint16" in str(sig) for sig in variant.signatures), variant.signatures


def test_without_f16c_float16_goes_through_float32_copies(tmp_path):
    """A target without F16C (forced in a subprocess) keeps float16 right, through float32
    copies: LLVM would make the half conversions library calls there, so the ufuncs have
    no float16 loop."""
    import os
    import platform
    import subprocess
    import sys

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("names an x86-64 CPU without F16C")
    code = (
        "import numpy as np, fastact as fa\n"
        "from fastact._arrays import half_kernels\n"
        "x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)\n"
        "with np.errstate(over='ignore'):\n"
        "    want = fa.gelu(x.astype(np.float32)).astype(np.float16)\n"
        "got = fa.gelu(x)\n"
        "ok = (got.view(np.uint16) == want.view(np.uint16)) | (np.isnan(got) & np.isnan(want))\n"
        "print(half_kernels(), bool(ok.all()), fa.ufuncs.silu.types[0], fa.ufuncs.silu(x).dtype)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_CPU_NAME="x86-64", NUMBA_CPU_FEATURES="+sse2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=900)
    # the ufuncs have no float16 loop there: float16 input casts to float32, as NumPy's casts go
    assert out.stdout.split() == ["False", "True", "f->f", "float32"]


@pytest.mark.parametrize("half", HALVES)
def test_prelu_runs_the_channel_kernels_on_16_bit_views(half):
    """prelu takes 16-bit x and grad_output through the channel kernels' integer views in
    one pass, in both forms (rows, and (N, C) columns), serial and parallel, into new
    memory, out=, in place and strided: every grad_x the float32 result rounded once, the
    weight's gradient the float64 sums rounded once."""
    if half is F16 and not half_kernels():
        pytest.skip("this CPU target has no F16C: float16 goes through float32 copies")
    w = np.array([0.25, -0.5, 2.0, 0.1], F32).astype(half)
    w32, w64 = w.astype(F32), w.astype(np.float64)
    x = every(half)
    for shape, axis in (((16, 4, 1024), 1), ((16384, 4), 1), ((4, 250), 0), ((250, 4), 1)):
        xs = x[:np.prod(shape)].reshape(shape)
        same(fa.prelu(xs, w, axis=axis), rounded(fa.prelu(xs.astype(F32), w32, axis=axis), half))
    xs = x.reshape(16, 4, 1024)
    want = rounded(fa.prelu(xs.astype(F32), w32, axis=1), half)
    out = np.empty_like(xs)
    assert fa.prelu(xs, w, axis=1, out=out) is out
    same(out, want)
    buf = xs.copy()
    fa.prelu(buf, w, axis=1, out=buf)
    same(buf, want)
    same(fa.prelu(xs[:, :, ::-3], w, axis=1), want[:, :, ::-3])

    finite = np.tile(x[np.isfinite(x.astype(F32))], 2)  # twice: past the backward's parallel size
    n = finite.size // 64 * 64
    g = np.random.default_rng(7).standard_normal(n).astype(F32).astype(half)
    for shape, axis in (((n // 64, 4, 16), 1), ((n // 4, 4), 1), ((4, 250), 0), ((250, 4), 1)):
        size = int(np.prod(shape))
        xs, gs = finite[:size].reshape(shape), g[:size].reshape(shape)
        gx, gw = fa.prelu_backward(gs, xs, w, axis=axis)
        want_x, want_w = fa.prelu_backward(gs.astype(F32), xs.astype(F32), w64, axis=axis)
        same(gx, rounded(want_x, half))
        same(gw, rounded(want_w, half))
        buf = gs.copy()
        assert fa.prelu_backward(buf, xs, w, axis=axis, out=buf)[0] is buf
        same(buf, rounded(want_x, half))
    def viewed(sig):  # float16 as uint16, bfloat16 as int16
        return "uint16" in str(sig) if half is F16 else "int16" in str(sig).replace("uint16", "")

    for loop in ("forward", "backward", "forward_columns", "backward_columns"):
        for variant in fa.KERNELS["prelu"].channel[loop]:  # (serial, parallel)
            assert any(map(viewed, variant.signatures)), (loop, variant.signatures)
