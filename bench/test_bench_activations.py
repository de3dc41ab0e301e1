"""pytest-benchmark: fastact against NumPy, PyTorch and the copy roofline, one group per case."""

from __future__ import annotations

import pytest

from fastact._bench import CONTENDERS

from .conftest import CASES, run


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bench(benchmark, case, contender):
    run(benchmark, case, contender)
