"""The gated loops (glu, swiglu, geglu, reglu): out = value * f(gate), and its backward.

Every operand reaches the loops as a C-contiguous 2-D array, and each operand's
columns start at an offset: the split form passes one array (rows, 2m) twice, with
the halves at offsets 0 and m; the two-array form passes two (1, n) arrays at offset 0.
A split along any axis of a C-ordered array is of that form, the axis's leading
dimensions as rows and the rest as columns. A task is a block of at most ``block``
columns of one row, so that one long row (a split along axis 0) also runs in parallel.

Each loop goes over 1-D slices of the rows: indexed as [i, offset + j] the 2-D
arrays' loop ran 3-4x slower (measured, silu, float32, in cache), while the slices,
contiguous for numba, vectorise as the element-wise loops do.
"""

from __future__ import annotations

from numba import prange
from numba.core import types as nbtypes
from numba.extending import overload

from ._loops_map import computed, narrow, widen
from ._registry import inline_jitable


def call(f, x, params):
    """f(x, *params), the parameters spelled out (numba does not inline a call with *args)."""


@overload(call, inline="always")
def _call(f, x, params):
    if not isinstance(params, nbtypes.BaseTuple):
        return None
    n = len(params)
    if n == 0:
        return lambda f, x, params: f(x)
    if n == 1:
        return lambda f, x, params: f(x, params[0])
    if n == 2:
        return lambda f, x, params: f(x, params[0], params[1])
    return None


def _task(t, per_row, block, m, group, rows):
    """Task t's columns [j0, j1) and rows [i0, i1)."""
    r = t // per_row
    j0 = (t - r * per_row) * block
    return j0, min(j0 + block, m), r * group, min(r * group + group, rows)


inline_jitable(_task)


def _gated_loops(f, df, token):
    """forward: out = value * f(gate); backward: grad_gate = g * value * f'(gate) and
    grad_value = g * f(gate), each element read before either gradient is written (so
    that the split form's gradient may be its input, in place)."""

    def forward(gate, gate_at, value, value_at, out, block, group, params):
        token  # noqa: B018 -- keeps the token in the closure, hence in the cache key
        rows, m = out.shape
        per_row = (m + block - 1) // block
        for t in prange(per_row * ((rows + group - 1) // group)):
            j0, j1, i0, i1 = _task(t, per_row, block, m, group, rows)
            for i in range(i0, i1):
                a = gate[i, gate_at + j0:gate_at + j1]
                b = value[i, value_at + j0:value_at + j1]
                o = out[i, j0:j1]
                for j in range(j1 - j0):
                    o[j] = narrow(out, widen(b[j]) * computed(out, call(f, widen(a[j]), params)))

    def backward(g, gate, gate_at, value, value_at, grad_gate, grad_gate_at, grad_value, grad_value_at, block,
                 group, params):
        token  # noqa: B018
        rows, m = g.shape
        per_row = (m + block - 1) // block
        for t in prange(per_row * ((rows + group - 1) // group)):
            j0, j1, i0, i1 = _task(t, per_row, block, m, group, rows)
            for i in range(i0, i1):
                gi = g[i, j0:j1]
                a = gate[i, gate_at + j0:gate_at + j1]
                b = value[i, value_at + j0:value_at + j1]
                ga = grad_gate[i, grad_gate_at + j0:grad_gate_at + j1]
                gb = grad_value[i, grad_value_at + j0:grad_value_at + j1]
                for j in range(j1 - j0):
                    gj, aj, bj = widen(gi[j]), widen(a[j]), widen(b[j])
                    fa = computed(ga, call(f, aj, params))
                    dfa = computed(ga, call(df, aj, params))
                    # value * f'(gate) first: f' is bounded, and zero where the gate is off
                    # (relu's), where g * value could overflow first and give inf * 0
                    ga[j] = narrow(ga, gj * (bj * dfa))
                    gb[j] = narrow(gb, gj * fa)

    return forward, backward
