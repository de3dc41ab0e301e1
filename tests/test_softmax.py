"""The row-wise functions (softmax, log_softmax, softmin, sparsemax): rows along any axis,
against mpmath and exact rational references written here and in references.py."""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest

import fastact as fa
from fastact._arrays import PARALLEL_MIN_SIZE

from .conftest import Guard
from .references import sparsemax_grad_row, sparsemax_row, ulp_distance

NAMES = ["softmax", "log_softmax", "softmin", "sparsemax"]
DTYPES = [np.float32, np.float64]
mp = mpmath.mp


# --- references --------------------------------------------------------------------------------


def _rows(a, axis):
    """a's rows along axis as a list of 1-D float64 arrays, and how to put them back."""
    moved = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    shape = moved.shape

    def back(rows):
        return np.moveaxis(np.asarray(rows, dtype=np.float64).reshape(shape), -1, axis)

    return moved.reshape(-1, shape[-1] if shape else 1), back


def ref_forward(name, x, axis=-1):
    """The exact values (mpmath, 50 digits), rounded once to float64."""
    if name == "softmin":  # softmax(-x)
        return ref_forward("softmax", -np.asarray(x, np.float64), axis)
    if x.ndim == 0:
        return np.float64(0.0 if name == "log_softmax" else 1.0) if np.isfinite(x) else np.float64(np.nan)
    rows, back = _rows(x, axis)
    if name == "sparsemax":
        return back([sparsemax_row(row) for row in rows])
    out = []
    with mp.workdps(50):
        for row in rows:
            if not np.all(np.isfinite(row) | (row == -np.inf)) or np.all(row == -np.inf):
                out.append([np.nan] * len(row))  # nan or +inf anywhere, or only -inf: nan, as PyTorch
                continue
            m = max(row)
            s = mp.fsum(mp.exp(mp.mpf(v) - mp.mpf(m)) for v in row)
            if name == "softmax":
                out.append([float(mp.exp(mp.mpf(v) - mp.mpf(m)) / s) for v in row])
            else:
                out.append([float(mp.mpf(v) - mp.mpf(m) - mp.log(s)) if v > -np.inf else -np.inf for v in row])
    return back(out)


def ref_backward(name, g, y, axis=-1):
    """The gradient from the forward's output y, taken as exact; and for each element the
    size of the terms it is computed from (what a rounding error is relative to)."""
    if name == "softmin":  # minus softmax's, through y = softmax(-x)
        grad, scale = ref_backward("softmax", g, y, axis)
        return -grad, scale
    rows_g, back = _rows(g, axis)
    rows_y, _ = _rows(y, axis)
    grad, scale = [], []
    if name == "sparsemax":
        for gr, yr in zip(rows_g, rows_y, strict=True):
            a, b = sparsemax_grad_row(gr, yr)
            grad.append(a)
            scale.append(b)
        return back(grad), back(scale)
    with mp.workdps(50):
        for gr, yr in zip(rows_g, rows_y, strict=True):
            if name == "softmax":
                r = mp.fsum(mp.mpf(a) * mp.mpf(b) for a, b in zip(gr, yr, strict=True))
                grad.append([float(mp.mpf(b) * (mp.mpf(a) - r)) for a, b in zip(gr, yr, strict=True)])
                ra = float(np.sum(np.abs(gr * yr)))
                scale.append([abs(b) * (abs(a) + ra) for a, b in zip(gr, yr, strict=True)])
            else:
                r = mp.fsum(mp.mpf(a) for a in gr)
                grad.append([float(mp.mpf(a) - mp.exp(mp.mpf(b)) * r) for a, b in zip(gr, yr, strict=True)])
                ra = float(np.sum(np.abs(gr)))
                scale.append([abs(a) + np.exp(b) * ra for a, b in zip(gr, yr, strict=True)])
    return back(grad), back(scale)


# Measured over random rows of 1-400 elements at scales 0.1 to 1000 (the float64 sums
# are within a few eps for such rows; their worst case grows with the row's length, and
# forward_ok accepts softmax float64 within that worst case too).
FORWARD_ULP = {("softmax", "float32"): 2, ("softmax", "float64"): 6,
               ("log_softmax", "float32"): 1, ("log_softmax", "float64"): 2,
               ("softmin", "float32"): 2, ("softmin", "float64"): 6,
               ("sparsemax", "float32"): 1, ("sparsemax", "float64"): 1}
