"""PyTorch adapter: fastact's kernels behind ``torch.nn.functional``'s and ``torch.nn``'s names.

``fastact.torch.NAME(input, ...)`` takes the arguments of ``torch.nn.functional.NAME``
(``inplace=`` where PyTorch has it, ``dim`` for softmax and log_softmax) and
``fastact.torch.CLASS`` is a subclass of ``torch.nn.CLASS`` (``GELU``, ``LeakyReLU``,
``PReLU``, ``Softmax``, ...) with the same constructor, attributes, ``state_dict`` and
``repr``: replace the class and nothing else changes.

A contiguous CPU float32 or float64 tensor runs through fastact: NumPy views of the
tensor's own memory (no copy), and a result that becomes a tensor without a copy either.
Anything else (CUDA, float16, bfloat16, a non-contiguous tensor, softmax with ``dim=None``
or ``dtype=``) is handed to ``torch.nn.functional`` unchanged.

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

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import KERNELS, REGISTRY
from ._docs import EXAMPLE_WEIGHT, EXAMPLE_X, example_args, example_numbers
from ._registry import PIECEWISE_LINEAR, Activation

__all__: list[str] = ["fast_path"]

_FAST_DTYPES = (torch.float32, torch.float64)


def fast_path(*tensors: torch.Tensor) -> bool:
    """Whether fastact computes for these tensors: each a plain, contiguous, dense CPU
    float32 or float64 tensor (anything else goes to ``torch.nn.functional``)."""
    # torch.compile cannot trace the conjugate and negative bits (lazy views): the
    # operators resolve them instead (_view)
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


def _view(t: torch.Tensor) -> np.ndarray:
    # shares the tensor's memory (resolve_neg copies only a tensor with the negative bit)
    return t.detach().resolve_neg().numpy()


def _tensor(a: Any) -> torch.Tensor:
    # a 0-d input gives a NumPy scalar, as a ufunc does; torch wants an array
    return torch.from_numpy(a if isinstance(a, np.ndarray) else np.asarray(a))


def _torch_class(name: str) -> type[torch.nn.Module] | None:
    """torch.nn's class for a torch.nn.functional name (leaky_relu -> LeakyReLU), or None
    for an activation PyTorch does not have."""
    key = name.replace("_", "")
    for cls_name in dir(torch.nn.modules.activation):
        if cls_name.lower() == key and isinstance(getattr(torch.nn, cls_name, None), type):
            return getattr(torch.nn, cls_name)
    return None


def _torch_has_inplace(name: str) -> bool:
    # from torch.nn's constructor: some torch.nn.functional functions are builtins without a signature
    # (fastact's own activations take inplace=, as most of torch.nn's do)
    cls = _torch_class(name)
    return cls is None or "inplace" in inspect.signature(cls.__init__).parameters


def _class_name(name: str) -> str:
    """The module's class name: torch.nn's (leaky_relu -> LeakyReLU), or for an activation
    PyTorch lacks its name in CamelCase (sparse_plus -> SparsePlus)."""
    cls = _torch_class(name)
    return cls.__name__ if cls is not None else "".join(part.capitalize() for part in name.split("_"))


def _torch_only_error(name: str, input: torch.Tensor) -> TypeError:
    return TypeError(
        f"fastact.torch.{name}: PyTorch has no {name}, and fastact computes it for dense CPU float32 and "
        f"float64 tensors only (got a {input.dtype} tensor on {input.device}, layout {input.layout})")


def _op(name: str, schema: str, impl: Callable[..., Any], fake: Callable[..., Any],
        mutates: tuple[str, ...] = ()) -> Any:
    """A custom operator torch.ops.fastact.NAME: opaque to torch.compile (which runs its
    fake implementation to learn the result's shape), batched by vmap with its rule."""
    qualname = f"fastact::{name}"
    torch.library.custom_op(qualname, impl, mutates_args=mutates, device_types="cpu", schema=schema)
    torch.library.register_fake(qualname, fake)
    # the operator as torch.ops has it: torch.compile traces a call of that (not of the
    # CustomOpDef, which it cannot wrap inside an autograd.Function)
    return getattr(torch.ops.fastact, name)


def _batched(op: Any, rule: Callable[..., Any]) -> None:
    """op's batching rule, for torch.func.vmap (without one, vmap loops over the batch)."""
    torch.library.register_vmap(op._qualified_op_name, rule)


def _batch_front(info: Any, in_dims: tuple, tensors: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """The tensors with their batch dimension first (length 1 where a tensor is not
    batched, so that they broadcast against each other)."""
    return [t.movedim(d, 0) if d is not None else t.unsqueeze(0) for t, d in zip(tensors, in_dims, strict=False)]


def _like_broadcast(*tensors: torch.Tensor) -> torch.Tensor:
    return tensors[-1].new_empty(torch.broadcast_shapes(*(t.shape for t in tensors)))


# In each Function's backward, torch.compile calls the backward operator itself: it has
# no double backward to give (AOTAutograd refuses one), and its tracer cannot follow an
# autograd.Function made at run time into another's backward.


def _autograd_fn(name: str, doc: str, forward: Callable[..., Any], setup_context: Callable[..., Any],
              backward: Callable[..., Any]) -> type[torch.autograd.Function]:
    # setup_context apart from forward is what torch.func needs; generate_vmap_rule lets vmap
    # run forward and backward, whose operators have their own batching rules
    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(forward), "setup_context": staticmethod(setup_context),
        "backward": staticmethod(backward), "generate_vmap_rule": True, "__doc__": doc, "__module__": __name__,
    })


