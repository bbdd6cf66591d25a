"""Renderer throughput and class-pixel statistics.

Times ``training.synth.render_tile`` in this one process with OpenCV held to one
thread (instances/s/core = instances / CPU seconds of the process; wall-clock
rate also shown), times a few whole ``render_page`` calls, and counts class
pixels over the rendered tiles: share of pixels per class, share of tiles that
contain each class, and curve styles per page. Prints a table and writes
``bench/results/render_speed.json``. torch is never imported.

    python bench/render_speed.py [--count 400] [--size 512] [--task multiclass] [--pages 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench._results import write_results  # noqa: E402

from logdigit.constants import CLASS_MAP, NUM_CLASSES  # noqa: E402
from training.synth import RenderConfig, render_page, render_tile  # noqa: E402


def bench_tiles(count: int, size: int, task: str, seed: int, tiles_per_page: int) -> dict:
    cfg = RenderConfig()
    render_tile(seed + 99, 0, task=task, size=size, cfg=cfg)        # warm-up: textures, imports
    pix = np.zeros(NUM_CLASSES, np.int64)
    present = np.zeros(NUM_CLASSES, np.int64)
    flags = {"binarized": 0, "colour": 0, "skewed": 0, "in_body": 0}
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(count):
        t = render_tile(seed, i, task=task, size=size, cfg=cfg, tiles_per_page=tiles_per_page)
        bc = np.bincount(t["mask"].ravel(), minlength=NUM_CLASSES)
        pix += bc
        present += bc > 0
        m = t["meta"]
        flags["binarized"] += m["binarized"]
        flags["colour"] += m["colour"]
        flags["skewed"] += m["skew_deg"] != 0
        flags["in_body"] += m["in_body"]
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    names = CLASS_MAP if task == "multiclass" else {0: "background", 1: "curve"}
    n_cls = len(names)
    return {
        "count": count, "size": size, "task": task, "tiles_per_page": tiles_per_page,
        "cpu_s": cpu, "wall_s": wall,
        "instances_per_s_per_core": count / cpu, "instances_per_s_wall": count / wall,
        "ms_per_instance_cpu": 1000 * cpu / count,
        "class_pixel_fraction": {names[k]: float(pix[k] / pix.sum()) for k in range(n_cls)},
        "tiles_with_class": {names[k]: float(present[k] / count) for k in range(n_cls)},
        "tile_flags": {k: v / count for k, v in flags.items()},
    }


def bench_pages(n: int, seed: int) -> dict:
    cfg = RenderConfig()
    c0 = time.process_time()
    mpx = 0.0
    styles: dict[str, int] = {}
    for i in range(n):
        p = render_page(seed, 10_000 + i, cfg)
        mpx += p.mask.size / 1e6
        for s in p.meta["styles"]:
            styles[s] = styles.get(s, 0) + 1
    cpu = time.process_time() - c0
    return {"pages": n, "cpu_s": cpu, "s_per_page": cpu / max(n, 1), "mpx_per_s": mpx / max(cpu, 1e-9),
            "mean_mpx_per_page": mpx / max(n, 1), "curve_styles": styles}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--task", choices=("multiclass", "binary"), default="multiclass")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiles-per-page", type=int, default=8)
    ap.add_argument("--pages", type=int, default=4, help="whole pages to time (0: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "render_speed.json")
    a = ap.parse_args(argv)
    cv2.setNumThreads(1)
    res = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                       "cores_used": 1, "opencv": cv2.__version__, "numpy": np.__version__},
           "tiles": bench_tiles(a.count, a.size, a.task, a.seed, a.tiles_per_page)}
    if a.pages:
        res["pages"] = bench_pages(a.pages, a.seed)
    t = res["tiles"]
    print(f"render_tile {a.task} {a.size}x{a.size}, {a.count} instances, 1 core")
    print(f"  instances/s/core (CPU time) {t['instances_per_s_per_core']:8.1f}   (target >= 50)")
    print(f"  instances/s (wall)          {t['instances_per_s_wall']:8.1f}")
    print(f"  ms/instance (CPU)           {t['ms_per_instance_cpu']:8.2f}")
    print(f"  {'class':<12}{'pixel %':>10}{'tiles with':>12}")
    for k, v in t["class_pixel_fraction"].items():
        print(f"  {k:<12}{100 * v:>10.3f}{100 * t['tiles_with_class'][k]:>11.1f}%")
    print("  tile flags: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in t["tile_flags"].items()))
    if a.pages:
        p = res["pages"]
        print(f"render_page: {p['pages']} pages, {p['s_per_page']:.2f} s/page, {p['mpx_per_s']:.1f} Mpx/s, "
              f"{p['mean_mpx_per_page']:.1f} Mpx/page; styles {p['curve_styles']}")
    return write_results(res, a.out)


if __name__ == "__main__":
    main()
