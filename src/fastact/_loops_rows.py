"""The row-wise loops (softmax, log_softmax)."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import types as nbtypes
from numba.extending import intrinsic, overload, register_jitable

from ._loops_channel import _task_span
from ._loops_map import compute_empty, full_width, narrow, widen
from ._math import exp
from ._registry import inline_jitable

# --- row-wise loops (softmax, log_softmax) ---------------------------------------------
# The array is viewed in one of two forms:
# * rows: (rows, n), the axis last. A task takes a run of rows; each row is read three
#   times (maximum, exponentials, output), from cache when it fits there;
# * columns: (outer, n, inner), the axis in the middle and inner > 1 (softmax over
#   axis 0 of a C-ordered matrix). A task takes a block of inner positions and keeps
#   their maxima and sums in small arrays, so that every inner loop runs along memory
#   and vectorises across rows instead of along them.
# Sums are taken in float64 whatever the dtype: the terms are positive (forward) or of
# either sign (backward), and a float32 running sum would lose digits over long rows.
# exp(x - m) is computed in the array's dtype (vectorised float32 math is twice as fast).
#
# In the rows form, the exponentials of a block of rows (about _ROW_BLOCK elements) are
# taken in one flat loop over a contiguous scratch buffer, padded to a multiple of _PAD.
# LLVM's vectorised loops step 16-64 elements at a time and leave the rest to a scalar
# loop, where an exp costs 10-20 times a vector lane's; padding each row instead (as these
# loops did before) computed up to 63 unused exponentials per row, with the copies
# (measured, one thread, in cache: rows of 40 float32 elements 2.7 -> 1.2 ns per element,
# PyTorch's 0.86; rows of 10 10.2 -> 1.5, PyTorch's 13). The passes of cheap arithmetic
# (maxima, sums, the forward's output) stay loops per row: their scalar remainder costs
# little. The backward's output pass, which may hold an exp (log_softmax's), runs flat
# over the block too: the dispatch passes C-ordered arrays, each row's sum is spread over
# its elements, and the block's last partial step goes through padded buffers.
# Rows of _LONG_ROW elements or more go one at a time, with fewer passes: the exponentials,
# corrected for the rounding of x - m in the same loop, go straight to the output (not in
# place) and only the row's last partial step goes through a padded buffer; the backward
# applies the row's sum as a scalar instead of spreading it. With the rows of 1,024 float32
# elements in DRAM, on 2 threads, the forward went 0.50 -> 0.40 ns per element (PyTorch's
# 0.42), and 0.38 -> 0.27 at rows of 65,536 (PyTorch's 0.31); below 256 elements the
# blocked form measured faster.
# In place, a kernel is called with x (or grad_output, or y) None and reads out: given
# two names for one buffer, LLVM's run-time alias check fails and the loop runs scalar.
# 16-bit float arrays come as their integer views (_loops_map): each element is widened
# to float32 on load and each result rounded once on store; the scratch (exponentials,
# maxima, row sums) is float32, so every value the loops compute is the one they compute
# for the float32 array, and the result is the float32 result rounded once.

_COLUMN_BLOCK = 512
_PAD = 64
_ROW_BLOCK = 2048
_LONG_ROW = 256


def _maxnum_intrinsic(flags, doc):
    @intrinsic
    def maxnum(typingctx, a, b):
        if not (isinstance(a, nbtypes.Float) and a == b):
            return None

        def codegen(context, builder, signature, args):
            ty = args[0].type
            fn = builder.module.declare_intrinsic("llvm.maxnum", [ty], ir.FunctionType(ty, [ty, ty]))
            return builder.call(fn, args, fastmath=flags)

        return a(a, b), codegen

    maxnum.__doc__ = doc
    return maxnum


_maxnum = _maxnum_intrinsic((), "LLVM's maxnum: the larger of a and b, the other where one is NaN.")
# x86 has no instruction for maxnum: LLVM builds it from vmaxps, a compare and a blend,
# and a reduction through it is a chain of the three. Marked nnan, it is vmaxps alone
# (measured, one thread, in cache: the maximum of rows of 64 float32 elements 0.73 -> 0.12
# ns per element, of rows of 1,024 0.15 -> 0.08), and its value where a or b is NaN is
# unspecified: only for maxima whose row's NaN makes the result NaN whatever they are.
_maxnum_any_nan = _maxnum_intrinsic(
    ("nnan",), "maxnum(a, b) where neither is NaN; where one is, a value that a NaN in the row overrides.")


@intrinsic
def _add_reassociable(typingctx, a, b):
    """a + b, marked reassociable: a loop that accumulates through it vectorises into
    partial sums (faster, and no less accurate), while the kernel's other arithmetic
    keeps its exact order."""
    if not (isinstance(a, nbtypes.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fadd(*args, flags=("reassoc",))

    return a(a, b), codegen


def _row_maximum(maxnum):
    """The maximum of a row (not empty) through maxnum, vectorised."""

    @register_jitable
    def max_of(a, m):
        full_width()
        for k in range(a.shape[0]):
            m = maxnum(m, widen(a[k]))
        return m

    @register_jitable
    def max_of_row(a):
        # LLVM vectorises max_of's loop 64 float32 lanes at a time and leaves the rest to a
        # scalar loop (a row of 300 elements: 44 scalar steps); max is idempotent, so where
        # a has 64 elements or more its last partial step is instead the 64 elements that
        # end it, overlapping the ones before
        n = a.shape[0]
        if n < _PAD:
            return max_of(a, widen(a[0]))
        body = n - n % _PAD
        m = max_of(a[:body], widen(a[0]))
        return m if body == n else max_of(a[n - _PAD:], m)

    return max_of_row


# LLVM vectorises a reduction through maxnum (measured: 8x faster than through a compare
# and select, which it vectorises only under function-wide no-NaN attributes that numba
# does not set). _max_of_row is the maximum of the row's numbers, its NaN left out (for
# sparsemax's threshold, which needs a number); _max_of_exps_row's value is unspecified
# where the row holds a NaN, which is right for the exponentials' functions (softmax,
# log_softmax, logsumexp): that element's exp(x - m) is NaN whatever m is, and it makes
# the sum, hence every output of the row, NaN.
_max_of_row = _row_maximum(_maxnum)
_max_of_exps_row = _row_maximum(_maxnum_any_nan)


@register_jitable
def _sum_of(a):
    """The sum of a in float64."""
    full_width()
    s = 0.0
    for k in range(a.shape[0]):
        s = _add_reassociable(s, np.float64(a[k]))
    return s


@register_jitable
def _corrected(e, lo):
    # e (1 + lo); lo is NaN when x - m is infinite (x = -inf: e = 0, exactly right), and
    # NaN x stays NaN in e. A function of its own: a conditional expression in a body
    # that numba inlines at its IR level makes its SSA check warn.
    return e if lo != lo else e + e * lo


def below_max(x, m):
    """(d, lo): x - m for x <= m, rounded to d, and its rounding error lo (Knuth's TwoSum,
    exact). exp magnifies the error of d by |x - m| (100 ulp at x - m = -100); lo
    restores it: exp(d + lo) = exp(d) (1 + lo)."""
    d = x - m
    b = d - x
    return d, (x - (d - b)) + (-m - b)


def exp_below_max(x, m):
    """exp(x - m) for x <= m, in x's dtype."""
    d, lo = below_max(x, m)
    return _corrected(exp(d), lo)


