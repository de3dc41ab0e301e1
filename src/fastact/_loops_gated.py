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

from ._loops_map import computed, narrow, per_line, prefetch, widen
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


# The split form's halves interleave in memory, a row of one and a row of the other, and
# the CPU's stream prefetchers lose them at each row's end: swiglu on rows of 1,024
# float32 took 0.76-0.89 ns per element on one thread, against 0.41 for the same halves as
# two arrays, and 0.77x of the 3-stream roofline on two (2^24 elements; Zen 5). So out of
# cache the loops go in pieces of _PIECE elements, each asking for the lines of the piece
# _AHEAD elements further on, in the row or in the next one: 0.44 ns per element on one
# thread, 0.82-0.85x of the roofline on two, for glu, swiglu, geglu and reglu alike.
_PIECE = 64
_AHEAD = 1024
_OUT_OF_CACHE = 1 << 20


def _pieces(w, rows, size):
    """(the columns computed between two prefetches, how many such pieces a row's span of
    w columns has): the whole span (no prefetch) where the task's rows are one, or shorter
    than _AHEAD / 2 (the halves are then close enough for the hardware), or the call's
    size elements are few enough to be in cache, where a piece's own cost (about 50
    cycles) showed: 0.27 -> 0.46 ns per element. Counted once a task: range(j0, j1, step)
    divides once a row."""
    step = _PIECE if rows > 1 and 2 * w >= _AHEAD and size > _OUT_OF_CACHE else max(w, 1)
    return step, (w + step - 1) // step


inline_jitable(_pieces)


def _prefetch_ahead(x, i, i1, at, c, w):
    """Asks for the cache lines of the _PIECE of elements _AHEAD past element c of row i's
    span [at, at + w) of x, or past its end, in the same span of row i + 1 (if the task's
    rows [i, i1) have it)."""
    ahead = c + _AHEAD
    past = ahead >= w  # in the next row
    t = ahead - past * w
    # t >= w: a row shorter than _AHEAD, whose piece that far on is two rows away
    if i + past < i1 and t < w:
        start = (i + past) * x.shape[1] + at + t
        for q in range(0, _PIECE, per_line(x)):
            prefetch(x, start + q)


inline_jitable(_prefetch_ahead)


def _prefetched(gate, gate_at, value, value_at, i, i1, j0, j1, p, step):
    """Piece p of row i's columns [j0, j1), as (c, e), once the lines of both halves a
    piece _AHEAD further on are asked for (where the span is in pieces)."""
    c = j0 + p * step
    if step < j1 - j0:
        _prefetch_ahead(gate, i, i1, gate_at + j0, c - j0, j1 - j0)
        _prefetch_ahead(value, i, i1, value_at + j0, c - j0, j1 - j0)
    return c, min(c + step, j1)


inline_jitable(_prefetched)


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
            step, pieces = _pieces(j1 - j0, i1 - i0, rows * m)
            for i in range(i0, i1):
                for p in range(pieces):
                    c, e = _prefetched(gate, gate_at, value, value_at, i, i1, j0, j1, p, step)
                    a = gate[i, gate_at + c:gate_at + e]
                    b = value[i, value_at + c:value_at + e]
                    o = out[i, c:e]
                    for j in range(e - c):
                        o[j] = narrow(out, widen(b[j]) * computed(out, call(f, widen(a[j]), params)))

    def backward(g, gate, gate_at, value, value_at, grad_gate, grad_gate_at, grad_value, grad_value_at, block,
                 group, params):
        token  # noqa: B018
        rows, m = g.shape
        per_row = (m + block - 1) // block
        for t in prange(per_row * ((rows + group - 1) // group)):
            j0, j1, i0, i1 = _task(t, per_row, block, m, group, rows)
            step, pieces = _pieces(j1 - j0, i1 - i0, rows * m)
            for i in range(i0, i1):
                for p in range(pieces):
                    c, e = _prefetched(gate, gate_at, value, value_at, i, i1, j0, j1, p, step)
                    gi = g[i, c:e]
                    a = gate[i, gate_at + c:gate_at + e]
                    b = value[i, value_at + c:value_at + e]
                    ga = grad_gate[i, grad_gate_at + c:grad_gate_at + e]
                    gb = grad_value[i, grad_value_at + c:grad_value_at + e]
                    for j in range(e - c):
                        gj, aj, bj = widen(gi[j]), widen(a[j]), widen(b[j])
                        fa = computed(ga, call(f, aj, params))
                        dfa = computed(ga, call(df, aj, params))
                        # value * f'(gate) first: f' is bounded, and zero where the gate is off
                        # (relu's), where g * value could overflow first and give inf * 0
                        ga[j] = narrow(ga, gj * (bj * dfa))
                        gb[j] = narrow(gb, gj * fa)

    return forward, backward
