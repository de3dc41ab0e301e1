"""The reduction loops (logsumexp): per row, the maximum m and s = sum(exp(x - m)).

The public function finishes each row as m + log(s) in float64, and combines the
partial (m, s) of the pieces of one long row (a reduction over everything, cut into
pieces so that it runs in parallel). The array is viewed as the row-wise kernels view
it: rows (rows, n), the axis last; or columns (outer, n, inner), the axis in the
middle, a task taking a block of inner positions so that its loops run along memory.
Sums are in float64; exp(x - m) is computed in x's dtype, corrected for the rounding of
x - m (``_loops_rows.exp_below_max``).

Where m is infinite (a row holding +inf, or only -inf), s is 1, or NaN if the row holds
a NaN: m + log(s) is then +-inf or NaN, as PyTorch's logsumexp gives.
"""

from __future__ import annotations

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ._loops_channel import _task_span
from ._loops_map import full_width, narrow
from ._loops_rows import _PAD, _ROW_BLOCK, _add_reassociable, _max_of_exps_row, _maxnum, _sum_of, exp_below_max


# A call, not inlined: the rows loop calls it from two loops, and numba's IR inlining of
# one function at two sites warns (NumbaIRAssumptionWarning); the path is the rare one.
@register_jitable
def _infinite_max_sum(row):
    # s for a row whose maximum is infinite: 1, NaN where the row holds a NaN
    s = 1.0
    for k in range(row.shape[0]):
        if row[k] != row[k]:
            s = np.nan
    return s


def _reduce_loops(token):
    def rows(x, m_out, s_out):
        # A row's exponentials go to a scratch buffer of the row's length and are summed
        # from there (_loops_rows' form): summed in float64 in the loop that computes them,
        # the float32 exp ran at the float64 sum's width (measured, one thread, in cache,
        # float32 rows of 256: 1.14 -> 0.77 ns per element; of 8,192: 1.0 -> 0.7). Rows
        # shorter than _PAD keep that one loop: padded to _PAD, they would compute many
        # unused exponentials (rows of 8: 3.1 -> 10.7).
        token  # noqa: B018 -- keeps the token in the closure, hence in the cache key
        n_rows, n = x.shape
        if n < _PAD:
            # one loop per row, apart: inside the tasks' loop below, rows of 8 took 4.5 ns
            # per element against 2.7 (AMD Zen 5, one thread, in cache)
            for i in prange(n_rows):
                full_width()
                row = x[i]
                m = _max_of_exps_row(row)
                if m - m == 0:  # finite
                    s = 0.0
                    for k in range(n):
                        s = _add_reassociable(s, np.float64(exp_below_max(row[k], m)))
                else:
                    s = _infinite_max_sum(row)
                m_out[i] = m
                s_out[i] = s
            return
        per_task = max(1, min(n_rows, _ROW_BLOCK // n))
        n_tasks = (n_rows + per_task - 1) // per_task
        body = n - n % _PAD
        for t in prange(n_tasks):
            e = np.empty(body, x.dtype)
            tail = np.empty(_PAD, x.dtype)
            for i in range(t * per_task, min((t + 1) * per_task, n_rows)):
                full_width()
                row = x[i]
                m = _max_of_exps_row(row)
                if m - m == 0:  # finite
                    rb = row[:body]
                    for k in range(body):
                        e[k] = exp_below_max(rb[k], m)
                    s = _sum_of(e)
                    if body < n:  # the row's last partial step, through a buffer padded with m
                        rest = n - body
                        tail[:] = m
                        tail[:rest] = row[body:]
                        for k in range(_PAD):
                            tail[k] = exp_below_max(tail[k], m)
                        s += _sum_of(tail[:rest])
                else:
                    s = _infinite_max_sum(row)
                m_out[i] = m
                s_out[i] = s

    def columns(x, m_out, s_out, block):
        token  # noqa: B018
        outer, n, inner = x.shape
        n_blocks = (inner + block - 1) // block
        for t in prange(outer * n_blocks):
            full_width()
            o, j0, j1 = _task_span(t, n_blocks, block, inner)
            w = j1 - j0
            m = np.empty(w, x.dtype)  # in x's dtype, as the exponentials: twice as wide in float32
            s = s_out[o, j0:j1]
            m[:] = x[o, 0, j0:j1]
            for k in range(1, n):
                xk = x[o, k, j0:j1]
                for j in range(w):
                    m[j] = _maxnum(m[j], xk[j])
            e = np.empty(w, x.dtype)  # one row's exponentials, apart from the float64 sums: as in rows
            s[:] = 0.0
            for k in range(n):
                xk = x[o, k, j0:j1]
                for j in range(w):
                    e[j] = exp_below_max(xk[j], m[j])
                for j in range(w):
                    s[j] += e[j]
            for j in range(w):
                m_out[o, j0 + j] = m[j]
                if m[j] - m[j] != 0:  # infinite: 1, or NaN where the column holds a NaN
                    s[j] = 1.0
                    for k in range(n):
                        if x[o, k, j0 + j] != x[o, k, j0 + j]:
                            s[j] = np.nan

    return rows, columns


def _reduce_backward_loops(token):
    """out = exp(x - m) * scale along each row (or column): grad_output / s times the
    row's exponentials, the gradient of m + log(s)."""

    def rows(x, m, scale, out):
        token  # noqa: B018
        for i in prange(x.shape[0]):
            xi, oi = x[i], out[i]
            mi, ci = m[i], scale[i]
            for k in range(xi.shape[0]):
                oi[k] = narrow(oi, exp_below_max(xi[k], mi) * ci)

    def columns(x, m, scale, out, block):
        token  # noqa: B018
        outer, n, inner = x.shape
        n_blocks = (inner + block - 1) // block
        for t in prange(outer * n_blocks):
            o, j0, j1 = _task_span(t, n_blocks, block, inner)
            mo, co = m[o, j0:j1], scale[o, j0:j1]
            for k in range(n):
                xk, ok = x[o, k, j0:j1], out[o, k, j0:j1]
                for j in range(j1 - j0):
                    ok[j] = narrow(ok, exp_below_max(xk[j], mo[j]) * co[j])

    return rows, columns
