"""Tiny synthetic log pages whose layout is known by construction (for layout/io/CLI tests).

Not a renderer: just borders, a grid, a depth track with number-like blobs, a header
with text-like blocks and one sine curve per track, optionally rotated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from logdigit.layout import deskew


@dataclass
class SynthLog:
    image: np.ndarray                      # uint8 [H, W] as stored (rotated by skew)
    tracks: list[tuple[int, int]]          # deskewed columns of border lines (x1 exclusive)
    depth_track: tuple[int, int]
    minor: float
    major: float
    header_bottom: int
    log_bottom: int
    skew: float
    extra: dict = field(default_factory=dict)


def make_log(h: int = 3000, w: int = 1000, skew: float = 0.0, minor: int = 10,
             major_every: int = 5, header: int = 400, footer: int = 100, seed: int = 0,
             border: int = 3) -> SynthLog:
    """A log page: track 1, depth track, tracks 2 and 3 (sharing a border)."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 255, np.uint8)
    m = int(0.05 * w)
    tw = int(0.28 * w)
    dw = int(0.08 * w)
    t1 = (m, m + tw)
    d = (t1[1], t1[1] + dw)
    t2 = (d[1], d[1] + tw)
    t3 = (t2[1], t2[1] + tw)
    top, bot = header, h - footer
    # header: text-like blocks and a box
    for _ in range(40):
        y = int(rng.integers(20, max(21, top - 30)))
        x = int(rng.integers(10, w - 120))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 110)), y + 8), 0, -1)
    cv2.rectangle(img, (5, 5), (w - 6, top - 15), 0, 2)
    # grid inside tracks
    for (a, b) in (t1, t2, t3):
        for i in range(1, 10):
            x = a + round(i * (b - a) / 10)
            img[top:bot, x] = 0
        for k, y in enumerate(range(top, bot, minor)):
            th = 2 if k % major_every == 0 else 1
            img[y:y + th, a:b] = 0
    # borders (heavier), shared border between tracks 2 and 3
    for x in sorted({t1[0], t1[1], t2[0], t2[1], t3[1]}):
        img[top:bot, x - border // 2: x - border // 2 + border] = 0
    # depth numbers: blobs every 100 rows in the depth track
    for y in range(top + 50, bot - 20, 100):
        cv2.rectangle(img, (d[0] + dw // 4, y), (d[1] - dw // 4, y + 12), 0, -1)
    # one curve per track
    yy = np.arange(top, bot)
    for j, (a, b) in enumerate((t1, t2, t3)):
        xc = a + (b - a) * (0.5 + 0.35 * np.sin(yy / (60.0 + 20 * j) + j))
        pts = np.stack([xc, yy], 1).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, 0, 2)
    lo = border // 2
    tracks = [(t1[0] - lo, t1[1] - lo + border), (t2[0] - lo, t2[1] - lo + border),
              (t3[0] - lo, t3[1] - lo + border)]
    depth = (d[0] - lo, d[1] - lo + border)
    stored = deskew(img, -skew) if skew else img
    return SynthLog(stored, tracks, depth, float(minor), float(minor * major_every), top, bot, skew,
                    extra={"straight": img})
