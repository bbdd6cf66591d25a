"""Peak memory and time of ``read_scan`` + ``analyse`` on a tall 1-bit G4 scan.

Writes a synthetic 2,000 x 150,000 px 1-bit CCITT G4 TIFF (tracks, grid, depth-track
blobs, curves; 0.3 deg skew is not applied, the scan is straight) into a temporary
folder, then reads and analyses it in a fresh subprocess and reports that process's
peak RSS (``VmHWM`` from /proc/self/status, else ``resource.getrusage``; it includes the
Python + numpy/OpenCV baseline, which is reported separately). Target: well under 2 GB.

    python bench/read_memory.py [--height 150000] [--width 2000] [--real]

``--real`` also measures every scan under ``../shared/real_scans/`` (skipped when the
folder is absent). Prints a table and writes ``bench/results/read_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REAL = HERE.parent.parent / "shared" / "real_scans"

CHILD = r"""
import json, resource, sys, time

def hwm_kb():
    # VmHWM: peak RSS of this process image (resets at exec, unlike ru_maxrss, which
    # inherits the parent's peak on Linux)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

t0 = time.perf_counter()
from logdigit.io import read_scan
from logdigit.layout import analyse
base = hwm_kb()
t1 = time.perf_counter()
scan = read_scan(sys.argv[1])
t2 = time.perf_counter()
after_read = hwm_kb()
lay = None if sys.argv[2] == "read" else analyse(scan.grey)
t3 = time.perf_counter()
peak = hwm_kb()
print(json.dumps({"baseline_mb": base / 1024, "after_read_mb": after_read / 1024,
                  "peak_mb": peak / 1024, "read_s": t2 - t1, "analyse_s": t3 - t2,
                  "shape": list(scan.shape), "mode": scan.mode,
                  "compression": scan.compression,
                  "tracks": None if lay is None else lay.tracks,
                  "skew_deg": None if lay is None else lay.skew_deg,
                  "grid_minor_px": None if lay is None else lay.grid_minor_px}))
"""


def write_tall_g4(path: Path, h: int, w: int) -> None:
    """A synthetic straight log strip as 1-bit G4 (built in row blocks)."""
    from PIL import Image
    ink = np.zeros((h, w), bool)
    m = int(0.05 * w)
    tw, dw = int(0.28 * w), int(0.08 * w)
    t1 = (m, m + tw)
    d = (t1[1], t1[1] + dw)
    t2 = (d[1], d[1] + tw)
    t3 = (t2[1], t2[1] + tw)
    top = 1500
    rng = np.random.default_rng(0)
    for _ in range(300):  # header text blocks
        y, x = int(rng.integers(20, top - 40)), int(rng.integers(10, w - 200))
        ink[y:y + 12, x:x + int(rng.integers(20, 180))] = True
    for a, b in (t1, t2, t3):
        for i in range(1, 10):
            ink[top:, a + round(i * (b - a) / 10)] = True
        ink[top::10, a:b] = True
        ink[top + 1::50, a:b] = True
        for x in (a, b):
            ink[top:, x - 1:x + 2] = True
    for y in range(top + 50, h - 20, 100):  # depth numbers
        ink[y:y + 14, d[0] + dw // 4:d[1] - dw // 4] = True
    yy = np.arange(top, h)
    for j, (a, b) in enumerate((t1, t2, t3)):
        xc = (a + (b - a) * (0.5 + 0.35 * np.sin(yy / (60.0 + 20 * j) + j))).astype(int)
        ink[yy, xc] = True
        ink[yy, xc + 1] = True
    img = Image.fromarray(~ink)
    del ink
    img.save(path, compression="group4", dpi=(200, 200))


def measure(path: Path, what: str = "analyse") -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENCV_FOR_THREADS_NUM="1")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), what], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=150_000)
    ap.add_argument("--width", type=int, default=2000)
    ap.add_argument("--real", action="store_true", help="also measure ../shared/real_scans")
    ap.add_argument("--out", default=str(HERE / "results" / "read_memory.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "tall_g4.tif"
        t = time.perf_counter()
        write_tall_g4(p, args.height, args.width)
        print(f"wrote {args.width} x {args.height} G4 TIFF ({p.stat().st_size / 1e6:.1f} MB) "
              f"in {time.perf_counter() - t:.1f} s")
        r = measure(p)
        r["file"] = f"synthetic {args.width}x{args.height} G4"
        rows.append(r)
    if args.real:
        if not REAL.is_dir():
            print(f"skipping real scans: {REAL} not found")
        else:
            for f in sorted(REAL.glob("*/*.tif")):
                r = measure(f)
                r["file"] = f"{f.parent.name}/{f.name}"
                rows.append(r)
    print(f"{'file':44s} {'W x H':>14s} {'base MB':>8s} {'read MB':>8s} {'peak MB':>8s} "
          f"{'read s':>7s} {'anal. s':>7s}")
    for r in rows:
        wh = f"{r['shape'][1]}x{r['shape'][0]}"
        print(f"{r['file'][:44]:44s} {wh:>14s} {r['baseline_mb']:8.0f} {r['after_read_mb']:8.0f} "
              f"{r['peak_mb']:8.0f} {r['read_s']:7.2f} {r['analyse_s']:7.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
