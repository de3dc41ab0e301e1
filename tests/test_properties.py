"""Hypothesis, over every activation: any shape, strides, dtype and special values give the
reference's answer, without a warning, and in place equals out of place."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastact as fa

from .conftest import ELEMENTWISE
from .references import REFERENCES, close, reference_backward, reference_forward
from .test_prelu import reference as prelu_reference
from .test_softmax import assert_backward as softmax_backward_ok
from .test_softmax import assert_forward as softmax_forward_ok

FLOATS = st.sampled_from([np.float32, np.float64])


@st.composite
def arrays_and_views(draw, min_dims=0, max_dims=4, min_side=0, max_side=7):
    dtype = draw(FLOATS)
    shapes = hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)
    base = draw(hnp.arrays(dtype, shapes,
                           elements=st.floats(width=np.dtype(dtype).itemsize * 8, allow_nan=True,
                                              allow_infinity=True, allow_subnormal=True)))
    if base.ndim:
        steps = tuple(draw(st.sampled_from([1, 2, -1, -2])) for _ in range(base.ndim))
        base = base[tuple(slice(None, None, s) for s in steps)]
        if draw(st.booleans()):
            base = base.T
    return base


@st.composite
def activation_params(draw):
    name = draw(st.sampled_from(ELEMENTWISE))
    params = draw(st.sampled_from(REFERENCES[name].param_sets))
    return name, params


def check(name, got, want, x, params, g=None):
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.all(close(name, got, want, x, params, g))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays_and_views(), activation_params(), st.data())
def test_any_array_matches_reference(x, case, data):
    name, params = case
    g = data.draw(hnp.arrays(x.dtype, x.shape, elements=st.floats(-4, 4, width=np.dtype(x.dtype).itemsize * 8)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = np.asarray(getattr(fa, name)(x, *params))
        gx = np.asarray(getattr(fa, f"{name}_backward")(g, x, *params))
        check(name, y, reference_forward(name, x, params), x, params)
        check(name, gx, reference_backward(name, g, x, params), x, params, g)
        buf = x.copy(order="K")
        getattr(fa, name)(buf, *params, out=buf)
        np.testing.assert_array_equal(buf, y)


@settings(max_examples=100, deadline=None)
@given(arrays_and_views())
def test_prelu_matches_leaky_relu_with_a_single_weight(x):
    w = np.array([0.3], x.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(fa.prelu(x, w), fa.leaky_relu(x, 0.3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays_and_views(min_dims=1, max_dims=3, min_side=1, max_side=6),
       st.sampled_from(["softmax", "log_softmax", "sparsemax"]), st.data())
def test_softmax_any_array_matches_reference(x, name, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    g = data.draw(hnp.arrays(x.dtype, x.shape, elements=st.floats(-4, 4, width=np.dtype(x.dtype).itemsize * 8)))
    f, b = getattr(fa, name), getattr(fa, f"{name}_backward")
    buf = x.copy(order="K")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = f(x, axis=axis)
        gx = b(g, y=y, axis=axis)
        # the same array in place: the same bits (another layout may sum a row in
        # another order, so the comparison is with buf's own out-of-place result)
        y_buf = f(buf, axis=axis)
        f(buf, axis=axis, out=buf)
    np.testing.assert_array_equal(buf, y_buf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # np.nanmax of the all-NaN rows in the checks
        softmax_forward_ok(name, y, x, axis)
        softmax_backward_ok(name, gx, g, y, axis)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays_and_views(), st.data())
def test_prelu_any_array_matches_reference(x, data):
    channels_axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis") if x.ndim >= 2 else 1
    channels = x.shape[channels_axis] if x.ndim >= 2 else 1
    n_weight = data.draw(st.sampled_from(sorted({1, channels})), label="weights")
    width = np.dtype(x.dtype).itemsize * 8
    w = data.draw(hnp.arrays(x.dtype, n_weight, elements=st.floats(-2, 2, width=width)), label="weight")
    g = data.draw(hnp.arrays(x.dtype, x.shape, elements=st.floats(-4, 4, width=width)), label="grad_output")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = fa.prelu(x, w, axis=channels_axis)
        gx, gw = fa.prelu_backward(g, x, w, axis=channels_axis)
        buf = x.copy(order="K")
        fa.prelu(buf, w, axis=channels_axis, out=buf)
    y_ref, gx_ref, gw_ref = prelu_reference(x, w, g, channels_axis)
    np.testing.assert_array_equal(y, y_ref.astype(x.dtype))
    np.testing.assert_array_equal(buf, y)
    np.testing.assert_array_equal(gx, gx_ref.astype(x.dtype))
    # the documented bound: 2 eps of the exact sum, plus 8 eps64 times the sum of |terms|
    # (-sum |x g| over x <= 0: the gradient of x' = -|x| there, 0 elsewhere, with |g|)
    with np.errstate(all="ignore"):
        magnitude = np.abs(prelu_reference(np.where(x > 0, 0, -np.abs(x)), w, np.abs(g), channels_axis)[2])
        bound = 2 * float(np.finfo(x.dtype).eps) * np.abs(gw_ref) + 8 * 2.0**-52 * magnitude
        err = np.abs(gw.astype(np.float64) - gw_ref)
        rounded = gw_ref.astype(x.dtype)  # beyond the dtype's range: +-inf
    ok = (gw == rounded) | (err <= bound + float(np.finfo(x.dtype).tiny)) | (np.isnan(gw) & np.isnan(gw_ref))
    assert ok.all(), (gw, gw_ref)
