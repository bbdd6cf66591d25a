"""bench/convert_accuracy.py: the --render / --tracker settings (no model, no pages)."""

from __future__ import annotations

import pytest

from _bench import load_bench


@pytest.fixture(scope="module")
def ca():
    return load_bench("convert_accuracy")


def test_key_values_parse_yaml_values(ca):
    assert ca.key_values(["hold_prob=1.0", "ink_follow=false", "shading_level=[0.3, 0.6]"],
                         "--x") == {"hold_prob": 1.0, "ink_follow": False,
                                    "shading_level": [0.3, 0.6]}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        ca.key_values(["hold_prob"], "--render")


def test_tracker_config_casts_and_refuses_unknown_fields(ca):
    cfg = ca.tracker_config({"ink_follow": False, "max_gap_px": 80.0, "jump_cost": 1})
    assert cfg.ink_follow is False and cfg.max_gap_px == 80 and isinstance(cfg.max_gap_px, int)
    assert cfg.jump_cost == 1.0 and isinstance(cfg.jump_cost, float)
    with pytest.raises(SystemExit, match="not a TrackerConfig field"):
        ca.tracker_config({"no_such": 1})
