"""Every Python code block in the README runs as written: the doctest-style ones print
what the README says, the others run as a script (in a fresh process, as a user would
paste them into a file), skipped where the extra they import is not installed."""

from __future__ import annotations

import doctest
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
# what a block may import beyond fastact's own dependencies, and the extra that brings it
EXTRAS = {"dask": "dask", "torch": "torch"}


def _blocks() -> list:
    text = README.read_text()
    params = []
    for match in re.finditer(r"^( *)```python\n(.*?)^\1```", text, flags=re.S | re.M):
        code = textwrap.dedent(match.group(2))
        line = text[: match.start()].count("\n") + 1
        needs = sorted({extra for module, extra in EXTRAS.items()
                        if re.search(rf"^(?:>>> )?\s*(?:import|from) {module}\b", code, flags=re.M)})
        params.append(pytest.param(code, needs, id=f"line{line}" + "".join(f"-{n}" for n in needs)))
    return params


BLOCKS = _blocks()


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize(("code", "needs"), BLOCKS)
def test_readme_block_runs(code, needs, tmp_path):
    for module in needs:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs the [{module}] extra")
    if ">>>" in code:
        test = doctest.DocTestParser().get_doctest(code, {}, "README", str(README), 0)
        runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
        runner.run(test)
        assert runner.failures == 0 and runner.tries > 0
        return
    script = tmp_path / "readme_block.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
