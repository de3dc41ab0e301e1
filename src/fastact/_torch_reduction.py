"""fastact.torch for logsumexp: ``ft.logsumexp(input, dim, keepdim=False)`` as
``torch.logsumexp``, a custom operator for the forward whose backward is PyTorch's
expression ``grad * exp(input - result)`` (differentiable to any order), and the
module ``ft.LogSumExp(dim, keepdim=False)``, which PyTorch does not have."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from ._registry import Activation
from ._torch_ops import MODULE, autograd_fn, batched, class_name, custom_op, fast_path, tensor, view, vmap_loop

EXAMPLE_SHAPE = (1,)
FASTACT_ONLY_DOC = ("torch.logsumexp computes any other tensor", "dim and keepdim=False, as torch.logsumexp's")


def _dims(dim: Any, ndim: int) -> list[int]:
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted(d % max(ndim, 1) for d in dims)


def make(act: Activation) -> tuple[type[torch.autograd.Function], Callable[..., torch.Tensor]]:
    name = act.name

    def forward_impl(x: torch.Tensor, dim: list[int], keepdim: bool) -> torch.Tensor:
        return tensor(act.forward(view(x), axis=tuple(dim), keepdims=keepdim))

    def fake(x: torch.Tensor, dim: list[int], keepdim: bool) -> torch.Tensor:
        shape = [1 if i in dim else n for i, n in enumerate(x.shape)] if keepdim else \
            [n for i, n in enumerate(x.shape) if i not in dim]
        return x.new_empty(shape)

    forward_op = custom_op(name, "(Tensor x, int[] dim, bool keepdim) -> Tensor", forward_impl, fake)
    batched(forward_op, vmap_loop(forward_op, 1))

    def setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.dim, ctx.keepdim = inputs[1], inputs[2]
        ctx.save_for_backward(inputs[0], output)

    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        x, result = ctx.saved_tensors
        if not ctx.keepdim:
            for d in ctx.dim:
                g, result = g.unsqueeze(d), result.unsqueeze(d)
        return g * torch.exp(x - result), None, None

    function = autograd_fn(class_name(name) + "Function", f"torch.autograd.Function for {name}: apply(x, dim, "
                           "keepdim); the backward uses the saved input and output.",
                           lambda x, dim, keepdim: forward_op(x, dim, keepdim), setup, backward)

    def functional(input: torch.Tensor, dim: Any, keepdim: bool = False) -> torch.Tensor:
        if not fast_path(input) or input.dim() == 0:
            return torch.logsumexp(input, dim, keepdim)
        return function.apply(input, _dims(dim, input.dim()), bool(keepdim))

    P = inspect.Parameter
    functional.__signature__ = inspect.Signature(
        [P("input", P.POSITIONAL_OR_KEYWORD, annotation="torch.Tensor"),
         P("dim", P.POSITIONAL_OR_KEYWORD, annotation="int | tuple[int, ...]"),
         P("keepdim", P.POSITIONAL_OR_KEYWORD, default=False, annotation="bool")],
        return_annotation="torch.Tensor")
    return function, functional


def module_base(act: Activation) -> type[torch.nn.Module]:
    def __init__(self: Any, dim: Any, keepdim: bool = False) -> None:
        torch.nn.Module.__init__(self)
        self.dim, self.keepdim = dim, keepdim

    def extra_repr(self: Any) -> str:
        return f"dim={self.dim!r}, keepdim={self.keepdim!r}"

    return type(f"_{class_name(act.name)}Base", (torch.nn.Module,),
                {"__init__": __init__, "extra_repr": extra_repr, "__module__": MODULE})


def module_forward(act: Activation, functional: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def forward(self: Any, input: torch.Tensor) -> torch.Tensor:
        return functional(input, self.dim, self.keepdim)

    return forward


def call_example(act: Activation) -> str:
    return f"ft.{act.name}(x, -1)"


def module_example(act: Activation, cls_name: str) -> tuple[str, str]:
    return "", f"ft.{cls_name}(-1)(x)"
