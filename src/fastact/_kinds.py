"""The kinds of activation, as classes: what every surface needs to know about a kind.

An activation's ``kind`` names one of these. Each kind is a subclass of :class:`Kind` in
the module of its public functions (``_elementwise.Elementwise``,
``_channelwise.Channelwise``, ``_rowwise.Rowwise``, ``_gated.Gated``), which registers itself by its name;
the code that serves every activation (``fastact``, ``_docs``, ``_warm``, ``ufuncs``,
``scalar``, ``torch``, ``_apply``, ``_bench``) asks the activation's kind, through
:func:`kind_of`, and never which kind it is. A new kind is a new subclass (and its loops);
nothing else branches on it.

This module imports none of the kinds: they import it, and the package imports them
before anything calls :func:`kind_of`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from ._kernels import Kernels
    from ._registry import Activation

_KINDS: dict[str, Kind] = {}
Splitter = Callable[[np.ndarray], np.ndarray]


def kind_of(act: Activation) -> Kind:
    """The kind that act declares."""
    return _KINDS[act.kind]


class Kind:
    """One kind of activation. The defaults are those of a kind whose only inputs are
    arrays of x's shape and whose parameters are the declared floats (element-wise)."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _KINDS[cls.name] = cls()

    # --- the public functions ------------------------------------------------------------

    def public_functions(self, act: Activation, kernels: Kernels) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """fa.NAME and fa.NAME_backward."""
        raise NotImplementedError

    def warm(self, act: Activation, kernels: Kernels, layouts: list[np.ndarray]) -> None:
        """Call the public functions on each layout (1-D, strided, 2-D views of one dtype),
        so that every kernel those calls use is compiled or loaded."""
        raise NotImplementedError

    # the number of parameters the loops and ufuncs take after x (prelu: its weight)
    def kernel_params(self, act: Activation) -> int:
        return len(act.params)

    # --- fastact.ufuncs and fastact.scalar -------------------------------------------------
    has_ufuncs: ClassVar[bool] = True
    has_scalar: ClassVar[bool] = True

    def scalar_example(self, act: Activation) -> tuple[str, list[str], int]:
        """fastact.scalar's doctest: the value, the parameters as the scalar functions take
        them (a choice, gelu's approximate, by its index), and which of the array example's
        outputs it gives."""
        return "1.5", [repr(v) for v in act.validate(act.name, act.example_params)], 2  # x[2]

    def scalar_params_doc(self, act: Activation) -> str:
        return "".join(
            f"{p.name} : float\n" + ("    " + " or ".join(f"{i}.0 for {c!r}" for i, c in enumerate(p.choices)) + "\n"
                                      if p.choices else "")
            for p in act.params
        )

    def ufunc_inputs(self, act: Activation) -> tuple[list[str], str, str]:
        """The ufuncs' inputs after x: their names, their docstring lines, and a note on
        what the ufunc does with them."""
        doc = "".join(f"{p.name} : float or array_like\n" for p in act.params)
        note = (" Invalid parameter values (as fa." + act.name + " would refuse them) give NaN and NumPy's "
                "invalid-value RuntimeWarning, as NumPy's own ufuncs do for a domain error.") if act.params else ""
        return list(act.param_names), doc, note

    ufunc_inputs_phrase: ClassVar[str] = "parameters are inputs"

    def ufunc_example_args(self, act: Activation) -> str:
        # as the ufuncs take them: a choice (gelu's approximate) by its index
        return "".join(f", {v!r}" for v in act.validate(act.name, act.example_params))

    def ufunc_example_grad(self, act: Activation) -> str:
        """What the backward ufunc's example prints."""
        return act.examples[1]

    # --- docstrings --------------------------------------------------------------------------
    # the examples' input (their outputs are in each declaration: Activation.examples)
    example_x: ClassVar[str] = "np.array([-2.0, 0.0, 1.5])"
    # the examples' grad_output, of example_x's shape
    example_ones: ClassVar[str] = "np.ones(3)"
    # the extra lines that set up the examples' arguments (prelu's weight)
    example_setup: ClassVar[tuple[str, ...]] = ()

    def params_doc(self, act: Activation) -> str:
        """The docstring's lines for the arguments after x."""
        def one(p: Any) -> str:
            if p.choices:
                return f"{p.name} : {{{', '.join(map(repr, p.choices))}}}, default {p.default!r}\n"
            return f"{p.name} : float\n" if p.required else f"{p.name} : float, default {p.default}\n"

        return "".join(one(p) for p in act.params)

    def forward_params_doc(self, act: Activation) -> str:
        """The forward docstring's lines for the arguments after x (params_doc, and any the
        forward alone takes)."""
        return self.params_doc(act)

    def example_args(self, act: Activation) -> str:
        """The arguments after x in the examples: the required parameters, by name."""
        return "".join(f", {p.name}={p.example!r}" for p in act.params if p.required)

    def backward_example(self, act: Activation, args: str, printed: str) -> list[str]:
        """The backward docstring's example lines."""
        raise NotImplementedError

    def backward_summary(self, act: Activation) -> str:
        """What the backward returns, and from what."""
        if act.supports_y:
            cond = f" (needs {act.y_condition})" if act.y_condition else ""
            return f"Returns grad_output * f'(x). Give x, or the forward's output as y={cond}."
        return "Returns grad_output * f'(x). y= is not supported: the output does not determine f'."

    x_doc: ClassVar[str] = "x : array_like, optional\n    The forward's input (give x or y).\n"
    grad_output_doc: ClassVar[str] = "grad_output : array_like\n    d loss / d f(x), of x's shape.\n"
    out_doc: ClassVar[str] = "out : ndarray, optional\n    Where to write the result; out=x computes in place.\n"
    backward_out_doc: ClassVar[str] = (
        "out : ndarray, optional\n    Where to write grad_x; out=grad_output computes in place.\n")

    # whether the forward's result has x's shape (and the backward's grad_output's): else
    # there is no in-place form, and apply (which writes a file of the input's shape) refuses it
    result_has_x_shape: ClassVar[bool] = True

    # --- python -m fastact apply -------------------------------------------------------------
    # apply's --param names beyond the declared parameters, and the required ones
    def apply_params(self, act: Activation) -> list[str]:
        return list(act.param_names)

    def apply_required(self, act: Activation) -> list[str]:
        return [p.name for p in act.params if p.required]

    # whether a backward gives a second result (prelu's weight gradient: --weight-grad)
    has_weight_grad: ClassVar[bool] = False

    def apply_split(self, function: str, x: np.ndarray, kw: dict[str, Any]) -> Splitter | None:
        """How apply cuts a file into independent chunks: a function from an array to the
        view whose leading axis is cut, or None for the flat elements (any order). Raises
        ValueError where the file's layout or axis does not allow it."""
        return None

    def apply_layout(self, fn: Callable[..., Any], x: np.ndarray, kw: dict[str, Any], backward: bool) -> ApplyLayout:
        """How apply computes fn (fa.NAME or fa.NAME_backward) over the file x in chunks;
        raises ValueError where the file's layout or the parameters do not allow it. The
        default: x, GRAD and OUT of one shape, cut as apply_split says."""
        return ApplyLayout(fn, kw, x.shape, x.shape, self.apply_split(fn.__name__, x, kw))

    # --- benchmarks -------------------------------------------------------------------------
    def bench_shape(self, n: int) -> tuple[int, ...]:
        return (n,)

    def bench_result_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The forward's result's shape (grad_output's) for an input of this shape."""
        return shape

    def bench_streams(self, forward: bool) -> int:
        """The arrays of the bench size a pass reads and writes (its memory traffic)."""
        return 2 if forward else 3

    def bench_roofline(self, passes: Any, x: np.ndarray, g: np.ndarray, out: np.ndarray, forward: bool,
                       new: bool) -> Callable[[], Any] | None:
        """The roofline of a kind whose traffic is not one array in, one out (x, g and out
        flat; passes: _bench's copy, three, five and read passes), or None: a copy, or a
        three-array pass for a backward."""
        return None


    # whether its backward works from y (the row-wise backward, as a training step has it)
    backward_from_y_only: ClassVar[bool] = False
    # keyword arguments of the benchmarked public calls
    bench_kwargs: ClassVar[dict[str, Any]] = {}

    def bench_args(self, params: tuple, dtype: np.dtype) -> tuple:
        """The public functions' arguments after x in a benchmark case of these parameters."""
        return params

    def bench_numpy_args(self, args: tuple) -> tuple:
        """The same for the natural NumPy expression."""
        return args

    def bench_torch_args(self, args: tuple) -> tuple:
        """The same for PyTorch's operator (torch is importable when this is called)."""
        return args

    def bench_first_result(self, result: Any) -> Any:
        """The timed part of the NumPy peer's backward result."""
        return result

    # --- fastact.torch ------------------------------------------------------------------------
    # the module that adapts this kind to PyTorch: its make(act) gives the autograd
    # Function and the functional, example(act) the docstrings' example lines
    torch_adapter: ClassVar[str]


def _flat(a: np.ndarray) -> np.ndarray:
    """a's elements in memory order, as a 1-D view (C or Fortran order)."""
    from ._arrays import _fortran  # not at the top: _arrays imports _kernels, which imports this module

    return a.reshape(-1, order="F" if _fortran(a) else "C")


class ApplyLayout:
    """One call of ``python -m fastact apply`` over files in chunks. This base class: x,
    GRAD and OUT of x's shape, each seen through the same view (``split``; the flat
    elements when None) whose leading axis is cut into chunks, each chunk an independent
    call of fn. A kind whose files differ in shape (gated, reduction) subclasses it:
    other views, another call, or ``passes`` over the chunks and a ``finish``."""

    passes = 1  # how many times the chunks are visited (a reduction's backward: two)

    def __init__(self, fn: Callable[..., Any], kw: dict[str, Any], out_shape: tuple[int, ...],
                 grad_shape: tuple[int, ...], split: Splitter | None = None) -> None:
        self.fn, self.kw = fn, kw
        self.out_shape, self.grad_shape = out_shape, grad_shape  # OUT's shape; GRAD's, for a backward
        self.split = split
        self.xs: Any = None
        self.gs: Any = None
        self.os: Any = None

    def view(self, a: np.ndarray, role: str) -> np.ndarray:
        """a (role "x", "grad" or "out") as the view whose leading axis is cut."""
        return _flat(a) if self.split is None or not a.ndim else self.split(a)

    def bind(self, x: np.ndarray, g: np.ndarray | None) -> int:
        """The inputs' views; the length of their leading axis (the chunks cut it)."""
        self.xs = self.view(x, "x")
        self.gs = None if g is None else self.view(g, "grad")
        return self.xs.shape[0]

    def bind_out(self, out: np.ndarray) -> None:
        self.os = self.view(out, "out")

    def row_bytes(self) -> int:
        """Bytes of x per index of the leading axis (the chunk size counts these)."""
        return self.xs.itemsize * int(np.prod(self.xs.shape[1:]))

    def call(self, xs: np.ndarray, gs: np.ndarray | None, os: Any) -> Any:
        args = (gs, xs) if gs is not None else (xs,)
        return self.fn(*args, **self.kw, out=os) if os is not None else self.fn(*args, **self.kw)

    def probe(self) -> Any:
        """The call on copies of the first index of the leading axis, into new memory:
        every check of the parameters and dtypes, and the result's dtype, before any
        output exists."""
        return self.call(np.array(self.xs[:1]), None if self.gs is None else np.array(self.gs[:1]), None)

    def chunk(self, p: int, s: int, e: int) -> None:
        """Pass p over the leading indices s:e."""
        self.call(self.xs[s:e], None if self.gs is None else self.gs[s:e], self.os[s:e])

    def finish(self) -> None:
        """After the last pass: anything OUT still needs."""
