"""PyTorch adapter: fastact's kernels behind ``torch.nn.functional``'s and ``torch.nn``'s names.

``fastact.torch.NAME(input, ...)`` takes the arguments of ``torch.nn.functional.NAME``
(``inplace=`` where PyTorch has it, ``dim`` for softmax and log_softmax) and
``fastact.torch.CLASS`` is a subclass of ``torch.nn.CLASS`` (``GELU``, ``LeakyReLU``,
``PReLU``, ``Softmax``, ...) with the same constructor, attributes, ``state_dict`` and
``repr``: replace the class and nothing else changes.

A contiguous CPU float32, float64, float16 or bfloat16 tensor (bfloat16 where ml_dtypes
is installed) runs through fastact: NumPy views of the tensor's own memory (no copy), and
a result that becomes a tensor without a copy either; 16-bit tensors compute in float32,
each result rounded once. Anything else (CUDA, a non-contiguous tensor, softmax with
``dim=None``) is handed to ``torch.nn.functional`` unchanged (softmax's ``dtype=`` casts the input
first, as PyTorch does).

How it composes with PyTorch's machinery:

* the kernels are PyTorch custom operators (``torch.ops.fastact.NAME``, ``NAME_backward``,
  ...) with fake-tensor and batching rules, so ``torch.compile(model, fullgraph=True)``
  traces them without a graph break, and ``torch.func.vmap`` runs them on whole batches;
* autograd goes through ``torch.autograd.Function`` classes (``ft.GELUFunction``, ...)
  with ``setup_context``, so ``torch.func.grad``, ``vjp``, ``jacrev`` and ``vmap`` work;
* the backward is itself differentiable: second derivatives (``create_graph=True``,
  gradient penalties, Hessian-vector products, ``torch.autograd.gradgradcheck``) are
  fastact's declared second derivatives for the element-wise activations, and
  differentiable PyTorch expressions of the backward for prelu, softmax and log_softmax
  (any order). A third derivative of an element-wise activation with curvature (gelu,
  silu, tanh, ...) raises a ``RuntimeError`` naming the function.

The backward reads the saved output where the output determines the derivative (relu,
sigmoid, tanh, elu, ...: as PyTorch does, and what ``inplace=True`` needs), otherwise the
saved input.

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

import importlib
from collections.abc import Callable
from typing import Any

import torch

from . import REGISTRY, _torch_ops
from ._kinds import kind_of as _kind_of
from ._registry import Activation
from ._torch_ops import fast_path

__all__: list[str] = ["fast_path"]

# what fastact's stub generator and tests ask of the names
_class_name, _torch_class, _torch_has_inplace = (
    _torch_ops.class_name, _torch_ops.torch_class, _torch_ops.torch_has_inplace)


def _adapter(act: Activation) -> Any:
    """The module that adapts act's kind to PyTorch."""
    return importlib.import_module(_kind_of(act).torch_adapter)


def _example(act: Activation, call: str) -> str:
    kind = _kind_of(act)
    lines = [_torch_ops.as_tensor(line) for line in (f">>> x = {kind.example_x}", *kind.example_setup)]
    return _torch_ops.example(act, lines, _adapter(act).EXAMPLE_SHAPE, call)


def _functional_doc(act: Activation) -> str:
    if _torch_class(act.name) is None:
        others, params = getattr(_adapter(act), "FASTACT_ONLY_DOC", (
            "any other tensor raises TypeError", "those of fastact.{name}, and inplace=False (keyword)"))
        head = (f"{act.name}, which PyTorch does not have, computed by fastact on dense CPU float "
                f"tensors ({others}).\n\n{act.formula}\n\nDerivative: {act.derivative}."
                f"\n\nParameters: {params.format(name=act.name)}.\n\n")
    else:
        head = (f"torch.nn.functional.{act.name} computed by fastact on contiguous CPU float tensors "
                f"(PyTorch's own otherwise).\n\n{act.formula}\n\nDerivative: {act.derivative}.\n\n"
                f"Parameters: those of torch.nn.functional.{act.name}.\n\n")
    return head + getattr(_adapter(act), "EXTRA_DOC", "") + _example(act, _adapter(act).call_example(act))


def _module_doc(act: Activation, cls_name: str) -> str:
    setup, call = _adapter(act).module_example(act, cls_name)
    doc = getattr(_adapter(act), "EXTRA_DOC", "") + _example(act, call)
    if setup:
        doc = doc.replace(f">>> {call}", setup + f">>> {call}", 1)
    if _torch_class(act.name) is None:
        params = getattr(_adapter(act), "FASTACT_ONLY_DOC", ("", "those of fastact.{name}, and inplace=False"))[1]
        return (f"{cls_name}: {act.name} as a torch.nn.Module, which PyTorch does not have, computed by fastact."
                f"\n\n{act.formula}\n\nDerivative: {act.derivative}.\n\nParameters: "
                f"{params.format(name=act.name).replace(' (keyword)', '')}, as constructor arguments and "
                f"attributes.\n\n" + doc)
    return (f"torch.nn.{cls_name} computed by fastact (same constructor, attributes and state_dict).\n\n"
            f"{act.formula}\n\nDerivative: {act.derivative}.\n\nParameters: those of torch.nn.{cls_name}.\n\n"
            + doc)


def _module(act: Activation, functional: Callable[..., torch.Tensor]) -> type[torch.nn.Module]:
    adapter = _adapter(act)
    cls_name = _class_name(act.name)
    return type(cls_name, (adapter.module_base(act),), {
        "forward": adapter.module_forward(act, functional), "__doc__": _module_doc(act, cls_name),
        "__module__": _torch_ops.MODULE})


for _name, _act in REGISTRY.items():
    _function, _functional = _adapter(_act).make(_act)
    _functional.__name__ = _functional.__qualname__ = _name
    _functional.__module__ = _torch_ops.MODULE
    _functional.__doc__ = _functional_doc(_act)
    _cls = _module(_act, _functional)
    for _obj in (_functional, _function, _cls):
        globals()[_obj.__name__] = _obj
        __all__.append(_obj.__name__)

del _name, _act, _function, _functional, _cls, _obj
