"""Tiny synthetic log pages whose layout is known by construction (for layout/io/CLI tests).

Not a renderer: just borders, a grid, a depth track with number-like blobs, a header
with text-like blocks and one sine curve per track, optionally rotated.
"""

from __future__ import annotations

import math
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
             border: int = 3, heavy_middle: bool = False, log_t2: bool = False,
             faded_edge: bool = False, narrow_t4: bool = False, bare_t1: bool = False,
             open_t1: bool = False, overshoot_t3: bool = False) -> SynthLog:
    """A log page: track 1, depth track, tracks 2 and 3 (sharing a border).

    Options for what real paper shows: ``heavy_middle``: the middle line of every
    linear track as heavy as the borders, divisions uneven by up to 0.8 % of the
    track width (stretched paper); ``log_t2``: track 2 a 3-decade log grid
    starting at the 2 mark (0.2-200: heavy decade lines inside, not at the borders);
    ``faded_edge``: the minor horizontal lines of track 1's outer division broken into
    dashes (a faded scan edge); ``narrow_t4``: a fourth, 5-division track right of
    track 3 (sharing its border) whose minor horizontal lines are only ticks beside
    the vertical lines; ``bare_t1``: track 1 without any grid (never printed or faded
    away), only its border lines and its curve; ``open_t1``: track 1's left border all
    but faded (a thin line in a quarter of the rows) and the vertical lines of its left
    half not printed, its horizontal grid still running to the edge (paper scan YM127);
    ``overshoot_t3``: track 3's horizontal lines run on 0.6 of a division past its
    right border."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 255, np.uint8)
    m = int(0.05 * w)
    tw = int(0.28 * w)
    dw = int(0.08 * w)
    if narrow_t4:
        tw = int(0.24 * w)
    t1 = (m, m + tw)
    d = (t1[1], t1[1] + dw)
    t2 = (d[1], d[1] + tw)
    t3 = (t2[1], t2[1] + tw)
    t4 = (t3[1], t3[1] + tw // 2) if narrow_t4 else None
    top, bot = header, h - footer
    # header: text-like blocks and a box
    for _ in range(40):
        y = int(rng.integers(20, max(21, top - 30)))
        x = int(rng.integers(10, w - 120))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 110)), y + 8), 0, -1)
    cv2.rectangle(img, (5, 5), (w - 6, top - 15), 0, 2)
    # grid inside tracks
    for j, (a, b) in enumerate((t1, t2, t3)):
        if bare_t1 and j == 0:
            continue
        if log_t2 and j == 1:
            # 0.2 - 200: decades at 1, 10, 100 (heavy), 2..9 marks thin
            for v in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                      20, 30, 40, 50, 60, 70, 80, 90, 100):
                x = a + round((b - a) * np.log10(v / 0.2) / 3)
                if v in (1, 10, 100):
                    img[top:bot, x - border // 2: x - border // 2 + border] = 0
                else:
                    img[top:bot, x] = 0
        else:
            for i in range(1, 10):
                if open_t1 and j == 0 and i < 5:
                    continue
                x = a + round(i * (b - a) / 10)
                if heavy_middle:  # old paper: divisions uneven by up to 0.8 % of the width
                    x += int(round(0.008 * (b - a) * math.sin(1.7 * i + j)))
                if heavy_middle and i == 5:
                    img[top:bot, x - border // 2: x - border // 2 + border] = 0
                else:
                    img[top:bot, x] = 0
        over = int(0.06 * (b - a)) if overshoot_t3 and j == 2 else 0
        for k, y in enumerate(range(top, bot, minor)):
            th = 2 if k % major_every == 0 else 1
            img[y:y + th, a:b + over] = 0
            if faded_edge and j == 0 and k % major_every:
                x1 = a + round((b - a) / 10)
                img[y:y + th, a:x1][:, (np.arange(x1 - a) // 2) % 8 != 0] = 255  # specks
    if t4 is not None:
        a, b = t4
        for i in range(1, 5):
            img[top:bot, a + round(i * (b - a) / 5)] = 0
        xs = [a + round(i * (b - a) / 5) for i in range(6)]
        for k, y in enumerate(range(top, bot, minor)):
            th = 2 if k % major_every == 0 else 1
            if k % major_every == 0:
                img[y:y + th, a:b] = 0
            else:
                for x in xs:  # ticks: 2 px either side of each vertical line
                    img[y:y + th, max(a, x - 2):min(b, x + 3)] = 0
    # borders (heavier), shared border between tracks 2 and 3 (and 3 and 4)
    xs = ({t1[1], t2[0], t2[1], t3[1]} | ({t4[1]} if t4 else set())
          | (set() if open_t1 else {t1[0]}))
    for x in sorted(xs):
        img[top:bot, x - border // 2: x - border // 2 + border] = 0
    if open_t1:  # a faint trace of the left border: a thin line in every fourth strip
        for y in range(top, bot, 1024):
            img[y:min(bot, y + 256), t1[0]] = 0
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
    tracks = [(t[0] - lo, t[1] - lo + border) for t in (t1, t2, t3, t4) if t is not None]
    depth = (d[0] - lo, d[1] - lo + border)
    stored = deskew(img, -skew) if skew else img
    return SynthLog(stored, tracks, depth, float(minor), float(minor * major_every), top, bot, skew,
                    extra={"straight": img})


def shift_rows(img: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """``img`` with row r moved right by ``dx[r]`` px (int): paper sliding sideways
    through the scanner (borders that bend or jump along the strip)."""
    out = np.full_like(img, 255)
    w = img.shape[1]
    for r, d in enumerate(np.asarray(dx, int)):
        if d >= 0:
            out[r, d:] = img[r, :w - d]
        else:
            out[r, :d] = img[r, -d:]
    return out
