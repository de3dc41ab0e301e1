"""Start-up costs in fresh processes, with a warm on-disk cache: `import fastact`, and the
first call of a function (each in its own process, so that nothing is shared).

    python bench/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

IMPORT = "import time; t = time.perf_counter(); import fastact; print(time.perf_counter() - t)"
FIRST_CALL = """
import time, numpy as np, fastact as fa
x = np.linspace(-1, 1, {n}, dtype=np.float32)
t = time.perf_counter(); fa.{name}(x); print(time.perf_counter() - t)
"""


def run(code: str, runs: int) -> float:
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout.split()[-1]) for _ in range(runs)]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "fastact", "warm"], check=True, capture_output=True)
    print(f"import fastact: {run(IMPORT, args.runs) * 1e3:.0f} ms (median of {args.runs} processes)")
    for name, n in (("relu", 1000), ("relu", 1 << 20), ("elu", 1000), ("leaky_relu", 1000)):
        t = run(FIRST_CALL.format(name=name, n=n), args.runs)
        print(f"first call fa.{name}({n} float32 elements), after import: {t * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
