"""fastact.torch for the element-wise activations: custom operators for the forward, the
backward (from x or from y) and the second derivative, autograd Functions that chain
them to any order fastact declares, the functional (torch.nn.functional's arguments,
inplace=) and the torch.nn module's forward."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import KERNELS
from ._docs import example_args
from ._registry import PIECEWISE_LINEAR, Activation
from ._torch_ops import (
    MODULE,
    autograd_fn,
    batched,
    class_name,
    custom_op,
    fast_path,
    like_broadcast,
    public_values,
    tensor,
    torch_class,
    torch_has_inplace,
    torch_only_error,
    validated,
    view,
    vmap_binary,
    vmap_unary,
)

EXAMPLE_SHAPE = (3,)


def make(act: Activation) -> tuple[type[torch.autograd.Function], Callable[..., torch.Tensor]]:
    """The operators, the autograd Functions and the functional of an element-wise activation.

    Forward(x) -> y; its backward is Backward(g, v) = g f'(v), v the saved x (or y, with
    f' through y); Backward's own backward is Backward(w, v) for g and Second(w g, v) =
    w g f''(v) for v, fastact's declared second derivative (nothing for a piecewise
    linear activation, whose f'' is 0)."""
    name, kernels = act.name, KERNELS[act.name]
    fname = f"fastact.torch.{name}"
    curved = act.grad2_scalar != PIECEWISE_LINEAR
    variants = (False, True) if act.supports_y else (False,)

    def forward_impl(x: torch.Tensor, params: list[float]) -> torch.Tensor:
        return tensor(act.forward(view(x), *public_values(act, params)))

    def forward_in_place_impl(x: torch.Tensor, params: list[float]) -> None:
        xn = view(x)
        act.forward(xn, *public_values(act, params), out=xn)

    def backward_impl(from_y: bool) -> Callable[..., torch.Tensor]:
        def impl(g: torch.Tensor, v: torch.Tensor, params: list[float]) -> torch.Tensor:
            public = public_values(act, params)
            if from_y:
                return tensor(act.backward(view(g), None, *public, y=view(v)))
            return tensor(act.backward(view(g), view(v), *public))
        return impl

    def second_impl(from_y: bool) -> Callable[..., torch.Tensor]:
        def impl(h: torch.Tensor, v: torch.Tensor, params: list[float]) -> torch.Tensor:
            ufunc = kernels.backward2_from_y_ufunc if from_y else kernels.backward2_ufunc
            hn, vn = view(h), view(v)
            with np.errstate(all="ignore"):
                # a 16-bit v computes in the ufunc's float32 loop: back to its dtype
                return tensor(ufunc(hn, vn, *(np.float32(p) if vn.itemsize == 2 else vn.dtype.type(p)
                                              for p in params)).astype(vn.dtype, copy=False))
        return impl

    unary, binary = "(Tensor x, float[] params)", "(Tensor grad, Tensor v, float[] params) -> Tensor"
    forward_op = custom_op(name, unary + " -> Tensor", forward_impl, lambda x, params: torch.empty_like(x))
    batched(forward_op, vmap_unary(forward_op))
    in_place_op = custom_op(name + "_", "(Tensor(a!) x, float[] params) -> ()", forward_in_place_impl,
                            lambda x, params: None, mutates=("x",))
    backward_ops, second_ops = {}, {}
    for from_y in variants:
        suffix = "_from_y" if from_y else ""
        op = backward_ops[from_y] = custom_op(f"{name}_backward{suffix}", binary, backward_impl(from_y),
                                              lambda g, v, params: like_broadcast(g, v))
        batched(op, vmap_binary(op))
        if curved:
            op = second_ops[from_y] = custom_op(f"{name}_backward2{suffix}", binary, second_impl(from_y),
                                                lambda h, v, params: like_broadcast(h, v))
            batched(op, vmap_binary(op))

    def second_setup(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.from_y, ctx.params = inputs[2], inputs[3]
        ctx.save_for_backward(inputs[1])

    def second_backward(ctx: Any, w: torch.Tensor) -> tuple[Any, ...]:
        if ctx.needs_input_grad[1]:
            raise RuntimeError(
                f"{fname}: derivatives of third and higher order are not supported (fastact declares "
                f"{name}'s first and second derivatives)"
            )
        (v,) = ctx.saved_tensors
        return Second.apply(w, v, ctx.from_y, ctx.params), None, None, None

    Second = autograd_fn(
        class_name(name) + "Second", f"h * f''(v) for {name} (v = x, or y with from_y): apply(h, v, from_y, params).",
        lambda h, v, from_y, params: second_ops[from_y](h, v, params), second_setup, second_backward,
    )

    def backward_setup(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.from_y, ctx.params = inputs[2], inputs[3]
        ctx.save_for_backward(inputs[0], inputs[1])

    def backward_backward(ctx: Any, w: torch.Tensor) -> tuple[Any, ...]:
        g, v = ctx.saved_tensors
        dg = Backward.apply(w, v, ctx.from_y, ctx.params) if ctx.needs_input_grad[0] else None
        dv = None
        if ctx.needs_input_grad[1]:
            # piecewise linear: 0, as a tensor (PyTorch's own gives zeros, not an unset .grad)
            dv = Second.apply(w * g, v, ctx.from_y, ctx.params) if curved else torch.zeros_like(v)
        return dg, dv, None, None

    Backward = autograd_fn(
        class_name(name) + "Backward", f"grad * f'(v) for {name} (v = x, or y with from_y): apply(grad, v, from_y, "
        "params); differentiable.",
        lambda g, v, from_y, params: backward_ops[from_y](g, v, params), backward_setup, backward_backward,
    )

    def forward(x: torch.Tensor, x_copy: torch.Tensor | None, inplace: bool, from_y: bool, params: tuple) -> Any:
        if inplace:
            in_place_op(x, params)
            return x
        return forward_op(x, params)

    def forward_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, x_copy, inplace, from_y, params = inputs
        if inplace:
            ctx.mark_dirty(x)
        ctx.from_y, ctx.params = from_y, params
        # in place, x is overwritten: the output stands in for it where it determines the
        # derivative, else a copy of x taken before (in the graph, for second derivatives)
        ctx.save_for_backward(output if from_y else (x_copy if inplace else x))

    def forward_backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        (v,) = ctx.saved_tensors
        if torch.compiler.is_compiling():
            return backward_ops[ctx.from_y](g, v, ctx.params), None, None, None, None
        return Backward.apply(g, v, ctx.from_y, ctx.params), None, None, None, None

    function = autograd_fn(
        class_name(name) + "Function", f"torch.autograd.Function for {name}: apply(x, x_copy, inplace, from_y, "
        "params), params validated and in declaration order (a choice by its index); x_copy: a copy of x for an "
        "in-place call whose backward needs x.",
        forward, forward_setup, forward_backward,
    )

    torch_fn = getattr(F, name, None)  # None: an activation PyTorch does not have
    has_inplace = torch_has_inplace(name)
    names, defaults = act.param_names, act.defaults

    def functional(input: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        inplace = bool(kwargs.pop("inplace", False)) if has_inplace else False
        if len(args) > len(names):
            raise TypeError(f"{fname}() takes at most {len(names)} parameters after input")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names or key in values:
                raise TypeError(f"{fname}() got an unexpected or repeated argument {key!r}")
            values[key] = value
        params = []
        for n in names:
            if n not in values and defaults[n] is None:
                raise TypeError(f"{fname}() missing required argument {n!r}")
            params.append(values.get(n, defaults[n]))
        if not fast_path(input):
            if torch_fn is not None:
                extra = {"inplace": inplace} if has_inplace else {}
                return torch_fn(input, **dict(zip(names, params, strict=True)), **extra)
            # PyTorch has no such function: a CPU float tensor fastact does not take as it
            # is (strided, or with the negative bit) is computed from a dense copy
            dense = input.contiguous().resolve_neg()
            if not fast_path(dense):
                raise torch_only_error(name, input)
            result = functional(dense, *params)
            return input.copy_(result) if inplace else result
        checked, from_y = validated(act, fname, tuple(params))
        if not inplace:
            return function.apply(input, None, False, from_y, checked)
        if not (torch.is_grad_enabled() and input.requires_grad):
            in_place_op(input, checked)
            return input
        if input.is_leaf:
            # PyTorch's own check, made here before the memory is written rather than after
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        return function.apply(input, None if from_y else input.clone(), True, from_y, checked)

    P = inspect.Parameter
    choices = {p.name: p.choices for p in act.params if p.choices}
    functional.__signature__ = inspect.Signature(
        [P("input", P.POSITIONAL_OR_KEYWORD, annotation="torch.Tensor")]
        + [P(n, P.POSITIONAL_OR_KEYWORD, annotation="str" if n in choices else "float",
             **({} if defaults[n] is None else {"default": defaults[n]})) for n in names]
        + ([P("inplace", P.KEYWORD_ONLY, default=False, annotation="bool")] if has_inplace else []),
        return_annotation="torch.Tensor",
    )
    return function, functional


def module_base(act: Activation) -> type[torch.nn.Module]:
    """torch.nn's module class for act, or a fastact one where PyTorch has none."""
    return torch_class(act.name) or _fastact_module(act)


