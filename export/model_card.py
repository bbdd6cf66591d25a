"""Write ``MODEL_CARD.md`` for an exported model from the files that measured it.

    python -m export.model_card --model logdigit/models/logdigit_default.onnx \
        --report runs/ship/model.export.json --eval runs/ship/eval/eval.json \
        --bench bench/results/export_speed.json --config runs/cpu/config.yaml \
        --commands runs/ship/commands.sh -o logdigit/models/MODEL_CARD.md

Every figure in the card is read from those files; nothing is typed by hand except
the free-text ``--note``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from .onnx_export import read_metadata


def _f(v, nd=4) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def commit_at(when: float, repo: Path = Path(".")) -> str:
    """The repo's last commit at unix time ``when`` (short hash and date), or ""."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(repo), "log", "-1", f"--until=@{int(when)}",
                              "--format=%h %cI"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def render_card(*, model: Path, report: dict, evaluation: dict, bench: dict | None,
                config_text: str, commands: str, note: str = "", limits: str = "",
                code_at_start: str = "", code_at_export: str = "") -> str:
    """The card's Markdown text."""
    meta = read_metadata(model)
    spec = meta.get("logdigit.model", {})
    exp = meta.get("logdigit.export", {})
    cfg = yaml.safe_load(config_text) or {}
    data = cfg.get("data", {})
    steps = spec.get("step")
    lines = [f"# logdigit default model: `{model.name}`", ""]
    if note:
        lines += [note, ""]
    lines += [
        "| | |", "|---|---|",
        f"| file | `logdigit/models/{model.name}` ({model.stat().st_size / 2 ** 20:.2f} MiB, "
        f"{exp.get('variant', 'fp32')}, opset {exp.get('opset')}, {exp.get('exporter')} exporter, "
        f"torch {exp.get('torch')}) |",
        f"| network | `{spec.get('name')}` {json.dumps(spec.get('args', {}), sort_keys=True)}, "
        f"{spec.get('parameters', 0):,} parameters |",
        f"| checkpoint | `{report.get('checkpoint')}`, step {steps}, epoch {spec.get('epoch')} |",
        f"| config sha256 | `{meta['logdigit.config_sha256']}` |",
        f"| stride / receptive field / halo / tile | {meta['logdigit.stride']} / "
        f"{meta['logdigit.receptive_field']['size']} / {meta['logdigit.halo']} / "
        f"{meta['logdigit.tile']} px |",
        f"| cost | {report['cost']['gflop_per_mpx']:.1f} GFLOP per Mpx "
        f"({report['cost']['macs_per_pixel']:.0f} MAC per pixel, convolutions) |",
        "",
        "## How it was made", "", "```", commands.strip(), "```", "",
        "Resolved training config (`config.yaml` of the run):", "", "```yaml",
        config_text.strip(), "```", "",
        "## Training data", "",
        f"Rendered by this repo's renderer (`training/synth`, `training/data.py`): "
        f"source `{data.get('source')}`, task `{data.get('task')}`, seed {data.get('seed')}, "
        f"{data.get('count')} tile instances of {data.get('size')} x {data.get('size')} px, "
        f"{data.get('tiles_per_page')} tiles per page, validation fraction "
        f"{data.get('val_fraction')} (page-disjoint). Trained for {steps} steps of batch "
        f"{cfg.get('batch_size')} = {steps * cfg.get('batch_size', 0) if steps else '?'} tiles seen"
        f"{' (from scratch)' if not cfg.get('init') else ', initialised from ' + str(cfg.get('init'))}."
        + (f" Renderer and training code: commit `{code_at_start}` (the last commit when the run "
           f"started; the shared working tree may have held uncommitted edits); exported at commit `{code_at_export}`." if code_at_start else ""),
        "",
        "## Validation", "",
        f"`logdigit-train evaluate` on {evaluation.get('source')} "
        f"({evaluation.get('onnx') or evaluation.get('checkpoint')}); IoU strict, F1 at 0 / 1 / 2 px "
        "tolerance.", "",
        "| class | IoU | F1@0px | F1@1px | F1@2px | truth px |", "|---|---|---|---|---|---|",
    ]
    for name, d in evaluation["per_class"].items():
        lines.append(f"| {name} | {_f(d.get('iou'))} | {_f(d.get('f1_tol0'))} | "
                     f"{_f(d.get('f1_tol1'))} | {_f(d.get('f1_tol2'))} | {d.get('support_px')} |")
    lines += ["",
              f"Mean curve-class IoU **{_f(evaluation.get('mean_curve_iou'))}**, binary curve IoU "
              f"{_f(evaluation.get('binary_curve_iou'))}, mean curve F1@2px "
              f"{_f(evaluation.get('mean_curve_f1_tol2'))} (reference U-Net from the literature: "
              "per-curve-class IoU 0.26 / 0.21).", ""]
    par = report["parity"]
    lines += ["## Export checks", "",
              f"- `onnx.checker` full check and the logdigit I/O contract: passed.",
              f"- Parity against PyTorch on {len(par['tiles'])} rendered tiles "
              f"({', '.join('x'.join(map(str, t['shape'])) for t in par['tiles'])}): max |logit "
              f"difference| {par['max_abs']:.2e} (logit scale {par['scale']:.1f}), argmax "
              f"agreement {100 * par['argmax_agree']:.4f} %."]
    if "int8" in report:
        q = report["int8"]
        o = report["options"]
        lines.append(f"- int8 (static QDQ, per-channel, calibrated on {o['calib_tiles']} rendered "
                     f"tiles): curve IoU on {o['eval_tiles']} rendered {o['eval_size']} px tiles "
                     f"(renderer seed {o['seed'] + 200}) {q['iou_fp32']:.4f} (fp32) -> "
                     f"{q['iou_int8']:.4f} (int8), {q['speedup']:.2f}x the fp32 speed at 512 px: "
                     f"{q['reason']}.")
    if "fp16" in report:
        h = report["fp16"]["parity_cpu"]
        lines.append(f"- fp16 (CUDA EP variant, not shipped): CPU-provider parity max |diff| "
                     f"{h['max_abs']:.2e}, argmax agreement {100 * h['argmax_agree']:.3f} %; "
                     "its GPU speed was not measured (no GPU here).")
    lines.append("")
    if bench:
        cpu = bench["cpu"]
        lines += ["## Speed on this machine", "",
                  f"`bench/export_speed.py`: {cpu['name']}, {cpu['cores']} cores at "
                  f"{cpu['mhz']:.0f} MHz nominal, AVX-512 VNNI {cpu['avx512_vnni']}; nominal fp32 peak "
                  f"{cpu['peak_gflops_per_core']:.0f} GFLOP/s per core; tiles of "
                  f"{bench['rows'][0]['tile']} x {bench['rows'][0]['tile']} px, batch "
                  f"{bench['rows'][0]['batch']}; the machine was shared with other jobs while "
                  "measuring, so these are lower bounds.", "",
                  "| variant | threads | ms / tile | Mpx/s | GFLOP/s | % nominal peak | % measured sgemm | curve IoU |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in bench["rows"]:
            lines.append(f"| {r['variant']} | {r['threads']} | {r['ms_per_tile']:.1f} | "
                         f"{r['mpx_per_s']:.2f} | {r['gflops']:.1f} | {r['pct_of_nominal_peak']:.0f} | "
                         f"{r['pct_of_sgemm']:.0f} | {_f(r['curve_iou'])} |")
        lines += ["", "GFLOP/s counts the model's convolution FLOPs (2 x MACs from the ONNX "
                  "graph) for every variant, int8 included, so int8 can exceed the fp32 peak. The nominal "
                  "peak uses /proc/cpuinfo's clock; above 100 % means the cores ran at a higher "
                  "(boost) clock, so the measured sgemm column is the fairer yardstick.", ""]
    lines += ["## Limits", "",
              "- Trained and validated on rendered logs only. Real scans differ (paper texture, "
              "stains, pen widths, vendor layouts); no real scan with a digitised LAS was "
              "available, so accuracy on real paper is not measured here.",
              "- The halo is half the *theoretical* receptive field: tiling reproduces the whole-image "
              "result, at the cost of computing the overlap.", ""]
    if limits:
        lines += [limits.strip(), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="write MODEL_CARD.md from measured files")
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--report", required=True, type=Path, help="<model>.export.json")
    ap.add_argument("--eval", dest="evaluation", required=True, type=Path, help="eval.json")
    ap.add_argument("--bench", type=Path, default=None, help="export_speed.json")
    ap.add_argument("--config", required=True, type=Path, help="the run's config.yaml")
    ap.add_argument("--commands", required=True, type=Path, help="shell commands that made it")
    ap.add_argument("--note", default="")
    ap.add_argument("--limits", default="", help="extra text for the Limits section")
    ap.add_argument("-o", "--output", required=True, type=Path)
    a = ap.parse_args(argv)
    import time

    from logdigit.fsutil import atomic_write_text

    text = render_card(model=a.model, report=json.loads(a.report.read_text()),
                       evaluation=json.loads(a.evaluation.read_text()),
                       bench=json.loads(a.bench.read_text()) if a.bench else None,
                       config_text=a.config.read_text(), commands=a.commands.read_text(),
                       note=a.note, limits=a.limits,
                       code_at_start=commit_at(a.config.stat().st_mtime),
                       code_at_export=commit_at(time.time()))
    atomic_write_text(a.output, text)
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
