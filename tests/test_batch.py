"""logdigit batch: discovery, manifest/resume, bad files, process pool, kill -9, Dask.

Mechanics are tested with a tiny fake converter (module-level, so spawn workers
and Dask can import it); the real-pipeline tests compare batch outputs with
single ``convert_file`` runs on rendered pages.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from logdigit import batch as B
from logdigit.errors import ImageReadError
from logdigit.fsutil import atomic_write_bytes, atomic_write_text

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------
# fakes (module level: picklable by reference)
# ---------------------------------------------------------------------------

def fake_convert(scan, out, *, calibration=None, page=None, qc_path=None, segmenter=None,
                 **kwargs):
    """Reads the TIFF page, writes its pixel hash + calibration name; sleeps FAKE_SLEEP s;
    exits the process (a crash) for a scan whose name contains 'crash'."""
    if "crash" in Path(scan).name:
        os._exit(3)
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    try:
        with tifffile.TiffFile(scan) as t:
            arr = t.pages[page or 0].asarray()
    except Exception as e:  # noqa: BLE001
        raise ImageReadError(f"not a readable TIFF ({type(e).__name__})", scan) from None
    cal = Path(calibration).name if calibration else "none"
    atomic_write_text(out, f"{hashlib.sha256(arr.tobytes()).hexdigest()} {cal}\n")
    outs = [Path(out)]
    if qc_path:
        atomic_write_bytes(qc_path, b"qc")
        outs.append(Path(qc_path))
    return SimpleNamespace(outputs=outs, curves=[("GR", 0.5), ("ILD", 0.25)], warnings=[],
                           timings={"fake": 0.001})


def fail_page_1(scan, out, *, page=None, **kwargs):
    if page == 1:
        raise ImageReadError("page 1 is damaged", scan)
    return fake_convert(scan, out, page=page, **kwargs)


def slow_for_b(scan, out, **kwargs):
    """Hangs (in Python, interruptible) on scans in folder b/."""
    if Path(scan).parent.name == "b":
        time.sleep(30)
    return fake_convert(scan, out, **kwargs)


def pid_segmenter(settings):
    """A 'model' that records which process loaded it (to count loads per worker)."""
    log = os.environ.get("FAKE_SEG_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {settings.threads}\n")
    return {"pid": os.getpid(), "threads": settings.threads}


FAKE = B.Runner(convert=fake_convert, make_segmenter=None)


def slow_convert(*args, **kwargs):
    """The real converter, FAKE_SLEEP seconds slower (to kill a run mid-way)."""
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    return B.default_convert(*args, **kwargs)


def slow_real_runner(model: str) -> B.Runner:
    return B.Runner(settings=B.ConvertSettings(model=model, qc=True), convert=slow_convert)


def _tiff(path: Path, seed: int, pages: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as w:
        for _ in range(pages):
            w.write(rng.integers(0, 255, (24, 16), dtype=np.uint8))
    return path


def _bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = _tiff(folder / "tmp_good.tif", 99).read_bytes()
    files = {"corrupt": folder / "corrupt.tif", "empty": folder / "empty.tif",
             "text": folder / "notes.tif"}
    files["corrupt"].write_bytes(good[:40] + b"\xff" * 8 + good[48:60])
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not an image\n")
    (folder / "tmp_good.tif").unlink()
    return files


def _archive(root: Path, n: int = 4) -> list[Path]:
    return [_tiff(root / ("a" if i % 2 else "b") / f"{i:03d}.tif", i) for i in range(n)]


def _rows(out: Path) -> dict[str, dict]:
    db = sqlite3.connect(out / B.MANIFEST_NAME)
    db.row_factory = sqlite3.Row
    rows = {r["rel"]: dict(r) for r in db.execute("SELECT * FROM scans")}
    db.close()
    return rows


def _tree(out: Path) -> dict[str, bytes]:
    """Every output file below ``out`` (not the manifest, index or lock)."""
    skip = {B.MANIFEST_NAME, B.INDEX_NAME, B.LOCK_NAME, B.MANIFEST_NAME + "-journal"}
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in skip}


# ---------------------------------------------------------------------------
# discovery and naming
# ---------------------------------------------------------------------------

def test_discover_folder_glob_list_mirror_names(tmp_path):
    scans = _archive(tmp_path / "in", 4)
    (tmp_path / "in" / "a" / "001.yaml").write_text("sidecar, not a scan\n")
    (tmp_path / "in" / ".hidden").mkdir()
    _tiff(tmp_path / "in" / ".hidden" / "x.tif", 5)
    out = tmp_path / "in" / "out"  # inside the input tree: never walked
    _tiff(out / "old.tif", 6)
    jobs = B.discover([tmp_path / "in"], exclude=out)
    assert [j.rel for j in jobs] == ["a/001.tif", "a/003.tif", "b/000.tif", "b/002.tif"]
    assert [j.out_stem for j in jobs] == ["a/001", "a/003", "b/000", "b/002"]
    # the same files through a glob and a list file: same names, no duplicates
    lst = tmp_path / "in" / "scans.txt"
    lst.write_text("# a list\n\na/001.tif\nb/000.tif\nmissing.tif\n")
    jobs2 = B.discover([str(tmp_path / "in" / "a" / "*.tif"), lst, scans[1]], exclude=out)
    assert [j.rel for j in jobs2] == ["a/001.tif", "a/003.tif", "b/000.tif", "missing.tif"]
    assert [j.missing is not None for j in jobs2] == [False, False, False, True]
    assert B.discover([str(tmp_path / "nothing" / "*.tif")]) == []
    (tmp_path / "in" / "a" / "loop").symlink_to(tmp_path / "in")  # a symlink loop
    assert [j.rel for j in B.discover([tmp_path / "in"], exclude=out)] == \
        ["a/001.tif", "a/003.tif", "b/000.tif", "b/002.tif"]


def test_output_names_never_collide(tmp_path):
    for name in ["x.tif", "x.png", "y.tif", "y_p1.tif", "Z.tif", "z.TIF"]:
        (tmp_path / name).write_bytes(b"")
    jobs = B.discover([tmp_path])
    stems = {j.rel: j.out_stem for j in jobs}
    assert stems["x.tif"] == "x_tif" and stems["x.png"] == "x_png"
    assert stems["y.tif"] == "y" and stems["y_p1.tif"] == "y_p1_tif"
    assert len({s.lower() for s in stems.values()}) == len(stems) == 6


# ---------------------------------------------------------------------------
# one machine, inline and pool, with the fake converter
# ---------------------------------------------------------------------------

def test_bad_files_fail_with_messages_and_the_rest_is_done(tmp_path):
    good = _archive(tmp_path / "in", 3)
    bad = _bad_files(tmp_path / "in" / "bad")
    rep = B.run_batch([tmp_path / "in"], tmp_path / "out", workers=0, runner=FAKE)
    assert rep.counts == {"done": 3, "failed": 3, "skipped": 0} and not rep.ok
    rows = _rows(tmp_path / "out")
    for name in ("bad/corrupt.tif", "bad/empty.tif", "bad/notes.tif"):
        assert rows[name]["status"] == "failed"
        assert "not a readable TIFF" in rows[name]["error"]
        assert rows[name]["error_type"] == "ImageReadError"
    for p in good:
        rel = p.relative_to(tmp_path / "in").as_posix()
        r = rows[rel]
        assert r["status"] == "done" and r["sha256"] == B.sha256_file(p)
        assert json.loads(r["outputs"]) == [rel.replace(".tif", ".las")]
    assert "failed           3" in rep.summary()
    assert "FAILED bad/empty.tif" in rep.summary()
    with open(tmp_path / "out" / "index.csv") as f:
        index = list(csv.DictReader(f))
    assert len(index) == 3 * 2 + 3  # two curves per good page, one row per failure
    assert {r["coverage"] for r in index if r["status"] == "done"} == {"0.5000", "0.2500"}
    assert not bad["empty"].with_suffix(".las").exists()


def test_failure_message_names_the_file_when_it_is_not_the_scan(tmp_path):
    """A scan that fails on its sidecar calibration (or the model) says which file is at
    fault; a scan's own read error stays as it was (the scan is the row's name)."""
    from logdigit.errors import CalibrationError, ImageReadError

    scan, cal = tmp_path / "w" / "a.tif", tmp_path / "w" / "a.yaml"
    msg, kind = B.describe_error(CalibrationError("tracks[0].x must be ...", cal), scan)
    assert (msg, kind) == ("a.yaml: tracks[0].x must be ...", "CalibrationError")
    msg, _ = B.describe_error(ImageReadError("empty file (0 bytes): not an image", scan),
                              tmp_path / "w" / ".." / "w" / "a.tif")
    assert msg == "empty file (0 bytes): not an image"
    assert B.describe_error(ImageReadError("x", scan))[0] == "a.tif: x"   # scan unknown


def test_rerun_skips_redoes_changed_and_retries_only_on_request(tmp_path):
    scans = _archive(tmp_path / "in", 3)
    bad = _bad_files(tmp_path / "bad_in")["text"]
    inputs, out = [tmp_path / "in", bad], tmp_path / "out"
    B.run_batch(inputs, out, workers=0, runner=FAKE)
    first = _tree(out)
    rep = B.run_batch(inputs, out, workers=0, runner=FAKE)
    assert rep.counts == {"done": 0, "failed": 0, "skipped": 3} and rep.failed_earlier == 1
    assert not rep.ok and _tree(out) == first
    # a changed scan, a deleted output, a new sidecar calibration: exactly those redone
    _tiff(scans[0], 1234)
    (out / "in" / "a" / "001.las").unlink()
    (scans[2].with_suffix(".yaml")).write_text("depth: {}\n")
    rep = B.run_batch(inputs, out, workers=0, runner=FAKE)
    assert rep.counts == {"done": 3, "failed": 0, "skipped": 0}
    assert (out / "in" / "b" / "002.las").read_text().endswith(" 002.yaml\n")
    # the failure is retried only with retry_failed; fixing the file makes it pass
    _tiff(bad, 7)
    rep = B.run_batch(inputs, out, workers=0, runner=FAKE)
    assert rep.counts["done"] == 1  # changed bytes: redone even without the flag
    bad.write_text("broken again")
    rep = B.run_batch(inputs, out, workers=0, runner=FAKE)
    assert rep.counts["failed"] == 1
    rep = B.run_batch(inputs, out, workers=0, runner=FAKE)
    assert rep.counts == {"done": 0, "failed": 0, "skipped": 3} and rep.failed_earlier == 1
    rep = B.run_batch(inputs, out, workers=0, runner=FAKE, retry_failed=True)
    assert rep.counts == {"done": 0, "failed": 1, "skipped": 3}
    assert _rows(out)["bad_in/notes.tif"]["attempts"] == 4  # conversions of it so far


def test_another_run_never_overwrites_outputs_of_other_inputs(tmp_path):
    _tiff(tmp_path / "A" / "x.tif", 1)
    _tiff(tmp_path / "B" / "x.tif", 2)
    _tiff(tmp_path / "B" / "y.tif", 3)
    out = tmp_path / "out"
    B.run_batch([tmp_path / "A"], out, workers=0, runner=FAKE)
    first = (out / "x.las").read_bytes()
    rep = B.run_batch([tmp_path / "B"], out, workers=0, runner=FAKE)
    assert rep.counts == {"done": 1, "failed": 1, "skipped": 0}
    assert (out / "x.las").read_bytes() == first and (out / "y.las").exists()
    row = {r["key"]: r for r in _rows(out).values()}[str(tmp_path / "B" / "x.tif")]
    assert row["error_type"] == "OutputConflict" and str(tmp_path / "A" / "x.tif") in row["error"]
    # both folders in one run: names made unique by the common root
    rep = B.run_batch([tmp_path / "A", tmp_path / "B"], tmp_path / "out2", workers=0, runner=FAKE)
    assert rep.ok and sorted(_tree(tmp_path / "out2")) == ["A/x.las", "B/x.las", "B/y.las"]


def test_dry_run_plans_without_writing(tmp_path):
    scans = _archive(tmp_path / "in", 3)
    out = tmp_path / "out"
    rep = B.run_batch([tmp_path / "in"], out, workers=0, runner=FAKE, dry_run=True)
    assert not out.exists() and [p.why for p in rep.plan] == ["new"] * 3
    B.run_batch([tmp_path / "in"], out, workers=0, runner=FAKE)
    _tiff(scans[0], 77)
    before = _tree(out), (out / B.MANIFEST_NAME).read_bytes()
    rep = B.run_batch([tmp_path / "in"], out, workers=0, runner=FAKE, dry_run=True)
    assert {p.job.rel: (p.action, p.why) for p in rep.plan} == {
        "a/001.tif": ("skip", "done and unchanged"), "b/000.tif": ("convert", "scan changed"),
        "b/002.tif": ("skip", "done and unchanged")}
    assert (_tree(out), (out / B.MANIFEST_NAME).read_bytes()) == before
    assert "convert        1  scan changed" in rep.plan_summary()


def test_template_sidecar_and_touch_without_change(tmp_path):
    scans = _archive(tmp_path / "in", 2)
    tpl = tmp_path / "template.yaml"
    tpl.write_text("depth:\n  unit: FT\n  ties: [{row: 0, depth: 0}, {row: 10, depth: 1}]\n"
                   "tracks: []\n")
    scans[1].with_suffix(".yaml").write_text("sidecar")
    out = tmp_path / "out"
    B.run_batch([tmp_path / "in"], out, calibration=tpl, workers=0, runner=FAKE)
    assert (out / "b" / "000.las").read_text().endswith(" template.yaml\n")
    assert (out / "a" / "001.las").read_text().endswith(" 001.yaml\n")
    os.utime(scans[0], ns=(1, 1))  # new mtime, same bytes: hashed again, still skipped
    rep = B.run_batch([tmp_path / "in"], out, calibration=tpl, workers=0, runner=FAKE)
    assert rep.counts["skipped"] == 2
    assert _rows(out)["b/000.tif"]["mtime_ns"] == 1  # the new stat is remembered
    tpl.write_text(tpl.read_text() + "# edited\n")
    rep = B.run_batch([tmp_path / "in"], out, calibration=tpl, workers=0, runner=FAKE)
    assert rep.counts == {"done": 1, "failed": 0, "skipped": 1}  # only the template user


def test_multipage_and_page_option(tmp_path):
    _tiff(tmp_path / "in" / "m.tif", 1, pages=3)
    _tiff(tmp_path / "in" / "s.tif", 2)
    out = tmp_path / "out"
    rep = B.run_batch([tmp_path / "in"], out, workers=0, runner=FAKE)
    assert rep.pages == 4
    assert sorted(_tree(out)) == ["m_p0.las", "m_p1.las", "m_p2.las", "s.las"]
    assert len({_tree(out)[f"m_p{i}.las"] for i in range(3)}) == 3
    out2 = tmp_path / "out2"
    runner = B.Runner(settings=B.ConvertSettings(page=1, qc=True), convert=fake_convert,
                      make_segmenter=None)
    rep = B.run_batch([tmp_path / "in" / "m.tif"], out2, workers=0, runner=runner)
    assert sorted(_tree(out2)) == ["m_p1.las", "m_p1.qc.png"]
    assert _tree(out2)["m_p1.las"] == _tree(out)["m_p1.las"]


def test_a_bad_page_does_not_stop_the_other_pages(tmp_path):
    _tiff(tmp_path / "in" / "m.tif", 1, pages=3)
    out = tmp_path / "out"
    runner = B.Runner(convert=fail_page_1, make_segmenter=None)
    rep = B.run_batch([tmp_path / "in"], out, workers=0, runner=runner)
    assert rep.counts["failed"] == 1 and rep.pages == 2
    row = _rows(out)["m.tif"]
    assert row["status"] == "failed" and row["error"] == "page 1: page 1 is damaged"
    assert json.loads(row["outputs"]) == ["m_p0.las", "m_p2.las"]
    assert sorted(_tree(out)) == ["m_p0.las", "m_p2.las"]
    with open(out / B.INDEX_NAME) as f:
        index = [(r["page"], r["output"], r["mnemonic"], r["status"]) for r in csv.DictReader(f)]
    assert index == [("0", "m_p0.las", "GR", "failed"), ("0", "m_p0.las", "ILD", "failed"),
                     ("2", "m_p2.las", "GR", "failed"), ("2", "m_p2.las", "ILD", "failed")]


@pytest.mark.parametrize("workers", [0, 1])  # in this process, in a pool worker
def test_timeout_fails_the_slow_scan_only(tmp_path, workers):
    _archive(tmp_path / "in", 2)
    runner = B.Runner(settings=B.ConvertSettings(timeout=0.3), convert=slow_for_b,
                      make_segmenter=None)
    rep = B.run_batch([tmp_path / "in"], tmp_path / "out", workers=workers, runner=runner)
    assert rep.counts == {"done": 1, "failed": 1, "skipped": 0}
    row = _rows(tmp_path / "out")["b/000.tif"]
    assert row["error_type"] == "ScanTimeout" and "0.3 s --timeout" in row["error"]
    assert not (tmp_path / "out" / "b" / "000.las").exists()


def test_stale_temps_removed_and_out_dir_locked(tmp_path):
    _archive(tmp_path / "in", 1)
    out = tmp_path / "out"
    (out / "b").mkdir(parents=True)
    stale = out / "b" / ".000.abcd1234.tmp.las"
    stale.write_text("half")
    import fcntl

    fd = os.open(out / B.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with pytest.raises(B.BatchError, match="another batch"):
        B.run_batch([tmp_path / "in"], out, workers=0, runner=FAKE)
    os.close(fd)
    B.run_batch([tmp_path / "in"], out, workers=0, runner=FAKE)
    assert not stale.exists() and (out / "b" / "000.las").exists()


def test_pool_matches_inline_loads_model_once_per_worker_survives_crash(tmp_path, monkeypatch):
    _archive(tmp_path / "in", 6)
    _tiff(tmp_path / "in" / "crash.tif", 50)
    seg_log = tmp_path / "seg.log"
    monkeypatch.setenv("FAKE_SEG_LOG", str(seg_log))
    inline = tmp_path / "inline"
    # inline run without the crashing file (it would exit this process)
    B.run_batch([tmp_path / "in" / "a", tmp_path / "in" / "b"], inline, workers=0, runner=FAKE)
    seg_log.write_text("")
    runner = B.Runner(convert=fake_convert, make_segmenter=pid_segmenter)
    rep = B.run_batch([tmp_path / "in"], tmp_path / "pool", workers=2, runner=runner)
    assert rep.counts == {"done": 6, "failed": 1, "skipped": 0}
    rows = _rows(tmp_path / "pool")
    assert rows["crash.tif"]["error_type"] == "WorkerCrash"
    assert "worker process died" in rows["crash.tif"]["error"]
    pool_tree = _tree(tmp_path / "pool")
    assert pool_tree == _tree(inline)  # same a/ b/ tree, same bytes
    loads = [line.split() for line in seg_log.read_text().splitlines()]
    pids = [p for p, _ in loads]
    assert {t for _, t in loads} == {str(B.threads_per_worker(2))}  # workers x threads = cores
    main_pid = str(os.getpid())
    worker_loads = [p for p in pids if p != main_pid]
    # one load per worker process; pools: 2 workers, then one-worker pools isolating the
    # suspects (a new one after each death: at most 2 here), then 2 workers again
    assert len(worker_loads) == len(set(worker_loads)) and len(worker_loads) <= 6
    assert pids.count(main_pid) == 1  # the fail-fast check in the parent
    used = {r["worker"].rsplit(":", 1)[1] for r in rows.values() if r["status"] == "done"}
    assert used <= set(worker_loads)  # each converting worker loaded its own model ...
    assert rep.counts["done"] > len(used)  # ... and reused it
    rep = B.run_batch([tmp_path / "in"], tmp_path / "pool", workers=2, runner=runner)
    assert rep.counts == {"done": 0, "failed": 0, "skipped": 6} and rep.failed_earlier == 1


# ---------------------------------------------------------------------------
# kill -9 mid-way, then resume
# ---------------------------------------------------------------------------

_KILL_SCRIPT = """
import signal, sys
# a shell's background job starts with SIGINT ignored, and Python then keeps it so:
# Ctrl-C must act here as it does in a terminal
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
import test_batch
from logdigit import batch as B
if __name__ == "__main__":
    B.run_batch([{inp!r}], {out!r}, workers=1, runner=test_batch.{runner})  # noqa
