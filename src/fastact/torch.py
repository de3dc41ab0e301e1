"""PyTorch adapter: fastact's kernels behind ``torch.nn.functional``'s and ``torch.nn``'s names.

``fastact.torch.NAME(input, ...)`` takes the arguments of ``torch.nn.functional.NAME``
(``inplace=`` where PyTorch has it, ``dim`` for softmax and log_softmax) and
``fastact.torch.CLASS`` is a subclass of ``torch.nn.CLASS`` (``GELU``, ``LeakyReLU``,
``PReLU``, ``Softmax``, ...) with the same constructor, attributes, ``state_dict`` and
``repr``: replace the class and nothing else changes.

A contiguous CPU float32 or float64 tensor runs through fastact: NumPy views of the
tensor's own memory (no copy), and a result that becomes a tensor without a copy either.
The backward pass is fastact's ``NAME_backward``; from the saved output where the output
determines the derivative (as PyTorch does), otherwise from the saved input. Anything
else (CUDA, float16, bfloat16, a non-contiguous tensor, softmax with ``dim=None`` or
``dtype=``) is handed to ``torch.nn.functional`` unchanged. Gradients are first order
(``once_differentiable``): a second derivative through the fastact path raises.

Example: a model with fastact's GELU in place of PyTorch's.

>>> import torch
>>> import fastact.torch as ft
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), ft.GELU(), torch.nn.Linear(8, 1))
>>> model(torch.ones(2, 4)).shape
torch.Size([2, 1])
>>> t = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
>>> ft.gelu(t).sum().backward()
>>> t.grad
tensor([-0.0833,  0.5000,  1.0852], dtype=torch.float64)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import REGISTRY
from ._dispatch import EXAMPLE_WEIGHT, EXAMPLE_X, example_args, example_numbers
from ._registry import Activation

__all__: list[str] = ["fast_path"]

_FAST_DTYPES = (torch.float32, torch.float64)


def fast_path(*tensors: torch.Tensor) -> bool:
    """Whether fastact computes for these tensors: each a plain, contiguous, dense CPU
    float32 or float64 tensor (anything else goes to ``torch.nn.functional``)."""
    return all(
        type(t) in (torch.Tensor, torch.nn.Parameter)  # not a subclass with its own dispatch
        and t.device.type == "cpu"
        and t.layout == torch.strided
        and t.dtype in _FAST_DTYPES
        and t.is_contiguous()
        and not t.is_conj()
        and not t.is_neg()
        for t in tensors
    )


def _view(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()  # shares the tensor's memory


def _tensor(a: Any) -> torch.Tensor:
    # a 0-d input gives a NumPy scalar, as a ufunc does; torch wants an array
    return torch.from_numpy(a if isinstance(a, np.ndarray) else np.asarray(a))


def _torch_has_inplace(name: str) -> bool:
    # from torch.nn's constructor: some torch.nn.functional functions are builtins without a signature
    return "inplace" in inspect.signature(getattr(torch.nn, _class_name(name)).__init__).parameters


def _class_name(name: str) -> str:
    """torch.nn's class for a torch.nn.functional name: leaky_relu -> LeakyReLU."""
    key = name.replace("_", "")
    for cls_name in dir(torch.nn.modules.activation):
        if cls_name.lower() == key and isinstance(getattr(torch.nn, cls_name, None), type):
            return cls_name
    raise LookupError(f"torch.nn has no module for {name}")


# --- element-wise --------------------------------------------------------------------------------


def _elementwise_function(act: Activation) -> type[torch.autograd.Function]:
    fname = f"fastact.torch.{act.name}"

    def forward(ctx: Any, x: torch.Tensor, inplace: bool, *params: Any) -> torch.Tensor:
        xn = _view(x)
        checked = act.validate(fname, params)
        from_y = act.supports_y and (act.y_ok is None or act.y_ok(*checked))
        if inplace:
            # the input is about to be overwritten: keep a copy when the output cannot stand in for it
            saved_x = None if from_y else x.detach().clone()
            act.forward(xn, *params, out=xn)
            ctx.mark_dirty(x)
            y = x
        else:
            saved_x = None if from_y else x
            y = _tensor(act.forward(xn, *params))
        ctx.from_y, ctx.params = from_y, params
        ctx.save_for_backward(y if from_y else saved_x)
        return y

    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        (saved,) = ctx.saved_tensors
        g, s = _view(grad), _view(saved)
        if ctx.from_y:
            gx = act.backward(g, None, *ctx.params, y=s)
        else:
            gx = act.backward(g, s, *ctx.params)
        return (_tensor(gx), None, *(None for _ in ctx.params))

    cls_name = _class_name(act.name) + "Function"
    return type(cls_name, (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "backward": staticmethod(backward),
        "__doc__": f"torch.autograd.Function for {act.name}: apply(x, inplace, *params) in declaration order.",
        "__module__": __name__,
    })


