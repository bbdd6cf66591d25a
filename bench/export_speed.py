"""Throughput of one model as PyTorch eager, onnxruntime fp32 and onnxruntime int8.

Prints a table and writes ``bench/results/export_speed.json``: Mpx/s, ms per tile,
achieved GFLOP/s (conv MACs counted from the ONNX graph, x2) next to the CPU's
nominal fp32 peak and a measured torch sgemm, and the curve-class IoU of each variant
on rendered tiles.

    python bench/export_speed.py                       # the shipped model (+ its checkpoint if given)
    python bench/export_speed.py --checkpoint runs/cpu/best.pt --model m.onnx --int8 m.int8.onnx

Without ``--checkpoint`` PyTorch eager runs the same architecture (from the model's
metadata) with untrained weights: its speed is valid, its IoU is not reported.
Without ``--int8`` the int8 variant is made here (static QDQ, calibrated on rendered
tiles). Benchmarks are not tests: run them alone, the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_results  # noqa: E402
from export.flops import conv_macs  # noqa: E402
from export.onnx_export import read_metadata  # noqa: E402
from export.parity import normalise, ort_session  # noqa: E402
from export.quantize import cpu_has_vnni, quantize_int8, session_metrics  # noqa: E402
from export.samples import EXPORT_SEED, labelled_tiles  # noqa: E402
from logdigit import constants as C  # noqa: E402


def cpu_info() -> dict:
    """Name, cores, nominal clock and nominal fp32 peak of this CPU.

    FLOP/cycle/core: 2 FMA pipes x lanes x 2. AVX-512 on AMD Zen 4 runs on 256-bit
    pipes (16 FLOP per FMA pipe), so AVX2 and Zen 4 AVX-512 both give 32; Intel
    AVX-512 with two 512-bit FMA units gives 64. The clock is /proc/cpuinfo's
    ``cpu MHz`` (nominal; boost clocks can exceed it, so "% of peak" can too).
    """
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    def field(name):
        for line in text.splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
        return ""
    flags = set(field("flags").split())
    vendor = field("vendor_id")
    mhz = float(field("cpu MHz") or 0.0)
    cores = len(os.sched_getaffinity(0))
    if "avx512f" in flags and vendor != "AuthenticAMD":
        fpc = 64
    elif "avx2" in flags and "fma" in flags:
        fpc = 32
    else:
        fpc = 16
    return {"name": field("model name") or platform.processor(), "vendor": vendor,
            "cores": cores, "mhz": mhz, "flop_per_cycle_core": fpc,
            "peak_gflops_per_core": mhz * 1e-3 * fpc, "avx512f": "avx512f" in flags,
            "avx512_vnni": "avx512_vnni" in flags, "vnni": cpu_has_vnni()}


def sgemm_gflops(threads: int, n: int = 1536, repeats: int = 5) -> float:
    """Measured torch fp32 matmul GFLOP/s with ``threads`` threads (practical peak)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def time_calls(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def torch_model(meta: dict, checkpoint: str | None):
    """The network as PyTorch eager: from the checkpoint, else the metadata's architecture."""
    import torch

    if checkpoint:
        from export.onnx_export import model_from_checkpoint
        from training.checkpoint import load_checkpoint

        return model_from_checkpoint(load_checkpoint(checkpoint)), True
    from training.models import build_model

    spec = meta.get("logdigit.model")
    if not spec:
        return None, False
    torch.manual_seed(0)
    return build_model(spec["name"], **spec.get("args", {})).eval(), False


def torch_metrics(model, samples) -> dict:
    import torch

    from training.metrics import SegMetrics

    seg = SegMetrics(num_classes=model.num_classes, tolerances=(0,))
    with torch.inference_mode():
        for img, mask in samples:
            seg.update(model(torch.from_numpy(normalise(img)))[0].argmax(0).numpy(), mask)
    return seg.summary()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "logdigit/models/logdigit_default.onnx"))
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--int8", default=None, help="int8 ONNX file (default: quantise here)")
    ap.add_argument("--tile", type=int, default=512, help="square tile edge (px)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data", default="synth", choices=["synth", "toy"])
    ap.add_argument("--eval-tiles", type=int, default=24)
    ap.add_argument("--eval-size", type=int, default=256)
    ap.add_argument("--opt-levels", nargs="*", default=["none", "basic", "extended"],
                    help="extra fp32 rows at these onnxruntime graph optimisation levels "
                         "(first thread count only; the main rows use 'all')")
    ap.add_argument("--out", default=str(ROOT / "bench/results/export_speed.json"))
    args = ap.parse_args(argv)

    import torch

    model_path = Path(args.model)
    if not model_path.is_file():
        print(f"export_speed: {model_path} not found; pass --model", file=sys.stderr)
        return 2
    meta = read_metadata(model_path)
    stride = int(meta[C.META_STRIDE])
    tile = -(-args.tile // stride) * stride
    cost = conv_macs(model_path)
    mpx = args.batch * tile * tile / 1e6
    gflop_per_call = cost["gflop_per_mpx"] * mpx
    cpu = cpu_info()

    samples = labelled_tiles(args.eval_tiles, args.eval_size, source=args.data,
                             seed=EXPORT_SEED + 200)
    tmp = tempfile.TemporaryDirectory()
    int8_path = Path(args.int8) if args.int8 else Path(tmp.name) / "int8.onnx"
    if not args.int8:
        calib = [im for im, _ in labelled_tiles(32, 256, source=args.data, seed=EXPORT_SEED + 100)]
        quantize_int8(model_path, int8_path, calib)

    tm, trained = torch_model(meta, args.checkpoint)
    x = np.random.default_rng(0).random((args.batch, 1, tile, tile), dtype=np.float32)
    rows = []
    iou = {"onnx_fp32": session_metrics(model_path, samples)["mean_curve_iou"],
           "onnx_int8": session_metrics(int8_path, samples)["mean_curve_iou"]}
    if tm is not None:
        iou["torch_eager"] = torch_metrics(tm, samples)["mean_curve_iou"] if trained else None
    for threads in args.threads:
        practical = sgemm_gflops(threads)
        variants = []
        if tm is not None:
            xt = torch.from_numpy(x)

            def run_torch():
                with torch.inference_mode():
                    tm(xt)
            variants.append(("torch_eager", run_torch))
        sessions = [("onnx_fp32", model_path, "all"), ("onnx_int8", int8_path, "all")]
        if threads == args.threads[0]:
            sessions += [(f"onnx_fp32_opt_{lv}", model_path, lv) for lv in args.opt_levels]
        for name, path, level in sessions:
            sess = ort_session(path, threads, level=level)
            variants.append((name, lambda s=sess: s.run(None, {C.ONNX_INPUT_NAME: x})))
        for name, fn in variants:
            torch.set_num_threads(threads)
            sec = time_calls(fn, args.repeats)
            gfs = gflop_per_call / sec
            peak = cpu["peak_gflops_per_core"] * threads
            rows.append({"variant": name, "threads": threads, "tile": tile, "batch": args.batch,
                         "sec_per_call": sec, "ms_per_tile": 1e3 * sec / args.batch,
                         "mpx_per_s": mpx / sec, "gflops": gfs,
                         "peak_fp32_gflops_nominal": peak, "pct_of_nominal_peak": 100 * gfs / peak,
                         "sgemm_gflops_measured": practical,
                         "pct_of_sgemm": 100 * gfs / practical,
                         "curve_iou": iou.get(name.split("_opt_")[0])})
    print(f"model {model_path.name}: {cost['gflop_per_mpx']:.1f} GFLOP/Mpx "
          f"({cost['macs_per_pixel']:.0f} MAC/px); tile {tile}x{tile} x{args.batch}; "
          f"CPU {cpu['name']} {cpu['cores']} cores {cpu['mhz']:.0f} MHz, "
          f"nominal fp32 peak {cpu['peak_gflops_per_core']:.0f} GFLOP/s/core, "
          f"VNNI {cpu['vnni']}; IoU on {len(samples)} {args.data} tiles of {args.eval_size}^2")
    hdr = f"{'variant':<22} {'thr':>3} {'ms/tile':>8} {'Mpx/s':>7} {'GFLOP/s':>8} {'%peak':>6} {'%sgemm':>7} {'curve IoU':>9}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ciou = "n/a" if r["curve_iou"] is None else f"{r['curve_iou']:.4f}"
        print(f"{r['variant']:<22} {r['threads']:>3} {r['ms_per_tile']:>8.1f} {r['mpx_per_s']:>7.2f} "
              f"{r['gflops']:>8.1f} {r['pct_of_nominal_peak']:>6.1f} {r['pct_of_sgemm']:>7.1f} {ciou:>9}")
    out = {"model": str(model_path), "checkpoint": args.checkpoint, "trained_torch": trained,
           "cost": cost, "cpu": cpu, "data": args.data, "eval_tiles": len(samples),
           "eval_size": args.eval_size, "rows": rows,
           "int8_size_bytes": int8_path.stat().st_size,
           "fp32_size_bytes": model_path.stat().st_size,
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_results(out, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
