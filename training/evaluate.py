"""Segmentation evaluation: ``logdigit-train evaluate (--checkpoint CKPT | --onnx MODEL)``.

Scores a model on the validation split of its training config (or on ``--count N``
freshly rendered tiles from a seed stream never used for training): per-class strict
IoU, per-class precision / recall / F1 at 0, 1 and 2 px tolerance (training/metrics.py),
the confusion matrix. Writes ``eval.json`` and ``predictions.png`` (image | truth |
prediction for a handful of tiles) into ``--out``.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import click
import numpy as np
import torch

from logdigit.constants import (DEFAULT_INPUT_NORM, META_CLASS_MAP, META_INPUT, META_STRIDE,
                                ONNX_INPUT_NAME)
from training import engine
from training.config import ConfigError, merge, resolve, to_dict
from training.finetune import (DataConfig, class_names_for, load_items, make_dataset,
                               num_classes_for)
from training.metrics import SegMetrics

#: seed offset of the "fresh tiles" stream: disjoint from every training seed in use
FRESH_SEED_OFFSET = 7_919_000

#: BGR colours per class id for the prediction pictures
PALETTE = np.array([[255, 255, 255], [200, 60, 0], [0, 0, 220], [0, 160, 0], [200, 0, 200]],
                   np.uint8)


@dataclass
class EvalConfig:
    data: DataConfig = field(default_factory=DataConfig)
    count: int = 0          # >0: score N fresh rendered tiles instead of the val split
    # RenderConfig overrides for the fresh tiles (count > 0), to score one condition, e.g.
    # render.binarize_prob=1 render.shading_prob=2 (1-bit pages, every one shaded); the val
    # split always keeps the renderer defaults
    render: dict = field(default_factory=dict)
    limit: int = 0          # >0: only the first N tiles of the val split
    batch_size: int = 16
    device: str = "auto"
    amp: bool = False
    threads: int = 0
    png_tiles: int = 6
    tolerances: list[int] = field(default_factory=lambda: [0, 1, 2])


# ----------------------------------------------------------------------------- tiles

def iter_fresh_items(data: DataConfig, count: int, render: dict | None = None
                     ) -> Iterator[dict[str, torch.Tensor]]:
    """``count`` freshly rendered tiles (seed ``data.seed + FRESH_SEED_OFFSET``), one at a
    time: ``{"image": float [1, H, W] pixel/255, "mask": int64 [H, W] class ids}``.

    ``render``: :class:`training.synth.RenderConfig` overrides (default: the renderer's
    defaults, whatever ``data.render`` trained on); synth source only.

    Raises
    ------
    ConfigError
        ``render`` given for the toy source, or a key RenderConfig does not have.
    """
    seed = data.seed + FRESH_SEED_OFFSET
    if render and data.source != "synth":
        raise ConfigError(f"render overrides need data.source=synth, not {data.source!r}")
    if data.source == "toy":
        from training.toydata import render_toy_tile

        def render_one(i):
            return render_toy_tile(seed, i, data.size, data.task)
    else:
        from training.synth import RenderConfig, render_tile

        rcfg = merge(RenderConfig(), render or {}, prefix="render.")   # checked before any tile

        def render_one(i):
            r = render_tile(seed, i, task=data.task, size=data.size, cfg=rcfg)
            return (r["image"], r["mask"]) if isinstance(r, dict) else (r[0], r[1])
    return _tensor_items(render_one(i) for i in range(count))


def _tensor_items(pairs: Iterable[tuple]) -> Iterator[dict[str, torch.Tensor]]:
    for img, mask in pairs:
        img = np.asarray(img)
        if img.ndim == 3:  # colour tile -> grey, the network's input
            img = img.mean(axis=2)
        x = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
        yield {"image": torch.from_numpy(np.ascontiguousarray(x))[None],
               "mask": torch.from_numpy(np.asarray(mask).astype(np.int64))}


# ----------------------------------------------------------------------------- predictors

Predictor = Callable[[torch.Tensor], np.ndarray]  # [N,1,H,W] float (pixel/255) -> [N,H,W] uint8


def torch_predictor(ckpt: dict, device: torch.device, amp: bool) -> tuple[Predictor, int, int]:
    """(predict, num_classes, stride) for a loaded checkpoint dict."""
    from training.models import build_model

    model = build_model(ckpt["model"]["name"], **ckpt["model"]["args"])
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    return (lambda x: engine.predict_classes(model, x, device, amp)), model.num_classes, model.stride


def onnx_predictor(path: str | Path, threads: int = 0) -> tuple[Predictor, int, int]:
    """(predict, num_classes, stride) for an ONNX model; applies its ``logdigit.input`` norm."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads > 0:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    norm = json.loads(meta[META_INPUT]) if META_INPUT in meta else dict(DEFAULT_INPUT_NORM)
    stride = int(json.loads(meta[META_STRIDE])) if META_STRIDE in meta else 1
    ncls = len(json.loads(meta[META_CLASS_MAP])) if META_CLASS_MAP in meta else None
    name = sess.get_inputs()[0].name if ONNX_INPUT_NAME not in [i.name for i in sess.get_inputs()] \
        else ONNX_INPUT_NAME

    def predict(x: torch.Tensor) -> np.ndarray:
        v = x.numpy().astype(np.float32) * 255.0 * float(norm.get("scale", 1 / 255))
        if norm.get("invert"):
            v = 1.0 - v
        v = (v - float(norm.get("mean", 0.0))) / float(norm.get("std", 1.0))
        logits = sess.run(None, {name: v.astype(np.float32)})[0]
        return logits.argmax(1).astype(np.uint8)

    if ncls is None:
        ncls = int(sess.get_outputs()[0].shape[1])
    return predict, ncls, stride


