"""sparsemax's loops: each row's threshold by Michelot's method, then max(x - tau, 0).

The same four kernels as the row-wise loops of softmax (``_loops_rows``), with the same
arguments, so that the row-wise kind's plans, small-call path and in-place rules serve
both: rows (rows, n) and columns (outer, n, inner), each in place when given x None.

The threshold tau solves sum_i max(x_i - tau, 0) = 1. Michelot's method: from a tau
below it, S = {i : x_i > tau} holds the support, and tau' = (sum_S x_i - 1) / |S| lies
between tau and the solution; when |S| stops shrinking, tau' is the solution. Each
step is one vectorised pass over the row (a masked sum and count). It starts at
tau = max - 1, which is below the solution (the largest output is at most 1), so the
first pass already leaves out every element more than 1 below the maximum.
Each pass but the last drops at least one element, and measured, rows of 1024 normal or
uniform numbers settle in 6-9 passes (rows of 10^4 on a power law, 9-11). A row that has
not settled after _PASSES passes is finished by sorting what is left, the textbook
method.

All of it is in float64 on x - max, whatever the dtype: the shift makes the sums' terms
lie in (-1, 0] for the elements that count, so that their rounding errors are a few
float64 eps in absolute terms whatever the magnitude of x, and a float32 result is
rounded once.

NaN anywhere in a row, +inf, or a row of only -inf, make the whole row NaN, as softmax's
do: such an element's x - max is NaN, and "not (d <= tau)" counts it into the sum.
"""

from __future__ import annotations

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ._loops_channel import _task_span
from ._loops_map import full_width, narrow
from ._loops_rows import _add_reassociable, _max_of_row, _maxnum
from ._math import lit

_PASSES = 32
_PART_BYTES = 1 << 18  # columns: what the passes over a block re-read (in L2)


@register_jitable
def _clip(y):
    # max(y, 0), NaN kept
    return 0.0 if y < 0.0 else y


@register_jitable
def _masked_sum(src, m, tau):
    """The sum and the number of the d = src[k] - m with not (d <= tau)."""
    full_width()
    s = 0.0
    c = 0
    for k in range(src.shape[0]):
        d = np.float64(src[k]) - m
        inside = not (d <= tau)
        s = _add_reassociable(s, d if inside else 0.0)
        c += 1 if inside else 0
    return s, c


@register_jitable
def _sorted_threshold(src, m, tau, buf):
    """The threshold over the elements of src with src[k] - m > tau (which hold the
    support), by sorting them: the largest k with 1 + k z_k > z_1 + ... + z_k."""
    n = 0
    for k in range(src.shape[0]):
        d = np.float64(src[k]) - m
        if d > tau:
            buf[n] = d
            n += 1
    z = np.sort(buf[:n])
    total = 0.0
    for i in range(n):
        v = z[n - 1 - i]
        total += v
        if 1.0 + (i + 1) * v > total:
            tau = (total - 1.0) / (i + 1)
    return tau


@register_jitable
def _threshold(src, m, buf, passes):
    """tau of the row src shifted by its maximum m (so that tau lies in [-1, 0))."""
    tau = -1.0
    count = -1
    for _ in range(passes):
        s, c = _masked_sum(src, m, tau)
        if c == count:
            return tau
        count = c
        tau = (s - 1.0) / c  # c >= 1: the maximum (d = 0) always counts
    return _sorted_threshold(src, m, tau, buf)


@register_jitable
def _grad_sum(g, y):
    """The sum of g over the support (y > 0, NaN counted) and its size. A NaN y makes
    the sum NaN (0 y is 0 for any other), hence the row's gradient."""
    full_width()
    s = 0.0
    c = 0
    for k in range(g.shape[0]):
        inside = not (y[k] <= 0)
        s = _add_reassociable(s, np.float64(g[k]) + 0.0 * np.float64(y[k]) if inside else 0.0)
        c += 1 if inside else 0
    return s, c