def _vmap_unary(op: Any) -> Callable[..., Any]:
    def rule(info: Any, in_dims: tuple, x: torch.Tensor, params: Any) -> tuple[torch.Tensor, int | None]:
        return op(x, params), in_dims[0]  # element-wise: the batch dimension stays where it is
    return rule


def _vmap_binary(op: Any) -> Callable[..., Any]:
    def rule(info: Any, in_dims: tuple, a: torch.Tensor, b: torch.Tensor, params: Any) -> tuple[torch.Tensor, int]:
        return op(*_batch_front(info, in_dims, (a, b)), params), 0
    return rule


def _vmap_loop(op: Any, n_out: int) -> Callable[..., Any]:
    """A batching rule that runs op once per batch entry (prelu, whose channel axis moves)."""
    def rule(info: Any, in_dims: tuple, *tensors: torch.Tensor) -> Any:
        results = [op(*(t if d is None else t.select(d, i) for t, d in zip(tensors, in_dims, strict=True)))
                   for i in range(info.batch_size)]
        if n_out == 1:
            return torch.stack(results), 0
        return tuple(torch.stack(r) for r in zip(*results, strict=True)), (0,) * n_out
    return rule


@torch.compiler.assume_constant_result
def _validated(act: Activation, function: str, params: tuple) -> tuple[tuple[float, ...], bool]:
    """The validated parameters, and whether the backward can read the output instead of
    the input. torch.compile calls this while tracing and keeps the result as a constant
    (the parameters are constants of the graph) rather than tracing the validation."""
    checked = act.validate(function, params)
    return checked, act.supports_y and (act.y_ok is None or act.y_ok(*checked))


def _public_values(act: Activation, params: Any) -> tuple[Any, ...]:
    """Validated parameters (a choice as its index) as the public functions take them."""
    return tuple(p.choices[int(v)] if p.choices else v for p, v in zip(act.params, params, strict=True))


# --- element-wise --------------------------------------------------------------------------------


