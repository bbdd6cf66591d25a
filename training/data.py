"""Datasets over the synthetic renderer: by index, deterministic, split by page.

Instances are tiles cut from rendered pages (:func:`training.synth.render_tile`),
rendered on the fly in DataLoader workers, optionally cached to ``.npz`` shards.
Tiles are grouped into pages (``page_id = index // tiles_per_page``) and the
train/val split is by page id, so train and val never share a page. ``count``
counts instances over both splits.

>>> ds = SynthTileDataset("binary", split="val", count=40, size=64)
>>> item = ds[0]
>>> tuple(item["image"].shape), item["mask"].dtype
((1, 64, 64), torch.int64)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from logdigit.fsutil import atomic_open
from training.config import to_dict
from training.synth import RenderConfig, render_tile

#: the two standard training sets
DATASETS: dict[str, dict[str, Any]] = {
    "binary": dict(task="binary", count=2000, seed=1, size=512, val_fraction=0.2, tiles_per_page=8),
    "multiclass": dict(task="multiclass", count=15000, seed=0, size=512, val_fraction=0.2, tiles_per_page=8),
}

SPLITS = ("train", "val", "all")
SHARD_ITEMS = 256   #: items per cache shard
OPEN_SHARDS = 8     #: shard files kept open per process
ARRAYS = ("image", "mask", "clean", "instance")


def is_val_page(page_id: int, val_fraction: float) -> bool:
    """Page ``page_id`` belongs to the validation split.

    Exactly ``val_fraction`` of every run of pages, spread evenly, and stable when
    ``count`` grows (a page never changes side): page p is val iff
    ``floor((p + 1) * f + 1/2) > floor(p * f + 1/2)`` (f = 0.2: pages 2, 7, 12, ...).
    """
    f = float(val_fraction)
    return int(np.floor((page_id + 1) * f + 0.5 + 1e-9)) > int(np.floor(page_id * f + 0.5 + 1e-9))


def split_indices(count: int, split: str, val_fraction: float, tiles_per_page: int) -> np.ndarray:
    """Global instance indices (int64 [n]) of ``split`` among ``range(count)``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    idx = np.arange(int(count), dtype=np.int64)
    if split == "all":
        return idx
    pages = idx // int(tiles_per_page)
    n_pages = int(pages.max()) + 1 if len(pages) else 0
    val_page = np.array([is_val_page(p, val_fraction) for p in range(n_pages)], dtype=bool)
    sel = val_page[pages] if n_pages else np.zeros(0, bool)
    return idx[sel] if split == "val" else idx[~sel]


def _to_item(t: dict[str, np.ndarray], return_clean: bool) -> dict[str, torch.Tensor]:
    item = {"image": torch.from_numpy(t["image"].astype(np.float32) * (1.0 / 255.0))[None],
            "mask": torch.from_numpy(t["mask"].astype(np.int64))}
    if return_clean:
        item["clean"] = torch.from_numpy(t["clean"].astype(np.float32) * (1.0 / 255.0))[None]
        item["instance"] = torch.from_numpy(t["instance"].astype(np.int64))
    return item


class _TileSource:
    """Renders (or reads from cached shards) tiles by global index."""

    def __init__(self, task: str, seed: int, size: int, tiles_per_page: int, cfg: RenderConfig,
                 cache_dir: str | os.PathLike | None, indices: np.ndarray):
        self.task, self.seed, self.size, self.tpp, self.cfg = task, int(seed), int(size), int(tiles_per_page), cfg
        self.indices = indices
        self.cache = None
        if cache_dir is not None:
            key = json.dumps({"task": task, "seed": self.seed, "size": self.size, "tpp": self.tpp,
                              "cfg": to_dict(cfg), "indices": hashlib.sha256(indices.tobytes()).hexdigest()},
                             sort_keys=True)
            self.cache = Path(cache_dir) / hashlib.sha256(key.encode()).hexdigest()[:16]
        self._open_shards: dict[int, Any] = {}
        self._pid = os.getpid()

    def render(self, g: int) -> dict[str, np.ndarray]:
        return render_tile(self.seed, int(g), task=self.task, size=self.size, cfg=self.cfg,
                           tiles_per_page=self.tpp)

    def get(self, i: int) -> dict[str, np.ndarray]:
        """Tile arrays (image, mask, clean, instance) of split item ``i``."""
        if self.cache is None:
            return self.render(int(self.indices[i]))
        k, j = divmod(i, SHARD_ITEMS)
        z = self._open(k)
        return {name: z[f"{j}_{name}"] for name in ARRAYS}

    def shard_path(self, k: int) -> Path:
        assert self.cache is not None
        return self.cache / f"shard_{k:05d}.npz"

    def _open(self, k: int):
        """The shard's open NpzFile (members are read - and decompressed - one by one,
        so shuffled access costs one item, not one shard); a few kept open, per process:
        a forked DataLoader worker must not read through the parent's file offset."""
        if self._pid != os.getpid():
            self._open_shards, self._pid = {}, os.getpid()
        z = self._open_shards.get(k)
        if z is None:
            path = self.shard_path(k)
            if not path.exists():
                self._build(k)
            z = np.load(path)
            self._open_shards[k] = z
            if len(self._open_shards) > OPEN_SHARDS:
                self._open_shards.pop(next(iter(self._open_shards))).close()
        return z

    def _build(self, k: int) -> None:
        lo, hi = k * SHARD_ITEMS, min((k + 1) * SHARD_ITEMS, len(self.indices))
        arrays = {}
        for j, g in enumerate(self.indices[lo:hi]):
            t = self.render(int(g))
            arrays.update({f"{j}_{name}": t[name] for name in ARRAYS})
        with atomic_open(self.shard_path(k), "wb") as f:   # concurrent workers: last complete write wins
            np.savez_compressed(f, **arrays)

    def __getstate__(self):   # DataLoader workers: open files are not pickled
        state = dict(self.__dict__)
        state["_open_shards"] = {}
        return state

    def build_all(self, progress: bool = False) -> None:
        """Render every missing shard now (e.g. before training)."""
        n_shards = (len(self.indices) + SHARD_ITEMS - 1) // SHARD_ITEMS
        it = range(n_shards)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="cache shards", unit="shard")
        for k in it:
            if not self.shard_path(k).exists():
                self._build(k)


