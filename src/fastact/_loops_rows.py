"""The row-wise loops (softmax, log_softmax)."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import types as nbtypes
from numba.extending import intrinsic, register_jitable

from ._loops_channel import _task_span
from ._loops_map import full_width, narrow
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
# A row's last n % _TAIL elements are copied into a padded buffer of _TAIL and computed
# there: LLVM's vectorised loops step 16-64 elements at a time and leave the rest to a
# scalar loop, and a scalar exp costs 10-20 times a vector lane's (measured: rows of 63
# float32 elements took 1.8 ns per element, rows of 64 0.7). _TAIL is a multiple of every
# step LLVM takes, so loops over the body and over the buffer run no scalar remainder.
# In place, a kernel is called with x (or grad_output, or y) None and reads out: given
# two names for one buffer, LLVM's run-time alias check fails and the loop runs scalar.

_COLUMN_BLOCK = 512
_TAIL = 64
_ROW_BLOCK = 2048


@intrinsic
def _maxnum(typingctx, a, b):
    """LLVM's maxnum: the larger of a and b, the other where one is NaN."""
    if not (isinstance(a, nbtypes.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maxnum", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)

    return a(a, b), codegen


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


@register_jitable
def _max_of(a, m):
    # LLVM vectorises a reduction through maxnum (measured: 8x faster than through a
    # compare and select, which it vectorises only under function-wide no-NaN
    # attributes that numba does not set). Where the row holds a NaN, the value returned
    # does not matter: that element's exp(x - m) is NaN whatever m is, and it makes the
    # sum, hence every output of the row, NaN.
    full_width()
    for k in range(a.shape[0]):
        m = _maxnum(m, a[k])
    return m


@register_jitable
def _sum_of(a, count):
    """The sum in float64 of a[:count], over all of a (a vectorised pass of constant
    length when a is a tail buffer)."""
    full_width()
    s = 0.0
    for k in range(a.shape[0]):
        s = _add_reassociable(s, float(a[k]) if k < count else 0.0)
    return s


@register_jitable
def _load_tail(src, start, buf):
    """buf = src[start:], padded with src[0]."""
    tail = src[start:]  # indexed from 0, so that no wrap-around test stays in the loop
    pad = src[0]
    for j in range(buf.shape[0]):
        buf[j] = pad
    for j in range(tail.shape[0]):
        buf[j] = tail[j]


@register_jitable
def _store_tail(buf, dst, start):
    tail = dst[start:]
    for j in range(tail.shape[0]):
        tail[j] = buf[j]


@register_jitable
def _corrected(e, lo):
    # e (1 + lo); lo is NaN when x - m is infinite (x = -inf: e = 0, exactly right), and
    # NaN x stays NaN in e. A function of its own: a conditional expression in a body
    # that numba inlines at its IR level makes its SSA check warn.
    return e if lo != lo else e + e * lo


def exp_below_max(x, m):
    """exp(x - m) for x <= m, in x's dtype. x - m is rounded, and
    exp magnifies that error by |x - m| (100 ulp at x - m = -100); its rounding error
    (Knuth's TwoSum, exact) restores it: exp(d + lo) = exp(d) (1 + lo)."""
    d = x - m
    b = d - x
    lo = (x - (d - b)) + (-m - b)
    return _corrected(exp(d), lo)


inline_jitable(exp_below_max)


@register_jitable
def _exps_and_sum(src, dst, m, used):
    """dst = exp(src - m); the sum in float64 of dst[:used]."""
    for k in range(src.shape[0]):
        dst[k] = narrow(dst, exp_below_max(src[k], m))
    return _sum_of(dst, used)


def _rowwise_loops(element, row_constant, term, grad, token, tails=False):
    # tails: whether the rows have a tail (n % _TAIL); the two are compiled apart, since
    # the tail's code slows the body's loops even where it does not run (measured: rows
    # of 64 float32 elements 0.57 -> 0.78 ns per element).
    # A row's body and its padded tail are two loops of their own, each over slices made
    # once: a loop over the two parts, with the arrays chosen inside it, made numba keep
    # reference counts in the loop (measured: 8x slower on rows of 64).
    # A task's rows go by blocks of about _ROW_BLOCK elements, each pass over all rows of
    # the block before the next pass: a short row's passes are each a chain of dependent
    # steps (a reduction, then the exponentials that need its result, ...), and the rows of
    # a block give the processor independent chains to overlap (measured: rows of 64
    # float32 elements 0.84 -> 0.58 ns per element).

    def forward(x, out, rows_per_task):
        token  # noqa: B018
        rows, n = out.shape
        body = n - n % _TAIL if tails else n  # without tails, n is a multiple of _TAIL
        count = n - body
        block = max(1, _ROW_BLOCK // n)
        n_tasks = (rows + rows_per_task - 1) // rows_per_task
        for t in prange(n_tasks):
            # in x's dtype: a float64 scratch would make LLVM vectorise the float32 exp
            # eight lanes at a time instead of sixteen (measured: 2x slower)
            e = np.empty((block, body), out.dtype)
            xt = np.empty((block, _TAIL), out.dtype)
            et = np.empty((block, _TAIL), out.dtype)
            ot = np.empty(_TAIL, out.dtype)
            maxima = np.empty(block, out.dtype)
            constants = np.empty(block)
            first, last = t * rows_per_task, min((t + 1) * rows_per_task, rows)
            for b in range(first, last, block):
                nb = min(block, last - b)
                for i in range(nb):
                    xr = out[b + i] if x is None else x[b + i]
                    m = xr[0]
                    if count:
                        _load_tail(xr, body, xt[i])
                        m = _max_of(xt[i], m)
                    maxima[i] = _max_of(xr[:body], m)
                for i in range(nb):
                    xr = out[b + i] if x is None else x[b + i]
                    s = _exps_and_sum(xr[:body], e[i], maxima[i], body)
                    if count:
                        s += _exps_and_sum(xt[i], et[i], maxima[i], count)
                    constants[i] = s
                for i in range(nb):  # a loop of its own, vectorised across the rows (log_softmax's log)
                    constants[i] = row_constant(constants[i])
                for i in range(nb):
                    outr = out[b + i]
                    xb = outr[:body] if x is None else x[b + i, :body]
                    ob, eb = outr[:body], e[i]
                    m, c = maxima[i], constants[i]
                    for k in range(body):  # reads xb[k] before writing ob[k]: they may be one
                        ob[k] = narrow(ob, element(xb[k], eb[k], m, c))
                    if count:
                        xti, eti = xt[i], et[i]
                        for k in range(_TAIL):
                            ot[k] = narrow(ot, element(xti[k], eti[k], m, c))
                        _store_tail(ot, outr, body)

    def backward(g, y, out, rows_per_task):
        token  # noqa: B018
        rows, n = out.shape
        body = n - n % _TAIL if tails else n  # without tails, n is a multiple of _TAIL
        count = n - body
        block = max(1, _ROW_BLOCK // n)
        n_tasks = (rows + rows_per_task - 1) // rows_per_task
        for t in prange(n_tasks):
            gt = np.empty((block, _TAIL), out.dtype)
            yt = np.empty((block, _TAIL), out.dtype)
            ot = np.empty(_TAIL, out.dtype)
            sums = np.empty(block)
            first, last = t * rows_per_task, min((t + 1) * rows_per_task, rows)
            for b in range(first, last, block):
                nb = min(block, last - b)
                for i in range(nb):
                    gb = out[b + i, :body] if g is None else g[b + i, :body]
                    yb = out[b + i, :body] if y is None else y[b + i, :body]
                    s = 0.0
                    for k in range(body):
                        s = _add_reassociable(s, np.float64(term(gb[k], yb[k])))
                    if count:
                        gti, yti = gt[i], yt[i]
                        _load_tail(out[b + i] if g is None else g[b + i], body, gti)
                        _load_tail(out[b + i] if y is None else y[b + i], body, yti)
                        for k in range(_TAIL):
                            s = _add_reassociable(s, np.float64(term(gti[k], yti[k])) if k < count else 0.0)
                    sums[i] = s
                for i in range(nb):
                    outr = out[b + i]
                    ob = outr[:body]
                    gb = ob if g is None else g[b + i, :body]
                    yb = ob if y is None else y[b + i, :body]
                    s = sums[i]
                    for k in range(body):
                        ob[k] = narrow(ob, grad(gb[k], yb[k], s))
                    if count:
                        gti, yti = gt[i], yt[i]
                        for k in range(_TAIL):
                            ot[k] = narrow(ot, grad(gti[k], yti[k], s))
                        _store_tail(ot, outr, body)

    def forward_columns(x, out, block):
        # Not in place (x given), each row's exponentials are kept in out until the
        # output pass; in place, x must survive until then and they are computed twice.
        token  # noqa: B018
        outer, n, inner = out.shape
        n_blocks = (inner + block - 1) // block
        for t in prange(outer * n_blocks):
            o, j0, j1 = _task_span(t, n_blocks, block, inner)
            w = j1 - j0
            m = np.empty(w, out.dtype)
            e = np.empty(w, out.dtype)  # one row's exponentials: in x's dtype, as in forward
            s = np.zeros(w)
            c = np.empty(w)
            src = out if x is None else x
            m[:] = src[o, 0, j0:j1]
            for k in range(1, n):
                m_in = src[o, k, j0:j1]
                for j in range(w):
                    m[j] = _maxnum(m[j], m_in[j])
            for k in range(n):
                xk, ok = src[o, k, j0:j1], out[o, k, j0:j1]
                ek = e if x is None else ok
                for j in range(w):
                    ek[j] = narrow(ek, exp_below_max(xk[j], m[j]))
                for j in range(w):
                    s[j] += ek[j]
            for j in range(w):
                c[j] = row_constant(s[j])
            for k in range(n):
                xk, ok = src[o, k, j0:j1], out[o, k, j0:j1]
                if x is None:
                    for j in range(w):
                        e[j] = narrow(e, exp_below_max(xk[j], m[j]))
                    for j in range(w):  # reads ok[j] before writing it
                        ok[j] = narrow(ok, element(ok[j], e[j], m[j], c[j]))
                else:
                    for j in range(w):
                        ok[j] = narrow(ok, element(xk[j], ok[j], m[j], c[j]))

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
            for k in range(n):
                gk, yk = ga[o, k, j0:j1], ya[o, k, j0:j1]
                for j in range(w):
                    s[j] += term(gk[j], yk[j])
            for k in range(n):
                gk, yk, ok = ga[o, k, j0:j1], ya[o, k, j0:j1], out[o, k, j0:j1]
                for j in range(w):
                    ok[j] = narrow(ok, grad(gk[j], yk[j], s[j]))

    return forward, backward, forward_columns, backward_columns


def _rowwise_tail_loops(element, row_constant, term, grad, token):
    """forward and backward for rows whose length is not a multiple of _TAIL."""
    return _rowwise_loops(element, row_constant, term, grad, token, tails=True)[:2]


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