def module_forward(act: Activation, functional: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    names = act.param_names  # torch.nn's attribute names are torch.nn.functional's argument names
    has_inplace = torch_has_inplace(act.name)

    def forward(self: Any, input: torch.Tensor) -> torch.Tensor:
        kwargs = {n: getattr(self, n) for n in names}
        if has_inplace:
            kwargs["inplace"] = getattr(self, "inplace", False)
        return functional(input, **kwargs)

    return forward


def call_example(act: Activation) -> str:
    return f"ft.{act.name}(x{example_args(act)})"


def module_example(act: Activation, cls_name: str) -> tuple[str, str]:
    return "", f"ft.{cls_name}({example_args(act).lstrip(', ')})(x)"


def _fastact_module(act: Activation) -> type[torch.nn.Module]:
    """A torch.nn.Module base for an element-wise activation PyTorch lacks: the
    declaration's parameters as constructor arguments (with their defaults) and
    attributes, as torch.nn's activation modules have them."""
    names, defaults = act.param_names, act.defaults

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        torch.nn.Module.__init__(self)
        bound = init_signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for n in (*names, "inplace"):
            setattr(self, n, bound.arguments[n])

    def extra_repr(self: Any) -> str:
        return ", ".join(f"{n}={getattr(self, n)!r}" for n in (*names, "inplace"))

    P = inspect.Parameter
    init_signature = inspect.Signature(
        [P("self", P.POSITIONAL_OR_KEYWORD)]
        + [P(n, P.POSITIONAL_OR_KEYWORD, **({} if defaults[n] is None else {"default": defaults[n]}))
           for n in names]
        + [P("inplace", P.POSITIONAL_OR_KEYWORD, default=False)])
    __init__.__signature__ = init_signature  # type: ignore[attr-defined]
    return type(f"_{class_name(act.name)}Base", (torch.nn.Module,),
                {"__init__": __init__, "extra_repr": extra_repr, "__module__": MODULE})