"""


def _kill_mid_way(tmp_path: Path, inp: Path, out: Path, runner_expr: str, n: int,
                  sleep: float, sig: int = signal.SIGKILL) -> int:
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(HERE), inp=str(inp), out=str(out),
                                          runner=runner_expr))
    env = {**os.environ, "FAKE_SLEEP": str(sleep)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done, deadline = 0, time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / B.MANIFEST_NAME).exists():
                try:
                    db = sqlite3.connect(out / B.MANIFEST_NAME, timeout=5)
                    done = db.execute("SELECT count(*) FROM scans WHERE status='done'"
                                      ).fetchone()[0]
                    db.close()
                except sqlite3.OperationalError:
                    pass
            if done >= 2:
                break
            time.sleep(0.05)
    finally:
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: as a power cut would
        else:
            os.kill(proc.pid, sig)
        proc.wait(60)
    if not 2 <= done < n:
        pytest.fail(f"kill came at the wrong time ({done}/{n} done); stderr: "
                    f"{proc.stderr.read().decode()[-2000:]}")
    return done


def test_killed_run_resumes_every_page_done_once(tmp_path):
    n = 8
    _archive(tmp_path / "in", n)
    out = tmp_path / "out"
    done_before = _kill_mid_way(tmp_path, tmp_path / "in", out, "FAKE", n, sleep=0.4)
    rep = B.run_batch([tmp_path / "in"], out, workers=0, runner=FAKE)
    assert rep.ok and rep.counts["skipped"] >= done_before
    assert rep.counts["done"] + rep.counts["skipped"] == n
    rows = _rows(out)
    assert len(rows) == n and all(r["status"] == "done" for r in rows.values())
    tree = _tree(out)
    assert sorted(tree) == sorted(r["rel"].replace(".tif", ".las") for r in rows.values())
    assert not [p for p in out.rglob(".*") if p.name != B.LOCK_NAME]  # no temp files left
    ref = tmp_path / "ref"
    B.run_batch([tmp_path / "in"], ref, workers=0, runner=FAKE)
    assert _tree(ref) == tree
    db = sqlite3.connect(out / B.MANIFEST_NAME)
    states = [r[0] for r in db.execute("SELECT state FROM runs ORDER BY run_id")]
    assert states == ["running", "finished"]  # the killed run never finished


def test_sigint_stops_cleanly_then_resume_finishes(tmp_path):
    n = 6
    _archive(tmp_path / "in", n)
    out = tmp_path / "out"
    _kill_mid_way(tmp_path, tmp_path / "in", out, "FAKE", n, sleep=0.4, sig=signal.SIGINT)
    db = sqlite3.connect(out / B.MANIFEST_NAME)
    (state, done), = db.execute("SELECT state, done FROM runs").fetchall()
    db.close()
    assert state == "interrupted" and 2 <= done < n
    rep = B.run_batch([tmp_path / "in"], out, workers=0, runner=FAKE)
    assert rep.ok and rep.counts["done"] + rep.counts["skipped"] == n
    assert rep.counts["skipped"] >= done


# ---------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------

def test_dask_local_cluster_matches_local_pool(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    _archive(tmp_path / "in", 4)
    bad = _bad_files(tmp_path / "in" / "bad")["empty"]
    B.run_batch([tmp_path / "in"], tmp_path / "local", workers=0, runner=FAKE)
    seg_log = tmp_path / "seg.log"
    monkeypatch.setenv("FAKE_SEG_LOG", str(seg_log))
    monkeypatch.setattr(B, "_SEGMENTERS", {})  # this process is the (in-process) worker
    runner = B.Runner(convert=fake_convert, make_segmenter=pid_segmenter)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", host="127.0.0.1", scheduler_port=0,
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")  # loopback only
        rep = B.run_batch([tmp_path / "in"], tmp_path / "dask", runner=runner,
                          scheduler=cluster.scheduler_address)
    assert rep.counts == {"done": 4, "failed": 3, "skipped": 0}
    # loaded once, by the worker, with machine cores / worker threads onnxruntime threads
    assert seg_log.read_text().split() == [str(os.getpid()),
                                           str(B.threads_per_worker(2, os.cpu_count()))]
    assert _tree(tmp_path / "dask") == _tree(tmp_path / "local")
    rows = _rows(tmp_path / "dask")
    assert rows[bad.relative_to(tmp_path / "in").as_posix()]["status"] == "failed"
    local = _rows(tmp_path / "local")
    assert {k: (r["status"], r["error"]) for k, r in rows.items()} == \
        {k: (r["status"], r["error"]) for k, r in local.items()}


def test_dask_scheduler_unreachable_is_one_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    import socket as so

    _archive(tmp_path / "in", 1)
    with so.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(B, "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(B.BatchError, match="cannot reach the Dask scheduler"):
        B.run_batch([tmp_path / "in"], tmp_path / "out", runner=FAKE,
                    scheduler=f"tcp://127.0.0.1:{port}")


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------

def test_cli_usage_and_input_errors(tmp_path):
    from click.testing import CliRunner

    from logdigit.cli import main

    r = CliRunner().invoke(main, ["batch", "-o", str(tmp_path / "out")], prog_name="logdigit")
    assert r.exit_code == 2 and "INPUT" in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["batch", str(tmp_path / "empty"), "-o", str(tmp_path / "out")],
                           prog_name="logdigit")
    assert r.exit_code == 1
    assert r.output.startswith("logdigit: error: no scans found") and r.output.count("\n") == 1
    bad_tpl = tmp_path / "tpl.yaml"
    bad_tpl.write_text("depth: [")
    _tiff(tmp_path / "in" / "a.tif", 1)
    r = CliRunner().invoke(main, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                                  "--calibration", str(bad_tpl)])
    assert r.exit_code == 1 and "tpl.yaml: not valid YAML" in r.output


# ---------------------------------------------------------------------------
# the real pipeline on rendered pages
# ---------------------------------------------------------------------------

def _real_setup(tmp_path: Path, n: int = 3):
    """Rendered pages (TIFF + sidecar YAML via write_page), the bad files, a tiny model."""
    synth = pytest.importorskip("training.synth")
    pytest.importorskip("logdigit.pipeline")
    sys.path.insert(0, str(HERE))
    from onnx_models import darkness_net

    scans = []
    for i in range(n):
        page = synth.render_page(7, i, height=480, width=360, degrade=False, colour=False,
                                 binarize=False, n_tracks=1, curves_per_track=1,
                                 styles=["solid"])
        folder = tmp_path / "in" / ("sub" if i == 0 else "")
        scans.append(synth.write_page(page, folder, f"{i:06d}")["tif"])
    bad = _bad_files(tmp_path / "in" / "bad")
    # a good scan whose sidecar calibration does not fit it (track beyond the width)
    misfit = tmp_path / "in" / "bad" / "misfit.tif"
    misfit.write_bytes(scans[1].read_bytes())
    cal = scans[1].with_suffix(".yaml").read_text()
    misfit.with_suffix(".yaml").write_text(
        cal.replace("tracks:", "tracks:\n- x: [10, 99999]\n  curves: [{style: solid, "
                    "mnemonic: XX, left: 0, right: 1}]", 1))
    bad["misfit"] = misfit
    model = darkness_net(tmp_path / "darkness.onnx")
    return scans, bad, str(model)


def test_real_batch_equals_single_converts_and_dask(tmp_path):
    from logdigit.pipeline import convert_file

    distributed = pytest.importorskip("distributed")
    scans, bad, model = _real_setup(tmp_path)
    settings = B.ConvertSettings(model=model, qc=True)
    out = tmp_path / "out"
    rep = B.run_batch([tmp_path / "in"], out, workers=1, settings=settings)
    assert rep.counts == {"done": 3, "failed": 4, "skipped": 0}, rep.summary()
    rows = _rows(out)
    for name in ("corrupt", "empty", "notes"):
        r = rows[f"bad/{name}.tif"]
        assert r["status"] == "failed" and r["error_type"] == "ImageReadError" and r["error"]
    r = rows["bad/misfit.tif"]
    assert r["error_type"] == "CalibrationError" and "99999" in r["error"]
    ref = tmp_path / "ref"
    for scan in scans:
        rel = scan.relative_to(tmp_path / "in").with_suffix("")
        res = convert_file(scan, ref / f"{rel}.las", model=model, qc_path=ref / f"{rel}.qc.png")
        assert rows[f"{rel}.tif"]["curves"] == json.dumps([[None, m, c] for m, c in res.curves])
    tree = _tree(out)
    assert tree == _tree(ref) and len(tree) == 6  # LAS + QC per page, byte for byte
    with open(out / B.INDEX_NAME) as f:
        index = [r for r in csv.DictReader(f) if r["status"] == "done"]
    assert len(index) == 3 and all(float(r["coverage"]) > 0.5 for r in index)
    # the same on a Dask cluster (one in-process worker, loopback)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1", scheduler_port=0,
                                  dashboard_address=None) as cluster:
        rep = B.run_batch([tmp_path / "in"], tmp_path / "dask", settings=settings,
                          scheduler=cluster.scheduler_address)
    assert rep.counts == {"done": 3, "failed": 4, "skipped": 0}
    assert _tree(tmp_path / "dask") == tree


def test_real_cli_exit_codes_summary_and_resume(tmp_path):
    from click.testing import CliRunner

    from logdigit.cli import main

    _, bad, model = _real_setup(tmp_path, n=2)
    args = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", model,
            "--workers", "0", "-q"]
    r = CliRunner().invoke(main, args, prog_name="logdigit")
    assert r.exit_code == 1, r.output
    assert "done             2" in r.output and "failed           4" in r.output
    assert "FAILED bad/empty.tif" in r.output and "pages/s" in r.output
    for p in bad.values():
        p.unlink()
    bad["misfit"].with_suffix(".yaml").unlink()
    r = CliRunner().invoke(main, args, prog_name="logdigit")
    assert r.exit_code == 0, r.output
    assert "skipped          2" in r.output and "done             0" in r.output


def test_real_killed_run_resumes_to_the_same_outputs(tmp_path):
    scans, bad, model = _real_setup(tmp_path, n=5)
    for p in bad.values():
        p.unlink()
    out = tmp_path / "out"
    _kill_mid_way(tmp_path, tmp_path / "in", out, f"slow_real_runner({model!r})", 5, sleep=0.5)
    rep = B.run_batch([tmp_path / "in"], out, workers=0, runner=slow_real_runner(model))
    assert rep.ok and rep.counts["done"] + rep.counts["skipped"] == 5
    assert rep.counts["skipped"] >= 2
    ref = tmp_path / "ref"
    B.run_batch([tmp_path / "in"], ref, workers=0, runner=slow_real_runner(model))
    assert _tree(out) == _tree(ref) and len(_tree(out)) == 10  # LAS + QC, no temp files
    rows = _rows(out)
    assert len(rows) == 5 and all(r["status"] == "done" for r in rows.values())


def test_dask_worker_death_is_recorded_and_the_batch_goes_on(tmp_path):
    distributed = pytest.importorskip("distributed")
    import dask

    _archive(tmp_path / "in", 3)
    _tiff(tmp_path / "in" / "crash.tif", 50)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None) as cluster:
        rep = B.run_batch([tmp_path / "in"], tmp_path / "out", runner=FAKE,
                          scheduler=cluster.scheduler_address)
    assert rep.counts == {"done": 3, "failed": 1, "skipped": 0}
    row = _rows(tmp_path / "out")["crash.tif"]
    assert row["error_type"] == "WorkerCrash" and "KilledWorker" in row["error"]