# ----------------------------------------------------------------------------- scoring

def score(predict: Predictor, items: Iterable[dict], num_classes: int, class_names: dict[int, str],
          batch_size: int = 16, tolerances=(0, 1, 2), quiet: bool = True, keep: int | None = None,
          total: int | None = None) -> tuple[dict[str, Any], list[np.ndarray], list[dict]]:
    """Run ``predict`` over tiles (a list, or an iterator consumed once: thousands of
    large tiles never sit in memory together).

    Returns (SegMetrics summary, predictions [H, W] uint8 and items of the first ``keep``
    tiles (all when None)).
    """
    met = SegMetrics(num_classes=num_classes, tolerances=tuple(tolerances), class_names=class_names)
    preds: list[np.ndarray] = []
    kept: list[dict] = []
    n = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    n_batches = None if n is None else (n + batch_size - 1) // batch_size
    it = iter(items)
    chunks = iter(lambda: list(itertools.islice(it, batch_size)), [])
    for chunk in engine.progress(chunks, total=n_batches, desc="evaluate", quiet=quiet):
        b = {k: torch.stack([c[k] for c in chunk]) for k in ("image", "mask")}
        p = predict(b["image"])
        met.update(p, b["mask"].numpy())
        room = len(chunk) if keep is None else max(0, keep - len(preds))
        preds.extend(p[:room])
        kept.extend(chunk[:room])
    return met.summary(), preds, kept


def colourise(mask: np.ndarray) -> np.ndarray:
    """[H, W] class ids -> [H, W, 3] uint8 BGR picture (background white)."""
    return PALETTE[np.clip(mask, 0, len(PALETTE) - 1)]


def prediction_sheet(items: list[dict], preds: list[np.ndarray], n: int) -> np.ndarray:
    """BGR picture: one row per tile, columns image | truth | prediction (4 px gaps)."""
    rows = []
    for it, p in list(zip(items, preds))[:n]:
        img = (it["image"][0].numpy() * 255).clip(0, 255).astype(np.uint8)
        grey = np.repeat(img[..., None], 3, axis=2)
        gap = np.full((img.shape[0], 4, 3), 128, np.uint8)
        rows.append(np.concatenate([grey, gap, colourise(it["mask"].numpy()), gap, colourise(p)], 1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 128, np.uint8))
    return np.concatenate(rows[:-1], 0) if rows else np.zeros((1, 1, 3), np.uint8)


