"""Write what the docstrings' examples print (each declaration's ``examples=`` in
``src/fastact/activations.py``) from the tests' float64 references, not from fastact.

    python tools/make_examples.py            # rewrite the examples that differ
    python tools/make_examples.py --check    # list them and exit 1 (what the tests run)

Each kind's example input is the one its docstrings show (``Kind.example_x``, the weight,
grad_output); the outputs come from ``tests/references.py`` (element-wise, prelu, gated,
logsumexp) and the mpmath references of ``tests/test_softmax.py`` (softmax, softmin,
log_softmax, sparsemax), printed as NumPy prints a float64 array. The doctests
(``tests/test_docs.py``) then check that fastact prints the same.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DECLARATIONS = ROOT / "src" / "fastact" / "activations.py"
sys.path.insert(0, str(ROOT))

import fastact as fa  # noqa: E402
from fastact._docs import EXAMPLE_ROW_GRAD, EXAMPLE_WEIGHT  # noqa: E402
from fastact._kinds import kind_of  # noqa: E402
from tests import references as refs  # noqa: E402
from tests.test_prelu import reference as prelu_reference  # noqa: E402
from tests.test_softmax import ref_backward as rowwise_backward  # noqa: E402
from tests.test_softmax import ref_forward as rowwise_forward  # noqa: E402


def _value(expression: str) -> np.ndarray:
    # the docstrings' inputs are NumPy expressions (np.array([...]), np.ones(3))
    return np.asarray(eval(expression, {"np": np}), dtype=np.float64)


def _elementwise(act, x: np.ndarray, g: np.ndarray) -> tuple:
    params = act.example_params
    return refs.reference_forward(act.name, x, params), refs.reference_backward(act.name, g, x, params)


def _channelwise(act, x: np.ndarray, g: np.ndarray) -> tuple:
    y, gx, gw = prelu_reference(x, _value(EXAMPLE_WEIGHT), g, 1)
    return y, (gx, gw)


def _rowwise(act, x: np.ndarray, g: np.ndarray) -> tuple:
    y = rowwise_forward(act.name, x)
    return y, rowwise_backward(act.name, _value(EXAMPLE_ROW_GRAD), y)[0]


def _gated(act, x: np.ndarray, g: np.ndarray) -> tuple:
    m = x.shape[-1] // 2
    first, second = x[..., :m], x[..., m:]
    params = act.example_params
    return (refs.gated_forward(act.name, first, second, params),
            np.concatenate(refs.gated_backward(act.name, g, first, second, params), axis=-1))


def _reduction(act, x: np.ndarray, g: np.ndarray) -> tuple:
    # d logsumexp / dx = g * softmax(x) along the reduced axis
    return refs.logsumexp_reference(x, axis=-1), g[..., None] * rowwise_forward("softmax", x)


_BY_KIND: dict[str, Callable[..., tuple]] = {
    "elementwise": _elementwise, "channelwise": _channelwise, "rowwise": _rowwise, "gated": _gated,
    "reduction": _reduction,
}


def _printed(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(repr(np.asarray(v, np.float64)) for v in value) + ")"
    return repr(np.asarray(value, np.float64))


def expected() -> dict[str, tuple[str, str]]:
    """{name: (forward, backward) as the examples print them}, from the references."""
    out = {}
    with np.printoptions(legacy=False):
        for name, act in fa.ACTIVATIONS.items():
            kind = kind_of(act)
            x, g = _value(kind.example_x), _value(kind.example_ones)
            forward, backward = _BY_KIND[act.kind](act, x, g)
            out[name] = (_printed(forward), _printed(backward))
    return out


def differences() -> dict[str, tuple[tuple[str, str], tuple[str, str]]]:
    """{name: (declared, from the references)} where the two differ."""
    return {name: (fa.ACTIVATIONS[name].examples, want) for name, want in expected().items()
            if tuple(fa.ACTIVATIONS[name].examples) != want}


_EXAMPLES = re.compile(r'examples=\(\n(\s*)("(?:[^"\\]|\\.)*"),\n\s*("(?:[^"\\]|\\.)*"),\n(\s*)\),')


def _literal(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def rewrite(text: str, changes: dict[str, tuple[tuple[str, str], tuple[str, str]]]) -> tuple[str, set[str]]:
    """text with each changed examples tuple replaced (matched by its declared content:
    a tuple shared by two declarations, hardswish's and hard_silu's, changes once), and the
    names whose tuple was found."""
    by_content = {}
    for name, (old, new) in changes.items():
        if by_content.setdefault(tuple(old), new) != new:
            raise SystemExit(f"make_examples: {name} shares its examples with another activation, "
                             f"and their references differ")
    found = {name for name, (old, _) in changes.items()
             if any((ast.literal_eval(m[2]), ast.literal_eval(m[3])) == tuple(old) for m in _EXAMPLES.finditer(text))}

    def replace(m: re.Match) -> str:
        old = (ast.literal_eval(m[2]), ast.literal_eval(m[3]))
        if old not in by_content:
            return m[0]
        new = by_content[old]
        return f"examples=(\n{m[1]}{_literal(new[0])},\n{m[1]}{_literal(new[1])},\n{m[4]}),"

    return _EXAMPLES.sub(replace, text), found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="list the examples that differ and exit 1")
    args = parser.parse_args()
    changes = differences()
    for name, (old, new) in changes.items():
        print(f"{name}: declared {old!r}\n{' ' * len(name)}  references {new!r}")
    if args.check or not changes:
        return 1 if changes else 0
    text, found = rewrite(DECLARATIONS.read_text(), changes)
    missing = set(changes) - found
    if missing:
        raise SystemExit(f"make_examples: no examples=( ... ) tuple found for {', '.join(sorted(missing))}")
    tmp = DECLARATIONS.with_suffix(".py.tmp")
    try:  # written whole, then renamed over the file: never half-written
        tmp.write_text(text)
        tmp.replace(DECLARATIONS)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"rewrote {len(changes)} examples in {DECLARATIONS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
