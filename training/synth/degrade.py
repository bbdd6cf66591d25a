"""Scan realism: paper, ink, fading, stains, bands, folds, blur, noise, JPEG, 1-bit.

:func:`scan_window` turns the print darkness of a window (stored-scan
coordinates, after skew) into the scanned image. Page-level parameters come from
``spec.scan``; spatially varying fields are read at page coordinates, so a tile
and the whole page agree in where a stain or band lies.
"""

from __future__ import annotations

import cv2
import numpy as np

from .layout import PageSpec
from .textures import window

CELL = 128  #: low-frequency field cell (px)


def lowfreq(seed: int, page_id: int, y0: int, x0: int, h: int, w: int, cell: int = CELL) -> np.ndarray:
    """Smooth page-level random field in [0, 1]: float32 [h, w] at page position (y0, x0).

    Node values on a ``cell`` grid are a hash of (page, node), so any window of the
    page sees the same field; one bicubic warp interpolates exactly the window.
    """
    c0y, c0x = y0 // cell - 2, x0 // cell - 2
    c1y, c1x = (y0 + h) // cell + 3, (x0 + w) // cell + 3
    yy, xx = np.meshgrid(np.arange(c0y, c1y).astype(np.uint64), np.arange(c0x, c1x).astype(np.uint64),
                         indexing="ij")
    key = (yy * np.uint64(73856093)) ^ (xx * np.uint64(19349663)) ^ np.uint64((seed * 83492791 + page_id) & 0xFFFFFFFF)
    key = (key ^ (key >> np.uint64(13))) * np.uint64(0x5BD1E995) & np.uint64(0xFFFFFFFF)
    key = key ^ (key >> np.uint64(15))
    grid = (key % np.uint64(10007)).astype(np.float32) / 10007.0
    # window pixel (i, j) -> grid coordinate ((y0 + i) / cell - c0y, (x0 + j) / cell - c0x)
    M = np.array([[1.0 / cell, 0.0, x0 / cell - c0x], [0.0, 1.0 / cell, y0 / cell - c0y]], np.float64)
    out = cv2.warpAffine(grid, M, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return np.clip(out, 0.0, 1.0)


def _paper(spec: PageSpec, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Paper brightness float32 [h, w]: tone, fibre texture, stains, bands, folds."""
    p = spec.scan
    paper = np.full((h, w), p["paper"], np.float32)
    if p["texture"] > 0:
        paper += p["texture"] * window("paper", p["tex_off"], y0, x0, h, w)
    ys = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
    xs = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
    for yc, half, depth in p["bands"]:
        if abs(yc - (y0 + h / 2)) < h / 2 + 4 * half:
            paper -= depth * np.exp(-((ys - yc) / half) ** 2)
    for xc, half, depth in p.get("streaks", ()):
        if x0 - 10 < xc < x0 + w + 10:
            paper -= depth * np.exp(-((xs - xc) / half) ** 2)
    for xc, half, depth in p.get("edges", ()):
        if abs(xc - (x0 + w / 2)) < w / 2 + 4 * half:
            wob = 1.0 + 0.4 * (lowfreq(spec.seed, spec.page_id + 104729, y0, x0, h, 1, 64) - 0.5)
            paper -= depth * np.exp(-((np.abs(xs - xc) / (half * wob)) ** 4))
    if p["stains"]:
        lf = lowfreq(spec.seed, spec.page_id + 7919, y0, x0, h, w, 64)
        for xc, yc, rx, ry, depth in p["stains"]:
            if abs(yc - (y0 + h / 2)) < h / 2 + 3 * ry and abs(xc - (x0 + w / 2)) < w / 2 + 3 * rx:
                blob = np.exp(-((xs - xc) / rx) ** 2 - ((ys - yc) / ry) ** 2)
                paper -= depth * blob * (0.5 + lf)
    for vertical, pos, depth in p["folds"]:
        coord = xs if vertical else ys
        lo = x0 if vertical else y0
        size = w if vertical else h
        if lo - 200 < pos < lo + size + 200:
            d = coord - pos
            paper = paper - depth * 0.5 * np.exp(-(d / 25.0) ** 2) - depth * (np.abs(d) < 1.0)
    return paper


def scan_window(spec: PageSpec, dark: np.ndarray, y0: int, x0: int) -> np.ndarray:
    """Scanned image of a window.

    Parameters
    ----------
    dark : uint8 [h, w, C] print darkness (0 none .. 255 full ink), stored coords
    y0, x0 : window origin in the stored scan (px)

    Returns
    -------
    uint8 [h, w] grey (0 ink, 255 paper) or [h, w, 3] RGB on colour prints.
    """
    h, w, C = dark.shape
    p = spec.scan
    d = dark.astype(np.float32) * (1.0 / 255.0)
    if not spec.degrade:
        img = 255.0 * (1.0 - d)
        if spec.binarize:
            img = np.where(img < 128, 0.0, 255.0)
        return _finish(img, C)
    if p["fade"] > 0:
        lf = lowfreq(spec.seed, spec.page_id, y0, x0, h, w)
        d *= (1.0 - p["fade"] * np.clip(2.5 * lf - 1.4, 0.0, 1.0))[..., None]   # faded patches
    if p["bleed"] > 0:
        b = cv2.GaussianBlur(np.ascontiguousarray(d[:, ::-1]), (0, 0), 2.0)
        if b.ndim == 2:
            b = b[..., None]
        d = np.maximum(d, p["bleed"] * b)
    paper = _paper(spec, y0, x0, h, w)[..., None]
    if C == 3:
        paper = paper + np.asarray(p["paper_tint"], np.float32)
    img = paper * (1.0 - d) + p["ink"] * d
    if p["blur"] > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), p["blur"])
        if img.ndim == 2:
            img = img[..., None]
    if p["noise"] > 0:
        img += p["noise"] * window("fine", p["tex_off"], y0, x0, h, w)[..., None]
    if p["speckle"] > 0:
        sp = window("speck", p["tex_off"], y0 + 17, x0 + 31, h, w)
        img[sp < p["speckle"]] = p["ink"]
        img[sp > 1.0 - 0.3 * p["speckle"]] = p["paper"]
    if spec.binarize:
        thr = p["ink"] + p["threshold"] * (p["paper"] - p["ink"])
        img = np.where(img < thr, 0.0, 255.0)
        return _finish(img, C)
    out = _finish(img, C)
    if p["jpeg"]:
        code = cv2.COLOR_RGB2BGR if C == 3 else None
        enc_in = cv2.cvtColor(out, code) if code is not None else out
        ok, buf = cv2.imencode(".jpg", enc_in, [cv2.IMWRITE_JPEG_QUALITY, int(p["jpeg"])])
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR if C == 3 else cv2.IMREAD_GRAYSCALE)
        out = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB) if C == 3 else dec
    return out


def _finish(img: np.ndarray, C: int) -> np.ndarray:
    out = np.clip(img, 0, 255).astype(np.uint8)
    return out[..., 0] if C == 1 and out.ndim == 3 else out

