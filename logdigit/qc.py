"""QC overlay: every digitised curve drawn in colour over a downscaled copy of the
(deskewed) scan, labelled with its mnemonic, so a person sees at a glance what was read.

Solid lines are rows read from the scan, thin lines rows bridged across gaps; track
edges used are drawn as thin grey-blue lines; a legend heads the picture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fsutil import atomic_write_png

#: BGR colours cycled over curves (distinct on grey paper)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 230), (0, 160, 0), (230, 80, 0), (200, 0, 200), (0, 150, 230),
    (150, 110, 0), (120, 0, 120), (0, 200, 200),
)
MAX_WIDTH = 1200       #: overlay width limit (px)
MAX_HEIGHT = 30000     #: overlay height limit (px)
LEGEND_ROWS = 22       #: legend line height (px)


@dataclass
class QCCurve:
    """One curve to draw: ``frac`` float [H] per scan row (NaN = not read, unwrapped
    values allowed), ``observed`` bool [H], track edges ``xl``, ``xr`` (deskewed
    pixel-index columns), ``shift`` float [H] or None: on drifting paper the edges
    run that many px right of ``xl``/``xr`` at each row."""

    mnemonic: str
    frac: np.ndarray
    observed: np.ndarray
    xl: float
    xr: float
    shift: np.ndarray | None = None


def overlay_scale(height: int, width: int) -> float:
    """Downscale factor (<= 1) that fits the scan in MAX_WIDTH x MAX_HEIGHT."""
    return min(1.0, MAX_WIDTH / width, MAX_HEIGHT / height)


def _polylines(y: np.ndarray, x: np.ndarray, breaks: np.ndarray) -> list[np.ndarray]:
    """Split finite points into polylines at NaN and where ``breaks`` is true."""
    ok = np.isfinite(x)
    seg_id = np.cumsum(~ok | breaks)
    out = []
    for sid in np.unique(seg_id[ok]):
        sel = ok & (seg_id == sid)
        if sel.sum() >= 2:
            out.append(np.stack([x[sel], y[sel]], 1).round().astype(np.int32))
    return out


def render_overlay(grey: np.ndarray, curves: list[QCCurve], rows: tuple[int, int] | None = None,
                   title: str = "") -> np.ndarray:
    """The overlay picture: uint8 BGR [h, w, 3].

    Parameters
    ----------
    grey : uint8 [H, W]
        The (deskewed) scan the curves were read from.
    curves : list of QCCurve
    rows : (top, bottom) or None
        Rows to show (default all).
    title : str
        First legend line (e.g. the scan's file name).
    """
    import cv2

    top, bottom = rows or (0, grey.shape[0])
    part = grey[top:bottom]
    H, W = part.shape
    s = overlay_scale(H, W)
    h, w = max(1, int(round(H * s))), max(1, int(round(W * s)))
    small = cv2.resize(part, (w, h), interpolation=cv2.INTER_AREA) if s < 1 else part.copy()
    # fade the scan so the curves stand out
    small = (small.astype(np.uint16) * 3 // 4 + 64).astype(np.uint8)
    img = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    legend = LEGEND_ROWS * (len(curves) + 1 + bool(title))
    canvas = np.full((h + legend, w, 3), 255, np.uint8)
    canvas[legend:] = img
    font = cv2.FONT_HERSHEY_SIMPLEX
    ly = LEGEND_ROWS - 6
    if title:
        cv2.putText(canvas, title[:120], (6, ly), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        ly += LEGEND_ROWS
    label_every = max(200, h // 8)
    for k, c in enumerate(curves):
        col = PALETTE[k % len(PALETTE)]
        cv2.line(canvas, (6, ly - 5), (36, ly - 5), col, 3)
        cov = float(np.isfinite(c.frac[top:bottom]).mean()) if bottom > top else 0.0
        cv2.putText(canvas, f"{c.mnemonic}  ({100 * cov:.0f}% of rows)", (44, ly), font, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
        ly += LEGEND_ROWS
        f = c.frac[top:bottom]
        off = np.zeros(len(f)) if c.shift is None else np.asarray(c.shift[top:bottom], float)
        ys = np.arange(len(f)) * s + legend
        for xe in (c.xl, c.xr) if len(f) > 1 else ():
            edge = np.stack([(xe + off) * s, ys], 1)[:: max(1, int(1 / s))]
            cv2.polylines(canvas, [edge.round().astype(np.int32)], False, (200, 170, 120), 1)
        wrapped = np.mod(f, 1.0)
        jump = np.zeros(len(f), bool)
        jump[1:] = np.abs(np.diff(np.floor(np.where(np.isfinite(f), f, 0.0)))) > 0
        xs = (c.xl + off + wrapped * (c.xr - c.xl)) * s
        obs = c.observed[top:bottom]
        for pl in _polylines(ys, np.where(obs, xs, np.nan), jump):
            cv2.polylines(canvas, [pl], False, col, 2, cv2.LINE_AA)
        for pl in _polylines(ys, np.where(~obs, xs, np.nan), jump):
            cv2.polylines(canvas, [pl], False, col, 1, cv2.LINE_AA)
        # mnemonic labels along the curve
        for y0 in range(label_every // 2 + k * 37, h, label_every):
            r = int(y0 / s)
            if r < len(f) and np.isfinite(xs[r]):
                cv2.putText(canvas, c.mnemonic, (int(xs[r]) + 5, legend + y0), font, 0.45,
                            col, 1, cv2.LINE_AA)
    return canvas


def write_overlay(path: str | os.PathLike, grey: np.ndarray, curves: list[QCCurve],
                  rows: tuple[int, int] | None = None, title: str = "") -> Path:
    """Render the overlay and write it as PNG (atomically)."""
    atomic_write_png(path, render_overlay(grey, curves, rows, title))
    return Path(path)
