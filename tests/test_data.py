"""Datasets over the renderer: item format, page-disjoint splits, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.data import (DATASETS, SynthTileDataset, UnlabelledDataset, is_val_page, make_dataset,
                           split_indices)


def test_datasets_registry():
    assert DATASETS["binary"]["count"] == 2000 and DATASETS["multiclass"]["count"] == 15000
    for d in DATASETS.values():
        assert d["val_fraction"] == 0.2


@pytest.mark.parametrize("count,tpp,vf", [(15000, 8, 0.2), (2000, 8, 0.2), (103, 5, 0.25), (64, 1, 0.2)])
def test_split_never_shares_a_page(count, tpp, vf):
    tr = split_indices(count, "train", vf, tpp)
    va = split_indices(count, "val", vf, tpp)
    assert len(tr) + len(va) == count
    assert not set(tr // tpp) & set(va // tpp)
    n_pages = -(-count // tpp)
    assert abs(len(set(va // tpp)) - vf * n_pages) <= 1
    # stable under growth: a bigger set keeps every page on its side
    va2 = split_indices(count * 2, "val", vf, tpp)
    assert set(va) <= set(va2)


def test_is_val_page_fraction():
    assert sum(is_val_page(p, 0.2) for p in range(1000)) == 200
    assert [p for p in range(13) if is_val_page(p, 0.2)] == [2, 7, 12]
    assert len(split_indices(24, "val", 0.2, 8)) == 8      # small sets still get a val page


@pytest.mark.parametrize("task,classes", [("binary", {0, 1}), ("multiclass", {0, 1, 2, 3, 4})])
def test_items(task, classes):
    ds = SynthTileDataset(task, split="train", count=24, size=64, return_clean=True)
    item = ds[3]
    assert item["image"].shape == (1, 64, 64) and item["image"].dtype == torch.float32
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["mask"].shape == (64, 64) and item["mask"].dtype == torch.int64
    assert set(torch.unique(item["mask"]).tolist()) <= classes
    assert item["clean"].shape == (1, 64, 64) and item["instance"].dtype == torch.int64
    assert torch.equal(ds[3]["image"], item["image"])                  # deterministic
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_cache_matches_render(tmp_path):
    plain = SynthTileDataset("multiclass", split="val", count=80, size=48)
    cached = SynthTileDataset("multiclass", split="val", count=80, size=48, cache_dir=tmp_path)
    a = cached[5]
    shards = list(tmp_path.rglob("shard_*.npz"))
    assert len(shards) == 1
    again = SynthTileDataset("multiclass", split="val", count=80, size=48, cache_dir=tmp_path)
    for i in (0, 5, len(plain) - 1):
        b = plain[i]
        c = again[i]
        assert torch.equal(b["image"], c["image"]) and torch.equal(b["mask"], c["mask"])
    assert torch.equal(a["mask"], plain[5]["mask"])
    # a different seed never reads the other's cache
    other = SynthTileDataset("multiclass", split="val", count=80, size=48, seed=9, cache_dir=tmp_path)
    other[0]
    assert len(list(tmp_path.rglob("shard_*.npz"))) == 2


def test_unlabelled_and_make_dataset():
    ds = UnlabelledDataset(count=3, seed=5, size=32)
    item = ds[2]
    assert set(item) == {"image", "clean", "instance"}
    assert item["clean"].shape == (1, 32, 32)
    md = make_dataset("binary", split="val", count=40, size=32)
    assert md.task == "binary" and len(md) == 8
    assert np.all(np.isin(md.page_ids(), [p for p in range(5) if is_val_page(p, 0.2)]))
    with pytest.raises(ValueError):
        SynthTileDataset("bogus")


@pytest.mark.parametrize("cached", [False, True])
def test_dataloader_workers_match_sequential(tmp_path, cached):
    """Rendering (or reading the shard cache) in DataLoader worker processes gives the
    same items as in-process."""
    ds = SynthTileDataset("multiclass", split="train", count=16, size=48,
                          cache_dir=tmp_path if cached else None)
    if cached:
        ds[0]   # an open shard handle in the parent must not break pickling for workers
    dl = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(dl)
    plain = SynthTileDataset("multiclass", split="train", count=16, size=48)
    seq = torch.stack([plain[i]["mask"] for i in range(len(plain))])
    assert torch.equal(torch.cat([b["mask"] for b in batches]), seq)