@register_jitable
def _columns_part(src, out, o, j0, j1, passes):
    """sparsemax down the columns j0:j1 of src[o] (n, inner) into out[o]. (Sliced here
    as src[o, k, j0:j1], a view numba knows to be contiguous: the loops vectorise.)"""
    n, w = src.shape[1], j1 - j0
    m = np.empty(w, src.dtype)
    m[:] = src[o, 0, j0:j1]
    for k in range(1, n):
        xk = src[o, k, j0:j1]
        full_width()
        for j in range(w):
            m[j] = _maxnum(m[j], xk[j])
    m64 = m.astype(np.float64)
    tau = np.full(w, -1.0)
    count = np.full(w, -1, np.int64)
    s = np.empty(w)
    c = np.empty(w, np.int64)
    settled = False
    for _ in range(passes):
        s[:] = 0.0
        c[:] = 0
        for k in range(n):
            xk = src[o, k, j0:j1]
            full_width()
            for j in range(w):
                d = np.float64(xk[j]) - m64[j]
                inside = not (d <= tau[j])
                s[j] += d if inside else 0.0
                c[j] += 1 if inside else 0
        settled = True
        for j in range(w):
            if c[j] != count[j]:
                settled = False
                count[j] = c[j]
                tau[j] = (s[j] - 1.0) / c[j]
        if settled:
            break
    if not settled:
        buf = np.empty(n)
        for j in range(w):
            tau[j] = _sorted_threshold(src[o, :, j0 + j], m64[j], tau[j], buf)
    for k in range(n):
        xk, ok = src[o, k, j0:j1], out[o, k, j0:j1]
        for j in range(w):
            ok[j] = narrow(ok, _clip((np.float64(xk[j]) - m64[j]) - tau[j]))


def _simplex_loops(token, passes=_PASSES):
    # passes: Michelot's before the sort (the tests take fewer, to reach the sort)
    def forward(x, out, rows_per_task):
        token  # noqa: B018
        rows, n = out.shape
        n_tasks = (rows + rows_per_task - 1) // rows_per_task
        for t in prange(n_tasks):
            buf = np.empty(n)
            for i in range(t * rows_per_task, min((t + 1) * rows_per_task, rows)):
                outr = out[i]
                xr = outr if x is None else x[i]
                m = np.float64(_max_of_row(xr))
                tau = _threshold(xr, m, buf, passes)
                for k in range(n):  # reads xr[k] before writing outr[k]: they may be one
                    outr[k] = narrow(outr, _clip((np.float64(xr[k]) - m) - tau))

    def backward(g, y, out, rows_per_task):
        token  # noqa: B018
        rows, n = out.shape
        n_tasks = (rows + rows_per_task - 1) // rows_per_task
        for t in prange(n_tasks):
            for i in range(t * rows_per_task, min((t + 1) * rows_per_task, rows)):
                outr = out[i]
                gr = outr if g is None else g[i]
                yr = outr if y is None else y[i]
                s, c = _grad_sum(gr, yr)
                # in the array's dtype: float32 arithmetic vectorises twice as wide
                r = lit(gr[0], s / c if c else 0.0)
                zero = lit(gr[0], 0.0)
                for k in range(n):
                    outr[k] = narrow(outr, zero if yr[k] <= 0 else gr[k] - r)

    def forward_columns(x, out, block):
        # every column of a block takes Michelot's passes together, each pass along memory
        # (vectorised across the columns); a settled column's pass gives its tau again.
        # The passes re-read the block: it goes by parts of about _PART_BYTES, which stay
        # in L2 where the columns are short enough (measured, float32 along axis 0:
        # 64 x 2^18 0.9-1.2 ns per element; 16384 x 1024, whose parts of 64 columns do
        # not fit, 3.7)
        token  # noqa: B018
        outer, n, inner = out.shape
        n_blocks = (inner + block - 1) // block
        src = out if x is None else x
        part = max(64, _PART_BYTES // (n * out.itemsize))
        for t in prange(outer * n_blocks):
            o, j0, j1 = _task_span(t, n_blocks, block, inner)
            for p0 in range(j0, j1, part):
                _columns_part(src, out, o, p0, min(p0 + part, j1), passes)

    def backward_columns(g, y, out, block):
        token  # noqa: B018
        outer, n, inner = out.shape
        n_blocks = (inner + block - 1) // block
        ga = out if g is None else g
        ya = out if y is None else y
        for t in prange(outer * n_blocks):
            o, j0, j1 = _task_span(t, n_blocks, block, inner)
            w = j1 - j0
            s = np.zeros(w)
            c = np.zeros(w, np.int64)
            for k in range(n):
                gk, yk = ga[o, k, j0:j1], ya[o, k, j0:j1]
                full_width()
                for j in range(w):
                    inside = not (yk[j] <= 0)
                    s[j] += np.float64(gk[j]) + 0.0 * np.float64(yk[j]) if inside else 0.0
                    c[j] += 1 if inside else 0
            for j in range(w):
                s[j] = s[j] / c[j] if c[j] else 0.0
            for k in range(n):
                gk, yk, ok = ga[o, k, j0:j1], ya[o, k, j0:j1], out[o, k, j0:j1]
                for j in range(w):
                    ok[j] = narrow(ok, 0.0 if yk[j] <= 0 else np.float64(gk[j]) - s[j])

    return forward, backward, forward_columns, backward_columns
