"""``logdigit convert`` end to end with a tiny hand-made model: LAS/CSV/QC output,
sidecar and uncalibrated reads, one-line errors with exit 1, usage errors exit 2."""

from __future__ import annotations

import csv

import cv2
import lasio
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("onnx")
from onnx_models import darkness_net, random_net  # noqa: E402

from logdigit.cli import main  # noqa: E402

H, W, X0, X1 = 1800, 520, 80, 480
ROWS = np.arange(H)
FRAC = 0.5 + 0.35 * np.sin(ROWS / 130.0)           # truth, fraction of track width
TIES = [{"row": 100, "depth": 1000.0}, {"row": 1700, "depth": 1160.0}]   # 10 rows / ft


def _scan(path, skew=0.0, line_px=3, pen_px=2, divisions=0):
    img = np.full((H, W), 255, np.uint8)
    lines = [X0, X1] + [X0 + (X1 - X0) * k // (divisions + 1) for k in range(1, divisions + 1)]
    for x in lines:
        img[:, x - line_px // 2:x - line_px // 2 + line_px] = 140   # track lines (not curve class)
    for y in range(0, H, 20):
        img[y, X0:X1] = 200                               # light grid
    xs = X0 + FRAC * (X1 - X0)
    cv2.polylines(img, [np.stack([xs * 16, ROWS * 16], 1).round().astype(np.int32)], False,
                  0, pen_px, cv2.LINE_AA, 4)
    cv2.imwrite(str(path), img)
    return path


def _cal(path, **depth):
    d = {"depth": {"unit": "FT", "ties": TIES, **depth},
         "tracks": [{"x": [X0, X1], "curves": [
             {"style": "solid", "mnemonic": "GR", "unit": "GAPI", "left": 0, "right": 150}]}]}
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(darkness_net(tmp_path_factory.mktemp("m") / "dark.onnx", threshold=0.3))


def _run(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)], prog_name="logdigit")


def _truth_gr(depth):
    rows = 100 + (np.asarray(depth) - 1000.0) * 10.0
    return 150 * np.interp(rows, ROWS, FRAC)


def test_convert_las_calibrated(tmp_path, model):
    scan, out = _scan(tmp_path / "s.png"), tmp_path / "out" / "s.las"
    r = _run(scan, "-o", out, "--calibration", _cal(tmp_path / "c.yaml"), "--model", model,
             "--threads", 1, "--quiet")
    assert r.exit_code == 0, r.output
    las = lasio.read(out)
    d = las.index
    assert las.well["STEP"].value == 0.5 and np.allclose(np.diff(d), 0.5)
    assert las.well["STRT"].value == d[0] and las.well["STOP"].value == d[-1]
    assert d[0] >= 990 and d[-1] <= 1170
    gr = las["GR"]
    ok = np.isfinite(gr)
    assert ok.mean() > 0.98
    err = np.abs(gr[ok] - _truth_gr(d[ok])) / 150 * 100          # % of track width
    assert np.median(err) < 0.3 and err.max() < 2.0
    assert "dark.onnx" in las.params["MODEL"].value and las.params["MODE"].value == "calibrated"
    assert las.well["SRCF"].value == "s.png"


def test_convert_csv_qc_step_rows(tmp_path, model):
    scan = _scan(tmp_path / "s.png")
    out, qc = tmp_path / "s.csv", tmp_path / "qc.png"
    r = _run(scan, "-o", out, "--calibration", _cal(tmp_path / "c.yaml", rows=[500, 900]),
             "--model", model, "--format", "csv", "--qc", qc, "--step", 2)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "GR" in r.output
    rows = list(csv.reader(ln for ln in out.read_text().splitlines() if not ln.startswith("#")))
    assert rows[0] == ["DEPT[FT]", "GR[GAPI]", "GR_CONF"]
    d = np.array([float(r[0]) for r in rows[1:]])
    conf = np.array([float(r[2]) for r in rows[1:]])
    assert np.allclose(np.diff(d), 2.0) and 1040 <= d[0] and d[-1] <= 1080
    assert (conf > 0.5).mean() > 0.95
    img = cv2.imread(str(qc))
    assert img is not None and img.shape[1] == W
    # something was drawn in colour
    assert (np.abs(img[..., 2].astype(int) - img[..., 0]) > 100).sum() > 300


