"""The API's edges: parameters given as arrays, the ufuncs' domain errors, NumPy's
conventions (byte order, masked arrays, broadcasting) and the public namespace."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import fastact as fa
from fastact._arrays import PARALLEL_MIN_SIZE

from .conftest import ELEMENTWISE
from .references import REFERENCES, reference_backward, reference_forward

SIZES = [10, PARALLEL_MIN_SIZE + 5]  # the small-call path and the general one
WITH_PARAMS = [n for n in ELEMENTWISE if fa.ACTIVATIONS[n].params and not fa.ACTIVATIONS[n].params[0].choices]


def _first_value(name):
    act = fa.ACTIVATIONS[name]
    p = act.params[0]
    return p.example if p.required else p.default


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", WITH_PARAMS)
def test_a_zero_d_array_is_a_number_positionally_as_by_keyword(name, size):
    act = fa.ACTIVATIONS[name]
    x = np.linspace(-3, 3, size, dtype=np.float32)
    values = list(act.example_params)
    first = act.params[0].name
    by_keyword = getattr(fa, name)(x, *values[1:], **{first: values[0]}) if len(values) == 1 else \
        getattr(fa, name)(x, **dict(zip(act.param_names, values, strict=True)))
    for as_number in (np.array(values[0]), np.float32(values[0]), np.float64(values[0])):
        np.testing.assert_array_equal(getattr(fa, name)(x, as_number, *values[1:]), by_keyword)
        np.testing.assert_array_equal(
            getattr(fa, f"{name}_backward")(np.ones_like(x), x, as_number, *values[1:]),
            getattr(fa, f"{name}_backward")(np.ones_like(x), x, *values),
        )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("bad", [[0.5], (0.5,), np.array([0.5]), np.array([[0.5]]), 1j, "0.5"],
                         ids=["list", "tuple", "1-d", "2-d", "complex", "str"])
@pytest.mark.parametrize("name", WITH_PARAMS)
def test_anything_but_one_number_is_refused_by_name(name, bad, size):
    act = fa.ACTIVATIONS[name]
    x = np.linspace(-3, 3, size)
    before = x.copy()
    rest = act.example_params[1:]
    for call in (lambda: getattr(fa, name)(x, bad, *rest, out=x),
                 lambda: getattr(fa, f"{name}_backward")(x, x, bad, *rest, out=x)):
        with pytest.raises(TypeError, match=rf"{name}(_backward)?: parameter '{act.params[0].name}' must be a real"):
            call()
    np.testing.assert_array_equal(x, before)


# --- the ufuncs' domain errors -----------------------------------------------------------------
# (activation, parameters as the ufunc takes them: a choice by its index)
INVALID_UFUNC_PARAMS = [
    ("gelu", (7.0,)), ("gelu", (0.5,)), ("gelu", (-1.0,)), ("gelu", (math.nan,)),
    ("softplus", (0.0, 20.0)), ("softplus", (1.0, math.nan)), ("softplus", (math.inf, 20.0)),
    ("hardtanh", (1.0, -1.0)), ("hardtanh", (math.nan, 1.0)),
    ("leaky_relu", (math.inf,)), ("elu", (math.nan,)), ("celu", (0.0,)), ("softshrink", (-0.5,)),
    ("hardshrink", (math.inf,)),
]


def _valid(name):
    act = fa.ACTIVATIONS[name]
    return act.validate(name, act.example_params)


@pytest.mark.parametrize(("name", "params"), INVALID_UFUNC_PARAMS)
def test_ufunc_with_an_invalid_parameter_gives_nan_and_numpys_warning(name, params):
    x = np.linspace(-3, 3, 50)
    for ufunc, inputs in ((getattr(fa.ufuncs, name), (x,)), (getattr(fa.ufuncs, f"{name}_backward"), (x, x))):
        with pytest.warns(RuntimeWarning, match="invalid value encountered"):
            got = ufunc(*inputs, *params)
        assert np.isnan(got).all()
    # and the public function refuses the same values by name
    act = fa.ACTIVATIONS[name]
    public = [p.choices[int(v)] if p.choices and float(v).is_integer() and 0 <= v < len(p.choices) else v
              for p, v in zip(act.params, params, strict=True)]
    with pytest.raises(ValueError, match=name):
        getattr(fa, name)(x, *public)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_ufunc_with_valid_parameters_warns_nothing_and_matches(name):
    x = np.linspace(-3, 3, 50)
    params = _valid(name)
    public = fa.ACTIVATIONS[name].example_params
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(getattr(fa.ufuncs, name)(x, *params), getattr(fa, name)(x, *public))
        np.testing.assert_array_equal(getattr(fa.ufuncs, f"{name}_backward")(x, x, *params),
                                      getattr(fa, f"{name}_backward")(x, x, *public))


def test_ufunc_parameters_that_broadcast_are_checked_per_element():
    x = np.full(4, -1.0)
    alpha = np.array([1.0, np.inf, 2.0, 0.0])
    with pytest.warns(RuntimeWarning, match="invalid value"):
        got = fa.ufuncs.celu(x, alpha)
    want = reference_forward("celu", x[[0]], (1.0,))[0], reference_forward("celu", x[[2]], (2.0,))[0]
    np.testing.assert_allclose(got[[0, 2]], want, rtol=1e-15)
    assert np.isnan(got[[1, 3]]).all()


# --- prelu's weight --------------------------------------------------------------------------


def test_prelu_weight_must_be_0d_or_1d():
    x = np.random.default_rng(0).normal(size=(4, 3))
    before = x.copy()
    for w in (np.ones((1, 3)), np.ones((3, 1)), np.ones((1, 1))):
        with pytest.raises(ValueError, match=r"prelu: weight must be 0-d or 1-D, got shape"):
            fa.prelu(x, w, out=x)
        with pytest.raises(ValueError, match=r"prelu_backward: weight must be 0-d or 1-D"):
            fa.prelu_backward(x, x, w)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(fa.prelu(x, np.array(0.2)), fa.prelu(x, np.array([0.2])))


# --- NumPy's conventions -----------------------------------------------------------------------


def _calls():
    """(name, function of (x, out)) for one activation of each kind, forward and backward."""
    w = np.array([0.2])
    return [
        ("gelu", lambda x, out=None: fa.gelu(x, out=out)),
        ("gelu_backward", lambda x, out=None: fa.gelu_backward(x, x, out=out)),
        ("leaky_relu_backward from y", lambda x, out=None: fa.leaky_relu_backward(x, None, 0.1, y=x, out=out)),
        ("softmax", lambda x, out=None: fa.softmax(x, out=out)),
        ("log_softmax_backward", lambda x, out=None: fa.log_softmax_backward(x, y=x, out=out)),
        ("prelu", lambda x, out=None: fa.prelu(
            x.reshape(1, -1), w, out=None if out is None else out.reshape(1, -1)).reshape(-1)),
        ("prelu_backward", lambda x, out=None: fa.prelu_backward(
            x.reshape(1, -1), x.reshape(1, -1), w, out=None if out is None else out.reshape(1, -1))[0].reshape(-1)),
    ]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("byteorder", [">", "<"])
@pytest.mark.parametrize("dtype", ["f4", "f8"])
@pytest.mark.parametrize("call", _calls(), ids=lambda c: c[0])
def test_out_of_either_byte_order(call, dtype, byteorder, size):
    """As NumPy's ufuncs: an out of the result's dtype in the other byte order is written
    with the same values; input in the other byte order computes the same too."""
    _, fn = call
    x = np.linspace(-3, 3, size, dtype=dtype)
    want = fn(x)
    out = np.full(size, 7.0, np.dtype(byteorder + dtype))
    got = fn(x, out)
    assert got.base is out or got is out or np.shares_memory(got, out)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(fn(x.astype(np.dtype(byteorder + dtype))), want)


def test_out_of_another_dtype_is_still_refused():
    with pytest.raises(TypeError, match=r"gelu: out has dtype float32, the result has dtype float64"):
        fa.gelu(np.ones(3), out=np.empty(3, np.float32))
    with pytest.raises(TypeError, match=r"out has dtype >f4, the result has dtype float64"):
        fa.gelu(np.ones(3), out=np.empty(3, ">f4"))


def test_masked_arrays_keep_their_mask():
    x = np.ma.masked_array([-2.0, 0.5, 3.0, -1.0], mask=[False, True, False, False])
    for got, want in [
        (fa.gelu(x), reference_forward("gelu", x.data, ())),
        (fa.gelu_backward(np.ones(4), x), reference_backward("gelu", np.ones(4), x.data, ())),
        (fa.leaky_relu(x, 0.1), reference_forward("leaky_relu", x.data, (0.1,))),
        (fa.prelu(x, np.array(0.25)), REFERENCES["prelu"].f(x.data, 0.25)),
    ]:
        assert isinstance(got, np.ma.MaskedArray)
        np.testing.assert_array_equal(np.ma.getmaskarray(got), x.mask)
        np.testing.assert_allclose(got.data[~x.mask], want[~x.mask], rtol=1e-15)


def test_masked_arrays_are_refused_by_softmax():
    x = np.ma.masked_array([[1.0, 2.0, 3.0]], mask=[[False, True, False]])
    for call in (lambda: fa.softmax(x), lambda: fa.log_softmax(x, axis=0),
                 lambda: fa.softmax_backward(x, y=x.data), lambda: fa.softmax_backward(np.ones(3), y=x)):
        with pytest.raises(TypeError, match=r"softmax(_backward)?: \w+ is a masked array"):
            call()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_rowwise_backward_broadcasts_grad_output(name, axis):
    rng = np.random.default_rng(1)
    y = getattr(fa, name)(rng.normal(size=(4, 5)), axis=axis)
    backward = getattr(fa, f"{name}_backward")
    for g in (rng.normal(size=5), rng.normal(size=(1, 5)), rng.normal(size=(4, 1)), np.float64(0.5)):
        got = backward(g, y=y, axis=axis)
        np.testing.assert_array_equal(got, backward(np.broadcast_to(g, y.shape).copy(), y=y, axis=axis))
    with pytest.raises(ValueError, match=rf"{name}_backward: grad_output has shape \(3,\), which does not match"):
        backward(np.ones(3), y=y, axis=axis)


# --- the namespace -----------------------------------------------------------------------------


def test_dir_shows_what_a_user_may_use():
    names = dir(fa)
    for name in fa.ACTIVATIONS:
        assert name in names and f"{name}_backward" in names
    assert {"ACTIVATIONS", "__version__", "ufuncs", "scalar"} <= set(names)
    for internal in ("KERNELS", "REGISTRY", "make_forward", "annotations", "version", "PackageNotFoundError",
                     "Activation", "Kernels", "_threading"):
        assert internal not in names
    assert set(fa.__all__) <= set(names)
    for hidden in ("make_forward", "annotations", "version", "PackageNotFoundError"):
        assert not hasattr(fa, hidden)