# sparsemax's x - tau, in float64 (rounded once to a float32 result), is within this many
# float64 eps of the exact value in absolute terms (measured: half an eps); an output
# much smaller than 1 can be many of its own ulps off in float64 (x - tau cancels)
SPARSEMAX_ABS_EPS = 1
SUM_EPS = 4
# backward: error / (eps * the size of the terms), the terms as ref_backward gives them
BACKWARD_TERMS = 4


def forward_ok(name, got, x, axis=-1):
    """Elements within the bound; log_softmax is x - m - log(s), and where it is near 0
    (an element that dominates its row) it is also right within the rounding of its
    terms: bound eps |x - m|, and log(s) inherits s's relative error (SUM_EPS eps, a sum
    of up to a few hundred positive terms) as an absolute one."""
    want = ref_forward(name, x, axis).astype(got.dtype)
    bound = FORWARD_ULP[name, got.dtype.name]
    ok = ulp_distance(got, want) <= bound
    if name in ("softmax", "softmin") and got.dtype == np.float64 and x.ndim:
        # FORWARD_ULP is what was measured; the guarantee is the error bound of the
        # uncompensated float64 sum of n exponentials (each within an ulp), plus the
        # division's rounding: (n + 2) eps relative. A 16-element column reached 7 ulp.
        n = x.shape[axis]
        with np.errstate(invalid="ignore"):
            ok |= np.abs(got - want) <= (n + 2) * float(np.finfo(np.float64).eps) * np.abs(want)
    if name == "sparsemax" and got.dtype == np.float64:
        with np.errstate(invalid="ignore"):
            ok |= np.abs(got - want) <= SPARSEMAX_ABS_EPS * float(np.finfo(np.float64).eps)
    if name == "log_softmax":
        eps = float(np.finfo(got.dtype).eps)
        x64 = np.asarray(x, np.float64)
        with np.errstate(invalid="ignore"):
            span = np.abs(x64 - np.nanmax(x64, axis=axis, keepdims=True)) if x64.ndim else 0.0
            ok |= np.abs(got.astype(np.float64) - want.astype(np.float64)) <= eps * (bound * span + SUM_EPS)
    return ok, want


def assert_forward(name, got, x, axis=-1):
    ok, want = forward_ok(name, got, x, axis)
    bad = ~np.asarray(ok)
    assert not bad.any(), (
        f"{name} {got.dtype}: {np.asarray(got)[bad][:4]} where the reference is {np.asarray(want)[bad][:4]}"
    )


def assert_backward(name, got, g, y, axis=-1):
    want, scale = ref_backward(name, g, y, axis)
    dt = np.dtype(got.dtype)
    err = np.abs(got.astype(np.float64) - want)
    # a float64 row's sum of g * y is an uncompensated float64 sum: beyond BACKWARD_TERMS,
    # its worst case (n + 2) eps for rows of n elements, as the forward's (4.2 measured on
    # rows of 1,000)
    n = got.shape[axis] if got.ndim else 1
    terms = max(BACKWARD_TERMS, n + 2) if dt == np.float64 and name != "sparsemax" else BACKWARD_TERMS
    # a result in the subnormal range is rounded to its spacing
    ok = (err <= terms * float(np.finfo(dt).eps) * scale + float(np.finfo(dt).smallest_subnormal)) | (
        np.isnan(want) & np.isnan(got))
    bad = ~ok
    assert not bad.any(), f"{name}_backward {dt}: {got[bad][:4]} where the reference is {want[bad][:4]}"


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def forward(name):
    return getattr(fa, name)


def backward(name):
    return getattr(fa, f"{name}_backward")


RNG = np.random.default_rng(20261123)

# (shape, axis): the last axis, a middle one, the first one, negative axes, single rows
LAYOUTS = [((7,), -1), ((3, 50), -1), ((3, 50), 0), ((4, 5, 6), 1), ((4, 5, 6), -3), ((2, 3, 4, 5), 2),
           ((1, 9), 1), ((9, 1), 1), ((5, 1), 0)]


