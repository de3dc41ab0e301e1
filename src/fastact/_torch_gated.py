"""fastact.torch for the gated activations (glu, swiglu, geglu, reglu): operators over
the two halves of a tensor along a dim, autograd Functions whose backward is
differentiable again (its own backward is the vector-Jacobian product of PyTorch's
composition of the same function, so any order works), the functional and the module.

glu is PyTorch's ``F.glu`` / ``torch.nn.GLU``; the others are fastact's own
(``SwiGLU``, ``GEGLU``, ``ReGLU``), and any tensor fastact does not take as it is
(CUDA, strided) is computed by that PyTorch composition instead."""

from __future__ import annotations

import inspect
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
    public_values,
    tensor,
    torch_class,
    validated,
    view,
    vmap_binary,
)

EXAMPLE_SHAPE = (2,)
# the docstrings of the functions PyTorch lacks: what computes other tensors, the parameters
FASTACT_ONLY_DOC = ("PyTorch's composition of the same function computes any other tensor",
                    "dim=-1 (the dim halved), and those of fastact.{name} other than b and axis (keyword)")
# what every gated function and module adds to PyTorch's signature (glu's included)
EXTRA_DOC = ("Given b (a keyword of the function, the second argument of the module's forward), the "
             "two-tensor form: input and b are the two halves (input first), fused where they have one "
             "shape and dtype (PyTorch's composition, which broadcasts, otherwise); the backward gives the "
             "gradients of both.\n\n")


def composed(act: Activation) -> Callable[..., torch.Tensor]:
    """PyTorch's expression of act: composed(x, dim, *public parameter values)."""
    if torch_class(act.name) is not None:
        torch_fn = getattr(F, act.name)
        return lambda x, dim, *params: torch_fn(x, dim)
    pair = composed_pair(act)
    return lambda x, dim, *params: pair(*x.chunk(2, dim), *params)


def composed_pair(act: Activation) -> Callable[..., torch.Tensor]:
    """PyTorch's expression of the two-tensor form: composed_pair(a, b, *public parameter
    values), the gated one of (a, b) through the base activation."""
    base = getattr(F, act.kind_options["base"])
    gate = act.kind_options["gate"]
    names = act.param_names

    def expression(a: torch.Tensor, b: torch.Tensor, *params: Any) -> torch.Tensor:
        pair = (a, b)
        return pair[1 - gate] * base(pair[gate], **dict(zip(names, params, strict=True)))

    return expression