def _elementwise(act: Activation) -> tuple[type[torch.autograd.Function], Callable[..., torch.Tensor]]:
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
        return _tensor(act.forward(_view(x), *_public_values(act, params)))

    def forward_in_place_impl(x: torch.Tensor, params: list[float]) -> None:
        xn = _view(x)
        act.forward(xn, *_public_values(act, params), out=xn)

    def backward_impl(from_y: bool) -> Callable[..., torch.Tensor]:
        def impl(g: torch.Tensor, v: torch.Tensor, params: list[float]) -> torch.Tensor:
            public = _public_values(act, params)
            if from_y:
                return _tensor(act.backward(_view(g), None, *public, y=_view(v)))
            return _tensor(act.backward(_view(g), _view(v), *public))
        return impl

    def second_impl(from_y: bool) -> Callable[..., torch.Tensor]:
        def impl(h: torch.Tensor, v: torch.Tensor, params: list[float]) -> torch.Tensor:
            ufunc = kernels.backward2_from_y_ufunc if from_y else kernels.backward2_ufunc
            hn, vn = _view(h), _view(v)
            with np.errstate(all="ignore"):
                return _tensor(ufunc(hn, vn, *(vn.dtype.type(p) for p in params)))
        return impl

    unary, binary = "(Tensor x, float[] params)", "(Tensor grad, Tensor v, float[] params) -> Tensor"
    forward_op = _op(name, unary + " -> Tensor", forward_impl, lambda x, params: torch.empty_like(x))
    _batched(forward_op, _vmap_unary(forward_op))
    in_place_op = _op(name + "_", "(Tensor(a!) x, float[] params) -> ()", forward_in_place_impl,
                      lambda x, params: None, mutates=("x",))
    backward_ops, second_ops = {}, {}
    for from_y in variants:
        suffix = "_from_y" if from_y else ""
        op = backward_ops[from_y] = _op(f"{name}_backward{suffix}", binary, backward_impl(from_y),
                                        lambda g, v, params: _like_broadcast(g, v))
        _batched(op, _vmap_binary(op))
        if curved:
            op = second_ops[from_y] = _op(f"{name}_backward2{suffix}", binary, second_impl(from_y),
                                          lambda h, v, params: _like_broadcast(h, v))
            _batched(op, _vmap_binary(op))

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

    Second = _autograd_fn(
        _class_name(name) + "Second", f"h * f''(v) for {name} (v = x, or y with from_y): apply(h, v, from_y, params).",
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

    Backward = _autograd_fn(
        _class_name(name) + "Backward", f"grad * f'(v) for {name} (v = x, or y with from_y): apply(grad, v, from_y, "
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

    function = _autograd_fn(
        _class_name(name) + "Function", f"torch.autograd.Function for {name}: apply(x, x_copy, inplace, from_y, "
        "params), params validated and in declaration order (a choice by its index); x_copy: a copy of x for an "
        "in-place call whose backward needs x.",
        forward, forward_setup, forward_backward,
    )

    torch_fn = getattr(F, name, None)  # None: an activation PyTorch does not have
    has_inplace = _torch_has_inplace(name)
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
                raise _torch_only_error(name, input)
            result = functional(dense, *params)
            return input.copy_(result) if inplace else result
        checked, from_y = _validated(act, fname, tuple(params))
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


# --- prelu, softmax, log_softmax ----------------------------------------------------------------


def _prelu(act: Activation) -> tuple[type[torch.autograd.Function], Callable[..., torch.Tensor]]:
    """Forward(x, weight); Backward(g, x, weight) -> (grad_x, grad_weight), whose own
    backward is a PyTorch expression (prelu is piecewise linear in x and linear in g and
    weight), so derivatives of any order work."""

    def forward_impl(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return _tensor(act.forward(_view(x), _view(weight)))

    def backward_impl(g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gx, gw = act.backward(_view(g), _view(x), _view(weight))
        return _tensor(gx), _tensor(gw).reshape(weight.shape)

    forward_op = _op("prelu", "(Tensor x, Tensor weight) -> Tensor", forward_impl, lambda x, w: torch.empty_like(x))
    _batched(forward_op, _vmap_loop(forward_op, 1))
    backward_op = _op("prelu_backward", "(Tensor grad, Tensor x, Tensor weight) -> (Tensor, Tensor)", backward_impl,
                      lambda g, x, w: (torch.empty_like(x), torch.empty_like(w)))
    _batched(backward_op, _vmap_loop(backward_op, 2))

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

    Backward = _autograd_fn("PReLUBackward", "prelu's (grad_x, grad_weight): apply(grad, x, weight); differentiable.",
                         lambda g, x, w: backward_op(g, x, w), backward_setup, backward_backward)

    def forward_setup(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.save_for_backward(*inputs)

    def forward_backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, w = ctx.saved_tensors
        if torch.compiler.is_compiling():
            return backward_op(g, x, w)
        return Backward.apply(g, x, w)

    function = _autograd_fn("PReLUFunction",
                            "torch.autograd.Function for prelu: apply(x, weight), channels along dim 1.",
                            lambda x, w: forward_op(x, w), forward_setup, forward_backward)

    def prelu(input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # PyTorch's prelu takes any weight that broadcasts; fastact's is 1-D, one or C slopes
        if fast_path(input, weight) and weight.dim() <= 1 and input.dtype == weight.dtype:
            return function.apply(input, weight)
        return F.prelu(input, weight)

    return function, prelu


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


# the vector-Jacobian products of the row-wise backward (grad, y) -> grad_x, as PyTorch
# operations: differentiable again, to any order
_ROW_SECOND = {"softmax": _softmax_second, "log_softmax": _log_softmax_second}


def _rowwise(act: Activation) -> tuple[type[torch.autograd.Function], Callable[..., torch.Tensor]]:
    name = act.name
    cls = _class_name(name)

    def forward_impl(x: torch.Tensor, dim: int) -> torch.Tensor:
        return _tensor(act.forward(_view(x), axis=dim))

    def backward_impl(g: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
        return _tensor(act.backward(_view(g), y=_view(y), axis=dim))

    def batched_dim(t: torch.Tensor, dim: int) -> int:
        return dim % (t.dim() - 1) + 1  # t has its batch dimension first

    forward_op = _op(name, "(Tensor x, int dim) -> Tensor", forward_impl, lambda x, dim: torch.empty_like(x))
    backward_op = _op(f"{name}_backward", "(Tensor grad, Tensor y, int dim) -> Tensor", backward_impl,
                      lambda g, y, dim: _like_broadcast(g, y))

    def vmap_forward(info: Any, in_dims: tuple, x: torch.Tensor, dim: int) -> tuple[torch.Tensor, int]:
        x = x.movedim(in_dims[0], 0)
        if x.dim() == 1:  # rows of one element each
            return forward_op(x.unsqueeze(1), 1).squeeze(1), 0
        return forward_op(x, batched_dim(x, dim)), 0

    def vmap_backward(info: Any, in_dims: tuple, g: torch.Tensor, y: torch.Tensor, dim: int) -> tuple:
        g, y = _batch_front(info, in_dims, (g, y))
        shape = torch.broadcast_shapes(g.shape, y.shape)
        g, y = g.expand(shape), y.expand(shape)
        if len(shape) == 1:
            return backward_op(g.unsqueeze(1), y.unsqueeze(1), 1).squeeze(1), 0
        return backward_op(g, y, batched_dim(y, dim)), 0

    _batched(forward_op, vmap_forward)
    _batched(backward_op, vmap_backward)
    second = _ROW_SECOND[name]

    def backward_setup(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.dim = inputs[2]
        ctx.save_for_backward(inputs[0], inputs[1])

    def backward_backward(ctx: Any, w: torch.Tensor) -> tuple[Any, ...]:
        g, y = ctx.saved_tensors
        return (*second(Backward, g, y, w, ctx.dim), None)

    Backward = _autograd_fn(cls + "Backward",
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

    function = _autograd_fn(cls + "Function", f"torch.autograd.Function for {name}: apply(x, dim); the backward uses "
                         "the saved output.", lambda x, dim: forward_op(x, dim), forward_setup, forward_backward)
    torch_fn = getattr(F, name)

    def functional(input: torch.Tensor, dim: int | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        # dim=None is PyTorch's deprecated implicit choice (with its warning) and dtype= casts
        # first: both are PyTorch's to do
        if dim is None or dtype is not None or not fast_path(input):
            return torch_fn(input, dim=dim, dtype=dtype)
        return function.apply(input, dim)

    return function, functional


# --- modules -------------------------------------------------------------------------------------


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
    return type(f"_{_class_name(act.name)}Base", (torch.nn.Module,),
                {"__init__": __init__, "extra_repr": extra_repr, "__module__": __name__})


def _module(act: Activation, functional: Callable[..., torch.Tensor]) -> type[torch.nn.Module]:
    base = _torch_class(act.name)
    if base is None:
        if act.kind != "elementwise":
            raise LookupError(f"torch.nn has no module for {act.name}")
        base = _fastact_module(act)
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

    cls_name = _class_name(act.name)
    return type(cls_name, (base,), {"forward": forward, "__doc__": _module_doc(act, cls_name),
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
    if _torch_class(act.name) is None:
        head = (f"{act.name}, which PyTorch does not have, computed by fastact on dense CPU float32/float64 "
                f"tensors (any other tensor raises TypeError).\n\n{act.formula}\n\nDerivative: {act.derivative}."
                f"\n\nParameters: those of fastact.{act.name}, and inplace=False (keyword).\n\n")
    else:
        head = (f"torch.nn.functional.{act.name} computed by fastact on contiguous CPU float32/float64 tensors "
                f"(PyTorch's own otherwise).\n\n{act.formula}\n\nDerivative: {act.derivative}.\n\n"
                f"Parameters: those of torch.nn.functional.{act.name}.\n\n")
    return head + _example(act, f"ft.{act.name}(x{_call_args(act)})")


def _module_doc(act: Activation, cls_name: str) -> str:
    if act.kind == "channelwise":
        setup = (">>> m = ft.PReLU(2).double()\n>>> _ = m.weight.data.copy_(weight)\n", "m(x).detach()")
    else:
        args = example_args(act).lstrip(", ") if act.kind == "elementwise" else "dim=0"
        setup = ("", f"ft.{cls_name}({args})(x)")
    doc = _example(act, setup[1])
    if setup[0]:
        doc = doc.replace(">>> m(x)", setup[0] + ">>> m(x)", 1)
    if _torch_class(act.name) is None:
        return (f"{cls_name}: {act.name} as a torch.nn.Module, which PyTorch does not have, computed by fastact."
                f"\n\n{act.formula}\n\nDerivative: {act.derivative}.\n\nParameters: those of fastact.{act.name}, "
                f"and inplace=False, as constructor arguments and attributes.\n\n" + doc)
    return (f"torch.nn.{cls_name} computed by fastact (same constructor, attributes and state_dict).\n\n"
            f"{act.formula}\n\nDerivative: {act.derivative}.\n\nParameters: those of torch.nn.{cls_name}.\n\n"
            + doc)


_MAKERS = {"elementwise": _elementwise, "channelwise": _prelu, "rowwise": _rowwise}

for _name, _act in REGISTRY.items():
    _function, _functional = _MAKERS[_act.kind](_act)
    _functional.__name__ = _functional.__qualname__ = _name
    _functional.__module__ = __name__
    _functional.__doc__ = _functional_doc(_act)
    _cls = _module(_act, _functional)
    for _obj in (_functional, _function, _cls):
        globals()[_obj.__name__] = _obj
        __all__.append(_obj.__name__)

del _name, _act, _function, _functional, _cls, _obj
