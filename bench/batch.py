"""Batch throughput: pages/s with 1 and 2 local workers and a 2-worker Dask LocalCluster.

Renders ``--pages`` synthetic pages (``training.synth``; size ``--height`` x
``--width``, sidecar calibrations) once, then converts them with
``logdigit.batch.run_batch`` into a fresh output folder per configuration:

* ``pool-1`` / ``pool-2``: the local spawn process pool, 1 and 2 workers
  (onnxruntime threads = cores / workers);
* ``dask-2``: a Dask ``LocalCluster`` of 2 worker processes x 1 thread on loopback;
* ``rerun``: ``pool-2`` again on its finished output folder (everything skipped:
  the cost of planning and hashing a finished batch).

pages/s = pages converted / wall time of the whole ``run_batch`` call (worker
start-up and model loads included). ``worker_s_per_page`` = mean per-scan time
inside the workers (hash + read + segment + vectorise + write). Prints a table
and writes ``bench/results/batch.json``.

    python bench/batch.py [--pages 40] [--height 2000] [--width 800] [--model M.onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_results  # noqa: E402
from logdigit import batch as B  # noqa: E402


def render(folder: Path, n: int, height: int, width: int) -> float:
    from training.synth import render_page, write_page

    t = time.perf_counter()
    for i in range(n):
        write_page(render_page(2024, i, height=height, width=width), folder, f"{i:06d}")
    return time.perf_counter() - t


def pick_model(arg: str | None, tmp: Path) -> tuple[str, str]:
    """(model path, description): --model, else the shipped model, else a tiny test net."""
    if arg:
        return arg, f"--model {arg}"
    try:
        from logdigit.segment import default_model_path

        p = default_model_path()
        return str(p), f"shipped {p.name}"
    except Exception:  # noqa: BLE001 - no shipped model yet
        sys.path.insert(0, str(ROOT / "tests"))
        from onnx_models import darkness_net

        p = darkness_net(tmp / "darkness.onnx")
        return str(p), "tests/onnx_models.darkness_net (no shipped model found)"


def worker_seconds(out: Path) -> float:
    db = sqlite3.connect(out / B.MANIFEST_NAME)
    walls = [json.loads(t).get("wall", 0.0) for (t,) in
             db.execute("SELECT timings FROM scans WHERE status='done'")]
    db.close()
    return sum(walls) / len(walls) if walls else float("nan")


def run(name: str, inputs: Path, out: Path, settings: B.ConvertSettings, **kw) -> dict:
    rep = B.run_batch([inputs], out, settings=settings, **kw)
    return {"config": name, "pages": rep.pages, "done": rep.counts["done"],
            "failed": rep.counts["failed"], "skipped": rep.counts["skipped"],
            "wall_s": round(rep.wall_s, 3), "pages_per_s": round(rep.pages_per_s, 4),
            "worker_s_per_page": round(worker_seconds(out), 4) if rep.counts["done"] else None}


def real_scans(k: int, tmp: Path, settings: B.ConvertSettings) -> dict:
    """Batch the ``k`` smallest real scans (by pixels), uncalibrated, 2 workers."""
    folder = ROOT.parent / "shared" / "real_scans"
    if not folder.is_dir():
        return {"skipped": f"{folder} not found"}
    import tifffile

    sizes = []
    for p in sorted(folder.rglob("*.tif")):
        with tifffile.TiffFile(p) as t:
            sizes.append((t.pages[0].imagewidth * t.pages[0].imagelength, p))
    pick = [p for _, p in sorted(sizes)[:k]]
    mpx = sum(n for n, p in sizes if p in pick) / 1e6
    rep = B.run_batch(pick, tmp / "real", workers=2, settings=settings)
    db = sqlite3.connect(tmp / "real" / B.MANIFEST_NAME)
    scans = [{"scan": rel, "status": st, "error": err,
              "timings": {k_: round(v, 2) for k_, v in json.loads(tm).items()}}
             for rel, st, err, tm in db.execute("SELECT rel, status, error, timings FROM scans")]
    db.close()
    return {"scans": scans, "done": rep.counts["done"], "failed": rep.counts["failed"],
            "mpx": round(mpx, 1), "wall_s": round(rep.wall_s, 1),
            "s_per_mpx": round(rep.wall_s / mpx, 3) if mpx else None,
            "note": "uncalibrated (no sidecars): robustness on real paper, not accuracy"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--height", type=int, default=2000)
    ap.add_argument("--width", type=int, default=800)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "batch.json"))
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--real-scans", type=int, default=0, metavar="K",
                    help="also batch the K smallest real scans of ../shared/real_scans "
                         "(uncalibrated; skipped when the folder is absent)")
    a = ap.parse_args(argv)
    try:
        import logdigit.pipeline  # noqa: F401
    except ImportError as e:
        print(f"skip: logdigit.pipeline is not available ({e})")
        return 0
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        scans = tmp / "scans"
        render_s = render(scans, a.pages, a.height, a.width)
        model, model_desc = pick_model(a.model, tmp)
        settings = B.ConvertSettings(model=model)
        rows = [run("pool-1", scans, tmp / "o1", settings, workers=1),
                run("pool-2", scans, tmp / "o2", settings, workers=2)]
        rows.append(run("rerun", scans, tmp / "o2", settings, workers=2))
        if not a.no_dask:
            from distributed import LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster:
                t = time.perf_counter()
                cluster.wait_for_workers(2)
                start_s = time.perf_counter() - t
                rows.append(run("dask-2", scans, tmp / "od", settings,
                                scheduler=cluster.scheduler_address))
                rows[-1]["cluster_start_s_excluded"] = round(start_s, 3)
        same = {p.relative_to(tmp / "o1").as_posix(): p.read_bytes()
                for p in (tmp / "o1").rglob("*.las")}
        identical = all(same == {p.relative_to(tmp / o).as_posix(): p.read_bytes()
                                 for p in (tmp / o).rglob("*.las")}
                        for o in ["o2"] + ([] if a.no_dask else ["od"]))
        real = real_scans(a.real_scans, tmp, settings) if a.real_scans else None
    by = {r["config"]: r for r in rows}
    scaling = by["pool-2"]["pages_per_s"] / by["pool-1"]["pages_per_s"]
    result = {
        "bench": "batch", "pages": a.pages, "page_size_px": [a.height, a.width],
        "model": model_desc, "render_s": round(render_s, 2), "rows": rows,
        "scaling_pool2_over_pool1": round(scaling, 3),
        "outputs_identical_across_configs": identical,
        "real_scans": real,
        "machine": {"cores": B.default_workers(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg(),
                    "note": "shared 2-core machine: other jobs were running"},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"{a.pages} pages of {a.height} x {a.width} px, model: {model_desc}")
    print(f"{'config':<8}{'pages':>6}{'failed':>7}{'wall s':>9}{'pages/s':>9}{'s/page in worker':>18}")
    for r in rows:
        print(f"{r['config']:<8}{r['pages']:>6}{r['failed']:>7}{r['wall_s']:>9.2f}"
              f"{r['pages_per_s']:>9.3f}{r['worker_s_per_page'] or float('nan'):>18.3f}")
    print(f"scaling pool-2 / pool-1: {scaling:.2f}x; outputs identical: {identical}; "
          f"load avg before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    if real:
        print(real.get("skipped") or
              f"real scans: {real['done']} done, {real['failed']} failed of {len(real['scans'])}"
              f" ({real['mpx']:.0f} Mpx) in {real['wall_s']:.0f} s, "
              f"{real['s_per_mpx']:.2f} s/Mpx with 2 workers")
        for sc in real.get("scans", []):
            print(f"  {sc['scan']}: {sc['status']} {sc['error'] or ''}")
    write_results(result, Path(a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