inline_jitable(below_max)
inline_jitable(exp_below_max)


def _exps_in_out(x, out):
    """Whether a forward keeps a row's exponentials in out until its output pass: not in
    place (there x must survive until then), and not into a 16-bit view (there they
    would be rounded to 16 bits before the output's own rounding)."""


def _keeps(x, out):
    return not isinstance(x, nbtypes.NoneType) and out.dtype not in (nbtypes.uint16, nbtypes.int16)


@overload(_exps_in_out, inline="always")
def _exps_in_out_impl(x, out):
    keep = _keeps(x, out)
    return lambda x, out: keep


def _exps_buffer(x, scratch, out):
    """Where a forward puts a row's exponentials: out where _exps_in_out, else scratch
    (typed apart, as the two may differ in dtype)."""


@overload(_exps_buffer, inline="always")
def _exps_buffer_impl(x, scratch, out):
    if _keeps(x, out):
        return lambda x, scratch, out: out
    return lambda x, scratch, out: scratch


def _pick(a, if_none, otherwise):
    """if_none where a is None (in place), else otherwise. A conditional expression in a
    prange body is not pruned on an argument's None: its two arrays must have one type,
    which a 16-bit view and a float32 array (an input given in float32) do not."""


@overload(_pick, inline="always")
def _pick_impl(a, if_none, otherwise):
    if isinstance(a, nbtypes.NoneType):
        return lambda a, if_none, otherwise: if_none
    return lambda a, if_none, otherwise: otherwise


