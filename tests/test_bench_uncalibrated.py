"""bench/uncalibrated_accuracy.py: matching read curves to truth curves (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from _bench import load_bench


@pytest.fixture(scope="module")
def ua():
    return load_bench("uncalibrated_accuracy")


def test_match_good_duplicate_spurious(ua):
    r = np.arange(400, dtype=float)
    t0 = 100 + 20 * np.sin(r / 30)           # track 0..400 px wide
    t1 = 300 + 10 * np.cos(r / 40)
    half = np.where(r < 200, t1 + 1.0, np.nan)
    reads = [t0 + 2.0,                     # 0.5 % of the width off: good, truth 0
             half,                         # truth 1 on half its rows: good
             t0 - 3.0,                     # a second read of truth 0: a duplicate
             np.full(400, 200.0),          # between the two, 25 % off: spurious
             np.where(r < 30, t1, np.nan)]  # too few rows to match
    m, cover = ua.match(reads, [t0, t1], [400.0, 400.0], tol=0.02)
    assert [j for j, _ in m] == [0, 1, 0, None, None]
    assert m[0][1] == pytest.approx(0.005) and m[3][1] > 0.2 and not np.isfinite(m[4][1])
    assert cover == {0: 1.0, 1: pytest.approx(0.5)}
