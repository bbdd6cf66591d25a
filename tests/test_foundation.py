"""Foundation: constants, calibration schema, config layering, atomic writes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from logdigit import constants as C
from logdigit.calibration import (CurveCalibration, calibration_from_dict, fraction_to_value,
                                  load_calibration, value_to_fraction)
from logdigit.errors import CalibrationError
from logdigit.fsutil import atomic_open
from training.config import ConfigError, resolve, save_resolved

GOOD = {
    "depth": {"unit": "FT", "ties": [{"row": 100, "depth": 5000}, {"row": 1100, "depth": 5100}]},
    "tracks": [
        {"x": [10, 200], "curves": [
            {"style": "solid", "mnemonic": "GR", "unit": "GAPI", "left": 0, "right": 150},
            {"style": "dashed", "mnemonic": "CALI", "unit": "IN", "left": 16, "right": 6}]},
        {"curves": [{"style": "dotted", "mnemonic": "ILD", "unit": "OHMM", "left": 0.2,
                     "right": 2000, "scale": "log", "wrap": True}]},
    ],
}


def test_class_map_consistent():
    assert C.NUM_CLASSES == 5
    for style, cid in C.STYLE_TO_CLASS.items():
        assert C.CLASS_MAP[cid] == style
    assert C.class_map_json()["0"] == "background"


def test_calibration_roundtrip(tmp_path):
    cal = calibration_from_dict(GOOD)
    p = tmp_path / "cal.yaml"
    cal.save(p)
    again = load_calibration(p)
    assert again == cal
    assert float(cal.depth_at(600)) == pytest.approx(5050)
    assert float(cal.depth_at(0)) == pytest.approx(4990)  # extrapolated
    assert float(cal.row_at(5100)) == pytest.approx(1100)


@pytest.mark.parametrize("curve", [
    CurveCalibration("solid", "GR", left=0, right=150),
    CurveCalibration("dashed", "NPHI", left=0.45, right=-0.15),
    CurveCalibration("dotted", "ILD", left=0.2, right=2000, scale="log"),
])
def test_value_fraction_inverse(curve):
    f = np.linspace(-0.5, 1.5, 41)
    np.testing.assert_allclose(value_to_fraction(fraction_to_value(f, curve), curve), f, atol=1e-12)
    assert value_to_fraction(curve.left, curve) == pytest.approx(0)
    assert value_to_fraction(curve.right, curve) == pytest.approx(1)


def _bad(path, value):
    import copy
    d = copy.deepcopy(GOOD)
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return d


@pytest.mark.parametrize("path,value,needle", [
    (("tracks", 0, "curves", 0, "style"), "wavy", "style"),
    (("tracks", 0, "curves", 0, "right"), 0, "left == right"),
    (("tracks", 1, "curves", 0, "left"), 0, "log scale"),
    (("depth", "ties"), [{"row": 100, "depth": 5000}, {"row": 50, "depth": 5100}], "increase"),
    (("depth", "unit"), "yards", "depth.unit"),
    (("tracks", 0, "colour"), "red", "unknown key"),
    (("tracks", 0, "curves", 0, "mnemonic"), "G R", "LAS 2.0 mnemonic cannot: use e.g. G_R"),
    (("tracks", 0, "curves", 0, "mnemonic"), "RHOB.1", "use e.g. RHOB_1"),
    (("tracks", 0, "curves", 0, "mnemonic"), "dept", "depth index"),
    (("tracks", 0, "curves", 0, "mnemonic"), 123, "must be text"),
    (("tracks", 0, "curves", 0, "mnemonic"), " ", "missing"),
    (("tracks", 1, "curves", 0, "mnemonic"), "gr", "already used by tracks\\[0\\].curves\\[0\\]"),
])
def test_calibration_refused(path, value, needle):
    with pytest.raises(CalibrationError, match=needle):
        calibration_from_dict(_bad(path, value))


def test_calibration_outside_image():
    cal = calibration_from_dict(GOOD)
    with pytest.raises(CalibrationError, match="outside the image"):
        cal.validate_image(width=150, height=2000)
    cal.validate_image(width=300, height=2000)


def test_calibration_file_errors(tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "missing.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("depth: [unclosed\n")
    with pytest.raises(CalibrationError, match="YAML"):
        load_calibration(p)


@dataclasses.dataclass
class _Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)


@dataclasses.dataclass
class _Cfg:
    epochs: int = 1
    name: str = "x"
    optim: _Optim = dataclasses.field(default_factory=_Optim)


def test_config_layering(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("epochs: 5\noptim: {lr: 0.01}\n")
    cfg = resolve(_Cfg(), y, ["optim.lr=0.5", "name=run"])
    assert (cfg.epochs, cfg.optim.lr, cfg.name) == (5, 0.5, "run")
    out = save_resolved(cfg, tmp_path / "run")
    assert resolve(_Cfg(), out) == cfg
    with pytest.raises(ConfigError, match="unknown config key optim.momentum"):
        resolve(_Cfg(), overrides=["optim.momentum=0.9"])
    with pytest.raises(ConfigError, match="integer"):
        resolve(_Cfg(), overrides=["epochs=abc"])


def test_atomic_open_keeps_old_file_on_error(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write("new partial")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["out.txt"]


def test_runtime_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, logdigit, logdigit.cli, logdigit.calibration; "
            "import importlib, pkgutil\n"
            "for m in pkgutil.iter_modules(logdigit.__path__):\n"
            "    importlib.import_module('logdigit.' + m.name)\n"
            "assert 'torch' not in sys.modules, 'runtime imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os
    from logdigit.fsutil import atomic_temp_path, atomic_write_text
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        tmp, _ = atomic_temp_path(tmp_path / "b.png")
        assert (os.stat(tmp_path / "a.txt").st_mode & 0o777) == 0o644
        assert (os.stat(tmp).st_mode & 0o777) == 0o644
    finally:
        os.umask(mask)


def test_atomic_path_renames_on_success_and_cleans_up_on_error(tmp_path):
    from logdigit.fsutil import atomic_path
    p = tmp_path / "out.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert p.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["out.bin"]
    with atomic_path(p) as tmp:
        tmp.write_bytes(b"new")
    assert p.read_bytes() == b"new"
    assert [q.name for q in tmp_path.iterdir()] == ["out.bin"]
