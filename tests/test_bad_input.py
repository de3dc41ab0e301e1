"""Every wrong thing a caller can pass: the documented exception, a message that names the
function and the argument, and every array the caller passed left byte-for-byte unchanged."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest

import fastact as fa

from .conftest import ELEMENTWISE, Guard
from .references import first_params


def _bound(name, backward=False, skip=()):
    """fa.NAME (or NAME_backward) with any required parameters (threshold's) bound."""
    act = fa.ACTIVATIONS[name]
    fn = getattr(fa, f"{name}_backward" if backward else name)
    values = zip(act.params, first_params(name), strict=True)
    required = {p.name: v for p, v in values if p.required and p.name not in skip}
    return functools.partial(fn, **required) if required else fn

BAD_DTYPES = [
    np.array([1 + 2j, 3j]),
    np.array([1.0, None], dtype=object),
    np.array(["a", "b"]),
    np.array([b"a", b"b"]),
    np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]"),
    np.array([1, 2], dtype="timedelta64[s]"),
    np.array([1.0, 2.0], dtype=np.longdouble) if np.dtype(np.longdouble).itemsize > 8 else np.array([1j]),
]


def raises(exc, *words):
    """pytest.raises for a message holding each of words, in order (words are regexes;
    dtype names are escaped by the callers that pass them)."""
    pattern = ".*".join(words)
    return pytest.raises(exc, match=pattern)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("bad", BAD_DTYPES, ids=lambda a: str(a.dtype))
def test_unsupported_dtypes_raise_type_error(name, bad):
    out = np.zeros(2)
    g = Guard(bad, out)
    with raises(TypeError, name, "x", re.escape(str(bad.dtype))):
        _bound(name)(bad, out=out)
    with raises(TypeError, f"{name}_backward", "grad_output", re.escape(str(bad.dtype))):
        _bound(name, True)(bad, np.ones(2), out=out)
    with raises(TypeError, f"{name}_backward", "x", re.escape(str(bad.dtype))):
        _bound(name, True)(np.ones(2), bad, out=out)
    g.check()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_bad_out(name):
    f, b = _bound(name), _bound(name, True)
    x = np.linspace(-1, 1, 6).astype(np.float32)
    gx = np.ones_like(x)
    cases = [
        (np.zeros(5, np.float32), ValueError, "shape"),
        (np.zeros((2, 3), np.float32), ValueError, "shape"),
        (np.zeros(6, np.float64), TypeError, "dtype"),
        (np.zeros(6, np.float16), TypeError, "dtype"),
        ([0.0] * 6, TypeError, "ndarray"),
    ]
    readonly = np.zeros(6, np.float32)
    readonly.flags.writeable = False
    cases.append((readonly, ValueError, "read-only"))
    for out, exc, word in cases:
        g = Guard(x, gx, out)
        with raises(exc, name, "out", word):
            f(x, out=out)
        with raises(exc, f"{name}_backward", "out", word):
            b(gx, x, out=out)
        g.check()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_x_and_y_exactly_one(name):
    b = _bound(name, True)
    x = np.linspace(-1, 1, 5)
    out = np.full(5, 7.0)
    g = Guard(x, out)
    with raises(TypeError, f"{name}_backward", "exactly one of x", "y="):
        b(np.ones(5), x, y=x, out=out)
    with raises(TypeError, f"{name}_backward", "exactly one of x", "y="):
        b(np.ones(5), out=out)
    g.check()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_mismatched_grad_output(name):
    b = _bound(name, True)
    x, out = np.linspace(-1, 1, 5), np.full(5, 7.0)
    g = Guard(x, out)
    with raises(ValueError, f"{name}_backward", "grad_output", r"\(4,\)", r"\(5,\)"):
        b(np.ones(4), x, out=out)
    g.check()


