"""Labelled tiles for parity checks, int8 calibration and accuracy checks.

``source="synth"`` takes tiles from the repo's renderer (``training.data``), the same
distribution the network was trained on but from seeds of its own (default
:data:`EXPORT_SEED`, never a training seed); ``source="toy"`` uses the tiny OpenCV
stand-in ``training.toydata`` (fast; tests).
"""

from __future__ import annotations

import numpy as np

#: renderer seed for export-time tiles (calibration, parity, int8 IoU); distinct from
#: the training/validation seeds of the training configs
EXPORT_SEED = 90_210
SOURCES = ("synth", "toy")
#: rendered tiles cut from one page (fewer = more varied pages, slower)
TILES_PER_PAGE = 4


def _dataset(source: str, count: int, size: int, seed: int, task: str):
    if source == "toy":
        from training.toydata import ToyTileDataset

        return ToyTileDataset(task=task, split="val", count=count, seed=seed, size=size,
                              val_fraction=1.0)
    if source == "synth":
        from training.data import SynthTileDataset

        # split "all": every index of this seed's own page stream (no training seed)
        return SynthTileDataset(task=task, split="all", count=count, seed=seed, size=size,
                                tiles_per_page=TILES_PER_PAGE)
    raise ValueError(f"tile source {source!r} unknown: use one of {SOURCES}")


def labelled_tiles(count: int, size: int, *, source: str = "synth", seed: int = EXPORT_SEED,
                   task: str = "multiclass") -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` pairs ``(image uint8 [size, size], mask uint8 [size, size])``.

    Deterministic in ``(source, seed, size, count)``.
    """
    ds = _dataset(source, count, size, seed, task)
    out = []
    for i in range(min(count, len(ds))):
        item = ds[i]
        img = np.asarray(item["image"], np.float32).reshape(size, size)
        out.append((np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8),
                    np.asarray(item["mask"]).reshape(size, size).astype(np.uint8)))
    if not out:
        raise ValueError(f"the {source} tile source gave no tiles")
    return out


def parity_tiles(sizes: list[tuple[int, int]], *, source: str = "synth",
                 seed: int = EXPORT_SEED) -> list[np.ndarray]:
    """Grey tiles of the given (H, W) sizes, cut from rendered tiles of edge max(H, W)."""
    tiles = []
    for k, (h, w) in enumerate(sizes):
        img, _ = labelled_tiles(1, max(h, w), source=source, seed=seed + 1 + k)[0]
        tiles.append(np.ascontiguousarray(img[:h, :w]))
    return tiles
