"""LAS 2.0 / CSV writer: header consistent with the data, NULLs, metadata, atomic."""

from __future__ import annotations

import csv

import lasio
import numpy as np
import pytest

from logdigit.constants import NULL_VALUE
from logdigit.las import CurveColumn, DepthTable, write_table


def _table():
    d = np.round(np.arange(5000.0, 5010.01, 0.5), 6)
    gr = 75 + 50 * np.sin(d)
    gr[4:7] = np.nan
    ild = np.exp(np.cos(d))
    return DepthTable(d, "FT", 0.5, [CurveColumn("GR", "GAPI", gr, np.where(np.isnan(gr), 0, .9)),
                                     CurveColumn("ILD", "OHMM", ild, np.full(len(d), .8))],
                      source="/data/scans/well_7.tif",
                      params={"MODEL": ("m.onnx (sha 1234)", "segmentation model"),
                              "CALIB": ("cal.yaml", "calibration used")},
                      notes=["first note", "second note"])


def test_las_roundtrip(tmp_path):
    t = _table()
    p = write_table(t, tmp_path / "out.las", "las")
    las = lasio.read(p)
    assert las.version["VERS"].value == 2.0
    assert las.well["STRT"].value == 5000.0 and las.well["STOP"].value == 5010.0
    assert las.well["STEP"].value == 0.5 and las.well["NULL"].value == NULL_VALUE
    assert las.well["STRT"].unit == "FT"
    assert las.well["SRCF"].value == "well_7.tif"
    assert [c.mnemonic for c in las.curves] == ["DEPT", "GR", "ILD"]
    np.testing.assert_allclose(las.index, t.depth)
    gr = las["GR"]
    assert np.isnan(gr[4:7]).all()                     # NULL read back as NaN
    np.testing.assert_allclose(gr[:4], t.curves[0].values[:4], rtol=1e-5)
    np.testing.assert_allclose(las["ILD"], t.curves[1].values, rtol=1e-5)
    assert "m.onnx" in las.params["MODEL"].value and las.params["CALIB"].value == "cal.yaml"
    assert "second note" in las.other
    assert str(NULL_VALUE) in p.read_text()
    assert [f.name for f in tmp_path.iterdir()] == ["out.las"]   # no temp file left


def test_csv(tmp_path):
    t = _table()
    p = write_table(t, tmp_path / "out.csv", "csv")
    lines = [ln for ln in p.read_text().splitlines() if not ln.startswith("#")]
    rows = list(csv.reader(lines))
    assert rows[0] == ["DEPT[FT]", "GR[GAPI]", "GR_CONF", "ILD[OHMM]", "ILD_CONF"]
    assert len(rows) == 1 + len(t.depth)
    assert rows[5][1] == "" and float(rows[5][2]) == 0.0    # not read: empty, confidence 0
    assert float(rows[1][0]) == 5000.0 and float(rows[1][4]) == pytest.approx(0.8)
    assert "# source: /data/scans/well_7.tif" in p.read_text()


def test_unknown_format(tmp_path):
    with pytest.raises(ValueError):
        write_table(_table(), tmp_path / "x", "xls")
