"""``python -m fastact info | warm | bench | apply``."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Iterable, Sequence


def _info(_: argparse.Namespace) -> int:
    import numba
    import numpy as np

    import fastact
    from fastact import _threading
    from fastact._arrays import PARALLEL_MIN_SIZE, PARALLEL_MIN_SIZES
    from fastact._warm import cache_directory

    fastact.relu(np.zeros(PARALLEL_MIN_SIZE, np.float32))  # starts the threading layer
    try:
        import llvmlite.binding as llvm

        cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    except Exception:  # pragma: no cover - informative only
        cpu, features = "unknown", ""
    wanted = ("avx2", "avx512f", "fma", "neon", "sve")
    rows = [
        ("fastact", fastact.__version__),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("numba", numba.__version__),
        ("platform", platform.platform()),
        ("cpu", f"{cpu} ({', '.join(f for f in wanted if f'+{f}' in features) or 'no vector extensions found'})"),
        ("threading layer", f"{_threading.active_layer()}"
         + (" (chosen by the user)" if _threading.USER_CHOSE else "")
         + (f", libtbb from {_threading.TBB_LIBRARY}" if _threading.TBB_LIBRARY else "")),
        ("parallel launches", "serialised by fastact (layer not thread-safe)"
         if _threading.needs_launch_lock() else "concurrent (layer is thread-safe)"),
        ("threads", f"{numba.get_num_threads()} (numba.set_num_threads / NUMBA_NUM_THREADS)"),
        ("parallel from", ", ".join(f"{dt.name} {d} {n}" for (dt, d), n in PARALLEL_MIN_SIZES.items())
         + " elements"),
        ("cache directory", cache_directory()),
        ("activations", ", ".join(fastact.ACTIVATIONS)),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def _names(functions: Sequence[str] | None) -> list[str] | None:
    """--functions as activation names (space- or comma-separated, as users type lists
    either way; None: all), or None after saying which are unknown."""
    from fastact import ACTIVATIONS

    names = [n for arg in functions or () for n in arg.split(",") if n] or list(ACTIVATIONS)
    unknown = [n for n in names if n not in ACTIVATIONS]
    if unknown:
        print(f"unknown activation(s): {', '.join(unknown)}; known: {', '.join(ACTIVATIONS)}", file=sys.stderr)
        return None
    return names


def _warm(args: argparse.Namespace) -> int:
    """Compile (or load from the cache) the kernels and ufuncs, for every dtype and layout."""
    from fastact._warm import warm_all

    names = _names(args.functions)
    if names is None:
        return 2
    t0 = time.perf_counter()
    n = warm_all(progress=lambda name: print(f"  {name}", file=sys.stderr), names=names)
    print(f"{n} kernels ready in {time.perf_counter() - t0:.1f} s")
    return 0


def _progress(items: Sequence, desc: str) -> Iterable:
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="case", file=sys.stderr)


def cpu_description() -> str:
    """The CPU's model name, LLVM's name for it and its widest vector unit, for reports."""
    import llvmlite.binding as llvm

    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    except OSError:
        pass
    features = llvm.get_host_cpu_features().flatten()
    width = "AVX-512" if "+avx512f" in features else "AVX2" if "+avx2" in features else "no AVX2"
    return f"{model} ({llvm.get_host_cpu_name()}, {width})"


def _bench(args: argparse.Namespace) -> int:
    import os

    # PyTorch reads THP_MEM_ALLOC_ENABLE when it starts: before the import
    if args.torch_huge_pages:
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    import numba
    import numpy as np

    from fastact._bench import IN_CACHE_SIZE, MODES, cases, measure, torch_allocator

    names = _names(args.functions)
    if names is None:
        return 2
    modes = [m.replace("-", " ") for arg in args.mode for m in arg.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        print(f"unknown mode(s): {', '.join(unknown)}; known: into, in-place, new", file=sys.stderr)
        return 2
    if args.threads:
        numba.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(numba.get_num_threads())
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    if "bfloat16" in args.dtype:
        try:
            import ml_dtypes  # noqa: F401 -- registers the bfloat16 dtype with NumPy
        except ImportError:
            print("--dtype bfloat16 needs ml_dtypes: pip install 'fastact[bfloat16]'", file=sys.stderr)
            return 2
    dtypes = tuple(np.dtype(d) for d in args.dtype)
    todo = list(cases(names, dtypes, (args.size,), modes=tuple(modes)))
    if args.in_cache:  # the cost of the math: one core, the data in cache
        todo += list(cases(names, dtypes, (IN_CACHE_SIZE,), modes=("into",), threads=1))
    results = [measure(c, budget=args.budget) for c in _progress(todo, "fastact bench")]

    def ratio(v):
        return "-" if v is None else f"{v:.2f}x"

    def ns(v):
        return "-" if v is None else f"{v:.3f}"

    header = (f"{'activation':<12} {'dtype':<8} {'pass':<16} {'mode':<9} {'elements':>10} {'thr':>3} "
              f"{'GB/s':>7} {'of roofline':>11} {'vs NumPy':>9} {'vs PyTorch':>10} {'ns/el fastact':>13} "
              f"{'ns/el torch':>11}")
    print(f"\nfastact bench, {time.strftime('%Y-%m-%d')}: {cpu_description()}; numpy {np.__version__}, "
          f"numba {numba.__version__} ({numba.threading_layer()}), torch {torch_version or 'not installed'}")
    print("Like for like: 'into' writes into an existing output (fastact out=, PyTorch's aten .out / .grad_input\n"
          "operator), 'in place' overwrites the input, 'new' allocates (fastact: NumPy's allocator, huge pages for\n"
          f"large arrays; PyTorch: {torch_allocator()}). The backward is PyTorch's backward operator,\n"
          "not autograd; 'backward from y' is given the forward's output, as autograd keeps it for sigmoid, tanh.\n"
          "NumPy: its natural expression ('new' only; gelu through SciPy's erf where installed).\n"
          "GB/s = bytes read and written / time; 'of roofline' = a parallel copy (a 3-array pass for a backward)\n"
          "moving the same bytes / fastact; 'vs X' = X's time / fastact's (above 1: fastact is faster);\n"
          "ns/el = nanoseconds per element (per core with 1 thread: the cost of the math).\n")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['activation']:<12} {r['dtype']:<8} {r['pass']:<16} {r['mode']:<9} {r['size']:>10} "
              f"{r['threads']:>3} {r['fastact_GBps']:>7.1f} {ratio(r['of_roofline']):>11} "
              f"{ratio(r['vs_numpy']):>9} {ratio(r['vs_torch']):>10} {ns(r['fastact_ns_per_element']):>13} "
              f"{ns(r['torch_ns_per_element']):>11}")
    if args.json:
        meta = {"numpy": np.__version__, "numba": numba.__version__, "torch": torch_version,
                "threads": numba.get_num_threads(), "platform": platform.platform(), "cpu": cpu_description(),
                "torch_allocator": torch_allocator(), "date": time.strftime("%Y-%m-%d")}
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        _plot(results, args.plot)
    return 0


def _plot(results: list[dict], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib: pip install 'fastact[plot]'", file=sys.stderr)
        return
    short = {"forward": "fwd", "backward": "bwd", "backward from y": "bwd y"}
    labels = [f"{r['activation']}\n{r['dtype']}\n{short.get(r['pass'], r['pass'])}\n{r['mode']}" for r in results]
    contenders = [("fastact", "fastact"), ("roofline", "roofline"), ("numpy", "NumPy"), ("torch", "PyTorch")]
    width = 0.2
    fig, ax = plt.subplots(figsize=(max(8, len(results) * 0.9), 4.5))
    for k, (key, label) in enumerate(contenders):
        vals = [r["bytes"] / r["seconds"][key] / 1e9 if r["seconds"][key] else 0 for r in results]
        ax.bar([i + (k - 1.5) * width for i in range(len(results))], vals, width, label=label)
    ax.set_xticks(range(len(results)), labels, fontsize=7)
    ax.set_ylabel("GB/s (bytes read + written / time)")
    ax.set_title(f"fastact bench, {results[0]['size']:,} elements")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def _version() -> str:
    # from the installed metadata: without importing fastact (and numba) for --version
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fastact")
    except PackageNotFoundError:
        return "0+unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastact", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fastact {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, threading layer, threads, CPU features, cache directory")
    w = sub.add_parser("warm", help="compile the kernels ahead of use (fills the on-disk cache)")
    w.add_argument("--functions", nargs="+", metavar="NAME",
                   help="activations to compile, space- or comma-separated (default: all)")
    b = sub.add_parser("bench", help="speed per activation vs the copy roofline, NumPy and PyTorch")
    b.add_argument("--functions", nargs="+", metavar="NAME",
                   help="activations to run, space- or comma-separated (default: all)")
    b.add_argument("--dtype", nargs="+", default=["float32", "float64"],
                   choices=["float32", "float64", "float16", "bfloat16"],
                   help="bfloat16 needs ml_dtypes (default: float32 float64)")
    # 2^23 and 0.05 s: a default run of about a minute (a newcomer's first look); the README's
    # tables and the targets are from --size 16777216 --budget 0.12
    b.add_argument("--size", type=int, default=1 << 23, help="elements per array (default 2^23)")
    b.add_argument("--threads", type=int, help="numba (and PyTorch) threads (default: numba's)")
    b.add_argument("--mode", nargs="+", default=["into"], metavar="MODE",
                   help="into (an existing output, the default), in-place, new (each side allocates); "
                        "space- or comma-separated")
    b.add_argument("--in-cache", action="store_true",
                   help=f"also measure {1 << 15} elements on 1 thread: the cost per element with the data in cache")
    b.add_argument("--torch-huge-pages", action="store_true",
                   help="PyTorch allocates with transparent huge pages (THP_MEM_ALLOC_ENABLE=1), as NumPy does")
    b.add_argument("--budget", type=float, default=0.05,
                   help="seconds of timing per contender and case (default 0.05; in 3 phases of at least "
                        "2 calls each)")
    b.add_argument("--json", metavar="FILE", help="write the results as JSON")
    b.add_argument("--plot", metavar="FILE.png", help="write a bar chart (needs matplotlib)")
    from fastact import _apply

    _apply.add_parser(sub)
    args = parser.parse_args(argv)
    return {"info": _info, "warm": _warm, "bench": _bench, "apply": _apply.main}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
