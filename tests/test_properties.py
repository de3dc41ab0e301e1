"""Hypothesis: any shape, strides, dtype and special values give the reference's answer,
without a warning, and in place equals out of place."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastact as fa

from .conftest import ELEMENTWISE
from .references import REFERENCES, close, reference_backward, reference_forward

FLOATS = st.sampled_from([np.float32, np.float64])


@st.composite
def arrays_and_views(draw):
    dtype = draw(FLOATS)
    base = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=7),
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
