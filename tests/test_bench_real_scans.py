"""bench/real_scans.py: the spike count it reports for reads without truth."""

from __future__ import annotations

import numpy as np
import pytest

from _bench import load_bench


@pytest.fixture(scope="module")
def rs():
    return load_bench("real_scans")


def test_short_excursions_count_spikes_not_the_curve(rs):
    y = np.arange(2000)
    x = 0.5 + 0.3 * np.sin(y / 150.0)              # a smooth read: no excursions
    x[300:340] = np.nan                            # gaps neither
    assert rs.short_excursions(x) == 0
    spiky = x.copy()
    spiky[[100, 700, 701, 1500]] += 0.2            # a 1-, a 2- and a 1-sample spike
    n = rs.short_excursions(spiky)
    assert n == 4
    step = x.copy()
    step[1000:] += 0.2                             # a step is not an excursion
    assert rs.short_excursions(step) == 0
