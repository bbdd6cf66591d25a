"""Pictures of a found layout (``logdigit inspect``) and of a calibration template
(``logdigit calibrate``): small, made strip by strip, never a full-size copy in colour.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .layout import Layout, _deskew_rows

_TRACK_COLOURS = [(220, 120, 0), (0, 150, 0), (160, 0, 160), (0, 120, 200), (120, 120, 0)]
_DEPTH_COLOUR = (0, 0, 220)       # BGR red
_HEADER_COLOUR = (0, 0, 255)
_MINOR_COLOUR = (255, 200, 0)
_MAJOR_COLOUR = (255, 0, 0)


def overview(grey: np.ndarray, skew: float, max_h: int = 2400, max_w: int = 900,
             deskewed: bool = True) -> tuple[np.ndarray, float]:
    """Downscaled (deskewed) copy of the scan, made strip by strip.

    Returns
    -------
    small : uint8 [h, w]
    scale : float
        small pixels per scan pixel.
    """
    import cv2
    h, w = grey.shape
    scale = min(1.0, max_h / h, max_w / w)
    oh, ow = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    out = np.empty((oh, ow), np.uint8)
    block = max(256, int(math.ceil(1024 / scale / 256)) * 256) if scale < 1 else 2048
    for r0 in range(0, h, block):
        r1 = min(h, r0 + block)
        o0, o1 = int(round(r0 * scale)), int(round(r1 * scale))
        if o1 <= o0:
            continue
        blk = _deskew_rows(grey, skew, r0, r1) if deskewed else grey[r0:r1]
        out[o0:o1] = cv2.resize(blk, (ow, o1 - o0), interpolation=cv2.INTER_AREA)
    return out, scale


def _label(img, text, org, colour, scale=0.5, thick=1):
    import cv2
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick + 3,
                cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def _tint(img, x0, x1, y0, y1, colour, alpha=0.25):
    x0, x1 = max(0, x0), min(img.shape[1], x1)
    y0, y1 = max(0, y0), min(img.shape[0], y1)
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1].astype(np.float32)
    roi = roi * (1 - alpha) + np.array(colour, np.float32) * alpha
    img[y0:y1, x0:x1] = roi.astype(np.uint8)


def grid_rows(lay: Layout, r0: int, r1: int) -> tuple[list[int], list[int]]:
    """Lattice rows of the minor and major grid in [r0, r1) (anchored at header_bottom)."""
    minor, major = [], []
    if lay.grid_minor_px:
        p = lay.grid_minor_px
        k0 = math.ceil((r0 - lay.header_bottom) / p)
        k1 = math.floor((r1 - 1 - lay.header_bottom) / p)
        minor = [int(round(lay.header_bottom + k * p)) for k in range(k0, k1 + 1)]
    if lay.grid_major_px:
        p = lay.grid_major_px
        k0 = math.ceil((r0 - lay.header_bottom) / p)
        k1 = math.floor((r1 - 1 - lay.header_bottom) / p)
        major = [int(round(lay.header_bottom + k * p)) for k in range(k0, k1 + 1)]
    return minor, major


def inspect_picture(grey: np.ndarray, lay: Layout, title: str = "") -> np.ndarray:
    """BGR picture: left, the whole deskewed scan with tracks (T1, T2 ...), depth track
    (D) and header/log bottom; right, a full-resolution detail at the header boundary
    with the track borders and the grid lattice (minor and major) drawn."""
    import cv2
    ov, sc = overview(grey, lay.skew_deg)
    left = cv2.cvtColor(ov, cv2.COLOR_GRAY2BGR)
    hb, lb = int(lay.header_bottom * sc), int(lay.log_bottom * sc)
    rr = np.linspace(lay.header_bottom, max(lay.header_bottom + 1, lay.log_bottom - 1), 200)
    dd = lay.drift_at(rr)
    for i, (a, b) in enumerate(lay.tracks):
        col = _TRACK_COLOURS[i % len(_TRACK_COLOURS)]
        _tint(left, int(a * sc), int(b * sc), hb, lb, col)
        for x in (a, b - 1):  # the border as it runs (paper drift included)
            pts = np.stack([(x + dd) * sc, rr * sc], 1).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(left, [pts], False, col, 1)
    if lay.depth_track:
        a, b = lay.depth_track
        _tint(left, int(a * sc), int(b * sc), hb, lb, _DEPTH_COLOUR, 0.2)
    for r0, r1 in lay.sections:
        cv2.line(left, (0, int(r0 * sc)), (left.shape[1] - 1, int(r0 * sc)), _HEADER_COLOUR, 1)
        cv2.line(left, (0, int(r1 * sc)), (left.shape[1] - 1, int(r1 * sc)), (0, 140, 255), 1)
    # track labels, repeated down the body
    step = max(200, (lb - hb) // 6)
    for y in range(hb + 20, max(hb + 21, lb), step):
        for i, (a, b) in enumerate(lay.tracks):
            _label(left, f"T{i + 1}", (int((a + b) / 2 * sc) - 10, y),
                   _TRACK_COLOURS[i % len(_TRACK_COLOURS)])
        if lay.depth_track:
            a, b = lay.depth_track
            _label(left, "D", (int((a + b) / 2 * sc) - 5, y), _DEPTH_COLOUR)

    # detail at the header boundary, full resolution, at most 1,000 px wide
    h, w = grey.shape
    d0 = max(0, lay.header_bottom - 250)
    d1 = min(h, d0 + 1400)
    det = _deskew_rows(grey, lay.skew_deg, d0, d1)
    dsc = min(1.0, 1000 / w)
    det = cv2.resize(det, (max(1, int(w * dsc)), max(1, int((d1 - d0) * dsc))),
                     interpolation=cv2.INTER_AREA) if dsc < 1 else det.copy()
    right = cv2.cvtColor(det, cv2.COLOR_GRAY2BGR)
    minor, major = grid_rows(lay, d0, d1)
    for r in minor:
        y = int((r - d0) * dsc)
        cv2.line(right, (0, y), (8, y), _MINOR_COLOUR, 1)
    for r in major:
        y = int((r - d0) * dsc)
        cv2.line(right, (0, y), (18, y), _MAJOR_COLOUR, 2)
    off = float(lay.drift_at([(d0 + d1) / 2])[0])
    rr = np.arange(d0, d1, 8, dtype=np.float64)
    dd = lay.drift_at(rr)  # the borders as they run, row by row (paper drift)
    for i, (a, b) in enumerate(lay.tracks):
        col = _TRACK_COLOURS[i % len(_TRACK_COLOURS)]
        for x in (a, b - 1):
            pts = np.stack([(x + dd) * dsc, (rr - d0) * dsc], 1).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(right, [pts], False, col, 1)
        _label(right, f"T{i + 1}", (int((a + b) / 2 * dsc + off * dsc) - 10, 40), col, 0.8, 2)
    if lay.depth_track:
        a, b = lay.depth_track
        _label(right, "D", (int((a + b) / 2 * dsc) - 8, 40), _DEPTH_COLOUR, 0.8, 2)
    y = int((lay.header_bottom - d0) * dsc)
    cv2.line(right, (0, y), (right.shape[1] - 1, y), _HEADER_COLOUR, 1)
    _label(right, "header_bottom", (30, max(15, y - 6)), _HEADER_COLOUR)

    # compose with a caption
    gm = "-" if lay.grid_minor_px is None else f"{lay.grid_minor_px:.2f}"
    gM = "-" if lay.grid_major_px is None else f"{lay.grid_major_px:.2f}"
    lines = [title, f"skew {lay.skew_deg:+.3f} deg  tracks {len(lay.tracks)}  "
             f"grid {gm} / {gM} px  body rows {lay.header_bottom}-{lay.log_bottom}"]
    lines += lay.notes[:3]
    return _compose([left, right], lines)


def _compose(panels: list[np.ndarray], caption: list[str]) -> np.ndarray:
    import cv2
    gap = 10
    hh = max(p.shape[0] for p in panels)
    ww = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    cap_h = 22 * len([c for c in caption if c]) + 8
    out = np.full((hh + cap_h, max(ww, 600), 3), 255, np.uint8)
    y = 18
    for c in caption:
        if c:
            _label(out, c[:140], (6, y), (0, 0, 0), 0.5)
            y += 22
    x = 0
    for p in panels:
        out[cap_h:cap_h + p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a PNG atomically."""
    from .fsutil import atomic_write_png
    atomic_write_png(path, img)


