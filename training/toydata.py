"""A tiny stand-in for the renderer: random log-like curves drawn with OpenCV.

Same item format as ``training.data.SynthTileDataset``:
``{"image": float32 [1, S, S] (pixel/255, white paper = 1), "mask": int64 [S, S] class ids}``.
Used by the tests (fast, no renderer needed) and selected with ``data.source=toy``.
Each curve is a vertical random walk (x as a function of the row), drawn in one of the
four line styles; a light grid sits underneath as background clutter.
"""

from __future__ import annotations

import numpy as np
import torch

from logdigit.constants import BINARY_CLASS_MAP, CURVE_STYLES, STYLE_TO_CLASS

#: (on, off) dash patterns in pixels of arc length; dashdot alternates long + dot.
_PATTERNS: dict[str, tuple[int, ...]] = {
    "solid": (),
    "dashed": (10, 6),
    "dotted": (2, 4),
    "dashdot": (12, 4, 2, 4),
}


def _on_mask(style: str, n: int) -> np.ndarray:
    pat = _PATTERNS[style]
    if not pat:
        return np.ones(n, bool)
    cyc = np.concatenate([np.full(L, i % 2 == 0) for i, L in enumerate(pat)])
    return np.resize(cyc, n)


def render_toy_tile(seed: int, index: int, size: int = 64, task: str = "multiclass",
                    max_curves: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Render one toy tile.

    Returns
    -------
    image : [size, size] uint8 grey (paper 255, ink dark)
    mask : [size, size] uint8 class ids (CLASS_MAP; {0, 1} when ``task == "binary"``)
    """
    import cv2

    rng = np.random.default_rng([seed, index])
    paper = int(rng.integers(215, 256))
    img = np.full((size, size), paper, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    step = int(rng.integers(8, 20))
    grid = int(rng.integers(160, 215))
    for x in range(int(rng.integers(0, step)), size, step):
        img[:, x] = grid
    for y in range(int(rng.integers(0, step)), size, step):
        img[y, :] = grid
    rows = np.arange(size)
    for _ in range(int(rng.integers(1, max_curves + 1))):
        style = CURVE_STYLES[int(rng.integers(len(CURVE_STYLES)))]
        cls = STYLE_TO_CLASS[style] if task != "binary" else max(BINARY_CLASS_MAP)
        walk = np.cumsum(rng.normal(0, 1.2, size))
        xs = np.clip(rng.uniform(0.2, 0.8) * size + walk - walk.mean(), 1, size - 2)
        pts = np.stack([xs, rows], 1)
        seg_len = np.hypot(np.diff(xs), 1.0)
        arc = np.concatenate([[0.0], np.cumsum(seg_len)]).astype(int)
        on = _on_mask(style, int(arc[-1]) + 2)[arc]
        ink = int(rng.integers(0, 90))
        thick = int(rng.integers(1, 3))
        for i in range(size - 1):
            if on[i] and on[i + 1]:
                p0 = tuple(int(round(v)) for v in pts[i])
                p1 = tuple(int(round(v)) for v in pts[i + 1])
                cv2.line(img, p0, p1, ink, thick)
                cv2.line(mask, p0, p1, cls, thick)
    noise = rng.normal(0, 6, img.shape)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return img, mask


class ToyTileDataset(torch.utils.data.Dataset):
    """Deterministic toy tiles by index; ``split`` picks a disjoint seed stream.

    Parameters mirror ``SynthTileDataset`` (``task, split, count, seed, size``); extra
    keyword arguments are accepted and ignored so configs stay interchangeable.
    """

    def __init__(self, task: str = "multiclass", split: str = "train", count: int = 64,
                 seed: int = 0, size: int = 64, val_fraction: float = 0.25, **_ignored):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        n_val = max(1, int(round(count * val_fraction)))
        self.count = n_val if split == "val" else max(1, count - n_val)
        self.offset = count - n_val if split == "val" else 0
        self.task, self.seed, self.size = task, seed, size

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.count:
            raise IndexError(i)
        img, mask = render_toy_tile(self.seed, self.offset + i, self.size, self.task)
        return {"image": torch.from_numpy(img.astype(np.float32) / 255.0)[None],
                "mask": torch.from_numpy(mask.astype(np.int64))}
