"""Precomputed noise textures, tiled over page coordinates with per-page offsets.

Fresh full-resolution random fields per tile would dominate the render time;
instead a few fields are made once per process (fixed seed) and each page reads
them at its own offset, so a region and the whole page see the same texture.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

T = 1024  #: texture edge (px)


@lru_cache(maxsize=None)
def _fields() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    out = {}
    out["fine"] = rng.standard_normal((T, T)).astype(np.float32)          # per-pixel noise
    blob = _periodic_blur(rng.standard_normal((T, T)).astype(np.float32), 2.6)
    out["blob"] = blob / blob.std()                                           # ~6 px blobs (holes)
    fibre = _periodic_blur(rng.standard_normal((T, T)).astype(np.float32), 1.5)
    fibre = 0.6 * fibre / fibre.std() + _periodic_blur(rng.standard_normal((T, T)).astype(np.float32), 8.0)
    out["paper"] = fibre / fibre.std()
    out["speck"] = rng.random((T, T)).astype(np.float32)                    # uniform: speckle threshold
    return {k: np.tile(v, (2, 2)) for k, v in out.items()}


def _periodic_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a periodic field (blur the 3x3 tiling, keep the centre)."""
    n = a.shape[0]
    big = cv2.GaussianBlur(np.tile(a, (3, 3)), (0, 0), sigma)
    return np.ascontiguousarray(big[n:2 * n, n:2 * n])


def window(name: str, off: tuple[int, int], y: int, x: int, h: int, w: int) -> np.ndarray:
    """float32 [h, w] view of texture ``name`` at page position (y, x) + per-page offset."""
    tex = _fields()[name]
    yy, xx = (y + off[0]) % T, (x + off[1]) % T
    if h <= T and w <= T:
        return tex[yy:yy + h, xx:xx + w]
    reps = (-(-(yy + h) // T), -(-(xx + w) // T))
    return np.tile(tex[:T, :T], reps)[yy:yy + h, xx:xx + w]


def hole_field(off: tuple[int, int], y: int, x: int, h: int, w: int, amount: float) -> np.ndarray:
    """bool [h, w]: where thin lines break (about ``amount`` of the area, blobby)."""
    thr = _quantile("blob", 1.0 - amount)
    return window("blob", off, y, x, h, w) > thr


@lru_cache(maxsize=None)
def _sorted_sample(name: str) -> np.ndarray:
    return np.sort(_fields()[name][:T:7, :T:7].ravel())


def _quantile(name: str, q: float) -> float:
    s = _sorted_sample(name)
    return float(s[int(np.clip(q, 0.0, 1.0) * (len(s) - 1))])