@pytest.mark.parametrize("name,flag,want", [("o.csv", None, "csv"), ("o.CSV", None, "csv"),
                                            ("o.las", None, "las"), ("o.txt", None, "las"),
                                            ("o.csv", "las", "las"), ("o.las", "csv", "csv")])
def test_output_format_follows_the_extension_unless_given(tmp_path, model, name, flag, want):
    scan = _scan(tmp_path / "s.png")
    args = [scan, "-o", tmp_path / name, "--calibration", _cal(tmp_path / "c.yaml"),
            "--model", model, "--quiet"] + (["--format", flag] if flag else [])
    r = _run(*args)
    assert r.exit_code == 0, r.output
    text = (tmp_path / name).read_text()
    assert text.startswith("~Version") == (want == "las")
    assert ("DEPT[FT],GR[GAPI]" in text) == (want == "csv")


def test_depth_step_that_cannot_fit_is_refused_and_a_needless_fine_one_noted(tmp_path, model):
    """The fixture reads 1,600 rows at 10 rows/ft (160 ft): --step 100 would leave one
    sample, so it is refused before any work (one line, exit 1, no output); --step 0.005
    is finer than a tenth of a row: written, with a note saying the samples between rows
    are interpolated. Uncalibrated, the step is in rows."""
    scan = _scan(tmp_path / "s.png")
    cal = _cal(tmp_path / "c.yaml")
    r = _run(scan, "-o", tmp_path / "big.las", "--calibration", cal, "--model", model,
             "--step", 100)
    assert r.exit_code == 1 and "fewer than 3 samples" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "big.las").exists()
    r = _run(scan, "-o", tmp_path / "fine.las", "--calibration", cal, "--model", model,
             "--step", 0.005)
    assert r.exit_code == 0, r.output
    assert "finer than a tenth of a pixel row" in r.output
    assert lasio.read(tmp_path / "fine.las").well["STEP"].value == pytest.approx(0.005)
    r = _run(scan, "-o", tmp_path / "u.las", "--model", model, "--step", 5000)
    assert r.exit_code == 1 and "PX" in r.output, r.output
    short = _cal(tmp_path / "short.yaml", rows=[500, 504])       # 0.4 ft at the default 0.5
    r = _run(scan, "-o", tmp_path / "s.las", "--calibration", short, "--model", model)
    assert r.exit_code == 1 and "widen depth.rows" in r.output, r.output


def test_sidecar_and_uncalibrated(tmp_path, model):
    scan = _scan(tmp_path / "well.png")
    r = _run(scan, "-o", tmp_path / "u.las", "--model", model)
    assert r.exit_code == 0, r.output
    assert "no calibration" in r.output
    las = lasio.read(tmp_path / "u.las")
    assert las.curves[0].unit == "PX" and "UNCALIBRATED" in las.other
    names = [c.mnemonic for c in las.curves[1:]]
    assert names and all(n.startswith("T") and n.endswith("_SOLID") for n in names)
    _cal(tmp_path / "well.yaml")                                # sidecar beside the scan
    r = _run(scan, "-o", tmp_path / "c.las", "--model", model, "--quiet")
    assert r.exit_code == 0, r.output
    las = lasio.read(tmp_path / "c.las")
    assert las.params["MODE"].value == "calibrated" and "well.yaml" in las.params["CALIB"].value
    assert [c.mnemonic for c in las.curves] == ["DEPT", "GR"]