# --- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", LAYOUTS)
@pytest.mark.parametrize("name", NAMES)
def test_values(name, shape, axis, dtype, no_warnings):
    x = (RNG.standard_normal(shape) * 4).astype(dtype)
    y = forward(name)(x, axis=axis)
    assert y.dtype == dtype and y.shape == x.shape
    assert_forward(name, y, x, axis)
    g = RNG.standard_normal(shape).astype(dtype)
    for gx in (backward(name)(g, y=y, axis=axis), backward(name)(g, x, axis=axis)):
        assert gx.dtype == dtype and gx.shape == x.shape
        assert_backward(name, gx, g, y, axis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e3, 1e30])
@pytest.mark.parametrize("name", NAMES)
def test_scales_and_overflow(name, scale, dtype, no_warnings):
    """Inputs of 1e3 (exp would overflow) and beyond give finite results."""
    x = (RNG.standard_normal((4, 64)) * scale).astype(dtype)
    y = forward(name)(x)
    assert np.isfinite(y[y != -np.inf]).all()
    assert_forward(name, y, x)
    if name != "log_softmax":
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=64 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_special_values(name, dtype, no_warnings):
    """As PyTorch: -inf entries get 0 (softmax) or -inf; a row with nan or +inf, or only
    -inf, is nan throughout; rows do not affect each other."""
    inf, nan = np.inf, np.nan
    x = np.array([[-inf, 0.0, 1.0], [nan, 0.0, 1.0], [inf, 0.0, 1.0], [-inf, -inf, -inf], [inf, inf, 0.0],
                  [1e3, 0.0, -1e3], [-0.0, 0.0, -0.0], [5e-324, 0.0, -1e-310]], dtype=dtype)
    y = forward(name)(x)
    assert_forward(name, y, x)
    # softmin sees -x: its +inf are x's -inf
    nan_rows, rows = ([0, 1, 3], [2, 4, 5, 6, 7]) if name == "softmin" else ([1, 2, 3, 4], [0, 5, 6, 7])
    assert np.isnan(y[nan_rows]).all() and not np.isnan(y[rows]).any()
    g = np.ones_like(x)
    gx = backward(name)(g, y=y)
    assert np.isnan(gx[nan_rows]).all() and not np.isnan(gx[rows]).any()
    assert_backward(name, gx[rows], g[rows], y[rows])


@pytest.mark.parametrize("name", NAMES)
def test_zero_dimensional_and_empty(name, no_warnings):
    """A 0-d x is one row of one element (PyTorch's convention); empty arrays stay empty."""
    one = forward(name)(np.float32(3.0))
    assert one == (0.0 if name == "log_softmax" else 1.0) and one.dtype == np.float32
    assert backward(name)(np.float64(2.0), y=one) == 0.0  # a one-element row is constant
    for shape, axis in (((0,), -1), ((3, 0), -1), ((0, 4), -1), ((3, 0), 0)):
        x = np.ones(shape)
        assert forward(name)(x, axis=axis).shape == shape
        assert backward(name)(x, x, axis=axis).shape == shape


