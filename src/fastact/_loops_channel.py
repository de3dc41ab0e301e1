"""The channel-wise loops (prelu): forward, and backward with the weight's gradient summed per channel."""

from __future__ import annotations

import math

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ._cache import _cached_njit
from ._loops_map import computed, full_width, narrow, widen

# --- channel-wise loops (prelu) -------------------------------------------------------
# The input is viewed in 2-D, in one of two ways:
# * rows: (outer * channels, inner), the channel of row r is r % channels. Work is cut
#   into tasks of (row, block of columns), so that a few long rows (a 1-D input is a
#   single row) still spread over the threads;
# * columns: (outer, channels) when inner == 1, as for an (N, C) input: the channel is
#   the column, and rows are shared out in blocks.
# 16-bit float arrays come as their integer views (_loops_map: widened to float32 on
# load, rounded once on store), with a float32 weight.
# Every inner loop indexes a slice from 0. numba wraps negative indices, and for an
# index that starts at a computed offset (x[r, k] for k from k0) LLVM cannot prove the
# wrap-around test false, so it stays in the loop and the loop does not vectorise
# (measured: float32 ran 2-10x below the copy roofline).

_SUM_BLOCK = 4096  # terms summed by one vectorised pass before compensated accumulation


@register_jitable(fastmath={"reassoc"})
def _sum_reassociated(a):
    # Reassociation lets LLVM vectorise the sum into several partial sums: faster, and
    # no less accurate. Kept out of the kernels, whose other arithmetic must stay exact.
    full_width()
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


@register_jitable
def _task_span(t, n_blocks, block, length):
    """Row and column range of task t, when each row is cut into n_blocks blocks."""
    r = t // n_blocks
    k0 = (t - r * n_blocks) * block
    return r, k0, min(k0 + block, length)


@register_jitable
def _neumaier_add(s, compensation, value):
    """(s + value, the updated compensation): Neumaier's compensated summation step."""
    total = s + value
    if abs(s) >= abs(value):
        compensation += (s - total) + value
    else:
        compensation += (value - total) + s
    return total, compensation


@register_jitable
def _neumaier_total(s, compensation):
    # Once s is infinite or NaN, the compensation is NaN (inf - inf) and s alone is the
    # sum (-inf for terms that reach -inf, as a plain sum gives).
    return s + compensation if math.isfinite(s) else s


@_cached_njit
def channel_totals_rows(partial, channels, n_blocks, out):
    """prelu's weight gradient from the rows form's task sums: row r is channel
    r % channels, and its n_blocks task sums follow each other in partial. out has one
    element per channel, or one for a single weight shared by every channel. Neumaier
    compensation across the tasks; in the weight's dtype without a warning where the
    sum overflows it (inf, as a plain sum)."""
    rows = partial.shape[0] // n_blocks
    step = channels if out.shape[0] > 1 else 1
    for c in range(out.shape[0]):
        s = 0.0
        compensation = 0.0
        for r in range(c, rows, step):
            for t in range(r * n_blocks, (r + 1) * n_blocks):
                s, compensation = _neumaier_add(s, compensation, partial[t])
        out[c] = _neumaier_total(s, compensation)


@_cached_njit
def channel_totals_columns(partial, compensations, out):
    """The same from the columns form's per-block sums and compensations
    (n_row_blocks, channels)."""
    n_blocks, channels = partial.shape
    for c in range(out.shape[0]):
        j0, j1 = (c, c + 1) if out.shape[0] > 1 else (0, channels)
        s = 0.0
        compensation = 0.0
        for j in range(j0, j1):
            for b in range(n_blocks):
                s, compensation = _neumaier_add(s, compensation, partial[b, j])
                compensation += compensations[b, j]  # NaN only where partial[b, j] is not finite
        out[c] = _neumaier_total(s, compensation)


def _channel_loops(f, df, dw, token, in_place=False):
    """in_place: out is the array that is read (x in a forward, g in a backward), and
    the rows are read from out itself. With two names for one array, LLVM's run-time
    alias check fails and it runs the scalar fallback: measured 2x slower than out of
    place, where a single name lets it vectorise. A closure cell, like the token: the
    two variants are cached apart."""

    def forward(x, w, out, block):
        token  # noqa: B018
        rows, length = x.shape
        channels = w.shape[0]
        n_blocks = (length + block - 1) // block
        for t in prange(rows * n_blocks):
            r, k0, k1 = _task_span(t, n_blocks, block, length)
            wc = w[r % channels]
            outr = out[r, k0:k1]
            xr = outr if in_place else x[r, k0:k1]
            for k in range(xr.shape[0]):
                outr[k] = narrow(outr, f(widen(xr[k]), wc))

    def backward(g, x, w, out, partial, block):
        # out = g * df (grad_x), and partial[t] = sum of g * dw over task t's block, in
        # float64: terms (exact in float64 for float32 input) summed _SUM_BLOCK at a time
        # by a vectorised pass, the pass sums added with Neumaier compensation. Each
        # sub-block is read before it is written, so out may be g.
        token  # noqa: B018
        rows, length = x.shape
        channels = w.shape[0]
        n_blocks = (length + block - 1) // block
        for t in prange(rows * n_blocks):
            r, k0, k1 = _task_span(t, n_blocks, block, length)
            wc = w[r % channels]
            terms = np.empty(min(_SUM_BLOCK, k1 - k0))
            s = 0.0
            compensation = 0.0
            for b0 in range(k0, k1, _SUM_BLOCK):
                b1 = min(b0 + _SUM_BLOCK, k1)
                xb, ob = x[r, b0:b1], out[r, b0:b1]
                gb = ob if in_place else g[r, b0:b1]
                for k in range(xb.shape[0]):
                    terms[k] = narrow(terms, np.float64(widen(gb[k])) * np.float64(dw(widen(xb[k]), wc)))
                for k in range(xb.shape[0]):
                    ob[k] = narrow(ob, widen(gb[k]) * computed(gb, df(widen(xb[k]), wc)))
                s, compensation = _neumaier_add(s, compensation, _sum_reassociated(terms[: xb.shape[0]]))
            partial[t] = _neumaier_total(s, compensation)

    def forward_columns(x, w, out, n_row_blocks):
        token  # noqa: B018
        n, channels = x.shape
        for b in prange(n_row_blocks):
            for i in range(b * n // n_row_blocks, (b + 1) * n // n_row_blocks):
                outr = out[i]
                xr = outr if in_place else x[i]
                for j in range(channels):
                    outr[j] = narrow(outr, f(widen(xr[j]), w[j]))

    def backward_columns(g, x, w, out, partial, compensation, n_row_blocks):
        # per row block and channel, in float64 with Neumaier compensation; the
        # updates of different channels are independent, so the loop over j vectorises
        token  # noqa: B018
        n, channels = x.shape
        for b in prange(n_row_blocks):
            pb, cb = partial[b], compensation[b]
            for i in range(b * n // n_row_blocks, (b + 1) * n // n_row_blocks):
                xr, outr = x[i], out[i]
                gr = outr if in_place else g[i]
                for j in range(channels):
                    term = np.float64(widen(gr[j])) * np.float64(dw(widen(xr[j]), w[j]))
                    pb[j], cb[j] = _neumaier_add(pb[j], cb[j], term)
                for j in range(channels):  # after the sums: out may be g
                    outr[j] = narrow(outr, widen(gr[j]) * computed(gr, df(widen(xr[j]), w[j])))

    return forward, backward, forward_columns, backward_columns


def _channel_loops_in_place(f, df, dw, token):
    return _channel_loops(f, df, dw, token, in_place=True)