class SynthTileDataset(Dataset):
    """Synthetic training tiles for ``task`` ("binary" or "multiclass").

    Parameters
    ----------
    task : "binary" (mask 0/1) or "multiclass" (CLASS_MAP ids)
    split : "train", "val" or "all"
    count : instances over both splits
    seed, size : renderer seed and tile edge (px)
    val_fraction : fraction of pages in the val split
    tiles_per_page : consecutive indices sharing one page
    cache_dir : if given, tiles are cached in compressed ``.npz`` shards of 256 items
        there (a shard is rendered whole when first touched; ``build_cache()`` fills all)
    return_clean : also return "clean" (float32 [1, S, S]) and "instance" (int64 [S, S])
    cfg : renderer ranges (default :class:`RenderConfig`)

    Items: ``{"image": float32 [1, S, S] = pixel/255, "mask": int64 [S, S]}``.
    """

    def __init__(self, task: str = "multiclass", split: str = "train", count: int = 15000, seed: int = 0,
                 size: int = 512, val_fraction: float = 0.2, tiles_per_page: int = 8,
                 cache_dir: str | os.PathLike | None = None, return_clean: bool = False,
                 cfg: RenderConfig | None = None):
        if task not in ("binary", "multiclass"):
            raise ValueError(f"task must be 'binary' or 'multiclass', got {task!r}")
        self.task, self.split, self.count, self.seed, self.size = task, split, int(count), int(seed), int(size)
        self.val_fraction, self.tiles_per_page, self.return_clean = val_fraction, int(tiles_per_page), return_clean
        self.cfg = cfg or RenderConfig()
        self.indices = split_indices(count, split, val_fraction, tiles_per_page)
        if len(self.indices) == 0:
            raise ValueError(f"split {split!r} of {count} instances ({tiles_per_page} per page, "
                             f"val_fraction {val_fraction}) is empty: raise count")
        self.source = _TileSource(task, seed, size, tiles_per_page, self.cfg, cache_dir, self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def page_ids(self) -> np.ndarray:
        """Page id of every item (int64 [len])."""
        return self.indices // self.tiles_per_page

    def tile(self, i: int) -> dict[str, np.ndarray]:
        """Raw uint8 arrays of item ``i`` (image, mask, clean, instance)."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.source.get(i)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return _to_item(self.tile(i), self.return_clean)

    def build_cache(self, progress: bool = False) -> None:
        """Fill the shard cache (no-op without ``cache_dir``)."""
        if self.source.cache is not None:
            self.source.build_all(progress)


def make_dataset(name: str, split: str = "train", **overrides: Any) -> SynthTileDataset:
    """One of :data:`DATASETS` (``"binary"``, ``"multiclass"``) with overrides (count, seed, ...)."""
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is unknown: use one of {', '.join(DATASETS)}")
    return SynthTileDataset(split=split, **{**DATASETS[name], **overrides})


class UnlabelledDataset(Dataset):
    """Tiles for self-supervised pretraining: one page per item by default.

    Items: ``{"image": float32 [1, S, S], "clean": float32 [1, S, S] (the render before
    scan degradation), "instance": int64 [S, S] (curve instance ids, 0 none)}``. No
    class mask is returned: pretexts must not see labels.
    """

    def __init__(self, count: int = 2000, seed: int = 1000, size: int = 256, tiles_per_page: int = 1,
                 cfg: RenderConfig | None = None, cache_dir: str | os.PathLike | None = None):
        self.count, self.seed, self.size = int(count), int(seed), int(size)
        self.cfg = cfg or RenderConfig()
        self.source = _TileSource("multiclass", seed, size, tiles_per_page, self.cfg, cache_dir,
                                  np.arange(self.count, dtype=np.int64))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.count:
            raise IndexError(i)
        item = _to_item(self.source.get(i), return_clean=True)
        del item["mask"]
        return item
