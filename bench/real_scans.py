"""Robustness on real paper: ``logdigit convert`` on every scan in ``../shared/real_scans``.

The real scans (see that folder's README) have no digitised truth, so this measures
what can be measured: every file must convert or fail with one clear line (exit 1,
no traceback). Each scan is converted uncalibrated in its own ``logdigit convert``
process (as a user runs it; a crash cannot take the others down) with a QC overlay
into ``--out-dir``, and per scan the exit code, wall time, the last stderr line, the
curves written and the share of depth samples each was read on are recorded.
Look at the overlays: that is where what goes wrong on real paper shows.

The scans are unlicensed and stay out of the repository: the JSON holds their file
names and these figures only. Skips cleanly (exit 0, a note) when the folder is absent.

    python bench/real_scans.py [--scans ../shared/real_scans] [--jobs 2] [--threads 1]
        [--out-dir runs/real_scans] [--out bench/results/real_scans.json] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _results import write_results  # noqa: E402

SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def find_scans(folder: Path, only: list[str] | None = None) -> list[Path]:
    """Image files under ``folder`` (sorted by name), optionally only the named stems."""
    out = sorted((p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()),
                 key=lambda p: p.name)
    if only:
        out = [p for p in out if p.stem in set(only)]
    return out


def short_excursions(x: np.ndarray, jump: float = 0.05, longest: int = 3) -> int:
    """Samples where a curve ``x`` [N] (fractions of the track) leaves, for at most
    ``longest`` samples, the line between two samples that agree within ``jump / 2``
    by more than ``jump``: spikes no rock makes at one depth sample (a grid line or a
    neighbouring curve read for a row or two). A proxy for read errors where no truth
    exists; real sharp spikes of analogue logs count too, so compare reads, not zero."""
    x = np.asarray(x, float)
    ok = np.isfinite(x)
    hit = np.zeros(len(x), bool)
    for L in range(1, longest + 1):
        a, b = x[:-L - 1], x[L + 1:]
        with np.errstate(invalid="ignore"):
            both = ok[:-L - 1] & ok[L + 1:] & (np.abs(a - b) < jump / 2)
            for o in range(1, L + 1):
                m = x[o:len(x) - L - 1 + o]
                hit[o:len(x) - L - 1 + o] |= both & ok[o:len(x) - L - 1 + o] & (np.abs(m - (a + b) / 2) > jump)
    return int(hit.sum())


def las_summary(path: Path) -> dict:
    """Curves of a written LAS, the share of depth samples each holds a value, and
    each curve's :func:`short_excursions` (uncalibrated reads: values are fractions)."""
    import lasio

    las = lasio.read(path)
    data = {c.mnemonic: np.asarray(c.data, float) for c in las.curves[1:]}
    cov = {k: round(float(np.isfinite(v).mean()), 3) for k, v in data.items()}
    return {"samples": int(len(las.index)), "curves": cov,
            "short_excursions": {k: short_excursions(v) for k, v in data.items()},
            "mode": str(las.params["MODE"].value) if "MODE" in las.params else None}


def convert_one(scan: Path, out_dir: Path, threads: int, timeout_s: float) -> dict:
    """Run ``logdigit convert`` on one scan in a child process; its record."""
    las, qc = out_dir / f"{scan.stem}.las", out_dir / f"{scan.stem}.qc.png"
    cmd = [sys.executable, "-m", "logdigit.cli", "convert", str(scan), "-o", str(las),
           "--qc", str(qc), "--threads", str(threads), "--quiet"]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
        rc, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        rc = None   # the partial stderr of a timed-out child may come back as bytes
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    rec = {"scan": scan.name, "folder": scan.parent.name, "rc": rc,
           "seconds": round(time.perf_counter() - t0, 1),
           "traceback": "Traceback (most recent call last)" in err,
           "last_stderr_line": (err.strip().splitlines() or [""])[-1][:300]}
    if rc == 0 and las.is_file():
        rec.update(las_summary(las))
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", default=str(ROOT.parent / "shared" / "real_scans"))
    ap.add_argument("--out-dir", default=str(ROOT / "runs" / "real_scans"),
                    help="LAS files and QC overlays (keep out of the repository)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "real_scans.json"))
    ap.add_argument("--jobs", type=int, default=1, help="scans converted at once")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per convert")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per scan")
    ap.add_argument("--only", nargs="*", default=None, help="only these file stems")
    args = ap.parse_args(argv)

    folder = Path(args.scans)
    if not folder.is_dir():
        print(f"{folder}: no real scans here; nothing to do", file=sys.stderr)
        return 0
    scans = find_scans(folder, args.only)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    recs = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futs = [ex.submit(convert_one, s, out_dir, args.threads, args.timeout) for s in scans]
        for f in futs:
            r = f.result()
            recs.append(r)
            cov = r.get("curves") or {}
            print(f"{r['scan']:44s} rc={r['rc']} {r['seconds']:7.1f}s "
                  f"curves={len(cov)} mean coverage="
                  f"{np.mean(list(cov.values())) if cov else float('nan'):.2f} short excursions="
                  f"{sum((r.get('short_excursions') or {}).values())}"
                  + (f"  | {r['last_stderr_line']}" if r["rc"] != 0 else ""), flush=True)
    ok = sum(r["rc"] == 0 for r in recs)
    clean_fail = sum(r["rc"] == 1 and not r["traceback"] for r in recs)
    res = {"bench": "real_scans", "scans": len(recs), "converted": ok,
           "failed_with_message": clean_fail,
           "tracebacks": sum(r["traceback"] for r in recs),
           "other_exit": sum(r["rc"] not in (0, 1) for r in recs),
           "jobs": args.jobs, "threads": args.threads,
           "wall_s": round(time.perf_counter() - t0, 1),
           "note": "uncalibrated reads; coverage = share of depth (pixel-row) samples with a "
                   "value; short_excursions = samples off the line of their neighbours by "
                   "> 5 % of the track for <= 3 samples (spikes: grid lines or other curves "
                   "read for a row or two); no truth exists for these scans: look at the "
                   "QC overlays",
           "per_scan": recs}
    write_results(res, Path(args.out))
    print(f"{ok}/{len(recs)} converted, {clean_fail} failed with a message, "
          f"{res['tracebacks']} tracebacks, {res['other_exit']} other exits")
    return 0 if res["tracebacks"] == 0 and res["other_exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