# Every float parameter of every activation rejects non-numbers (TypeError), and NaN
# (ValueError) unless PyTorch takes it (threshold's threshold and value);
# EXTRA_BAD_PARAMS adds what is invalid for one activation only.
EXTRA_BAD_PARAMS = {
    "leaky_relu": [({"negative_slope": float("inf")}, ValueError)],
    "elu": [({"alpha": -float("inf")}, ValueError)],
    "celu": [({"alpha": 0.0}, ValueError)],
    "softplus": [({"beta": 0.0}, ValueError)],
    "hardtanh": [({"min_val": 2.0}, ValueError), ({"max_val": -3.0}, ValueError)],  # min_val > max_val
    "softshrink": [({"lambd": -0.5}, ValueError)],  # (hardshrink takes a negative lambd, as PyTorch)
}
# a float parameter: NaN, strings (numeric or not: float() would take "0.5") and None;
# a choice (gelu's approximate): anything not one of its names
_FLOAT_BAD = ((float("nan"), ValueError), ("0.1x", TypeError), ("0.5", TypeError), (None, TypeError))
_CHOICE_BAD = (("fast", ValueError), (None, ValueError), (1.0, ValueError), ("NONE", ValueError))
BAD_PARAM_CASES = [
    (name, {p.name: value}, exc)
    for name, act in fa.ACTIVATIONS.items() if act.kind == "elementwise"
    for p in act.params
    for value, exc in (_CHOICE_BAD if p.choices else _FLOAT_BAD)
    if not (p.required and value is None)  # threshold(x, None, v): "missing", below
    and not (exc is ValueError and p.check is None)  # a parameter that takes any float
] + [(name, kw, exc) for name, cases in EXTRA_BAD_PARAMS.items() for kw, exc in cases]


@pytest.mark.parametrize(("name", "kwargs", "exc"), BAD_PARAM_CASES)
def test_bad_parameters(name, kwargs, exc):
    (param,) = kwargs
    x, out = np.linspace(-1, 1, 5), np.full(5, 7.0)
    g = Guard(x, out)
    with raises(exc, name, param):
        _bound(name, skip=kwargs)(x, **kwargs, out=out)
    with raises(exc, f"{name}_backward", param):
        _bound(name, True, skip=kwargs)(np.ones(5), x, **kwargs, out=out)
    g.check()


def test_required_parameters_are_required():
    x, out = np.linspace(-1, 1, 5), np.full(5, 7.0)
    g = Guard(x, out)
    with pytest.raises(TypeError, match=r"threshold\(\) missing required arguments: 'threshold', 'value'"):
        fa.threshold(x, out=out)
    with pytest.raises(TypeError, match=r"threshold\(\) missing required argument 'value'"):
        fa.threshold(x, 0.5, out=out)
    with pytest.raises(TypeError, match=r"threshold_backward\(\) missing required argument 'value'"):
        fa.threshold_backward(np.ones(5), x, 0.5, out=out)
    g.check()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_call_errors_as_python_gives_them(name):
    f = getattr(fa, name)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        f(np.ones(3), nope=1)
    with pytest.raises(TypeError, match="positional arguments"):
        f(np.ones(3), *([1.0] * (len(fa.ACTIVATIONS[name].params) + 1)))


@pytest.mark.parametrize(("name", "kwargs"), [("leaky_relu", {"negative_slope": 0.0}),
                                               ("leaky_relu", {"negative_slope": -0.2}),
                                               ("elu", {"alpha": 0.0}), ("elu", {"alpha": -1.0})])
def test_y_where_the_output_does_not_determine_the_derivative(name, kwargs):
    y, out = np.linspace(-1, 1, 5), np.full(5, 7.0)
    g = Guard(y, out)
    (param,) = kwargs
    with raises(TypeError, f"{name}_backward", "y=", param):
        getattr(fa, f"{name}_backward")(np.ones(5), **kwargs, y=y, out=out)
    g.check()


