"""fastact.torch for prelu: its operators (the backward gives the weight's gradient too),
an autograd Function whose backward is differentiable to any order, the functional and
torch.nn.PReLU's forward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._registry import Activation
from ._torch_ops import (
    autograd_fn,
    batched,
    custom_op,
    fast_path,
    tensor,
    torch_module,
    view,
    vmap_loop,
)

EXAMPLE_SHAPE = (2, 2)


def make(act: Activation) -> tuple[type[torch.autograd.Function], Callable[..., torch.Tensor]]:
    """Forward(x, weight); Backward(g, x, weight) -> (grad_x, grad_weight), whose own
    backward is a PyTorch expression (prelu is piecewise linear in x and linear in g and
    weight), so derivatives of any order work."""

    def forward_impl(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return tensor(act.forward(view(x), view(weight)))

    def backward_impl(g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gx, gw = act.backward(view(g), view(x), view(weight))
        return tensor(gx), tensor(gw).reshape(weight.shape)

    forward_op = custom_op("prelu", "(Tensor x, Tensor weight) -> Tensor", forward_impl,
                           lambda x, w: torch.empty_like(x))
    batched(forward_op, vmap_loop(forward_op, 1))
    backward_op = custom_op("prelu_backward", "(Tensor grad, Tensor x, Tensor weight) -> (Tensor, Tensor)",
                            backward_impl, lambda g, x, w: (torch.empty_like(x), torch.empty_like(w)))
    batched(backward_op, vmap_loop(backward_op, 2))

    def backward_setup(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.save_for_backward(*inputs)

    def backward_backward(ctx: Any, vgx: torch.Tensor, vgw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # gx = g * (1 if x > 0 else w_c) and gw = sum over all but the channel axis of
        # g * (0 if x > 0 else x): their vector-Jacobian products, in PyTorch operations
        g, x, w = ctx.saved_tensors
        shape = [1] * x.dim()
        if x.dim() >= 2:
            shape[1] = -1
        w_b, vgw_b = w.reshape(shape), vgw.reshape(shape)
        positive = x > 0
        dims = [d for d in range(x.dim()) if not (d == 1 and w.numel() > 1)]

        def channel_sums(t: torch.Tensor) -> torch.Tensor:
            return (t.sum(dim=dims) if dims else t).reshape(w.shape)

        dg = torch.where(positive, vgx, vgx * w_b) + torch.where(positive, 0.0, x * vgw_b)
        dx = torch.where(positive, 0.0, g * vgw_b)
        dw = channel_sums(torch.where(positive, 0.0, vgx * g))
        return dg, dx, dw

    Backward = autograd_fn("PReLUBackward", "prelu's (grad_x, grad_weight): apply(grad, x, weight); differentiable.",
                           lambda g, x, w: backward_op(g, x, w), backward_setup, backward_backward)

    def forward_setup(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.save_for_backward(*inputs)

    def forward_backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, w = ctx.saved_tensors
        if torch.compiler.is_compiling():
            return backward_op(g, x, w)
        return Backward.apply(g, x, w)

    function = autograd_fn("PReLUFunction",
                           "torch.autograd.Function for prelu: apply(x, weight), channels along dim 1.",
                           lambda x, w: forward_op(x, w), forward_setup, forward_backward)

    def prelu(input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # PyTorch's prelu takes any weight that broadcasts; fastact's is 1-D, one or C slopes
        if fast_path(input, weight) and weight.dim() <= 1 and input.dtype == weight.dtype:
            return function.apply(input, weight)
        return F.prelu(input, weight)

    return function, prelu


module_base = torch_module


def module_forward(act: Activation, functional: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def forward(self: Any, input: torch.Tensor) -> torch.Tensor:
        return functional(input, self.weight)

    return forward


def call_example(act: Activation) -> str:
    return f"ft.{act.name}(x, weight)"


def module_example(act: Activation, cls_name: str) -> tuple[str, str]:
    return f">>> m = ft.{cls_name}(2).double()\n>>> _ = m.weight.data.copy_(weight)\n", "m(x).detach()"
