"""Benchmark: speed and memory of ``logdigit convert``.

1. A 2,000 x 40,000 px page (a rendered page repeated down the strip): wall time and
   Mpx/s of the whole ``convert_file`` (read, layout, deskew, segmentation, vectorise,
   LAS) against the segmentation network alone on the same pixels (the full-width
   bands convert uses, without their halo, no post-processing); each the best of
   ``--repeat`` interleaved runs. Target: convert at >= 80 % of the network-alone
   throughput. The halo (rows above and below each band that the network must see so
   tiles equal the whole image) alone caps the ratio at band / (band + 2 halo).
2. Peak RSS of a whole convert of a 2,000 x 150,000 px 1-bit CCITT G4 TIFF, run in a
   subprocess that reports its own high-water mark (``VmHWM`` of /proc/self/status;
   ``getrusage(RUSAGE_CHILDREN)`` is also recorded, but on Linux a child's ``ru_maxrss``
   starts from the parent's peak at fork, so it overstates). Target < 2 GB.

Prints a table, writes ``bench/results/convert_speed.json``.

    python bench/convert_speed.py --threads 2            # shipped model
    python bench/convert_speed.py --model m.onnx --skip-rss
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SEED = 901000


def strip_page(rows: int, width: int = 2000, binarize: bool = False):
    """(image uint8 [rows, width], calibration) made by repeating one rendered page."""
    from logdigit.calibration import Calibration, DepthCalibration
    from training.synth import render_page

    page = render_page(SEED, 0, height=10000, width=width, header=False, skew_deg=0.0,
                       binarize=binarize, colour=False)
    reps = -(-rows // page.image.shape[0])
    img = np.tile(page.image, (reps, 1))[:rows]
    if binarize:
        img = np.where(img < 128, 0, 255).astype(np.uint8)
    cal = page.calibration
    cal = Calibration(depth=DepthCalibration(unit=cal.depth.unit, ties=cal.depth.ties),
                      tracks=cal.tracks)
    return img, cal


def network_alone(seg, img: np.ndarray) -> float:
    """Seconds the network alone takes over ``img`` in full-width bands of the tile height."""
    from logdigit.segment import BATCH_PIXELS, normalise

    s = seg.info.stride
    h, w = img.shape
    pw = -(-w // s) * s
    band = max(seg.tile, (BATCH_PIXELS // pw) // s * s)   # the band convert uses, less its halo
    seg.run(np.zeros((1, 1, band, pw), np.float32))       # warm-up
    total = 0.0
    for y in range(0, h, band):
        blk = np.full((band, pw), 255, np.uint8)
        part = img[y:y + band]
        blk[:len(part), :w] = part
        x = normalise(blk, seg.info.input_norm)[None, None]
        t = time.perf_counter()
        seg.run(x)
        total += time.perf_counter() - t
    return total


RSS_CHILD = """
import sys, resource
from logdigit.pipeline import convert_file
res = convert_file(sys.argv[1], sys.argv[2], calibration=sys.argv[3],
                   model=None if sys.argv[4] == '-' else sys.argv[4],
                   threads=int(sys.argv[5]) if sys.argv[5] != '-' else None)
