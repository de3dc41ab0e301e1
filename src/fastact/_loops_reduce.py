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

from ._loops_channel import _task_span
from ._loops_map import full_width, narrow
from ._loops_rows import _add_reassociable, _max_of_exps_row, _maxnum, exp_below_max
from ._registry import inline_jitable


def _infinite_max_sum(row):
    # s for a row whose maximum is infinite: 1, NaN where the row holds a NaN
    s = 1.0
    for k in range(row.shape[0]):
        if row[k] != row[k]:
            s = np.nan
    return s


inline_jitable(_infinite_max_sum)


def _reduce_loops(token):
    def rows(x, m_out, s_out):
        token  # noqa: B018 -- keeps the token in the closure, hence in the cache key
        for i in prange(x.shape[0]):
            full_width()
            row = x[i]
            m = _max_of_exps_row(row)
            if m - m == 0:  # finite
                s = 0.0
                for k in range(row.shape[0]):
                    s = _add_reassociable(s, np.float64(exp_below_max(row[k], m)))
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
            s[:] = 0.0
            for k in range(n):
                xk = x[o, k, j0:j1]
                for j in range(w):
                    s[j] += exp_below_max(xk[j], m[j])
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