def test_prelu_bad_input():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    out = np.full_like(x, 7.0)
    g = Guard(x, out)
    with raises(ValueError, "prelu", "weight", "2 elements", "3"):
        fa.prelu(x, np.ones(2), out=out)
    with raises(ValueError, "prelu_backward", "weight"):
        fa.prelu_backward(np.ones_like(x), x, np.ones(4), out=out)
    with pytest.raises(np.exceptions.AxisError, match=r"prelu.*axis 3"):
        fa.prelu(x, np.ones(3), axis=3, out=out)
    with raises(TypeError, "prelu", "axis"):
        fa.prelu(x, np.ones(3), axis=1.5, out=out)
    with raises(ValueError, "prelu_backward", "grad_output"):
        fa.prelu_backward(np.ones((2, 3)), x, np.ones(3), out=out)
    with raises(TypeError, "prelu", "weight", "complex"):
        fa.prelu(x, np.ones(3, complex), out=out)
    with raises(TypeError, "prelu", "x", "complex"):
        fa.prelu(x.astype(complex), np.ones(3))
    with raises(ValueError, "prelu", "out", "read-only"):
        ro = np.zeros_like(x)
        ro.flags.writeable = False
        fa.prelu(x, np.ones(3), out=ro)
    g.check()


NO_Y = [name for name, act in fa.ACTIVATIONS.items() if act.kind == "elementwise" and not act.supports_y]


@pytest.mark.parametrize("name", NO_Y)
def test_y_where_unsupported(name):
    g, y, out = np.ones(5), np.linspace(-1, 1, 5), np.full(5, 7.0)
    guard = Guard(g, y, out)
    with raises(TypeError, f"{name}_backward", "cannot be computed from the output y="):
        _bound(name, True)(g, y=y, out=out)
    guard.check()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_in_place_calls_that_fail_write_nothing(name):
    """out is one of the inputs, and the call is wrong for another reason: the input
    (which the call was allowed to overwrite) is still untouched."""
    f, b = _bound(name), _bound(name, True)
    x = np.linspace(-2, 2, 6)
    g = np.linspace(1, 2, 6)
    guard = Guard(x, g)
    with raises(ValueError, f"{name}_backward", "grad_output"):
        b(np.ones(4), x, out=x)  # mismatched grad_output, out is x
    with raises(TypeError, f"{name}_backward", "exactly one of x"):
        b(g, x, y=x, out=g)  # both x and y=, out is grad_output
    bad_param = next((p for p in fa.ACTIVATIONS[name].params if p.check is not None), None)  # rejects NaN
    if bad_param is not None:
        with raises(ValueError, name, bad_param.name):
            _bound(name, skip={bad_param.name})(x, **{bad_param.name: float("nan")}, out=x)
    with raises(TypeError, name, "out", "dtype"):
        f(x.astype(np.float32), out=x)  # out is x's float64 original, the input a float32 copy
    guard.check()


def test_prelu_bad_out_and_weight():
    x = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
    w = np.ones(3, np.float32)
    g = np.ones_like(x)
    out = np.full_like(x, 7.0)
    guard = Guard(x, w, g, out)
    cases = [
        (lambda: fa.prelu(x, w, out=np.zeros((2, 3, 5), np.float32)), ValueError, ("prelu", "out", "shape")),
        (lambda: fa.prelu(x, w, out=np.zeros(x.shape)), TypeError, ("prelu", "out", "dtype")),
        (lambda: fa.prelu(x, w, out=x.tolist()), TypeError, ("prelu", "out", "ndarray")),
        (lambda: fa.prelu(x, np.array(["a", "b", "c"]), out=out), TypeError, ("prelu", "weight", "<U1")),
        (lambda: fa.prelu(x, np.ones((3, 1)), axis=-4, out=out), np.exceptions.AxisError, ("prelu", "axis -4")),
        (lambda: fa.prelu_backward(g, x, np.ones(2), out=g), ValueError, ("prelu_backward", "weight")),
        (lambda: fa.prelu_backward(g[:1], x, w, out=x), ValueError, ("prelu_backward", "grad_output")),
        (lambda: fa.prelu_backward(g, x, w, axis=5, out=g), np.exceptions.AxisError, ("prelu_backward", "axis 5")),
    ]
    for call, exc, words in cases:
        with raises(exc, *words):
            call()
        guard.check()
