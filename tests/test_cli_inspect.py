"""`logdigit inspect` and `logdigit calibrate` through click's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from _layout_synth import make_log, shift_rows
from logdigit.calibration import calibration_from_dict, load_calibration
from logdigit.cli import main
from logdigit.errors import CalibrationError


@pytest.fixture(scope="module")
def log_page():
    return make_log(h=2400, w=900, skew=0.5, seed=11)


@pytest.fixture()
def scan(tmp_path, log_page):
    p = tmp_path / "scan.tif"
    Image.fromarray(log_page.image >= 128).convert("1").save(p, compression="group4",
                                                            dpi=(200, 200))
    return p


def test_inspect_scan_stored_sideways_with_an_orientation_tag(tmp_path, log_page):
    """A log stored turned 90 deg with Orientation 6 (rotate clockwise to view) is read
    upright: the same tracks as the upright file, and the report says it was turned."""
    import tifffile

    up, side = tmp_path / "up.tif", tmp_path / "side.tif"
    tifffile.imwrite(up, log_page.image)
    tifffile.imwrite(side, np.ascontiguousarray(np.rot90(log_page.image, 1)),
                     extratags=[(274, "H", 1, 6, True)])
    reps = []
    for p in (up, side):
        res = CliRunner().invoke(main, ["inspect", str(p), "--json", "--no-picture"])
        assert res.exit_code == 0, res.output
        reps.append(json.loads(res.output)["pages"][0])
    assert reps[1]["layout"]["tracks"] == reps[0]["layout"]["tracks"]
    assert len(reps[0]["layout"]["tracks"]) == 3
    assert reps[1]["scan"]["orientation"] == 6
    res = CliRunner().invoke(main, ["inspect", str(side), "--no-picture"])
    assert "turned by its orientation tag 6" in res.output


def test_inspect_text_and_picture(scan, tmp_path, log_page):
    pic = tmp_path / "pic.png"
    res = CliRunner().invoke(main, ["inspect", str(scan), "--picture", str(pic)])
    assert res.exit_code == 0, res.output
    assert "track 3" in res.output and "skew           +0.5" in res.output
    assert "grid           minor 10.0" in res.output
    im = Image.open(pic)
    assert im.size[0] > 300 and im.size[1] > 300


def test_inspect_json(scan, tmp_path, log_page):
    res = CliRunner().invoke(main, ["inspect", str(scan), "--json", "--no-picture"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["n_pages"] == 1 and len(d["pages"]) == 1
    page = d["pages"][0]
    assert page["scan"]["mode"] == "1-bit" and page["scan"]["compression"] == "group4"
    lay = page["layout"]
    assert lay["skew_deg"] == pytest.approx(0.5, abs=0.03)
    assert len(lay["tracks"]) == 3
    for got, want in zip(lay["tracks"], log_page.tracks):
        assert abs(got[0] - want[0]) <= 2 and abs(got[1] - want[1]) <= 2
    assert page["picture"] is None


def test_inspect_default_picture_in_cwd(scan, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    res = CliRunner().invoke(main, ["inspect", str(scan)])
    assert res.exit_code == 0, res.output
    assert (work / "scan.inspect.png").is_file()


def test_inspect_multipage(tmp_path):
    pages = [make_log(h=900, w=600, seed=k, header=150).image for k in range(2)]
    frames = [Image.fromarray(p >= 128).convert("1") for p in pages]
    mp = tmp_path / "multi.tif"
    frames[0].save(mp, save_all=True, append_images=frames[1:], compression="group4")
    res = CliRunner().invoke(main, ["inspect", str(mp), "--json", "--picture",
                                    str(tmp_path / "m.png")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert [p["scan"]["page"] for p in d["pages"]] == [0, 1]
    assert (tmp_path / "m.p0.png").is_file() and (tmp_path / "m.p1.png").is_file()
    res = CliRunner().invoke(main, ["inspect", str(mp), "--page", "1", "--json",
                                    "--no-picture"])
    assert res.exit_code == 0 and [p["scan"]["page"] for p in json.loads(res.output)["pages"]] == [1]
    res = CliRunner().invoke(main, ["inspect", str(mp), "--page", "5"])
    assert res.exit_code == 1
    assert "page 5 does not exist" in res.output and len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("content,needle", [
    (b"", "empty file"),
    (b"plain words, not a picture\n", "not a supported image"),
    (b"II*\x00" + b"\x07" * 80, "corrupt"),
])
def test_inspect_bad_file_one_line(tmp_path, content, needle):
    p = tmp_path / "bad.tif"
    p.write_bytes(content)
    res = CliRunner().invoke(main, ["inspect", str(p)], prog_name="logdigit")
    assert res.exit_code == 1
    out = res.output.strip()
    assert len(out.splitlines()) == 1 and out.startswith("logdigit: error: ")
    assert str(p) in out and needle in out
    assert "Traceback" not in res.output


def test_inspect_too_small(tmp_path):
    p = tmp_path / "tiny.png"
    Image.fromarray(np.full((40, 400), 255, np.uint8)).save(p)
    res = CliRunner().invoke(main, ["inspect", str(p)])
    assert res.exit_code == 1 and "too small" in res.output


def test_calibrate_template(scan, tmp_path, log_page):
    out = tmp_path / "cal.yaml"
    res = CliRunner().invoke(main, ["calibrate", str(scan), "-o", str(out)])
    assert res.exit_code == 0, res.output
    prev = tmp_path / "cal.preview.png"
    assert prev.is_file()
    text = out.read_text()
    assert "EDIT" in text and "depth: null" in text
    # unedited: refused, naming the key
    with pytest.raises(CalibrationError, match=r"depth.ties\[0\].depth"):
        load_calibration(out)
    data = yaml.safe_load(text)
    assert len(data["tracks"]) == 3
    # the track columns are the detected ones (stored pixels, centre row)
    from logdigit.layout import Layout
    lay = Layout(shape=log_page.image.shape, skew_deg=0.5)
    for td, want in zip(data["tracks"], log_page.tracks):
        xd = lay.columns_to_deskewed(np.array(td["x"], float))
        assert abs(xd[0] - want[0]) <= 3 and abs(xd[1] - want[1]) <= 3
    rows = [t["row"] for t in data["depth"]["ties"]]
    assert rows[0] < rows[1] and log_page.header_bottom - 20 <= rows[0]
    assert rows[1] <= log_page.log_bottom + 20
    # a person fills in the nulls: it loads and fits the image
    for k, t in enumerate(data["depth"]["ties"]):
        t["depth"] = 1000.0 + 100 * k
    for k, td in enumerate(data["tracks"]):
        td["curves"][0].update(left=0, right=150, mnemonic=f"GR{k + 1}", unit="GAPI")
    cal = calibration_from_dict(data)
    h, w = log_page.image.shape
    cal.validate_image(w, h)
    assert [t.x for t in cal.tracks] == [tuple(td["x"]) for td in data["tracks"]]


def test_calibrate_template_on_drifting_paper(tmp_path):
    """Paper sliding sideways 0 -> 24 -> 0 px down the scan: the template's columns are
    where the borders run at the middle of depth.rows (the row the converter holds
    calibration columns at), not the detected average columns."""
    s = make_log(h=3000, w=800, seed=20, header=300)
    dx = np.round(24 * np.sin(np.pi * np.arange(3000) / 3000)).astype(int)
    img = shift_rows(np.pad(s.image, ((0, 0), (0, 40)), constant_values=255), dx)
    p = tmp_path / "drift.png"
    Image.fromarray(img).save(p)
    out = tmp_path / "cal.yaml"
    res = CliRunner().invoke(main, ["calibrate", str(p), "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    r0, r1 = data["depth"]["rows"]
    ref = int(round((r0 + r1) / 2))
    assert len(data["tracks"]) == 3
    for td, (a, b) in zip(data["tracks"], s.tracks):
        assert abs(td["x"][0] - (a + dx[ref])) <= 3 and abs(td["x"][1] - (b + dx[ref])) <= 3, \
            (td["x"], (a + dx[ref], b + dx[ref]))


def test_calibrate_refuses_overwrite(scan, tmp_path):
    out = tmp_path / "cal.yaml"
    out.write_text("mine\n")
    res = CliRunner().invoke(main, ["calibrate", str(scan), "-o", str(out)])
    assert res.exit_code == 1
    assert "refusing to overwrite" in res.output and "--force" in res.output
    assert out.read_text() == "mine\n"
    res = CliRunner().invoke(main, ["calibrate", str(scan), "-o", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert "depth:" in out.read_text()


def test_calibrate_blank_page_still_writes_a_template(tmp_path):
    p = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300), 255, np.uint8)).save(p)
    out = tmp_path / "c.yaml"
    res = CliRunner().invoke(main, ["calibrate", str(p), "-o", str(out), "--unit", "m"])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    assert data["depth"]["unit"] == "M"
    assert data["tracks"][0]["x"] == [None, None]


def test_calibrate_bad_scan(tmp_path):
    p = tmp_path / "x.tif"
    p.write_bytes(b"nothing")
    res = CliRunner().invoke(main, ["calibrate", str(p), "-o", str(tmp_path / "c.yaml")])
    assert res.exit_code == 1 and "not a supported image" in res.output
    assert not (tmp_path / "c.yaml").exists()
