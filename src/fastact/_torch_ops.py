"""What fastact.torch's adapters share: which tensors take the fast path, NumPy views of
tensors, custom operators with fake and batching rules, autograd Functions, and the
docstrings' examples. Each kind's adapter (``_torch_elementwise``, ``_torch_channelwise``,
``_torch_rowwise``: the module its ``Kind.torch_adapter`` names) builds on these."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._docs import example_numbers
from ._registry import Activation

# where the classes and functions live for users (and pickle)
MODULE = "fastact.torch"

try:  # bfloat16 tensors reach fastact as ml_dtypes arrays, where ml_dtypes is installed
    from ml_dtypes import bfloat16 as _np_bfloat16
except ImportError:
    _np_bfloat16 = None

_FAST_DTYPES = (torch.float32, torch.float64, torch.float16) + ((torch.bfloat16,) if _np_bfloat16 else ())


def fast_path(*tensors: torch.Tensor) -> bool:
    """Whether fastact computes for these tensors: each a plain, contiguous, dense CPU
    float32, float64, float16 or (with ml_dtypes) bfloat16 tensor (anything else goes to
    ``torch.nn.functional``)."""
    # torch.compile cannot trace the conjugate and negative bits (lazy views): the
    # operators resolve them instead (view)
    compiling = torch.compiler.is_compiling()
    return all(
        type(t) in (torch.Tensor, torch.nn.Parameter)  # not a subclass with its own dispatch
        and t.device.type == "cpu"
        and t.layout == torch.strided
        and t.dtype in _FAST_DTYPES
        and t.is_contiguous()
        and (compiling or not (t.is_conj() or t.is_neg()))
        for t in tensors
    )


def view(t: torch.Tensor) -> np.ndarray:
    # shares the tensor's memory (resolve_neg copies only a tensor with the negative bit);
    # NumPy has no bfloat16 of its own: the bits go through int16
    t = t.detach().resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_np_bfloat16)
    return t.numpy()


def tensor(a: Any) -> torch.Tensor:
    # a 0-d input gives a NumPy scalar, as a ufunc does; torch wants an array
    a = a if isinstance(a, np.ndarray) else np.asarray(a)
    if _np_bfloat16 is not None and a.dtype == _np_bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def torch_class(name: str) -> type[torch.nn.Module] | None:
    """torch.nn's class for a torch.nn.functional name (leaky_relu -> LeakyReLU), or None
    for an activation PyTorch does not have."""
    key = name.replace("_", "")
    for cls_name in dir(torch.nn.modules.activation):
        if cls_name.lower() == key and isinstance(getattr(torch.nn, cls_name, None), type):
            return getattr(torch.nn, cls_name)
    return None


def torch_module(act: Activation) -> type[torch.nn.Module]:
    """torch.nn's module class for act, where only PyTorch's own can be the base."""
    cls = torch_class(act.name)
    if cls is None:
        raise LookupError(f"torch.nn has no module for {act.name}")
    return cls


def torch_has_inplace(name: str) -> bool:
    # from torch.nn's constructor: some torch.nn.functional functions are builtins without a signature
    # (fastact's own activations take inplace=, as most of torch.nn's do)
    cls = torch_class(name)
    return cls is None or "inplace" in inspect.signature(cls.__init__).parameters


def class_name(name: str) -> str:
    """The module's class name: torch.nn's (leaky_relu -> LeakyReLU), or for an activation
    PyTorch lacks its declared module_name (SwiGLU), else its name in CamelCase
    (sparse_plus -> SparsePlus)."""
    from . import ACTIVATIONS

    cls = torch_class(name)
    if cls is not None:
        return cls.__name__
    return ACTIVATIONS[name].module_name or "".join(part.capitalize() for part in name.split("_"))


def torch_only_error(name: str, input: torch.Tensor) -> TypeError:
    return TypeError(
        f"fastact.torch.{name}: PyTorch has no {name}, and fastact computes it for dense CPU float32, float64, "
        f"float16 and bfloat16 tensors only (got a {input.dtype} tensor on {input.device}, layout {input.layout})")


def custom_op(name: str, schema: str, impl: Callable[..., Any], fake: Callable[..., Any],
              mutates: tuple[str, ...] = ()) -> Any:
    """A custom operator torch.ops.fastact.NAME: opaque to torch.compile (which runs its
    fake implementation to learn the result's shape), batched by vmap with its rule."""
    qualname = f"fastact::{name}"
    torch.library.custom_op(qualname, impl, mutates_args=mutates, device_types="cpu", schema=schema)
    torch.library.register_fake(qualname, fake)
    # the operator as torch.ops has it: torch.compile traces a call of that (not of the
    # CustomOpDef, which it cannot wrap inside an autograd.Function)
    return getattr(torch.ops.fastact, name)


def batched(op: Any, rule: Callable[..., Any]) -> None:
    """op's batching rule, for torch.func.vmap (without one, vmap loops over the batch)."""
    torch.library.register_vmap(op._qualified_op_name, rule)


def batch_front(info: Any, in_dims: tuple, tensors: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """The tensors with their batch dimension first (length 1 where a tensor is not
    batched, so that they broadcast against each other)."""
    return [t.movedim(d, 0) if d is not None else t.unsqueeze(0) for t, d in zip(tensors, in_dims, strict=False)]


def like_broadcast(*tensors: torch.Tensor) -> torch.Tensor:
    return tensors[-1].new_empty(torch.broadcast_shapes(*(t.shape for t in tensors)))


# In each Function's backward, torch.compile calls the backward operator itself: it has
# no double backward to give (AOTAutograd refuses one), and its tracer cannot follow an
# autograd.Function made at run time into another's backward.


def autograd_fn(name: str, doc: str, forward: Callable[..., Any], setup_context: Callable[..., Any],
                backward: Callable[..., Any]) -> type[torch.autograd.Function]:
    # setup_context apart from forward is what torch.func needs; generate_vmap_rule lets vmap
    # run forward and backward, whose operators have their own batching rules
    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(forward), "setup_context": staticmethod(setup_context),
        "backward": staticmethod(backward), "generate_vmap_rule": True, "__doc__": doc, "__module__": MODULE,
    })