def calibrate_picture(grey: np.ndarray, lay: Layout, tracks_stored: list[tuple[int, int]],
                      depth_stored: tuple[int, int] | None, tie_rows: list[int],
                      title: str = "") -> np.ndarray:
    """BGR preview for a calibration template, in **stored** pixels (what the YAML
    holds): the scan with the tracks numbered as in the YAML (1, 2 ...), the depth
    track (D) and the tie rows; beside it, a full-resolution crop of the depth track
    around each tie row so the depth printed there can be read."""
    import cv2
    ov, sc = overview(grey, 0.0, deskewed=False)
    left = cv2.cvtColor(ov, cv2.COLOR_GRAY2BGR)
    h, w = grey.shape
    for i, (a, b) in enumerate(tracks_stored):
        col = _TRACK_COLOURS[i % len(_TRACK_COLOURS)]
        for x in (a, b):
            # a deskewed-vertical border, drawn where it lies in the stored scan
            (ra, rb), (ca, cb) = lay.to_stored(
                [lay.header_bottom, lay.log_bottom],
                [float(lay.columns_to_deskewed(x))] * 2)
            cv2.line(left, (int(ca * sc), int(ra * sc)), (int(cb * sc), int(rb * sc)), col, 1)
        step = max(150, int((lay.log_bottom - lay.header_bottom) * sc) // 5)
        for y in range(int(lay.header_bottom * sc) + 30, int(lay.log_bottom * sc), step):
            _label(left, str(i + 1), (int((a + b) / 2 * sc) - 8, y), col, 0.9, 2)
    if depth_stored:
        a, b = depth_stored
        _label(left, "D", (int((a + b) / 2 * sc) - 8, int(lay.header_bottom * sc) + 30),
               _DEPTH_COLOUR, 0.9, 2)
    for k, r in enumerate(tie_rows):
        y = int(r * sc)
        cv2.line(left, (0, y), (left.shape[1] - 1, y), (0, 0, 255), 1)
        _label(left, f"tie {k + 1}", (4, max(14, y - 4)), (0, 0, 255))
    crops = []
    if depth_stored:
        a, b = depth_stored
        a, b = max(0, a - 60), min(w, b + 60)
    else:
        a, b = 0, min(w, 500)
    for k, r in enumerate(tie_rows):
        r0, r1 = max(0, r - 150), min(h, r + 150)
        crop = cv2.cvtColor(np.ascontiguousarray(grey[r0:r1, a:b]), cv2.COLOR_GRAY2BGR)
        cv2.line(crop, (0, r - r0), (crop.shape[1] - 1, r - r0), (0, 0, 255), 1)
        _label(crop, f"tie {k + 1}: row {r}", (4, 16), (0, 0, 255))
        crops.append(crop)
    panels = [left]
    if crops:
        cw = max(c.shape[1] for c in crops)
        stack = np.full((sum(c.shape[0] for c in crops) + 10 * len(crops), cw, 3), 255, np.uint8)
        y = 0
        for c in crops:
            stack[y:y + c.shape[0], :c.shape[1]] = c
            y += c.shape[0] + 10
        panels.append(stack)
    return _compose(panels, [title, "tracks numbered as in the YAML (tracks[0] = 1); "
                             "red lines: suggested depth tie rows"])