def test_multipage_scan_converts_every_page_and_survives_a_bad_one(tmp_path, model):
    """Without --page every page of a multi-page TIFF is converted in turn, page N to
    OUTPUT_pN (QC_pN); a page too small to hold a log is reported with its number, the
    other pages are still written, and the exit status is 1. With --page N only that
    page goes to OUTPUT itself."""
    import tifffile

    img = cv2.imread(str(_scan(tmp_path / "p.png")), cv2.IMREAD_GRAYSCALE)
    flipped = np.ascontiguousarray(img[:, ::-1])
    tif = tmp_path / "multi.tif"
    with tifffile.TiffWriter(tif) as tw:
        for a in (img, flipped):
            tw.write(a, compression="zlib")
    _cal(tmp_path / "multi.yaml")
    r = _run(tif, "-o", tmp_path / "out.las", "--qc", tmp_path / "qc.png", "--model", model)
    assert r.exit_code == 0, r.output
    assert "2 pages" in r.output
    for k in (0, 1):
        assert (tmp_path / f"qc_p{k}.png").exists()
    gr0 = lasio.read(tmp_path / "out_p0.las")["GR"]
    assert np.isfinite(gr0).mean() > 0.9
    assert int(lasio.read(tmp_path / "out_p1.las").params["PAGE"].value) == 1
    assert not (tmp_path / "out.las").exists()
    r = _run(tif, "-o", tmp_path / "one.las", "--page", "1", "--model", model, "--quiet")
    assert r.exit_code == 0 and (tmp_path / "one.las").exists(), r.output
    bad = tmp_path / "bad.tif"
    with tifffile.TiffWriter(bad) as tw:
        tw.write(img)
        tw.write(np.zeros((10, 10), np.uint8))
    r = _run(bad, "-o", tmp_path / "b.las", "--model", model, "--quiet")
    assert r.exit_code == 1
    assert "page 1:" in r.output and "too small" in r.output
    assert "1 of 2 pages failed" in r.output
    assert (tmp_path / "b_p0.las").exists() and not (tmp_path / "b_p1.las").exists()


def test_warnings_kept_in_the_las_header(tmp_path, model):
    """What stderr warns about a read (here: a listed curve not on the scan) is also in
    the LAS ~Other section, so the file carries it to whoever opens it later (and
    ``--quiet`` runs, which print no notes, keep it)."""
    scan = _scan(tmp_path / "well.png")
    cal = yaml.safe_load(_cal(tmp_path / "c.yaml").read_text())
    cal["tracks"][0]["curves"].append({"style": "dotted", "mnemonic": "NOPE", "unit": "V/V",
                                       "left": 0, "right": 1})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cal))
    r = _run(scan, "-o", tmp_path / "w.las", "--calibration", tmp_path / "c.yaml",
             "--model", model)
    assert r.exit_code == 0, r.output
    assert "NOPE: no dotted curve found" in r.output
    assert "WARNING: NOPE: no dotted curve found" in lasio.read(tmp_path / "w.las").other


def _bad_inputs(tmp_path, model):
    text = tmp_path / "notes.tif"
    text.write_text("this is not an image\n" * 20)
    good = _scan(tmp_path / "good.png")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:2000])
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.full((32, 32), 255, np.uint8))
    cal_out = tmp_path / "wide.yaml"
    cal_out.write_text(yaml.safe_dump({"depth": {"ties": TIES}, "tracks": [
        {"x": [100, 5000], "curves": [{"style": "solid", "mnemonic": "GR", "left": 0, "right": 1}]}]}))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage" * 50)
    nometa = random_net(tmp_path / "nometa.onnx", metadata={})
    c = _cal(tmp_path / "c.yaml")
    return {
        "not an image": ([text, "-o", tmp_path / "o.las", "--model", model], text),
        "truncated": ([trunc, "-o", tmp_path / "o.las", "--model", model], trunc),
        "too small": ([small, "-o", tmp_path / "o.las", "--model", model], small),
        "calibration": ([good, "-o", tmp_path / "o.las", "--calibration", cal_out, "--model", model],
                        cal_out),
        "junk model": ([good, "-o", tmp_path / "o.las", "--calibration", c, "--model", junk], junk),
        "no metadata": ([good, "-o", tmp_path / "o.las", "--calibration", c, "--model", nometa],
                        nometa),
        "missing scan": ([tmp_path / "absent.tif", "-o", tmp_path / "o.las", "--model", model],
                         tmp_path / "absent.tif"),
        "page": ([good, "-o", tmp_path / "o.las", "--model", model, "--page", 3], good),
        "unwritable output": ([good, "-o", junk / "o.las", "--calibration", c, "--model", model],
                              junk),
        "output is the scan": ([good, "-o", good, "--calibration", c, "--model", model], good),
        "overlay is the scan": ([good, "-o", tmp_path / "o.las", "--qc", good, "--calibration", c,
                                 "--model", model], good),
        "overlay is the output": ([good, "-o", tmp_path / "o.las", "--qc", tmp_path / "o.las",
                                   "--calibration", c, "--model", model], tmp_path / "o.las"),
    }