def vmap_unary(op: Any) -> Callable[..., Any]:
    def rule(info: Any, in_dims: tuple, x: torch.Tensor, params: Any) -> tuple[torch.Tensor, int | None]:
        return op(x, params), in_dims[0]  # element-wise: the batch dimension stays where it is
    return rule


def vmap_binary(op: Any) -> Callable[..., Any]:
    def rule(info: Any, in_dims: tuple, a: torch.Tensor, b: torch.Tensor, params: Any) -> tuple[torch.Tensor, int]:
        return op(*batch_front(info, in_dims, (a, b)), params), 0
    return rule


def vmap_loop(op: Any, n_out: int) -> Callable[..., Any]:
    """A batching rule that runs op once per batch entry (prelu, whose channel axis moves)."""
    def rule(info: Any, in_dims: tuple, *tensors: torch.Tensor) -> Any:
        results = [op(*(t if d is None else t.select(d, i) for t, d in zip(tensors, in_dims, strict=True)))
                   for i in range(info.batch_size)]
        if n_out == 1:
            return torch.stack(results), 0
        return tuple(torch.stack(r) for r in zip(*results, strict=True)), (0,) * n_out
    return rule


@torch.compiler.assume_constant_result
def validated(act: Activation, function: str, params: tuple) -> tuple[tuple[float, ...], bool]:
    """The validated parameters, and whether the backward can read the output instead of
    the input. torch.compile calls this while tracing and keeps the result as a constant
    (the parameters are constants of the graph) rather than tracing the validation."""
    checked = act.validate(function, params)
    return checked, act.supports_y and (act.y_ok is None or act.y_ok(*checked))


def public_values(act: Activation, params: Any) -> tuple[Any, ...]:
    """Validated parameters (a choice as its index) as the public functions take them."""
    return tuple(p.choices[int(v)] if p.choices else v for p, v in zip(act.params, params, strict=True))


def as_tensor(numpy_expression: str) -> str:
    """np.array([...]) -> torch.tensor([...], dtype=torch.float64)"""
    return numpy_expression.replace("np.array(", "torch.tensor(").replace("])", "], dtype=torch.float64)")


def example(act: Activation, lines: list[str], shape: tuple[int, ...], call: str) -> str:
    """A doctest of call, after the setup lines (x, and weight for prelu), printing the
    declaration's example output as PyTorch prints a float64 tensor of that shape."""
    printed = repr(torch.tensor(example_numbers(act.examples[0]), dtype=torch.float64).reshape(shape))
    lines = [">>> import torch", ">>> import fastact.torch as ft", *lines]
    return "Examples\n--------\n" + "\n".join([*lines, f">>> {call}", printed]) + "\n"