def _grad_tail(grad, of, gf, yf, start, stop, gt, yt, rt, ot):
    """of[k] = grad(gf[k], yf[k], r) for k in [start, stop), fewer than _PAD elements,
    through the buffers gt, yt, rt (the row sums, filled by the caller) and ot of _PAD:
    padded, the vectorised loop leaves no remainder (the padding is computed and unused)."""
    rest = stop - start
    gt[:rest] = gf[start:stop]
    yt[:rest] = yf[start:stop]
    for k in range(_PAD):
        ot[k] = narrow(ot, grad(widen(gt[k]), widen(yt[k]), rt[k]))
    of[start:stop] = ot[:rest]


inline_jitable(_grad_tail)


def _rowwise_loops(element, row_constant, term, grad, token):
    # A task's rows go by blocks of about _ROW_BLOCK elements, each pass over all rows of
    # the block before the next pass: a short row's passes are each a chain of dependent
    # steps (a reduction, then the exponentials that need its result, ...), and the rows of
    # a block give the processor independent chains to overlap (measured: rows of 64
    # float32 elements 0.84 -> 0.58 ns per element).

    def forward(x, out, rows_per_task):
        token  # noqa: B018
        rows, n = out.shape
        block = max(1, min(_ROW_BLOCK // n, rows_per_task))
        n_tasks = (rows + rows_per_task - 1) // rows_per_task
        for t in prange(n_tasks):
            # in out's compute dtype: a float64 scratch would make LLVM vectorise the float32
            # exp eight lanes at a time instead of sixteen (measured: 2x slower)
            # x - m, then exp(x - m); a long row's exponentials go to out, or to d (in place,
            # or out 16-bit)
            keep = _exps_in_out(x, out)
            d = compute_empty((1 if keep else n) if n >= _LONG_ROW else block * n + _PAD, out)
            lo = compute_empty(_PAD if n >= _LONG_ROW else block * n + _PAD, out)  # the rounding error of x - m
            maxima = compute_empty(block, out)
            constants = np.empty(block)
            first, last = t * rows_per_task, min((t + 1) * rows_per_task, rows)
            if n >= _LONG_ROW:
                body = n - n % _PAD
                for i in range(first, last):
                    outr = out[i]
                    xr = _pick(x, out, x)[i]
                    m = _max_of_exps_row(xr)
                    er = _exps_buffer(x, d[:n], outr)
                    eb, xb = er[:body], xr[:body]
                    for k in range(body):
                        eb[k] = narrow(eb, exp_below_max(widen(xb[k]), m))
                    s = _sum_of(eb)
                    if body < n:  # the row's last partial step, through a buffer padded with m
                        rest = n - body
                        lo[:] = m
                        xt = xr[body:]
                        for k in range(rest):
                            lo[k] = widen(xt[k])
                        for k in range(_PAD):
                            lo[k] = narrow(lo, exp_below_max(lo[k], m))
                        er[body:] = lo[:rest]
                        s += _sum_of(lo[:rest])
                    c = row_constant(s)
                    for k in range(n):  # reads xr[k] before writing outr[k]: they may be one
                        outr[k] = narrow(outr, element(widen(xr[k]), er[k], m, c))
            else:
                for b in range(first, last, block):
                    nb = min(block, last - b)
                    if n < _PAD:
                        # the maximum of a row shorter than 64 elements is a scalar loop (0.6
                        # ns per float32 element, against 0.2 for a row of 64): down the
                        # block's columns instead (of 32 rows or more), vectorised across its
                        # rows (0.29 ns per element, measured)
                        xb = _pick(x, out, x)[b:b + nb]
                        mb = maxima[:nb]
                        col = xb[:, 0]
                        for i in range(nb):
                            mb[i] = widen(col[i])
                        for k in range(1, n):
                            col = xb[:, k]
                            for i in range(nb):
                                mb[i] = _maxnum(mb[i], widen(col[i]))
                    else:
                        for i in range(nb):
                            maxima[i] = _max_of_exps_row(_pick(x, out, x)[b + i])
                    for i in range(nb):
                        xr = _pick(x, out, x)[b + i]
                        di, li = d[i * n:(i + 1) * n], lo[i * n:(i + 1) * n]
                        m = maxima[i]
                        for k in range(n):
                            di[k], li[k] = below_max(widen(xr[k]), m)
                    # padded to a multiple of _PAD: the vectorised loop leaves no remainder (the
                    # padding is computed and unused)
                    span = (nb * n + _PAD - 1) // _PAD * _PAD
                    d[nb * n:span] = 0
                    lo[nb * n:span] = 0
                    ds, ls = d[:span], lo[:span]
                    for j in range(span):
                        ds[j] = narrow(ds, _corrected(exp(ds[j]), ls[j]))
                    for i in range(nb):
                        constants[i] = _sum_of(d[i * n:(i + 1) * n])
                    for i in range(nb):  # a loop of its own, vectorised across the rows (log_softmax's log)
                        constants[i] = row_constant(constants[i])
                    for i in range(nb):
                        outr = out[b + i]
                        xr = _pick(x, out, x)[b + i]
                        er = d[i * n:(i + 1) * n]
                        m, c = maxima[i], constants[i]
                        for k in range(n):  # reads xr[k] before writing outr[k]: they may be one
                            outr[k] = narrow(outr, element(widen(xr[k]), er[k], m, c))

    def backward(g, y, out, rows_per_task):
        # out, and g and y where given, are C-ordered: flat over a block of rows
        token  # noqa: B018
        rows, n = out.shape
        of = out.reshape(rows * n)
        gf = _pick(g, out, g).reshape(rows * n)
        yf = _pick(y, out, y).reshape(rows * n)
        block = max(1, min(_ROW_BLOCK // n, rows_per_task))
        n_tasks = (rows + rows_per_task - 1) // rows_per_task
        for t in prange(n_tasks):
            sums = np.empty(block)  # a block's row sums
            gt = np.zeros(_PAD, gf.dtype)
            yt = np.zeros(_PAD, yf.dtype)
            ot = np.zeros(_PAD, out.dtype)
            rt = compute_empty(_PAD, out)
            rt[:] = 0
            first, last = t * rows_per_task, min((t + 1) * rows_per_task, rows)
            if n >= _LONG_ROW:
                body = n - n % _PAD
                for i in range(first, last):
                    lo = i * n
                    gr, yr = gf[lo:lo + n], yf[lo:lo + n]
                    s = 0.0
                    for k in range(n):
                        s = _add_reassociable(s, np.float64(term(widen(gr[k]), widen(yr[k]))))
                    si = narrow(rt, s)
                    ob = of[lo:lo + body]
                    gb = _pick(g, ob, gf[lo:lo + body])
                    yb = _pick(y, ob, yf[lo:lo + body])
                    for k in range(body):  # reads gb[k] and yb[k] before writing ob[k]: they may be one
                        ob[k] = narrow(ob, grad(widen(gb[k]), widen(yb[k]), si))
                    if body < n:
                        rt[:] = si
                        _grad_tail(grad, of, gf, yf, lo + body, lo + n, gt, yt, rt, ot)
            else:
                # the block's row sums first, then each row's gradient with its sum: one
                # flat pass over the block with each element's sum spread into a buffer
                # cost more (one thread, float32, 2^22 elements in rows of 16 to 200: 0.38-0.63
                # against 0.25-0.44 ns per element)
                for b in range(first, last, block):
                    nb = min(block, last - b)
                    for i in range(nb):
                        lo = (b + i) * n
                        gr, yr = gf[lo:lo + n], yf[lo:lo + n]
                        s = 0.0
                        for k in range(n):
                            s = _add_reassociable(s, np.float64(term(widen(gr[k]), widen(yr[k]))))
                        sums[i] = s
                    for i in range(nb):
                        lo = (b + i) * n
                        si = narrow(rt, sums[i])
                        ob = of[lo:lo + n]
                        gb = _pick(g, ob, gf[lo:lo + n])
                        yb = _pick(y, ob, yf[lo:lo + n])
                        for k in range(n):  # reads gb[k] and yb[k] before writing ob[k]: they may be one
                            ob[k] = narrow(ob, grad(widen(gb[k]), widen(yb[k]), si))

    def forward_columns(x, out, block):
        # Where _exps_in_out, each row's exponentials are kept in out until the output
        # pass; else (in place, or out 16-bit) they are computed twice.
        token  # noqa: B018
        outer, n, inner = out.shape
        n_blocks = (inner + block - 1) // block
        keep = _exps_in_out(x, out)
        for t in prange(outer * n_blocks):
            o, j0, j1 = _task_span(t, n_blocks, block, inner)
            w = j1 - j0
            m = compute_empty(w, out)
            e = compute_empty(w, out)  # one row's exponentials: in the compute dtype, as in forward
            s = np.zeros(w)
            c = np.empty(w)
            src = _pick(x, out, x)
            m_in = src[o, 0, j0:j1]
            for j in range(w):
                m[j] = widen(m_in[j])
            for k in range(1, n):
                m_in = src[o, k, j0:j1]
                for j in range(w):
                    m[j] = _maxnum(m[j], widen(m_in[j]))
            for k in range(n):
                xk, ok = src[o, k, j0:j1], out[o, k, j0:j1]
                ek = _exps_buffer(x, e, ok)
                for j in range(w):
                    ek[j] = narrow(ek, exp_below_max(widen(xk[j]), m[j]))
                for j in range(w):
                    s[j] += ek[j]
            for j in range(w):
                c[j] = row_constant(s[j])
            for k in range(n):
                xk, ok = src[o, k, j0:j1], out[o, k, j0:j1]
                if keep:
                    for j in range(w):
                        ok[j] = narrow(ok, element(widen(xk[j]), ok[j], m[j], c[j]))
                else:
                    for j in range(w):
                        e[j] = narrow(e, exp_below_max(widen(xk[j]), m[j]))
                    for j in range(w):  # reads xk[j] before writing ok[j]: they may be one
                        ok[j] = narrow(ok, element(widen(xk[j]), e[j], m[j], c[j]))

    def backward_columns(g, y, out, block):
        token  # noqa: B018
        outer, n, inner = out.shape
        n_blocks = (inner + block - 1) // block
        ga = _pick(g, out, g)
        ya = _pick(y, out, y)
        for t in prange(outer * n_blocks):
            o, j0, j1 = _task_span(t, n_blocks, block, inner)
            w = j1 - j0
            s = np.zeros(w)
            for k in range(n):
                gk, yk = ga[o, k, j0:j1], ya[o, k, j0:j1]
                for j in range(w):
                    s[j] += term(widen(gk[j]), widen(yk[j]))
            for k in range(n):
                gk, yk, ok = ga[o, k, j0:j1], ya[o, k, j0:j1], out[o, k, j0:j1]
                for j in range(w):
                    ok[j] = narrow(ok, grad(widen(gk[j]), widen(yk[j]), s[j]))

    return forward, backward, forward_columns, backward_columns


_SELECT_BLOCK = 1 << 14


def _masked_select_loops(token):
    """out = (-x if negate else x) where mask, else fill, over flat arrays (x None: out
    itself): where= of the row-wise functions. NumPy's np.where and np.copyto(where=)
    branch on each element and took 2.4-2.8 ns per element on random masks (measured,
    float32); this loop selects without branches, vectorised."""

    def masked_select(x, mask, out, fill, negate):
        token  # noqa: B018
        n = out.shape[0]
        for b in prange((n + _SELECT_BLOCK - 1) // _SELECT_BLOCK):
            lo, hi = b * _SELECT_BLOCK, min((b + 1) * _SELECT_BLOCK, n)
            ob, mb = out[lo:hi], mask[lo:hi]
            xb = ob if x is None else x[lo:hi]
            f = narrow(ob, fill)
            for k in range(hi - lo):  # reads xb[k] before writing ob[k]: they may be one
                v = -xb[k] if negate else xb[k]
                ob[k] = narrow(ob, v if mb[k] else f)

    return (masked_select,)
