"""fastact.torch for softmax and log_softmax: operators along a dim, with batching rules
that move the batch dimension first, autograd Functions whose backward (from the saved
output) is differentiable to any order, the functional and the torch.nn module's forward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._registry import Activation
from ._torch_ops import (
    MODULE,
    autograd_fn,
    batch_front,
    batched,
    class_name,
    custom_op,
    fast_path,
    like_broadcast,
    tensor,
    torch_class,
    torch_module,
    view,
)

EXAMPLE_SHAPE = (3,)


def _softmax_second(backward: Any, g: torch.Tensor, y: torch.Tensor, w: torch.Tensor, dim: int) -> tuple:
    # grad_x = y g - y sum(y g) is symmetric in g: its vjp in g is itself; in y,
    # w g - w sum(y g) - g sum(w y)
    dg = backward.apply(w, y, dim)
    dy = w * g - w * (y * g).sum(dim, keepdim=True) - g * (w * y).sum(dim, keepdim=True)
    return dg, dy


def _log_softmax_second(backward: Any, g: torch.Tensor, y: torch.Tensor, w: torch.Tensor, dim: int) -> tuple:
    # grad_x = g - exp(y) sum(g): vjp in g, w - sum(w exp(y)); in y, -sum(g) w exp(y)
    e = y.exp()
    return w - (w * e).sum(dim, keepdim=True), -g.sum(dim, keepdim=True) * w * e


def _softmin_second(backward: Any, g: torch.Tensor, y: torch.Tensor, w: torch.Tensor, dim: int) -> tuple:
    # grad_x = -(softmax's): its vjp in g is itself (symmetric in g), in y minus softmax's
    dg, dy = _softmax_second(backward, g, y, w, dim)
    return dg, -dy


def _sparsemax_second(backward: Any, g: torch.Tensor, y: torch.Tensor, w: torch.Tensor, dim: int) -> tuple:
    # grad_x = s (g - mean of g over s), s = (y > 0): linear and symmetric in g, and in y
    # constant almost everywhere (its derivative in y is 0)
    return backward.apply(w, y, dim), None


# the vector-Jacobian products of the row-wise backward (grad, y) -> grad_x, as PyTorch
# operations: differentiable again, to any order
_ROW_SECOND = {"softmax": _softmax_second, "log_softmax": _log_softmax_second, "softmin": _softmin_second,
               "sparsemax": _sparsemax_second}

# PyTorch has no sparsemax: fastact's own module and functional, and for the tensors
# fastact does not compute, this composition of PyTorch's (differentiable: sort, cumsum)
FASTACT_ONLY_DOC = ("a sort-based composition of PyTorch operations computes any other tensor",
                    "dim=-1, the axis of the rows, as Keras's axis")


def _sparsemax_composed(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    desc = input.sort(dim=dim, descending=True).values
    total = desc.cumsum(dim)
    shape = [1] * input.dim()
    shape[dim] = input.shape[dim]
    k = torch.arange(1, input.shape[dim] + 1, device=input.device, dtype=input.dtype).view(shape)
    size = (1 + k * desc > total).sum(dim, keepdim=True)
    tau = (total.gather(dim, size - 1) - 1) / size.to(input.dtype)
    return (input - tau).clamp_min(0)


_COMPOSED = {"sparsemax": _sparsemax_composed}


def make(act: Activation) -> tuple[type[torch.autograd.Function], Callable[..., torch.Tensor]]:
    name = act.name
    cls = class_name(name)

    def forward_impl(x: torch.Tensor, dim: int) -> torch.Tensor:
        return tensor(act.forward(view(x), axis=dim))

    def backward_impl(g: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
        return tensor(act.backward(view(g), y=view(y), axis=dim))

    def batched_dim(t: torch.Tensor, dim: int) -> int:
        return dim % (t.dim() - 1) + 1  # t has its batch dimension first

    forward_op = custom_op(name, "(Tensor x, int dim) -> Tensor", forward_impl, lambda x, dim: torch.empty_like(x))
    backward_op = custom_op(f"{name}_backward", "(Tensor grad, Tensor y, int dim) -> Tensor", backward_impl,
                            lambda g, y, dim: like_broadcast(g, y))

    def vmap_forward(info: Any, in_dims: tuple, x: torch.Tensor, dim: int) -> tuple[torch.Tensor, int]:
        x = x.movedim(in_dims[0], 0)
        if x.dim() == 1:  # rows of one element each
            return forward_op(x.unsqueeze(1), 1).squeeze(1), 0
        return forward_op(x, batched_dim(x, dim)), 0

    def vmap_backward(info: Any, in_dims: tuple, g: torch.Tensor, y: torch.Tensor, dim: int) -> tuple:
        g, y = batch_front(info, in_dims, (g, y))
        shape = torch.broadcast_shapes(g.shape, y.shape)
        g, y = g.expand(shape), y.expand(shape)
        if len(shape) == 1:
            return backward_op(g.unsqueeze(1), y.unsqueeze(1), 1).squeeze(1), 0
        return backward_op(g, y, batched_dim(y, dim)), 0

    batched(forward_op, vmap_forward)
    batched(backward_op, vmap_backward)
    second = _ROW_SECOND[name]

    def backward_setup(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.dim = inputs[2]
        ctx.save_for_backward(inputs[0], inputs[1])

    def backward_backward(ctx: Any, w: torch.Tensor) -> tuple[Any, ...]:
        g, y = ctx.saved_tensors
        return (*second(Backward, g, y, w, ctx.dim), None)

    Backward = autograd_fn(cls + "Backward",
                           f"{name}'s backward from its output: apply(grad, y, dim); differentiable.",
                           lambda g, y, dim: backward_op(g, y, dim), backward_setup, backward_backward)

    def forward_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.dim = inputs[1]
        ctx.save_for_backward(output)

    def forward_backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        if torch.compiler.is_compiling():
            return backward_op(g, y, ctx.dim), None
        return Backward.apply(g, y, ctx.dim), None

    function = autograd_fn(cls + "Function", f"torch.autograd.Function for {name}: apply(x, dim); the backward uses "
                           "the saved output.", lambda x, dim: forward_op(x, dim), forward_setup, forward_backward)
    if not hasattr(F, name):
        composed = _COMPOSED[name]

        def own(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
            if not fast_path(input):
                return composed(input, dim)
            return function.apply(input, dim)

        return function, own

    torch_fn = getattr(F, name)

    def functional(input: torch.Tensor, dim: int | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        # dim=None is PyTorch's deprecated implicit choice (with its warning): PyTorch's to do.
        # dtype= casts the input first, as PyTorch does (a differentiable cast)
        if dim is None or not fast_path(input):
            return torch_fn(input, dim=dim, dtype=dtype)
        if dtype is not None:
            input = input.to(dtype)
            if not fast_path(input):
                return torch_fn(input, dim=dim)
        return function.apply(input, dim)

    return function, functional


def module_base(act: Activation) -> type[torch.nn.Module]:
    if torch_class(act.name) is not None:
        return torch_module(act)

    def __init__(self: Any, dim: int = -1) -> None:
        torch.nn.Module.__init__(self)
        self.dim = dim

    def extra_repr(self: Any) -> str:
        return f"dim={self.dim}"

    return type(f"_{class_name(act.name)}Base", (torch.nn.Module,),
                {"__init__": __init__, "extra_repr": extra_repr, "__module__": MODULE})


def module_forward(act: Activation, functional: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def forward(self: Any, input: torch.Tensor) -> torch.Tensor:
        return functional(input, self.dim)

    return forward


def call_example(act: Activation) -> str:
    return f"ft.{act.name}(x, dim=0)"


def module_example(act: Activation, cls_name: str) -> tuple[str, str]:
    return "", f"ft.{cls_name}(dim=0)(x)"