def make_pair(act: Activation) -> type[torch.autograd.Function]:
    """The autograd Function of the two-tensor form, apply(a, b, params) for a and b of
    one shape and dtype: fastact's fused forward and backward (the gradients of both in
    one pass); the backward differentiable again as the split form's."""
    name = act.name
    cls = class_name(name)
    reference = composed_pair(act)

    def keywords(params: list[float]) -> dict[str, Any]:
        return dict(zip(act.param_names, public_values(act, params), strict=True))

    def forward_impl(a: torch.Tensor, b: torch.Tensor, params: list[float]) -> torch.Tensor:
        return tensor(act.forward(view(a), view(b), **keywords(params)))

    def backward_impl(g: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                      params: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        ga, gb = act.backward(view(g), view(a), view(b), **keywords(params))
        return tensor(ga), tensor(gb)

    forward_op = custom_op(f"{name}_pair", "(Tensor a, Tensor b, float[] params) -> Tensor", forward_impl,
                           lambda a, b, params: like_broadcast(a, b))
    backward_op = custom_op(f"{name}_pair_backward",
                            "(Tensor grad, Tensor a, Tensor b, float[] params) -> (Tensor, Tensor)", backward_impl,
                            lambda g, a, b, params: (torch.empty_like(a), torch.empty_like(b)))

    def vmap_backward(info: Any, in_dims: tuple, g: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                      params: list[float]) -> tuple:
        # each sample's gradients are its own: every operand expanded to the whole batch
        tensors = batch_front(info, in_dims[:3], (g, a, b))
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
        g, a, b = (t.expand(info.batch_size, *shape[1:]) for t in tensors)
        return backward_op(g, a, b, params), (0, 0)

    batched(forward_op, vmap_binary(forward_op))
    batched(backward_op, vmap_backward)

    def first_order(g: torch.Tensor, a: torch.Tensor, b: torch.Tensor, params: tuple) -> tuple:
        _, vjp = torch.func.vjp(lambda s, t: reference(s, t, *params), a, b)
        return vjp(g)

    def backward_setup(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.params = inputs[3]
        ctx.save_for_backward(*inputs[:3])

    def backward_backward(ctx: Any, wa: torch.Tensor, wb: torch.Tensor) -> tuple[Any, ...]:
        g, a, b = ctx.saved_tensors
        public = public_values(act, ctx.params)
        _, vjp = torch.func.vjp(lambda gg, aa, bb: first_order(gg, aa, bb, public), g, a, b)
        return (*vjp((wa, wb)), None)

    Backward = autograd_fn(cls + "PairBackward", f"{name}'s two-tensor backward: apply(grad, a, b, params) -> "
                           "(grad_a, grad_b); differentiable.",
                           lambda g, a, b, params: backward_op(g, a, b, params), backward_setup, backward_backward)

    def forward_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.params = inputs[2]
        ctx.save_for_backward(inputs[0], inputs[1])

    def forward_backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        a, b = ctx.saved_tensors
        if torch.compiler.is_compiling():
            return (*backward_op(g, a, b, ctx.params), None)
        return (*Backward.apply(g, a, b, ctx.params), None)

    return autograd_fn(cls + "PairFunction", f"torch.autograd.Function for {name}'s two-tensor form: apply(a, b, "
                       "params); the backward uses the saved inputs.",
                       lambda a, b, params: forward_op(a, b, params), forward_setup, forward_backward)


def make(act: Activation) -> tuple[type[torch.autograd.Function], Callable[..., torch.Tensor]]:
    name = act.name
    fname = f"fastact.torch.{name}"
    cls = class_name(name)
    reference = composed(act)
    pair_reference = composed_pair(act)
    pair_function = make_pair(act)

    def forward_impl(x: torch.Tensor, dim: int, params: list[float]) -> torch.Tensor:
        return tensor(act.forward(view(x), axis=dim, **dict(zip(act.param_names, public_values(act, params),
                                                                strict=True))))

    def backward_impl(g: torch.Tensor, x: torch.Tensor, dim: int, params: list[float]) -> torch.Tensor:
        return tensor(act.backward(view(g), view(x), axis=dim, **dict(zip(act.param_names, public_values(act, params),
                                                                          strict=True))))

    def halved(x: torch.Tensor, dim: int) -> torch.Tensor:
        shape = list(x.shape)
        shape[dim] //= 2
        return x.new_empty(shape)

    forward_op = custom_op(name, "(Tensor x, int dim, float[] params) -> Tensor", forward_impl,
                           lambda x, dim, params: halved(x, dim))
    backward_op = custom_op(f"{name}_backward", "(Tensor grad, Tensor x, int dim, float[] params) -> Tensor",
                            backward_impl, lambda g, x, dim, params: torch.empty_like(x))

    def vmap_forward(info: Any, in_dims: tuple, x: torch.Tensor, dim: int, params: list[float]) -> tuple:
        return forward_op(x.movedim(in_dims[0], 0), dim + 1, params), 0  # dim is >= 0 (functional)

    def vmap_backward(info: Any, in_dims: tuple, g: torch.Tensor, x: torch.Tensor, dim: int,
                      params: list[float]) -> tuple:
        g, x = batch_front(info, in_dims[:2], (g, x))
        n = max(g.shape[0], x.shape[0])
        return backward_op(g.expand(n, *g.shape[1:]), x.expand(n, *x.shape[1:]), dim + 1, params), 0

    batched(forward_op, vmap_forward)
    batched(backward_op, vmap_backward)

    def first_order(g: torch.Tensor, x: torch.Tensor, dim: int, params: tuple) -> torch.Tensor:
        _, vjp = torch.func.vjp(lambda t: reference(t, dim, *params), x)
        return vjp(g)[0]

    def backward_setup(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.dim, ctx.params = inputs[2], inputs[3]
        ctx.save_for_backward(inputs[0], inputs[1])

    def backward_backward(ctx: Any, w: torch.Tensor) -> tuple[Any, ...]:
        g, x = ctx.saved_tensors
        public = public_values(act, ctx.params)
        _, vjp = torch.func.vjp(lambda gg, xx: first_order(gg, xx, ctx.dim, public), g, x)
        dg, dx = vjp(w)
        return dg, dx, None, None

    Backward = autograd_fn(cls + "Backward", f"{name}'s backward: apply(grad, x, dim, params); differentiable.",
                           lambda g, x, dim, params: backward_op(g, x, dim, params), backward_setup,
                           backward_backward)

    def forward_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.dim, ctx.params = inputs[1], inputs[2]
        ctx.save_for_backward(inputs[0])

    def forward_backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        if torch.compiler.is_compiling():
            return backward_op(g, x, ctx.dim, ctx.params), None, None
        return Backward.apply(g, x, ctx.dim, ctx.params), None, None

    function = autograd_fn(cls + "Function", f"torch.autograd.Function for {name}: apply(x, dim, params); the "
                           "backward uses the saved input.", lambda x, dim, params: forward_op(x, dim, params),
                           forward_setup, forward_backward)
    names = act.param_names
    defaults = act.defaults

    def functional(input: torch.Tensor, dim: int = -1, *, b: torch.Tensor | None = None,
                   **kwargs: Any) -> torch.Tensor:
        for key in kwargs:
            if key not in names:
                raise TypeError(f"{fname}() got an unexpected keyword argument {key!r}")
        if isinstance(dim, torch.Tensor):
            raise TypeError(f"{fname}: dim must be an int, got a tensor (give the second half as b=)")
        params = tuple(kwargs.get(n, defaults[n]) for n in names)
        checked, _ = validated(act, fname, params)
        if b is not None:
            if fast_path(input, b) and input.shape == b.shape and input.dtype == b.dtype:
                return pair_function.apply(input, b, list(checked))
            return pair_reference(input, b, *params)  # PyTorch's, broadcasting, with its errors
        if not fast_path(input) or input.dim() == 0 or input.shape[dim] % 2:
            return reference(input, dim, *params)  # PyTorch's, with its errors
        return function.apply(input, dim % input.dim(), list(checked))

    P = inspect.Parameter
    choices = {p.name: p.choices for p in act.params if p.choices}
    functional.__signature__ = inspect.Signature(
        [P("input", P.POSITIONAL_OR_KEYWORD, annotation="torch.Tensor"),
         P("dim", P.POSITIONAL_OR_KEYWORD, default=-1, annotation="int"),
         P("b", P.KEYWORD_ONLY, default=None, annotation="torch.Tensor | None")]
        + [P(n, P.KEYWORD_ONLY, default=defaults[n], annotation="str" if n in choices else "float") for n in names],
        return_annotation="torch.Tensor",
    )
    return function, functional


def module_base(act: Activation) -> type[torch.nn.Module]:
    """torch.nn.GLU for glu; for the others a module of (dim=-1, *params) as GLU's."""
    cls = torch_class(act.name)
    if cls is not None:
        return cls
    names, defaults = act.param_names, act.defaults

    def __init__(self: Any, dim: int = -1, **kwargs: Any) -> None:
        torch.nn.Module.__init__(self)
        self.dim = dim
        for n in names:
            setattr(self, n, kwargs.pop(n, defaults[n]))
        if kwargs:
            raise TypeError(f"{class_name(act.name)}() got an unexpected keyword argument {next(iter(kwargs))!r}")

    def extra_repr(self: Any) -> str:
        return ", ".join(f"{n}={getattr(self, n)!r}" for n in ("dim", *names))

    P = inspect.Parameter
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [P("self", P.POSITIONAL_OR_KEYWORD), P("dim", P.POSITIONAL_OR_KEYWORD, default=-1)]
        + [P(n, P.KEYWORD_ONLY, default=defaults[n]) for n in names])
    return type(f"_{class_name(act.name)}Base", (torch.nn.Module,),
                {"__init__": __init__, "extra_repr": extra_repr, "__module__": MODULE})


def module_forward(act: Activation, functional: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    names = act.param_names

    def forward(self: Any, input: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return functional(input, self.dim, b=b, **{n: getattr(self, n) for n in names})

    return forward


def call_example(act: Activation) -> str:
    return f"ft.{act.name}(x)"


def module_example(act: Activation, cls_name: str) -> tuple[str, str]:
    return "", f"ft.{cls_name}()(x)"
