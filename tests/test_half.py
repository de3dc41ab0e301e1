"""float16 through the element-wise kernels in one pass: each result is the float32
result rounded once to float16 (the float32 results are held to their references by
test_elementwise.py and test_accuracy_dense.py), on every one of the 65,536 float16
values, into new memory, into out=, in place, serial and parallel."""

from __future__ import annotations

import numpy as np
import pytest

import fastact as fa
from fastact._arrays import PARALLEL_MIN_SIZES, half_kernels

from .conftest import ELEMENTWISE

F16, F32 = np.float16, np.float32
EVERY = np.arange(1 << 16, dtype=np.uint16).view(F16)  # every float16, NaNs and infinities included
assert EVERY.size >= PARALLEL_MIN_SIZES[np.dtype(F32), "forward"]  # the parallel path; EVERY[:999] the serial one


def same(got, want):
    assert got.dtype == F16
    bits_equal = got.view(np.uint16) == want.view(np.uint16)
    ok = bits_equal | (np.isnan(got) & np.isnan(want))
    assert ok.all(), f"{np.count_nonzero(~ok)} differ, first at x = {EVERY[~ok][:3]}: {got[~ok][:3]} vs {want[~ok][:3]}"


def rounded(values32):
    with np.errstate(over="ignore"):
        return values32.astype(F16)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_float16_is_the_float32_result_rounded_once(name):
    act = fa.ACTIVATIONS[name]
    p = act.example_params
    f, fb = getattr(fa, name), getattr(fa, f"{name}_backward")
    g = np.random.default_rng(3).normal(size=EVERY.size).astype(F16)
    want = rounded(f(EVERY.astype(F32), *p))
    want_b = rounded(fb(g.astype(F32), EVERY.astype(F32), *p))
    for x, w, gx, wb in ((EVERY, want, g, want_b), (EVERY[:999], want[:999], g[:999], want_b[:999])):
        same(f(x, *p), w)
        out = np.empty_like(x)
        assert f(x, *p, out=out) is out
        same(out, w)
        buf = x.copy()
        same(f(buf, *p, out=buf), w)
        same(fb(gx, x, *p), wb)
        gbuf = gx.copy()
        same(fb(gbuf, x, *p, out=gbuf), wb)
    if act.supports_y:
        y = f(EVERY.astype(F32), *p)
        values = act.validate(name, p)
        if act.y_ok is None or act.y_ok(*values):
            y16 = rounded(y)
            kwargs = dict(zip(act.param_names, p, strict=True))
            same(fb(g, y=y16, **kwargs), rounded(fb(g.astype(F32), y=y16.astype(F32), **kwargs)))


def test_float16_strided_and_mixed_take_the_float32_copies():
    """Layouts the one-pass kernels do not take give the same values through float32 copies."""
    x = EVERY[::3]
    same(fa.gelu(x), rounded(fa.gelu(x.astype(F32))))
    same(fa.silu_backward(np.ones(x.size, F32).astype(F16), x), rounded(fa.silu_backward(np.ones(x.size, F32), x)))
    out = np.empty((2, x.size), F16)[:, ::2][0]  # a strided out
    fa.sigmoid(EVERY[: out.size], out=out)
    same(out, rounded(fa.sigmoid(EVERY[: out.size].astype(F32))))


def test_float16_runs_the_one_pass_kernels():
    """On a target with F16C, a float16 call runs the kernels on uint16 views (not float32
    copies): their uint16 signatures are compiled, serial and parallel."""
    if not half_kernels():
        pytest.skip("this CPU target has no F16C: float16 goes through float32 copies")
    for x in (EVERY[:999], EVERY):
        fa.elu(x)
        fa.elu_backward(x, x)
    for loops in (fa.KERNELS["elu"].forward["flat"], fa.KERNELS["elu"].backward["flat"]):
        for variant in loops:  # (serial, parallel)
            assert any("uint16" in str(sig) for sig in variant.signatures), variant.signatures


def test_without_f16c_float16_goes_through_float32_copies(tmp_path):
    """A target without F16C (forced in a subprocess) keeps float16 right, through float32
    copies: LLVM would make the half conversions library calls there."""
    import os
    import platform
    import subprocess
    import sys

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("names an x86-64 CPU without F16C")
    code = (
        "import numpy as np, fastact as fa\n"
        "from fastact._arrays import half_kernels\n"
        "x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)\n"
        "with np.errstate(over='ignore'):\n"
        "    want = fa.gelu(x.astype(np.float32)).astype(np.float16)\n"
        "got = fa.gelu(x)\n"
        "ok = (got.view(np.uint16) == want.view(np.uint16)) | (np.isnan(got) & np.isnan(want))\n"
        "print(half_kernels(), bool(ok.all()))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_CPU_NAME="x86-64", NUMBA_CPU_FEATURES="+sse2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=900)
    assert out.stdout.split() == ["False", "True"]