print({k: round(v, 2) for k, v in res.timings.items()})
hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')]
print('VMHWM_KB', hwm[0].split()[1] if hwm else -1)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped model)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rows", type=int, default=40000, help="speed page height")
    ap.add_argument("--rss-rows", type=int, default=150000, help="memory scan height")
    ap.add_argument("--repeat", type=int, default=3, help="speed runs (best of each is kept)")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "convert_speed.json"))
    args = ap.parse_args(argv)

    from logdigit.segment import Segmenter

    seg = Segmenter(args.model, threads=args.threads)
    out = Path(args.out)
    result: dict = json.loads(out.read_text()) if out.exists() else {}   # keep other parts
    result.update({"bench": "convert_speed", "model": seg.info.describe(),
                   "threads": args.threads, "cpu_count": os.cpu_count()})
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_speed:
            result["speed"] = speed_part(seg, args.rows, Path(tmp), args.repeat)
        if not args.skip_rss:
            del seg
            result["memory"] = memory_part(args, Path(tmp))
    os.makedirs(out.parent, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def speed_part(seg, rows: int, tmp: Path, repeat: int = 3) -> dict:
    """Whole convert vs network alone on one strip page, each the best of ``repeat`` runs."""
    import tifffile

    from logdigit._tracker_jit import kernel
    from logdigit.pipeline import convert_file
    from logdigit.segment import BATCH_PIXELS

    img, cal = strip_page(rows)
    h, w = img.shape
    mpx = h * w / 1e6
    scan, calp = tmp / "strip.tif", tmp / "strip.yaml"
    tifffile.imwrite(scan, img, compression="zlib")
    cal.save(calp)
    st = seg.info.stride
    band = max(seg.tile, (BATCH_PIXELS // (-(-w // st) * st)) // st * st)
    nets, convs, results = [], [], []
    for _ in range(repeat):   # interleaved, best of each: other load on the machine only slows
        nets.append(network_alone(seg, img))
        t0 = time.perf_counter()
        results.append(convert_file(scan, tmp / "strip.las", calibration=calp, segmenter=seg))
        convs.append(time.perf_counter() - t0)
    del img
    t_net, t_conv = min(nets), min(convs)
    res = results[int(np.argmin(convs))]
    print(f"{w} x {h} px ({mpx:.0f} Mpx): network alone {t_net:.1f} s "
          f"({mpx / t_net:.2f} Mpx/s); convert {t_conv:.1f} s ({mpx / t_conv:.2f} Mpx/s) "
          f"= {100 * t_net / t_conv:.0f} % of network throughput (target >= 80 %); best of "
          f"{repeat}: network {', '.join(f'{v:.1f}' for v in nets)} s, convert "
          f"{', '.join(f'{v:.1f}' for v in convs)} s")
    print("  stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in res.timings.items()))
    return {"shape": [w, h], "mpx": round(mpx, 1),
            "network_alone_s": round(t_net, 2), "network_mpx_s": round(mpx / t_net, 3),
            "convert_s": round(t_conv, 2), "convert_mpx_s": round(mpx / t_conv, 3),
            "convert_vs_network": round(t_net / t_conv, 3), "repeat": repeat,
            "network_runs_s": [round(v, 2) for v in nets],
            "convert_runs_s": [round(v, 2) for v in convs],
            "halo_rows": seg.halo, "band_pixels": BATCH_PIXELS, "band_rows": band,
            "halo_cap": round(band / (band + 2 * seg.halo), 3),
            "tracker_compiled": kernel() is not None,
            "stages_s": {k: round(v, 2) for k, v in res.timings.items()},
            "curves": [[m, round(c, 3)] for m, c in res.curves]}


def memory_part(args, tmp: Path) -> dict:
    """Peak RSS of a whole convert of a tall 1-bit G4 scan, in a fresh subprocess."""
    from PIL import Image

    big, cal = strip_page(args.rss_rows, binarize=True)
    bscan, bcal = tmp / "big_g4.tif", tmp / "big.yaml"
    Image.fromarray(big > 127).save(bscan, compression="group4")
    cal.save(bcal)
    bh, bw = big.shape
    del big
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(bscan), str(tmp / "big.las"), str(bcal),
         args.model or "-", str(args.threads) if args.threads else "-"],
        capture_output=True, text=True, cwd=str(ROOT))
    t_big = time.perf_counter() - t0
    hwm = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("VMHWM_KB")]
    peak_mb = int(hwm[0]) / 1024 if hwm else float("nan")
    ru_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{bw} x {bh} px 1-bit G4 ({bscan.stat().st_size / 1e6:.1f} MB): peak RSS "
          f"{peak_mb:.0f} MB (VmHWM; target < 2048 MB), {t_big:.0f} s, rc {proc.returncode}")
    return {"shape": [bw, bh], "file_mb": round(bscan.stat().st_size / 1e6, 1),
            "peak_rss_mb": round(peak_mb, 1), "ru_maxrss_children_mb": round(ru_mb, 1),
            "wall_s": round(t_big, 1), "returncode": proc.returncode,
            "timings": proc.stdout.strip()[-400:], "stderr_tail": proc.stderr.strip()[-400:]}


if __name__ == "__main__":
    sys.exit(main())
