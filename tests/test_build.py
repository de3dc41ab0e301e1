"""The kernels cache on disk across processes and vectorise."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from numba import njit

import fastact as fa

from .references import first_params, numeric_params

# every family of loops (element-wise, channel, rows and columns, gated, reduction,
# simplex, the masked select, ufuncs), serial and parallel, through cheap activations:
# each kernel here compiles in a fresh cache
USE_KERNELS = textwrap.dedent("""
    import json, numpy as np, fastact as fa
    from fastact._arrays import PARALLEL_MIN_SIZE
    for n in (100, PARALLEL_MIN_SIZE * 2):
        x = np.linspace(-2, 2, n, dtype=np.float32)
        fa.relu(x); fa.relu_backward(x, x); fa.relu_backward(x, y=x); fa.leaky_relu(x, 0.2)
        fa.prelu(x.reshape(2, -1), [0.1, 0.2], axis=0)
        fa.prelu_backward(x.reshape(2, -1), x.reshape(2, -1), [0.1, 0.2], axis=0)
        fa.reglu(x); fa.reglu_backward(x[: n // 2], x); fa.reglu(x, x)
        fa.logsumexp(x); fa.logsumexp(x.reshape(2, -1), axis=0); fa.softmin(x)
        fa.sparsemax(x); fa.sparsemax(x.reshape(2, -1), axis=0); fa.sparsemax_backward(x, y=x)
        fa.softmin(x, where=x > 0)
    fa.ufuncs.relu(x[::2]); fa.ufuncs.leaky_relu(x, 0.2); fa.ufuncs.elu_backward(x, x, 1.0)
    stats = {}
    from fastact._loops_ufunc import UFUNC_LOOPS
    for name, built in UFUNC_LOOPS.items():
        for c in built.loops:
            stats[f"ufunc.{name}.{c.__qualname__}"] = [c.cache_hits, int(not c.cache_hits)]
    for k in fa.KERNELS.values():
        for label, v in k.built():
            stats[label] = [sum(v.stats.cache_hits.values()), sum(v.stats.cache_misses.values())]
    from fastact._rowwise import _SELECT
    for v in _SELECT[0]:
        stats[f"rowwise.masked_select.{v.__qualname__}"] = [
            sum(v.stats.cache_hits.values()), sum(v.stats.cache_misses.values())]
    print(json.dumps(stats))
""")


def test_second_process_compiles_nothing(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", USE_KERNELS], env=env, capture_output=True, text=True,
                             check=True, timeout=600)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert sum(m for _, m in first.values()) > 0, "the first process should have compiled"
    used = {k: v for k, v in second.items() if v != [0, 0]}
    assert used, "the second process used no kernels"
    misses = {k: v for k, v in used.items() if v[1]}
    assert not misses, f"compiled again in a second process: {misses}"
    files = sorted(p.name for p in (tmp_path / "cache").rglob("*.nbc"))
    out = subprocess.run([sys.executable, "-c", USE_KERNELS], env=env, capture_output=True, text=True, check=True)
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.nbc")) == files, "a third process added cache files"


def _asm(dispatcher, *args):
    """The loop's machine code for these arguments: the dispatcher's own where this
    process compiled it (the suite's other tests of the activation, grouped on one
    worker, usually have); else, as code loaded from the cache keeps none, a fresh,
    uncached compile of the same loop."""
    dispatcher(*args)
    sig = tuple(numba.typeof(a) for a in args)
    overload = dispatcher.overloads.get(sig)
    if overload is not None and not getattr(overload.library, "_disable_inspection", True):
        return dispatcher.inspect_asm(sig)
    fresh = njit(error_model="numpy")(dispatcher.py_func)
    fresh(*args)
    return fresh.inspect_asm(fresh.signatures[0])


ELEMENTWISE = [name for name, act in fa.ACTIVATIONS.items() if act.kind == "elementwise"]
PACKED_MATH = re.compile(r"\bv(?:mul|add|sub|div|max|min|cmp\w*|blendv|and|andn|or|xor)p[sd]\s+[^\n]*%[yz]mm")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_kernels_vectorise(name, dtype):
    """Packed (ymm/zmm) arithmetic in every activation's forward and backward loop."""
    k = fa.KERNELS[name]
    x = np.ones(64, dtype)
    p = tuple(np.dtype(dtype).type(v) for v in numeric_params(name, first_params(name)))
    loops = {
        "forward": _asm(k.forward["flat"][0], x, x.copy(), p),
        "backward": _asm(k.backward["flat"][0], x, x, x.copy(), p),
        # in place, serial: the loop reads out (x or grad_output given as None)
        "forward in place": _asm(k.forward["flat"][0], None, x.copy(), p),
        "backward in place": _asm(k.backward["flat"][0], None, x, x.copy(), p),
    }
    for which, asm in loops.items():
        assert PACKED_MATH.search(asm), f"{name} {which}: no packed ymm/zmm arithmetic: the loop did not vectorise"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", [name for name, act in fa.ACTIVATIONS.items() if act.kind == "gated"])
def test_gated_kernels_vectorise(name, dtype):
    k = fa.KERNELS[name]
    x, half = np.ones((4, 128), dtype), np.ones((4, 64), dtype)
    base = fa.ACTIVATIONS[name].kind_options["base"]  # whose parameters it takes
    p = tuple(np.dtype(dtype).type(v) for v in numeric_params(base, first_params(base)))
    loops = {
        "forward": _asm(k.gated["forward"][0], x, 0, x, 64, half.copy(), 64, 4, p),
        "backward": _asm(k.gated["backward"][0], half, x, 0, x, 64, x.copy(), 0, x.copy(), 64, 64, 4, p),
    }
    for which, asm in loops.items():
        assert PACKED_MATH.search(asm), f"{name} {which}: no packed ymm/zmm arithmetic: the loop did not vectorise"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduction_kernels_vectorise(dtype):
    k = fa.KERNELS["logsumexp"]
    rows, cols = np.ones((4, 256), dtype), np.ones((2, 8, 64), dtype)
    loops = {
        "rows": _asm(k.reduce["rows"][0], rows, np.empty(4), np.empty(4)),
        "columns": _asm(k.reduce["columns"][0], cols, np.empty((2, 64)), np.empty((2, 64)), 64),
    }
    for which, asm in loops.items():
        assert PACKED_MATH.search(asm), f"logsumexp {which}: no packed ymm/zmm arithmetic: the loop did not vectorise"


def test_masked_select_vectorises():
    """where='s select (the row-wise functions' mask) runs packed selects: AVX-512 masked
    moves (vmovaps ... {%k}), or AVX2 blends."""
    from fastact._rowwise import _SELECT, _select

    x = np.ones(256, np.float32)
    _select(x, x > 0, x.copy(), -np.inf)
    asm = _asm(_SELECT[0][0], x, x > 0, x.copy(), np.float32(0), False)
    assert re.search(r"\bvblendvps\s+[^\n]*%ymm|\bvmovaps\s+%[yz]mm\d+, %[yz]mm\d+ \{%k", asm), "no packed select"


PACKED_F64_SUM = re.compile(r"\bvaddpd\s+[^\n]*%[yz]mm")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparsemax_kernels_vectorise(dtype):
    """Michelot's passes (a masked float64 sum and count) and the backward's sum over the
    support run on packed float64 additions, in the rows and the columns forms."""
    k = fa.KERNELS["sparsemax"].rowwise
    rows, cols = np.ones((4, 256), dtype), np.ones((1, 8, 64), dtype)
    loops = {
        "forward": _asm(k["forward"][0], rows, rows.copy(), 2),
        "forward in place": _asm(k["forward"][0], None, rows.copy(), 2),
        "backward": _asm(k["backward"][0], rows, rows, rows.copy(), 2),
        "forward columns": _asm(k["forward_columns"][0], cols, cols.copy(), 64),
        "backward columns": _asm(k["backward_columns"][0], cols, cols, cols.copy(), 64),
    }
    for which, asm in loops.items():
        assert PACKED_F64_SUM.search(asm), f"sparsemax {which}: no packed float64 sum: the loop did not vectorise"


def test_ufunc_with_parameters_vectorises():
    """The ufunc loop's machine code has packed arithmetic (a fresh compile of its vectorised
    part, for a scalar parameter)."""
    from fastact._loops_ufunc import UFUNC_LOOPS

    for name, params in (("elu", (1.0,)), ("gelu", (0.0,)), ("softplus", (1.0, 20.0))):
        getattr(fa.ufuncs, name)  # built on first use
        run = UFUNC_LOOPS[name].run
        for dtype in (np.float32, np.float64):
            x = np.ones(64, dtype)
            fresh = njit(error_model="numpy")(run)
            fresh(x, x, x.copy(), *(dtype(p) for p in params + (0.0,) * (2 - len(params))))
            asm = fresh.inspect_asm(fresh.signatures[0])
            assert PACKED_MATH.search(asm), f"{name} {np.dtype(dtype)}: the ufunc loop did not vectorise"


HALF_WIDEN = re.compile(r"\bvcvtph2psx?\s+[^\n]*%[yz]mm")
HALF_NARROW = re.compile(r"\bvcvtps2phx?\w*\s+[^\n]*%[yz]mm")


def test_float16_conversions_vectorise(tmp_path):
    """float16 is widened and rounded 8 or 16 at a time (packed F16C or AVX-512 converts),
    in the flat kernels on uint16 views and in the ufuncs' float16 loop (compiled afresh in
    a subprocess: code loaded from the cache keeps no assembly)."""
    from fastact._arrays import half_kernels

    if not half_kernels():
        pytest.skip("this CPU target has no F16C: float16 goes through float32 copies")
    x = np.ones(64, np.uint16)
    flat = _asm(fa.KERNELS["silu"].forward["flat"][0], x, x.copy(), ())
    code = textwrap.dedent("""
        import fastact as fa
        from fastact._loops_ufunc import UFUNC_LOOPS
        import numpy as np
        fa.ufuncs.silu(np.ones(4, np.float16))
        print(next(c for c in UFUNC_LOOPS["silu"].loops if c.__qualname__.endswith("float16"))._library.get_asm_str())
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    loop = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          timeout=600).stdout
    for which, asm in (("flat kernel", flat), ("ufunc loop", loop)):
        assert HALF_WIDEN.search(asm) and HALF_NARROW.search(asm), f"silu {which}: no packed float16 conversion"


def _interleaved_saves(cls, path):
    """Two processes save different signatures of one kernel, as under a cold cache in a
    process pool: both read the index before either wrote it, and A's data file reaches
    the disk last. Returns what a third process then loads for each signature."""
    path.mkdir()
    a, b = cls(str(path), "kernel", "stamp"), cls(str(path), "kernel", "stamp")
    a._load_index = b._load_index = dict  # the index as both read it: empty
    deferred = []
    a._save_data = lambda name, data: deferred.append((name, data))
    a.save(("sig-a",), ("code for a",))
    b.save(("sig-b",), ("code for b",))
    cls._save_data(a, *deferred[0])
    reader = cls(str(path), "kernel", "stamp")
    return reader.load(("sig-a",)), reader.load(("sig-b",))


def test_concurrent_cache_saves_never_pair_a_signature_with_another_ones_code(tmp_path):
    from numba.core.caching import IndexDataCacheFile

    from fastact._cache import _KeyedCacheFile

    # numba's own files: the index names B's signature, the file holds A's machine code
    assert _interleaved_saves(IndexDataCacheFile, tmp_path / "numba")[1] == ("code for a",)
    got_a, got_b = _interleaved_saves(_KeyedCacheFile, tmp_path / "fastact")
    assert got_b == ("code for b",)
    assert got_a in (None, ("code for a",))  # A's entry may be lost (one more compile), never wrong
    kernel = fa.KERNELS["relu"].forward["flat"][0]
    assert type(kernel._cache._cache_file) is _KeyedCacheFile
    assert type(fa.ufuncs.relu) is np.ufunc


def test_kernels_compiled_in_different_processes_keep_their_own_code(tmp_path):
    """sigmoid's and tanh's ufuncs, each first compiled in a process of its own, then
    loaded from the cache into one: each computes its own function. numba names a
    separately compiled helper by its qualified name and a per-process counter, and the
    loader keeps one of two same-named definitions; before the helpers' names were made
    unique, tanh's ufunc ran sigmoid's loop here."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    first = "import numpy as np, fastact as fa; fa.ufuncs.{}(np.linspace(-3, 3, 50))"
    for name in ("sigmoid", "tanh"):
        subprocess.run([sys.executable, "-c", first.format(name)], env=env, check=True, timeout=600)
    both = textwrap.dedent("""
        import numpy as np, fastact as fa
        x = np.linspace(-3, 3, 50)
        got = [fa.ufuncs.sigmoid(x), fa.ufuncs.tanh(x)]
        print([bool(np.array_equal(g, w)) for g, w in zip(got, [fa.sigmoid(x), fa.tanh(x)])])
    """)
    out = subprocess.run([sys.executable, "-c", both], env=env, capture_output=True, text=True, check=True, timeout=600)
    assert out.stdout.split() == ["[True,", "True]"]


NO_FMA = textwrap.dedent("""
    import json, math, numpy as np
    from numba import njit
    from fastact import _math
    @njit
    def exp_all(x, out):
        for i in range(x.shape[0]):
            out[i] = _math.exp(x[i])
    x = np.linspace(-80.0, 80.0, 20001, dtype=np.float32)
    out = np.empty_like(x)
    exp_all(x, out)
    asm = exp_all.inspect_asm(exp_all.signatures[0])
    ref = np.exp(x.astype(np.float64))
    ulp = np.abs(out.astype(np.float64) - ref) / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    # erfc's tail goes through exp(-a^2) with the rounding error of a^2 added back: an fma
    # where there is one, Dekker's split product without
    @njit
    def erfc_all(x, out):
        for i in range(x.shape[0]):
            out[i] = _math.erfc(x[i])
    a = np.linspace(0.5, 9.0, 20001, dtype=np.float32)
    got = np.empty_like(a)
    erfc_all(a, got)
    want = np.array([math.erfc(v) for v in a.astype(np.float64)])
    erfc_ulp = np.abs(got.astype(np.float64) - want) / np.spacing(want.astype(np.float32)).astype(np.float64)
    print(json.dumps({"fma": "vfmadd" in asm, "max_ulp": float(ulp.max()), "erfc_ulp": float(erfc_ulp.max())}))
""")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="names an x86-64 CPU without FMA")
def test_math_without_fma_instructions(tmp_path):
    """On a CPU without FMA the polynomials fall back to a multiply and an add (llvm.fma
    would be a scalar libm call there), within the same error bound."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_CPU_NAME="x86-64", NUMBA_CPU_FEATURES="+sse2")
    out = subprocess.run([sys.executable, "-c", NO_FMA], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert not got["fma"]
    assert got["max_ulp"] <= 1.0
    # erfc's bound in tests/test_math.py is 4 ulp; its polynomials as multiplies and adds
    # measured 4.04 here (before and after exp(-a^2) took one exp where there is FMA)
    assert got["erfc_ulp"] <= 4.5


SCALING = textwrap.dedent("""
    import hashlib, json, numpy as np
    from numba import njit
    from fastact import _math
    @njit
    def exp_all(x, out):
        for i in range(x.shape[0]):
            out[i] = _math.exp(x[i])
    result = {}
    for dtype, lo, hi in ((np.float32, -104.0, 89.0), (np.float64, -746.0, 710.0)):
        x = np.concatenate([np.linspace(lo, hi, 200001), [-np.inf, np.inf, np.nan]]).astype(dtype)
        out = np.empty_like(x)
        exp_all(x, out)
        asm = exp_all.inspect_asm(exp_all.signatures[-1])
        ref = np.exp(x[:-3].astype(np.longdouble))
        rounded = ref.astype(dtype)  # inf where exp overflows the dtype
        finite = np.isfinite(rounded)
        tiny = np.finfo(dtype).smallest_subnormal
        ulp = (np.abs(out[:-3][finite] - ref[finite])
               / np.maximum(np.spacing(rounded[finite]), tiny).astype(np.longdouble))
        result[np.dtype(dtype).name] = {
            "vscalef": "vscalef" in asm, "libm_ldexp": "ldexp" in asm, "max_ulp": float(ulp.max()),
            "overflow_is_inf": bool(np.isposinf(out[:-3][~finite]).all()),
            "sha256": hashlib.sha256(out.tobytes()).hexdigest(),
            "specials": [float(v) for v in out[-3:]]}
    print(json.dumps(result))
""")


def _host_has_avx512f() -> bool:
    from numba.core.codegen import JITCPUCodegen

    return "+avx512f" in JITCPUCodegen("probe")._get_host_cpu_features().split(",")


def _exp_on(cpu: str, tmp_path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / cpu), NUMBA_CPU_NAME=cpu)
    if cpu == "haswell":  # numba would otherwise take the host's features, AVX-512 included
        env["NUMBA_CPU_FEATURES"] = "+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+avx,+avx2,+fma,+f16c,+bmi,+bmi2"
    else:
        env.pop("NUMBA_CPU_FEATURES", None)
    out = subprocess.run([sys.executable, "-c", SCALING], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="names x86-64 CPUs")
def test_exp_scaling_by_target(tmp_path):
    """2^k is one vscalef where the target has AVX-512, and the integer two-factor form on
    AVX2 (where llvm.ldexp would be a libm call per element): bit-identical results either
    way, subnormal and overflowing ones included, within exp's bound (1.05 ulp measured
    here against a long double reference, on a grid that runs into both thresholds)."""
    runs = {"haswell": _exp_on("haswell", tmp_path)}
    if _host_has_avx512f():
        runs["skylake-avx512"] = _exp_on("skylake-avx512", tmp_path)
    for cpu, got in runs.items():
        for dtype, r in got.items():
            assert r["vscalef"] == (cpu != "haswell"), (cpu, dtype, r)
            assert not r["libm_ldexp"], (cpu, dtype, r)
            assert r["max_ulp"] <= 1.05 and r["overflow_is_inf"], (cpu, dtype, r)
            assert r["specials"][:2] == [0.0, math.inf] and math.isnan(r["specials"][2]), (cpu, dtype, r)
    hashes = {cpu: {d: r["sha256"] for d, r in got.items()} for cpu, got in runs.items()}
    assert len({tuple(sorted(h.items())) for h in hashes.values()}) == 1, hashes


FULL_WIDTH = textwrap.dedent("""
    import json, re
    import numpy as np
    from numba import njit
    import fastact as fa
    from fastact._loops_ufunc import UFUNC_LOOPS

    def zmm(fn, *args, parallel=False):
        fresh = njit(error_model="numpy", parallel=parallel)(fn)  # uncached: its code can be read
        fresh(*args)
        return len(re.findall(r"%zmm", fresh.inspect_asm(fresh.signatures[0])))

    def users_loop(x, out):  # the user's own numba code: left at LLVM's preferred width
        for i in range(x.shape[0]):
            out[i] = fa.scalar.sigmoid(x[i])

    x = np.ones((4, 256), np.float32)
    flat, rows, w = x.ravel(), np.ones((8, 300), np.float32), np.ones(4, np.float32)
    k, s, p = fa.KERNELS["sigmoid"], fa.KERNELS["softmax"], fa.KERNELS["prelu"]
    fa.ufuncs.sigmoid(flat)
    got = {
        "flat": zmm(k.forward["flat"][0].py_func, flat, flat.copy(), ()),
        "flat parallel": zmm(k.forward["flat"][0].py_func, flat, flat.copy(), (), parallel=True),
        "rows": zmm(k.backward["rows"][0].py_func, x, x, x.copy(), ()),
        "ufunc": zmm(UFUNC_LOOPS["sigmoid"].run, flat, flat, flat.copy(), np.float32(0), np.float32(0)),
        "softmax": zmm(s.rowwise["forward"][0].py_func, rows, rows.copy(), 8),
        "softmax backward": zmm(s.rowwise["backward"][0].py_func, rows, rows, rows.copy(), 8),
        "prelu": zmm(p.channel["forward"][0].py_func, x, w, x.copy(), 64),
        "gated": zmm(fa.KERNELS["swiglu"].gated["forward"][0].py_func, x, 0, x, 128, x[:, :128].copy(), 128, 4, ()),
        "sparsemax": zmm(fa.KERNELS["sparsemax"].rowwise["forward"][0].py_func, rows, rows.copy(), 8),
        "user": zmm(users_loop, flat, flat.copy()),
    }
    print(json.dumps(got))
""")


@pytest.mark.skipif(not (platform.machine() in ("x86_64", "AMD64") and _host_has_avx512f()),
                    reason="compiles for an AVX-512 CPU and runs the code")
def test_full_vector_width_on_intel_avx512_for_the_kernels_only(tmp_path):
    """On Intel's AVX-512 server CPUs LLVM prefers 256-bit vectors; the kernels' loops ask
    for 512 bits per function (ymm only before), the user's own numba code keeps LLVM's
    choice (no zmm), in the same process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_CPU_NAME="skylake-avx512")
    env.pop("NUMBA_CPU_FEATURES", None)
    out = subprocess.run([sys.executable, "-c", FULL_WIDTH], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got.pop("user") == 0, got
    assert all(n > 0 for n in got.values()), f"loops without zmm: {got}"


def _signatures():
    return {(label, s) for k in fa.KERNELS.values() for label, v in k.built() for s in v.signatures}


def test_broadcasting_compiles_no_read_only_twins():
    """np.broadcast_to's views are read-only, and numba types a read-only array apart from
    a writable one: the general paths that broadcast (grad_output against y, where= masks,
    the two-tensor gated form, a reduction's grad_output) must not compile a second copy of
    each kernel for writable inputs. The results are checked against the same calls on
    arrays broadcast by hand."""
    from fastact._arrays import PARALLEL_MIN_SIZE
    rng = np.random.default_rng(5)
    before = _signatures()
    for n in (96, PARALLEL_MIN_SIZE * 2):
        x = rng.standard_normal((2, n // 2)).astype(np.float32)
        g_row = rng.standard_normal(n // 2).astype(np.float32)
        g_full = np.repeat(g_row[None], 2, axis=0)
        y = fa.softmax(x)
        np.testing.assert_array_equal(fa.softmax_backward(g_row, y=y), fa.softmax_backward(g_full, y=y))
        np.testing.assert_array_equal(fa.log_softmax_backward(g_row, x), fa.log_softmax_backward(g_full, x))
        mask = x[0] > 0
        np.testing.assert_array_equal(fa.softmax(x, where=mask), fa.softmax(x, where=np.repeat(mask[None], 2, 0)))
        np.testing.assert_array_equal(fa.swiglu(x, g_row), fa.swiglu(x, g_full))
        np.testing.assert_array_equal(fa.logsumexp_backward(np.float32(2), x), fa.logsumexp_backward(
            np.full((), 2, np.float32), x))
    added = _signatures() - before
    twins = [(k, s) for k, s in added
             if any(isinstance(a, numba.types.Array) and not a.mutable for a in s)]
    assert not twins, twins
