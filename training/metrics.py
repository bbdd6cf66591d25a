"""Segmentation metrics: confusion matrix, strict per-class IoU, tolerance-aware F1.

Tolerant F1 at ``t`` px (per class c): a predicted c-pixel is a true positive for
precision when a true c-pixel lies within Euclidean distance ``t`` of it, and a true
c-pixel counts for recall when a predicted c-pixel lies within ``t`` of it
(dilation by a disk of radius t). ``t = 0`` is the strict pixel F1. Counts are summed
over all tiles before the ratios are taken (micro-average over pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from logdigit.constants import CLASS_MAP


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, C] int64 counts, rows = truth, columns = prediction; inputs are class-id arrays."""
    t = np.asarray(target, np.int64).ravel()
    p = np.asarray(pred, np.int64).ravel()
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Strict IoU per class from a confusion matrix; NaN for a class absent from both."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def _disk(t: int) -> np.ndarray:
    yy, xx = np.mgrid[-t:t + 1, -t:t + 1]
    return (yy ** 2 + xx ** 2 <= t * t).astype(np.uint8)


def tolerant_counts(pred: np.ndarray, target: np.ndarray, cls: int, tol: int) -> np.ndarray:
    """[4] counts for one [H, W] tile: (pred hits, pred total, truth hits, truth total)."""
    import cv2

    p = (pred == cls).astype(np.uint8)
    g = (target == cls).astype(np.uint8)
    if tol > 0:
        k = _disk(tol)
        gd, pd = cv2.dilate(g, k), cv2.dilate(p, k)
    else:
        gd, pd = g, p
    return np.array([(p & gd).sum(), p.sum(), (g & pd).sum(), g.sum()], np.int64)


def f1_from_counts(c: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, F1) from tolerant counts; NaN where undefined."""
    prec = c[0] / c[1] if c[1] else float("nan")
    rec = c[2] / c[3] if c[3] else float("nan")
    if c[1] == 0 and c[3] == 0:
        return float("nan"), float("nan"), float("nan")
    if c[1] == 0 or c[3] == 0:
        return (prec if c[1] else 0.0), (rec if c[3] else 0.0), 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return float(prec), float(rec), float(f1)


@dataclass
class SegMetrics:
    """Accumulates metrics over tiles; :meth:`summary` gives a JSON-ready dict.

    ``update(pred, target)`` takes [N, H, W] or [H, W] integer class-id arrays.
    """

    num_classes: int = len(CLASS_MAP)
    tolerances: Sequence[int] = (0, 1, 2)
    class_names: dict[int, str] = field(default_factory=lambda: dict(CLASS_MAP))

    def __post_init__(self):
        self.cm = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.tol = {t: np.zeros((self.num_classes, 4), np.int64) for t in self.tolerances}
        self.tiles = 0

    def update(self, pred, target) -> None:
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {pred.shape} and truth {target.shape} differ in shape")
        if pred.ndim == 2:
            pred, target = pred[None], target[None]
        self.cm += confusion_matrix(pred, target, self.num_classes)
        for p, g in zip(pred, target):
            for t in self.tolerances:
                for c in range(1, self.num_classes):
                    self.tol[t][c] += tolerant_counts(p, g, c, t)
        self.tiles += len(pred)

    def summary(self) -> dict:
        """Per-class IoU / precision / recall / F1 (strict and tolerant), means over curve classes."""
        iou = iou_from_confusion(self.cm)
        names = [self.class_names.get(c, str(c)) for c in range(self.num_classes)]
        per_class: dict[str, dict] = {}
        for c in range(self.num_classes):
            d = {"iou": _f(iou[c]), "support_px": int(self.cm[c].sum())}
            if c > 0:
                for t in self.tolerances:
                    p, r, f = f1_from_counts(self.tol[t][c])
                    d[f"precision_tol{t}"], d[f"recall_tol{t}"], d[f"f1_tol{t}"] = _f(p), _f(r), _f(f)
            per_class[names[c]] = d
        curve = [names[c] for c in range(1, self.num_classes)]
        out = {
            "tiles": self.tiles,
            "pixel_accuracy": _f(np.diag(self.cm).sum() / max(self.cm.sum(), 1)),
            "mean_iou_all": _nanmean([per_class[n]["iou"] for n in names]),
            "mean_curve_iou": _nanmean([per_class[n]["iou"] for n in curve]),
            "binary_curve_iou": _f(self._binary_iou()),
        }
        for t in self.tolerances:
            out[f"mean_curve_f1_tol{t}"] = _nanmean([per_class[n][f"f1_tol{t}"] for n in curve])
            out[f"min_curve_f1_tol{t}"] = _nanmin([per_class[n][f"f1_tol{t}"] for n in curve])
        out["per_class"] = per_class
        out["confusion_matrix"] = {"rows": "truth", "cols": "prediction", "classes": names,
                                   "counts": self.cm.tolist()}
        return out

    def _binary_iou(self) -> float:
        tp = self.cm[1:, 1:].sum()
        fp = self.cm[0, 1:].sum()
        fn = self.cm[1:, 0].sum()
        return tp / (tp + fp + fn) if tp + fp + fn else float("nan")


def _f(v) -> float | None:
    v = float(v)
    return None if np.isnan(v) else round(v, 6)


def _nanmean(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return round(float(np.mean(vals)), 6) if vals else None


def _nanmin(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return round(float(np.min(vals)), 6) if vals else None