# --- dtypes, layouts, in place, overlap ----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_input_dtypes(name):
    """float16, integers and bools convert as in np.exp: computed in float32, returned in
    float16 for float16, int8 and bool."""
    for dt, want in ((np.float16, np.float16), (np.int8, np.float16), (np.int32, np.float64), (np.bool_, np.float16)):
        x = np.array([[1, 0, 1], [0, 0, 1]], dtype=dt)
        y = forward(name)(x)
        assert y.dtype == want
        np.testing.assert_allclose(y, ref_forward(name, x.astype(np.float64)), rtol=2e-3, atol=1e-3)
    assert forward(name)([1.0, 2.0]).dtype == np.float64  # lists as np.asarray makes them


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_layouts(name, dtype):
    """Fortran order, strided views, negative strides and transposes, along every axis: right
    against the reference. (Not bit for bit the contiguous result: a row along memory is
    summed in vector lanes, a row across it one term at a time.)"""
    base = (RNG.standard_normal((6, 8, 10)) * 3).astype(dtype)
    views = [np.asfortranarray(base), base[:, ::2, :], base[::-1], base.transpose(2, 0, 1), base[:, :, ::3]]
    for v in views:
        gv = RNG.standard_normal(v.shape).astype(dtype)
        for axis in range(v.ndim):
            y = forward(name)(v, axis=axis)
            assert_forward(name, y, v, axis)
            assert_backward(name, backward(name)(gv, y=y, axis=axis), gv, y, axis)
            assert_backward(name, backward(name)(gv, v, axis=axis), gv, y, axis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_in_place_and_overlap(name, dtype):
    x = (RNG.standard_normal((5, 40)) * 3).astype(dtype)
    g = RNG.standard_normal(x.shape).astype(dtype)
    for axis in (-1, 0):
        want = forward(name)(x, axis=axis)
        buf = x.copy()
        assert forward(name)(buf, axis=axis, out=buf) is buf
        np.testing.assert_array_equal(buf, want)
        want_g = backward(name)(g, y=want, axis=axis)
        for which in ("g", "y"):
            gb, yb = g.copy(), want.copy()
            target = gb if which == "g" else yb
            assert backward(name)(gb, y=yb, axis=axis, out=target) is target
            np.testing.assert_array_equal(target, want_g)
        gb = g.copy()
        np.testing.assert_array_equal(backward(name)(gb, x, axis=axis, out=gb), want_g)
        other = np.empty_like(x)
        assert forward(name)(x, axis=axis, out=other) is other
        np.testing.assert_array_equal(other, want)
        # grad_output and y one array, and out too: computed from the values before the call
        both = want.copy()
        want_same = backward(name)(want.copy(), y=want, axis=axis)
        assert backward(name)(both, y=both, axis=axis, out=both) is both
        np.testing.assert_array_equal(both, want_same)
    # out a shifted view of the input: the result of a copy
    buf = np.zeros(x.size + 3, dtype)
    buf[:x.size] = x.ravel()
    src, dst = buf[:x.size].reshape(x.shape), buf[3:].reshape(x.shape)
    forward(name)(src, out=dst)
    np.testing.assert_array_equal(dst, forward(name)(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 4109])
@pytest.mark.parametrize("name", NAMES)
def test_row_lengths(name, n, dtype):
    """Rows that end in a partial vector block (their last n % 64 elements take a padded
    buffer) and rows that do not, several per pass or one, short rows (by blocks) and long
    ones (one at a time, from 256 elements); into out=, in place and
    along a strided view: right against the reference, with the maximum anywhere."""
    rows = max(3, 4096 // n)
    x = (RNG.standard_normal((rows, n)) * 6).astype(dtype)
    x[0, -1] += 40  # the row's maximum in its tail, and in its body in the next row
    x[1, 0] += 40
    g = RNG.standard_normal(x.shape).astype(dtype)
    out = np.full_like(x, np.nan)
    y = forward(name)(x, out=out)
    assert y is out
    assert_forward(name, y, x)
    buf = x.copy()
    np.testing.assert_array_equal(forward(name)(buf, out=buf), y)
    gx = backward(name)(g, y=y)
    assert_backward(name, gx, g, y)
    for which in ("g", "y"):
        gb, yb = g.copy(), y.copy()
        target = gb if which == "g" else yb
        np.testing.assert_array_equal(backward(name)(gb, y=yb, out=target), gx)
    wide = np.zeros((rows, 2 * n), dtype)
    wide[:, ::2] = x
    np.testing.assert_array_equal(forward(name)(wide[:, ::2]), y)
    gw = np.zeros_like(wide)
    gw[:, ::2] = g
    yw = np.zeros_like(wide)
    yw[:, ::2] = y
    assert_backward(name, backward(name)(gw[:, ::2], y=yw[:, ::2]), g, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_out_and_casting(name, dtype):
    x = RNG.standard_normal((3, 7)).astype(dtype)
    out = np.empty_like(x)
    assert forward(name)(x, out=out) is out
    np.testing.assert_array_equal(out, forward(name)(x))
    x16 = x.astype(np.float16)
    out16 = np.empty_like(x16)
    forward(name)(x16, out=out16)
    np.testing.assert_array_equal(out16, forward(name)(x16))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_parallel_path_matches_serial(name, dtype):
    """Many rows take the parallel kernels: each row's result is the serial one, bit for bit,
    and right against the reference (sampled)."""
    rows = 2 * PARALLEL_MIN_SIZE // 64
    x = (RNG.standard_normal((rows, 64)) * 5).astype(dtype)
    g = RNG.standard_normal(x.shape).astype(dtype)
    y = forward(name)(x)
    gx = backward(name)(g, y=y)
    for axis, part in ((-1, x[:3]), (0, x[:, :3])):
        sub = forward(name)(part, axis=axis)
        whole = forward(name)(x, axis=axis)
        np.testing.assert_array_equal(whole[:3] if axis == -1 else whole[:, :3], sub)
    np.testing.assert_array_equal(y[:5], forward(name)(x[:5]))
    np.testing.assert_array_equal(gx[:5], backward(name)(g[:5], y=y[:5]))
    assert_forward(name, y[::509], x[::509])
    assert_backward(name, gx[::509], g[::509], y[::509])
    # the columns form (axis 0 of a wide array), parallel over blocks of columns
    wide = (RNG.standard_normal((16, PARALLEL_MIN_SIZE // 4)) * 5).astype(dtype)
    yw = forward(name)(wide, axis=0)
    assert_forward(name, yw[:, ::997], wide[:, ::997], axis=0)
    np.testing.assert_array_equal(yw[:, :7], forward(name)(wide[:, :7], axis=0))


# --- finite differences --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences(name):
    """<g, f(x + h v) - f(x - h v)> / 2h against <grad, v>, in float64."""
    x = RNG.standard_normal((3, 6)) * 2
    g, v = RNG.standard_normal(x.shape), RNG.standard_normal(x.shape)
    h = 1e-6
    numeric = np.sum(g * (forward(name)(x + h * v) - forward(name)(x - h * v))) / (2 * h)
    analytic = np.sum(backward(name)(g, x) * v)
    assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic))


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name):
    """Each raises the documented exception naming the function and the argument, and
    leaves every array passed (out and the inputs an in-place call may overwrite
    included) byte for byte unchanged."""
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    g = np.ones((2, 3))
    out = np.full((2, 3), 7.0)
    f, b = forward(name), backward(name)
    ro = np.ones((2, 3))
    ro.flags.writeable = False
    cases = [
        (lambda: f(x, axis=2, out=out), np.exceptions.AxisError, "axis"),
        (lambda: f(x, axis=-3, out=x), np.exceptions.AxisError, "axis"),
        (lambda: f(x, axis=1.0, out=out), TypeError, "axis"),
        (lambda: f(np.float64(1.0), axis=1), np.exceptions.AxisError, "axis"),
        (lambda: f(x.astype(complex), out=out), TypeError, "x"),
        (lambda: f(np.array(["a"])), TypeError, "x"),
        (lambda: f(np.array(["2020-01-01"], dtype="datetime64[D]")), TypeError, "x"),
        (lambda: f(x.astype(object), out=out), TypeError, "x"),
        (lambda: f(x, out=np.empty((3, 2))), ValueError, "out"),
        (lambda: f(x, out=np.empty((2, 3), np.float32)), TypeError, "out"),
        (lambda: f(x, out=[0.0] * 6), TypeError, "out"),
        (lambda: f(x, out=ro), ValueError, "read-only"),
        (lambda: b(g, x, y=x, out=g), TypeError, "y="),
        (lambda: b(g, out=g), TypeError, "y="),
        # (grad_output broadcasts against y, as the element-wise backward's does: (1, 3) would be taken)
        (lambda: b(g[:, :2], y=x, out=x), ValueError, "grad_output"),
        (lambda: b(g, y=x, axis=5, out=g), np.exceptions.AxisError, "axis"),
        (lambda: b(g, y=x.astype(object), out=out), TypeError, "y"),
        (lambda: b(g.astype(complex), y=x, out=out), TypeError, "grad_output"),
        (lambda: b(g, y=x, out=np.empty((2, 3), np.float32)), TypeError, "out"),
        (lambda: f(x, 0.5), TypeError, ""),
    ]
    guard = Guard(x, g, out, ro)
    for call, exc, word in cases:
        with pytest.raises(exc) as info:
            call()
        if word:
            assert name in str(info.value) and word in str(info.value), str(info.value)
        guard.check()


@pytest.mark.parametrize("name", NAMES)
def test_dtype_casts_first_as_pytorch(name):
    """dtype= (PyTorch's): x is cast to it first; the result has it."""
    x16 = (RNG.standard_normal((5, 40)) * 4).astype(np.float16)
    y = forward(name)(x16, dtype=np.float32)
    assert y.dtype == np.float32
    assert_forward(name, y, x16.astype(np.float32))
    y64 = forward(name)([[1, 2, 3]], dtype="float64", axis=0)
    assert y64.dtype == np.float64 and y64.shape == (1, 3)
    down = forward(name)(np.linspace(-3, 3, 12).reshape(3, 4), dtype=np.float16, axis=0)
    assert down.dtype == np.float16
    np.testing.assert_array_equal(down, forward(name)(np.linspace(-3, 3, 12).reshape(3, 4).astype(np.float16), axis=0))
    out = np.empty((5, 40), np.float32)
    assert forward(name)(x16, dtype=np.float32, out=out) is out
    np.testing.assert_array_equal(out, y)
    for bad in (np.int32, complex, "foo"):
        with pytest.raises(TypeError, match=f"{name}: dtype"):
            forward(name)(x16, dtype=bad)
    torch = pytest.importorskip("torch")
    import fastact.torch as ft

    if not hasattr(torch.nn.functional, name):
        return  # PyTorch has no sparsemax, and fastact.torch's takes no dtype=
    t = torch.from_numpy(x16.astype(np.float32)).to(torch.float16)
    want = getattr(torch.nn.functional, name)(t, dim=1, dtype=torch.float32)
    got = getattr(ft, name)(t, dim=1, dtype=torch.float32)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("name", NAMES)
def test_where_masks_elements_out(name, axis, dtype, no_warnings):
    """where= (JAX's): the masked elements take no part; they, and every element of a row
    with nothing unmasked, give 0 (softmax, softmin) or -inf (log_softmax); their
    gradient is 0, and their grad_output takes no part."""
    x = (RNG.standard_normal((6, 7)) * 3).astype(dtype)
    mask = RNG.random((6, 7)) < 0.6
    empty = 2  # a row (along axis) with nothing unmasked
    if axis == 0:
        mask[:, empty] = False
    else:
        mask[empty, :] = False
    fill = -np.inf if name == "log_softmax" else 0.0
    y = forward(name)(x, axis=axis, where=mask)
    moved_x, moved_m, moved_y = (np.moveaxis(a, axis, -1) for a in (x, mask, y))
    g = RNG.standard_normal(x.shape).astype(dtype)
    moved_g = np.moveaxis(g, axis, -1)
    gx = backward(name)(g, x, axis=axis, where=mask)
    np.testing.assert_array_equal(backward(name)(g, y=y, axis=axis, where=mask), gx)
    moved_gx = np.moveaxis(gx, axis, -1)
    for r in range(moved_x.shape[0]):
        keep = moved_m[r]
        assert (moved_y[r][~keep] == fill).all()
        assert (moved_gx[r][~keep] == 0).all()
        if keep.any():
            assert_forward(name, moved_y[r][keep], moved_x[r][keep])
            assert_backward(name, moved_gx[r][keep], moved_g[r][keep], moved_y[r][keep])
    with pytest.raises(ValueError, match=f"{name}: where has shape"):
        forward(name)(x, where=np.ones(3, bool))
    with pytest.raises(TypeError, match=f"{name}: where must be an array of booleans"):
        forward(name)(x, where=np.ones(x.shape))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_where_into_out_and_in_place(name, dtype, no_warnings):
    """where= with out=: into a new buffer, into x itself, a Fortran-ordered out (computed
    apart, then copied), and the backward into grad_output or into y: each the result
    without out=, bit for bit, and no other array changes."""
    x = (RNG.standard_normal((5, 70)) * 3).astype(dtype)
    mask = RNG.random(x.shape) < 0.7
    mask[1] = False
    g = RNG.standard_normal(x.shape).astype(dtype)
    for axis in (-1, 0):
        want = forward(name)(x, axis=axis, where=mask)
        for out in (np.empty_like(x), np.asfortranarray(np.empty_like(x))):
            assert forward(name)(x, axis=axis, where=mask, out=out) is out
            np.testing.assert_array_equal(out, want)
        buf = x.copy()
        assert forward(name)(buf, axis=axis, where=mask, out=buf) is buf
        np.testing.assert_array_equal(buf, want)
        want_g = backward(name)(g, y=want, axis=axis, where=mask)
        for which in ("g", "y", "new"):
            gb, yb = g.copy(), want.copy()
            target = {"g": gb, "y": yb, "new": np.empty_like(x)}[which]
            assert backward(name)(gb, y=yb, axis=axis, where=mask, out=target) is target
            np.testing.assert_array_equal(target, want_g)
            if which != "g":
                np.testing.assert_array_equal(gb, g)
            if which != "y":
                np.testing.assert_array_equal(yb, want)
        mb = mask.copy()
        backward(name)(g, x, axis=axis, where=mb)
        np.testing.assert_array_equal(mb, mask)
