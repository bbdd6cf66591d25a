"""Pretexts: inpainting masks and loss, DenseCL matching and loss, the step engine, and
checkpoints that load into fine-tuning."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from logdigit.constants import NUM_CLASSES
from training import ssl
from training.checkpoint import load_checkpoint
from training.pretrain_densecl import DenseCLConfig, pretrain_densecl
from training.engine import NonFiniteLossError
from training.pretrain_engine import OptimConfig, StepResult, train_steps
from training.pretrain_inpaint import InpaintConfig, MaskedPages, pretrain_inpaint

torch.set_num_threads(1)

#: the network of training/configs/tiny.yaml, so checkpoints load into its fine-tuning
TINY = {"base_width": 8, "depth": 3}
TINY_YAML = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.yaml"


class FakePages(torch.utils.data.Dataset):
    """Unlabelled pages with a known answer: 1-2 wavy polyline curves (instance ids 1, 2)
    over a faint grid; ``image`` is the clean page with noise and a blur."""

    def __init__(self, count: int = 16, size: int = 32, seed: int = 0):
        self.count, self.size, self.seed = count, size, seed

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        s = self.size
        rng = np.random.default_rng([self.seed, i])
        clean = np.full((s, s), 240, np.uint8)
        clean[:, :: max(4, s // 4)] = 200
        inst = np.zeros((s, s), np.uint8)
        rows = np.arange(s)
        for cid in range(1, int(rng.integers(1, 3)) + 1):
            x = s / 2 + s / 4 * np.sin(rows / rng.uniform(3, 8) + rng.uniform(0, 6)) + rng.normal(0, 1)
            pts = np.stack([np.clip(x, 0, s - 1), rows], 1).astype(np.int32)[None]
            cv2.polylines(clean, pts, False, 20, 1)
            cv2.polylines(inst, pts, False, cid, 1)
        img = cv2.GaussianBlur(clean, (3, 3), 0.6).astype(np.float32)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255) / 255
        return {"image": torch.from_numpy(img[None].astype(np.float32)),
                "clean": torch.from_numpy(clean[None].astype(np.float32) / 255),
                "instance": torch.from_numpy(inst.astype(np.int64))}


# ----------------------------------------------------------------------------- masks


def _line(kind: str, n: int = 96) -> np.ndarray:
    """One 1-px curve (instance 1) in a [n, n] page: vertical, horizontal, diagonal or a
    dashed vertical line (10 on, 6 off)."""
    inst = np.zeros((n, n), np.int64)
    r = np.arange(n)
    if kind == "vertical":
        inst[r, 20] = 1
    elif kind == "horizontal":
        inst[30, r] = 1
    elif kind == "diagonal":
        inst[r, r] = 1
    elif kind == "dashed":
        inst[r[(r % 16) < 10], 40] = 1
    return inst


@pytest.mark.parametrize("kind", ["vertical", "horizontal", "diagonal", "dashed"])
@pytest.mark.parametrize("lo,hi", [(0.3, 0.7), (0.5, 0.5)])
def test_curve_mask_hides_the_drawn_fraction_of_arc(kind, lo, hi):
    inst = _line(kind)
    n = int((inst > 0).sum())
    cfg = ssl.MaskConfig(curve_fraction=(lo, hi), segment_px=(6, 10), dilate_px=0)
    for seed in range(4):
        mask, frac = ssl.curve_segment_mask(inst, cfg, np.random.default_rng(seed))
        # only curve pixels are hidden (no widening) and exactly the reported share
        assert not mask[inst == 0].any()
        assert mask.sum() / n == pytest.approx(frac[1])
        assert lo <= frac[1] <= hi + 11 / n  # overshoot: at most one stretch (<= 11 px)
        # hidden pixels come in stretches, never single scattered pixels (dashes aside)
        if kind != "dashed":
            k, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
            assert stats[1:, cv2.CC_STAT_AREA].max() >= 4


def test_stretch_is_a_walk_along_the_curve():
    """A stretch grows along the curve, across dash gaps, never across to another line."""
    support = np.zeros((40, 40), bool)
    support[:, 10] = True          # a vertical line
    support[:, 13] = True          # a parallel one, 3 px away (not connected)
    ball = ssl.grow_along(support, (20, 10), 5)
    assert ball[15:26, 10].all() and ball.sum() == 11 and not ball[:, 13].any()
    dashed = np.zeros((40, 40), bool)
    dashed[[r for r in range(40) if r % 8 < 5], 10] = True
    bridged = ssl.dilate(dashed, 2)
    ball = ssl.grow_along(bridged, (20, 10), 8) & dashed
    assert ball[12:29, 10].sum() == dashed[12:29, 10].sum()


def test_dilation_and_blocks():
    inst = _line("vertical")
    cfg = ssl.MaskConfig(curve_fraction=(0.5, 0.5), dilate_px=2, block_px=8, block_fraction=0.1)
    rng = np.random.default_rng(0)
    mask, _ = ssl.curve_segment_mask(inst, cfg, rng)
    cols = np.nonzero(mask.any(0))[0]
    assert cols.tolist() == [18, 19, 20, 21, 22]
    blocks = ssl.block_mask((64, 64), cfg, rng)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(blocks.astype(np.uint8))
    # every block is an 8x8 square (overlaps may merge some into larger components)
    assert (stats[1:, cv2.CC_STAT_WIDTH] >= 8).all() and (stats[1:, cv2.CC_STAT_HEIGHT] >= 8).all()
    assert blocks.sum() >= 8 * 8
    assert 0.05 <= blocks.mean() <= 0.12


def test_masked_pages_blank_only_hidden_pixels():
    pages = MaskedPages(FakePages(count=2, size=32), ssl.MaskConfig(block_px=8), seed=1)
    batch = torch.utils.data.default_collate([pages[0], pages[1]])
    hidden, curve = batch["hidden"], (batch["instance"] > 0)[:, None]
    masked = ssl.apply_mask(batch["image"], hidden)
    assert hidden.any() and (~hidden).any()
    assert torch.equal(masked[~hidden], batch["image"][~hidden])
    paper = batch["image"].flatten(1).median(1).values.view(-1, 1, 1, 1).expand_as(masked)
    assert torch.equal(masked[hidden], paper[hidden])
    # a real share of the curve pixels is hidden, and not all of them
    share = (hidden & curve).sum() / curve.sum()
    assert 0.2 < float(share) < 0.95
    # deterministic per (seed, page, epoch), new each epoch
    assert torch.equal(pages[0]["hidden"], hidden[0])
    pages.set_epoch(1)
    assert not torch.equal(pages[0]["hidden"], hidden[0])


# ----------------------------------------------------------------------------- inpaint loss


def test_inpaint_loss_ignores_unhidden_pixels():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 1, 16, 16, generator=g)
    hidden = torch.rand(2, 1, 16, 16, generator=g) < 0.3
    curve = torch.rand(2, 1, 16, 16, generator=g) < 0.1
    pred = torch.rand(2, 1, 16, 16, generator=g, requires_grad=True)
    loss = ssl.inpaint_loss(pred, clean, hidden, curve, 20.0)
    loss.backward()
    assert (pred.grad[~hidden] == 0).all() and (pred.grad[hidden] != 0).any()
    other = torch.where(hidden, pred.detach(), torch.rand(2, 1, 16, 16, generator=g))
    assert ssl.inpaint_loss(other, clean, hidden, curve, 20.0) == pytest.approx(float(loss.detach()))


def test_inpaint_loss_weights_curve_pixels():
    clean = torch.zeros(1, 1, 1, 2)
    hidden = torch.ones(1, 1, 1, 2, dtype=torch.bool)
    curve = torch.tensor([[[[True, False]]]])
    err_on_curve = ssl.inpaint_loss(torch.tensor([[[[1.0, 0.0]]]]), clean, hidden, curve, 9.0)
    err_on_paper = ssl.inpaint_loss(torch.tensor([[[[0.0, 1.0]]]]), clean, hidden, curve, 9.0)
    assert float(err_on_curve) == pytest.approx(9 * float(err_on_paper))


# ----------------------------------------------------------------------------- DenseCL


def test_dense_match_finds_the_shifted_location():
    g = torch.Generator().manual_seed(0)
    page = torch.randn(2, 16, 12, 12, generator=g)
    dy, dx = 2, 1
    crop = page[:, :, 0:8, 0:8]                 # query view
    shifted = page[:, :, dy:dy + 8, dx:dx + 8]  # key view: the crop moved by (dy, dx)
    match = ssl.dense_match(crop.flatten(2), shifted.flatten(2))
    assert match.shape == (2, 64)
    for i in range(dy, 8):
        for j in range(dx, 8):
            assert (match[:, i * 8 + j] == (i - dy) * 8 + (j - dx)).all()


def test_densecl_loss_prefers_true_positives():
    g = torch.Generator().manual_seed(0)
    n, d, s, k = 4, 8, 9, 32
    feat = torch.randn(n, d, s, generator=g)
    q = torch.randn(n, d, generator=g)
    queue = torch.nn.functional.normalize(torch.randn(d, k, generator=g), dim=0)
    good = ssl.densecl_loss(q, q, queue, feat, feat, queue, feat, feat)
    perm = feat[:, :, torch.randperm(s, generator=g)]
    # key grid shuffled but backbone features kept: the matched positives are wrong
    bad = ssl.densecl_loss(q, q, queue, feat, perm, queue, feat, feat)
    assert float(good["loss_dense"]) < float(bad["loss_dense"])
    assert (good["match"] == torch.arange(s)).all()
    only_global = ssl.densecl_loss(q, q, queue, feat, perm, queue, feat, feat, dense_weight=0.0)
    assert float(only_global["loss"]) == pytest.approx(float(good["loss_global"]))


def test_queue_fits_dataset_and_enqueue_wraps():
    assert ssl.queue_size_for(2000, 32) <= 2000 // 4
    assert ssl.queue_size_for(15000, 32) % 32 == 0
    assert ssl.queue_size_for(10, 8) == 8
    q = torch.zeros(2, 4)
    ptr = ssl.enqueue(q, 3, torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    assert ptr == 1 and q[0].tolist() == [2.0, 0.0, 0.0, 1.0]
    assert ssl.dense_weight_at(4, 0.5, 5) == 0.0 and ssl.dense_weight_at(5, 0.5, 5) == 0.5


def test_augmentations_keep_range_and_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 24, 24, generator=g)
    a, b = ssl.two_views(x, ssl.AugConfig(binarise_p=0.5, blur_p=1.0), g)
    assert a.shape == x.shape and b.shape == x.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    boxes = ssl.random_crop_boxes(100, (0.5, 1.0), (0.75, 1.333), g)
    area = boxes[:, 2] * boxes[:, 3]
    assert float(area.min()) >= 0.5 * 0.75 - 1e-6  # width/height clamps can only trim a little
    assert ((boxes[:, 0] - boxes[:, 2] / 2) >= -1e-6).all() and ((boxes[:, 0] + boxes[:, 2] / 2) <= 1 + 1e-6).all()
    # a full-image box is the identity
    ident = ssl.crop_resize(x, torch.tensor([[0.5, 0.5, 1.0, 1.0]] * 3))
    assert torch.allclose(ident, x, atol=1e-5)


# ----------------------------------------------------------------------------- engine


def test_non_finite_losses_are_skipped_then_stop():
    module = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.ones_(module.weight)
    w = module.weight
    seq = iter([float("nan"), 1.0] + [float("nan")] * 10)

    def step(batch, i):
        return StepResult(w.sum() * next(seq))

    cfg = OptimConfig(steps=12, warmup_steps=0, lr=0.1, weight_decay=0.0, min_lr_ratio=1.0,
                      max_nonfinite=3, grad_clip=0)
    with pytest.raises(NonFiniteLossError, match="lower optim.lr"):
        train_steps(step, iter(range(100)), module, cfg, quiet=True)
    assert float(w.detach()) == pytest.approx(0.9)  # only the one finite step moved it


def _first_last(log):
    return log[0]["loss"], log[-1]["loss"]


def test_inpaint_loss_decreases_and_checkpoint_loads(tmp_path):
    cfg = InpaintConfig()
    cfg.model.args = dict(TINY)
    cfg.optim = OptimConfig(steps=60, batch_size=4, lr=1e-2, warmup_steps=5)
    cfg.mask = ssl.MaskConfig(block_px=8)
    cfg.log_every = 10
    cfg.device = "cpu"
    path = pretrain_inpaint(cfg, tmp_path / "inp", dataset=FakePages(16, 32), quiet=True)
    import json

    log = [json.loads(s) for s in (tmp_path / "inp" / "log.jsonl").read_text().splitlines()]
    first, last = _first_last(log)
    assert last < 0.7 * first, log
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] == "inpaint" and ckpt["model"]["args"]["num_classes"] == 1
    _check_init(path, ("encoder", "decoder"), tmp_path)


def test_densecl_loss_decreases_and_checkpoint_loads(tmp_path):
    cfg = DenseCLConfig(dim=16, hidden=32, queue=16, momentum=0.99, dense_warmup_steps=5)
    cfg.aug = ssl.AugConfig(blur_p=0.0, binarise_p=0.0, crop_scale=(0.8, 1.0))
    cfg.model.args = dict(TINY)
    cfg.optim = OptimConfig(steps=80, batch_size=8, lr=3e-3, warmup_steps=5)
    cfg.log_every = 10
    cfg.device = "cpu"
    path = pretrain_densecl(cfg, tmp_path / "dcl", dataset=FakePages(32, 32), quiet=True)
    import json

    log = [json.loads(s) for s in (tmp_path / "dcl" / "log.jsonl").read_text().splitlines()]
    # window 0 still contrasts against the random initial queue (easy negatives); from
    # window 1 on the queue holds real keys, so compare against that
    assert log[-1]["loss"] < 0.7 * log[1]["loss"], log
    assert log[-1]["loss_global"] < log[1]["loss_global"], log
    assert log[-1]["loss_dense"] < 0.5 * log[1]["loss_dense"], log
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] == "densecl"
    assert ckpt["state_dict"] and all(k.startswith("encoder.") for k in ckpt["state_dict"])
    _check_init(path, ("encoder",), tmp_path)


def _check_init(path, parts, tmp_path):
    """The checkpoint initialises ``parts`` of the fine-tuning network, every tensor matched,
    both through ``load_init`` and through ``logdigit-train finetune --init``."""
    import json

    from training.cli import main
    from training.finetune import load_init
    from training.models import build_model

    ckpt = load_checkpoint(path)
    model = build_model(ckpt["model"]["name"], **{**ckpt["model"]["args"], "num_classes": NUM_CLASSES})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rep = load_init(model, path, parts)
    expected = [k for k in before if k.split(".", 1)[0] in parts]
    assert expected and sorted(rep["matched"]) == sorted(expected)
    assert not rep["missing"] and not rep["shape_mismatch"]
    after = model.state_dict()
    for k in before:
        want = ckpt["state_dict"][k] if k in expected else before[k]
        assert torch.equal(after[k], want), k

    out = tmp_path / f"ft_{ckpt['kind']}"
    res = CliRunner().invoke(main, [
        "finetune", "--config", str(TINY_YAML), "--init", str(path),
        "--init-parts", ",".join(parts), "--out-dir", str(out), "--quiet", "steps=1"])
    assert res.exit_code == 0, res.output
    events = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    init = next(e for e in events if e.get("event") == "init")
    assert init["matched"] == len(expected) and init["missing"] == 0 and init["shape_mismatch"] == 0


def test_cli_refuses_unknown_key(tmp_path):
    from training.cli import main

    for cmd in ("pretrain-inpaint", "pretrain-densecl"):
        res = CliRunner().invoke(main, [cmd, "-o", str(tmp_path / cmd), "optim.nope=1"])
        assert res.exit_code == 2 and "unknown config key optim.nope" in res.output


@pytest.mark.parametrize("name,cls", [("pretrain_inpaint", InpaintConfig), ("pretrain_densecl", DenseCLConfig)])
def test_shipped_configs_resolve(name, cls):
    from training.config import resolve

    cfg = resolve(cls(), TINY_YAML.parent / f"{name}.yaml")
    assert cfg.optim.steps > 0 and cfg.data.count in (2000, 15000)


def test_cli_runs_on_the_renderer_and_chains_pretexts(tmp_path):
    """Both commands on real rendered pages (tiny), DenseCL -> inpainting chained through
    ``init``; an init from another network is refused in one line with exit 1."""
    from training.cli import main

    common = ["data.count=8", "data.size=32", "optim.steps=2", "optim.batch_size=4",
              "optim.warmup_steps=1", "model.args={base_width: 4, depth: 3}", "device=cpu",
              "log_every=1"]
    run = CliRunner().invoke
    res = run(main, ["pretrain-densecl", "-q", "-o", str(tmp_path / "d"), "dim=8", "hidden=16",
                     "dense_warmup_steps=1", *common])
    assert res.exit_code == 0, res.output
    dcl = tmp_path / "d" / "checkpoint.pt"
    assert load_checkpoint(dcl)["metrics"]["queue"] == 4  # fitted: 8 pages, batch 4
    res = run(main, ["pretrain-inpaint", "-q", "-o", str(tmp_path / "i"), f"init={dcl}", *common])
    assert res.exit_code == 0, res.output
    chained = load_checkpoint(tmp_path / "i" / "checkpoint.pt")
    assert chained["config"]["init"] == str(dcl)
    other = [c if not c.startswith("model.args") else "model.args={base_width: 8, depth: 3}"
             for c in common]
    res = run(main, ["pretrain-inpaint", "-q", "-o", str(tmp_path / "x"), f"init={dcl}", *other])
    assert res.exit_code == 1
    assert res.output.startswith("logdigit-train: error:") and "of another shape" in res.output


def _dist_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from training.engine import DistInfo
    from training.pretrain_engine import average_gradients

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        keys = ssl.concat_all_gather(torch.full((2, 3), float(rank)))
        p = torch.nn.Parameter(torch.zeros(2))
        p.grad = torch.full((2,), float(rank + 1))
        average_gradients([p], DistInfo(rank=rank, world=world))
        torch.save({"keys": keys, "grad": p.grad}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_keys_gathered_and_gradients_averaged_across_processes(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_dist_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["keys"][:, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
        assert got["grad"].tolist() == [1.5, 1.5]
    # alone: no process group, keys pass through unchanged
    k = torch.ones(2, 3)
    assert ssl.concat_all_gather(k) is k