def _elementwise_functional(act: Activation, function: type[torch.autograd.Function]) -> Callable[..., torch.Tensor]:
    torch_fn = getattr(F, act.name)
    has_inplace = _torch_has_inplace(act.name)
    names = act.param_names
    defaults = act.defaults

    def functional(input: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        inplace = bool(kwargs.pop("inplace", False)) if has_inplace else False
        if len(args) > len(names):
            raise TypeError(f"fastact.torch.{act.name}() takes at most {len(names)} parameters after input")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names or key in values:
                raise TypeError(f"fastact.torch.{act.name}() got an unexpected or repeated argument {key!r}")
            values[key] = value
        params = []
        for n in names:
            if n not in values and defaults[n] is None:
                raise TypeError(f"fastact.torch.{act.name}() missing required argument {n!r}")
            params.append(values.get(n, defaults[n]))
        if not fast_path(input):
            extra = {"inplace": inplace} if has_inplace else {}
            return torch_fn(input, **dict(zip(names, params, strict=True)), **extra)
        if inplace and input.requires_grad and input.is_leaf and torch.is_grad_enabled():
            # PyTorch's own check, made here before the memory is written rather than after
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        return function.apply(input, inplace, *params)

    functional.__name__ = functional.__qualname__ = act.name
    functional.__module__ = __name__
    return functional


# --- prelu, softmax, log_softmax ----------------------------------------------------------------


def _prelu_function(act: Activation) -> type[torch.autograd.Function]:
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return _tensor(act.forward(_view(x), _view(weight)))

    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors
        gx, gw = act.backward(_view(grad), _view(x), _view(weight))
        return _tensor(gx), _tensor(gw).reshape(weight.shape)

    return type("PReLUFunction", (torch.autograd.Function,), {
        "forward": staticmethod(forward), "backward": staticmethod(backward), "__module__": __name__,
        "__doc__": "torch.autograd.Function for prelu: apply(x, weight), channels along dim 1.",
    })


def _prelu_functional(act: Activation, function: type[torch.autograd.Function]) -> Callable[..., torch.Tensor]:
    def prelu(input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # PyTorch's prelu takes any weight that broadcasts; fastact's is 1-D, one or C slopes
        if fast_path(input, weight) and weight.dim() <= 1 and input.dtype == weight.dtype:
            return function.apply(input, weight)
        return F.prelu(input, weight)

    prelu.__module__ = __name__
    return prelu


def _rowwise_function(act: Activation) -> type[torch.autograd.Function]:
    def forward(ctx: Any, x: torch.Tensor, dim: int) -> torch.Tensor:
        y = _tensor(act.forward(_view(x), axis=dim))
        ctx.dim = dim
        ctx.save_for_backward(y)
        return y

    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        return _tensor(act.backward(_view(grad), y=_view(y), axis=ctx.dim)), None

    return type(_class_name(act.name) + "Function", (torch.autograd.Function,), {
        "forward": staticmethod(forward), "backward": staticmethod(backward), "__module__": __name__,
        "__doc__": f"torch.autograd.Function for {act.name}: apply(x, dim); the backward uses the saved output.",
    })


def _rowwise_functional(act: Activation, function: type[torch.autograd.Function]) -> Callable[..., torch.Tensor]:
    torch_fn = getattr(F, act.name)

    def functional(input: torch.Tensor, dim: int | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        # dim=None is PyTorch's deprecated implicit choice (with its warning) and dtype= casts
        # first: both are PyTorch's to do
        if dim is None or dtype is not None or not fast_path(input):
            return torch_fn(input, dim=dim, dtype=dtype)
        return function.apply(input, dim)

    functional.__name__ = functional.__qualname__ = act.name
    functional.__module__ = __name__
    return functional


# --- modules -------------------------------------------------------------------------------------


def _module(act: Activation, functional: Callable[..., torch.Tensor]) -> type[torch.nn.Module]:
    base = getattr(torch.nn, _class_name(act.name))
    if act.kind == "channelwise":
        def forward(self: Any, input: torch.Tensor) -> torch.Tensor:
            return functional(input, self.weight)
    elif act.kind == "rowwise":
        def forward(self: Any, input: torch.Tensor) -> torch.Tensor:
            return functional(input, self.dim)
    else:
        names = act.param_names  # torch.nn's attribute names are torch.nn.functional's argument names
        has_inplace = _torch_has_inplace(act.name)

        def forward(self: Any, input: torch.Tensor) -> torch.Tensor:
            kwargs = {n: getattr(self, n) for n in names}
            if has_inplace:
                kwargs["inplace"] = getattr(self, "inplace", False)
            return functional(input, **kwargs)

    return type(base.__name__, (base,), {"forward": forward, "__doc__": _module_doc(act, base.__name__),
                                         "__module__": __name__})


def _as_tensor(numpy_expression: str) -> str:
    """np.array([...]) -> torch.tensor([...], dtype=torch.float64)"""
    return numpy_expression.replace("np.array(", "torch.tensor(").replace("])", "], dtype=torch.float64)")


def _example(act: Activation, call: str) -> str:
    """A doctest of call (on x, and weight for prelu) printing the declaration's example
    output as PyTorch prints a float64 tensor."""
    shape = (2, 2) if act.kind == "channelwise" else (3,)
    printed = repr(torch.tensor(example_numbers(act.examples[0]), dtype=torch.float64).reshape(shape))
    lines = [">>> import torch", ">>> import fastact.torch as ft", f">>> x = {_as_tensor(EXAMPLE_X[act.kind])}"]
    if act.kind == "channelwise":
        lines.append(f">>> weight = {_as_tensor(EXAMPLE_WEIGHT)}")
    return "Examples\n--------\n" + "\n".join([*lines, f">>> {call}", printed]) + "\n"


def _call_args(act: Activation) -> str:
    return {"channelwise": ", weight", "rowwise": ", dim=0"}.get(act.kind, example_args(act))


def _functional_doc(act: Activation) -> str:
    return (f"torch.nn.functional.{act.name} computed by fastact on contiguous CPU float32/float64 tensors "
            f"(PyTorch's own otherwise).\n\n{act.formula}\n\nDerivative: {act.derivative}.\n\n"
            f"Parameters: those of torch.nn.functional.{act.name}.\n\n"
            + _example(act, f"ft.{act.name}(x{_call_args(act)})"))


def _module_doc(act: Activation, cls_name: str) -> str:
    if act.kind == "channelwise":
        setup = (">>> m = ft.PReLU(2).double()\n>>> _ = m.weight.data.copy_(weight)\n", "m(x).detach()")
    else:
        args = example_args(act).lstrip(", ") if act.kind == "elementwise" else "dim=0"
        setup = ("", f"ft.{cls_name}({args})(x)")
    doc = _example(act, setup[1])
    if setup[0]:
        doc = doc.replace(">>> m(x)", setup[0] + ">>> m(x)", 1)
    return (f"torch.nn.{cls_name} computed by fastact (same constructor, attributes and state_dict).\n\n"
            f"{act.formula}\n\nDerivative: {act.derivative}.\n\nParameters: those of torch.nn.{cls_name}.\n\n"
            + doc)


for _name, _act in REGISTRY.items():
    if _act.kind == "channelwise":
        _function = _prelu_function(_act)
        _functional = _prelu_functional(_act, _function)
    elif _act.kind == "rowwise":
        _function = _rowwise_function(_act)
        _functional = _rowwise_functional(_act, _function)
    else:
        _function = _elementwise_function(_act)
        _functional = _elementwise_functional(_act, _function)
    _functional.__doc__ = _functional_doc(_act)
    _cls = _module(_act, _functional)
    for _obj in (_functional, _function, _cls):
        globals()[_obj.__name__] = _obj
        __all__.append(_obj.__name__)

del _name, _act, _function, _functional, _cls, _obj