def evaluate(cfg: EvalConfig, checkpoint: str | None = None, onnx: str | None = None,
             out_dir: str | Path | None = None, quiet: bool = False) -> dict[str, Any]:
    """Evaluate a checkpoint or an ONNX model; writes eval.json (+ predictions.png) to ``out_dir``."""
    import cv2

    from logdigit.fsutil import atomic_write_bytes, atomic_write_text

    if (checkpoint is None) == (onnx is None):
        raise ConfigError("give exactly one of --checkpoint or --onnx")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = engine.pick_device(cfg.device)
    provenance: dict[str, Any] = {}
    if checkpoint is not None:
        from training.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        predict, ncls, stride = torch_predictor(ckpt, device, cfg.amp)
        provenance = {"checkpoint": str(checkpoint), "model": ckpt["model"], "step": ckpt["step"],
                      "config_sha256": ckpt["config_sha256"]}
    else:
        predict, ncls, stride = onnx_predictor(onnx, cfg.threads)
        provenance = {"onnx": str(onnx)}
    if ncls != num_classes_for(cfg.data.task):
        raise ConfigError(f"the model has {ncls} classes but data.task={cfg.data.task} has "
                          f"{num_classes_for(cfg.data.task)}")
    if cfg.data.size % stride:
        raise ConfigError(f"data.size={cfg.data.size} must divide by the model stride {stride}")
    t0 = time.time()
    if cfg.render and cfg.count <= 0:
        raise ConfigError("render overrides apply to fresh tiles only: add --count N")
    if cfg.count > 0:  # rendered while scored: memory stays that of one batch
        items, n_items = iter_fresh_items(cfg.data, cfg.count, cfg.render), cfg.count
        source = f"fresh:{cfg.count}" + "".join(f" {k}={v}" for k, v in sorted(cfg.render.items()))
    else:
        items = load_items(make_dataset(cfg.data, "val"), cfg.limit)
        n_items, source = len(items), f"val:{len(items)}"
    names = class_names_for(cfg.data.task)
    summary, preds, kept = score(predict, items, ncls, names, cfg.batch_size, cfg.tolerances,
                                 quiet=quiet, keep=cfg.png_tiles, total=n_items)
    t2 = time.time()
    result = {"source": source, **provenance, "data": to_dict(cfg.data),
              "tolerances": list(cfg.tolerances),
              "seconds": {"tiles_inference_and_scoring": round(t2 - t0, 2)},
              **summary}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "eval.json", json.dumps(result, indent=1))
        if cfg.png_tiles > 0:
            ok, buf = cv2.imencode(".png", prediction_sheet(kept, preds, cfg.png_tiles))
            atomic_write_bytes(out / "predictions.png", buf.tobytes())
    return result


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table: class, IoU, F1 at each tolerance."""
    tols = [str(t) for t in result["tolerances"]]
    head = f"{'class':<11} {'IoU':>7}" + "".join(f" {'F1@' + t + 'px':>8}" for t in tols)
    lines = [head]
    for name, d in result["per_class"].items():
        f = "".join(f" {_fmt(d.get('f1_tol' + t)):>8}" for t in tols)
        lines.append(f"{name:<11} {_fmt(d['iou']):>7}{f}")
    lines.append(f"mean curve IoU {_fmt(result['mean_curve_iou'])}, "
                 f"min curve F1@2px {_fmt(result.get('min_curve_f1_tol2'))} ({result['source']})")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


# ----------------------------------------------------------------------------- CLI

@click.command("evaluate")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="finetune checkpoint (.pt)")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), help="exported ONNX model")
@click.option("--count", type=int, default=None, help="score N fresh rendered tiles instead of the val split")
@click.option("--limit", type=int, default=None, help="only the first N tiles of the val split")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML EvalConfig (data section etc.); default: the checkpoint's data config")
@click.option("--out", "out_dir", default=None, help="output folder (default: <model path without suffix>_eval)")
@click.option("--quiet", is_flag=True)
@click.argument("overrides", nargs=-1)
def cli(checkpoint, onnx_path, count, limit, config_path, out_dir, quiet, overrides):
    """Per-class IoU, tolerant F1 and confusion matrix of a model. OVERRIDES: key=value."""
    from logdigit._lazycli import InputError

    try:
        if (checkpoint is None) == (onnx_path is None):
            raise click.UsageError("give exactly one of --checkpoint or --onnx")
        base = EvalConfig()
        if checkpoint is not None and config_path is None:
            from training.checkpoint import load_checkpoint

            data = load_checkpoint(checkpoint)["config"].get("data", {})
            base = EvalConfig(data=merge(DataConfig(), data))
        extra = list(overrides)
        if count is not None:
            extra.append(f"count={count}")
        if limit is not None:
            extra.append(f"limit={limit}")
        cfg = resolve(base, config_path, extra)
        if out_dir is None:
            out_dir = str(Path(checkpoint or onnx_path).with_suffix("")) + "_eval"
        result = evaluate(cfg, checkpoint, onnx_path, out_dir, quiet=quiet)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        raise InputError(str(e), prog="logdigit-train") from None
    if not quiet:
        click.echo(format_table(result))
        click.echo(f"wrote {Path(out_dir) / 'eval.json'}")