@pytest.mark.parametrize("case", ["not an image", "truncated", "too small", "calibration",
                                  "junk model", "no metadata", "missing scan", "page",
                                  "unwritable output", "output is the scan",
                                  "overlay is the scan", "overlay is the output"])
def test_errors_one_line_exit_1(tmp_path, model, case):
    args, named = _bad_inputs(tmp_path, model)[case]
    before = (tmp_path / "good.png").read_bytes()
    r = _run(*args)
    assert (tmp_path / "good.png").read_bytes() == before      # the scan is never touched
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("logdigit: error: "), r.output
    assert str(named) in lines[0]
    assert "Traceback" not in r.output
    assert not (tmp_path / "o.las").exists()


@pytest.mark.parametrize("args", [["x.png"], ["x.png", "-o", "o.las", "--format", "xls"],
                                  ["x.png", "-o", "o.las", "--step", "-1"],
                                  ["x.png", "-o", "o.las", "--device", "tpu"]])
def test_usage_errors_exit_2(tmp_path, args):
    r = _run(*args)
    assert r.exit_code == 2, r.output


def test_convert_file_api_reuses_segmenter(tmp_path, model):
    from logdigit.pipeline import convert_file
    from logdigit.segment import Segmenter

    seg = Segmenter(model, threads=1)
    cal = _cal(tmp_path / "c.yaml")
    results = [convert_file(_scan(tmp_path / f"s{i}.png"), tmp_path / f"s{i}.las",
                            calibration=cal, segmenter=seg, qc_path=tmp_path / f"q{i}.png",
                            progress=bool(i))
               for i in range(2)]
    for i, res in enumerate(results):
        assert res.calibrated and res.outputs == [tmp_path / f"s{i}.las", tmp_path / f"q{i}.png"]
        assert res.curves[0][0] == "GR" and res.curves[0][1] > 0.98
        assert {"read", "layout", "segment", "vectorise", "write", "qc"} <= set(res.timings)


@pytest.mark.parametrize("widths, scale", [([2, 3, 3, 1], 1), ([5, 5, 4], 1), ([6, 5, 6], 2),
                                           ([7, 8, 7], 3), ([10] * 5, 4), ([30] * 5, 4),
                                           ([9, 9], 1)])
def test_segmentation_scale_from_line_widths(widths, scale):
    from types import SimpleNamespace

    from logdigit.pipeline import segmentation_scale

    assert segmentation_scale(SimpleNamespace(lines=[{"width": w} for w in widths])) == scale


def test_thick_lines_segmented_at_reduced_resolution(tmp_path, model):
    """A 400 dpi-like scan (9 px lines, a 10 px pen) is segmented at 1/4 and read at full
    resolution: the curve comes out where it is, with no block offset."""
    scan = _scan(tmp_path / "thick.png", line_px=9, pen_px=10, divisions=3)
    out = tmp_path / "thick.las"
    r = _run(scan, "-o", out, "--calibration", _cal(tmp_path / "c.yaml"), "--model", model,
             "--threads", 1, "--quiet")
    assert r.exit_code == 0, r.output
    las = lasio.read(out)
    assert las.params["SEGSC"].value == "1/4"
    gr = las["GR"]
    ok = np.isfinite(gr)
    assert ok.mean() > 0.98
    err = np.abs(gr[ok] - _truth_gr(las.index[ok])) / 150 * 100
    assert np.median(err) < 0.5 and np.percentile(err, 95) < 1.5


def test_segment_scaled_upsamples_onto_the_full_grid():
    """Each full-resolution pixel gets the class of the reduced pixel it falls in."""
    from logdigit.pipeline import segment_scaled

    class Echo:   # "segmenter" returning the dark pixels of what it is given as class 1
        def predict(self, grey, progress=None, out=None, code=None):
            out[0][...] = (grey < 128).astype(np.uint8)
            code[...] = 7

    grey = np.full((37, 50), 255, np.uint8)
    grey[8:12, 20:24] = 0                   # one 4 x 4 block at 1/4: reduced pixel (2, 5)
    classes = np.zeros((37, 50), np.uint8)
    code = np.zeros((37, 50), np.uint8)
    segment_scaled(Echo(), grey, 4, classes, code)
    want = np.zeros((37, 50), np.uint8)
    want[8:12, 20:24] = 1
    np.testing.assert_array_equal(classes, want)
    assert (code == 7).all()
