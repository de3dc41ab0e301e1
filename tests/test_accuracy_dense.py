"""The README's accuracy promise: every element-wise forward within its stated bound over
every float (a stride through the bit patterns of every binade, subnormals included, and
dense grids where results approach the underflow threshold), against the correctly
rounded result (float64 references for float32, mpmath for float64)."""

from __future__ import annotations

import numpy as np
import pytest

import fastact as fa

from .conftest import CASES, DTYPES
from .dense import dense_grid, worst
from .references import REFERENCES


@pytest.fixture(scope="module", params=DTYPES, ids=lambda d: np.dtype(d).name)
def grid(request):
    return dense_grid(request.param)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_forward_within_its_bound_on_every_float(name, params, grid):
    ref = REFERENCES[name]
    # (piecewise linear in float64: against the float64 formula, whose operations are
    # fastact's, so that its bound there is exactness)
    bound = ref.dense_bound(params, grid.dtype.name)
    ulp, at = worst(name, lambda v: getattr(fa, name)(v, *params), grid, params)
    assert ulp <= bound, f"{name}{list(params)} {grid.dtype}: {ulp:.0f} ulp at x = {at!r}, bound {bound}"


def test_the_grids_cover_every_binade():
    for dtype in DTYPES:
        x = dense_grid(dtype)
        finite = x[np.isfinite(x) & (x != 0)]
        exponents = np.unique(np.frexp(np.abs(finite))[1])
        fi = np.finfo(dtype)
        assert exponents.min() <= fi.minexp - fi.nmant + 2 and exponents.max() == fi.maxexp  # subnormals to the top
        assert (finite < 0).any() and (np.abs(finite) < fi.tiny).any()
