"""Fine-tuning: overfit a handful of toy tiles, checkpoints, resume, config layering, init, guard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from training import engine
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import ConfigError, resolve
from training.finetune import (FinetuneConfig, cli, load_init, load_items, make_dataset, run,
                               train_indices, validate)
from training.losses import LossConfig, build_loss
from training.models import build_model

torch.set_num_threads(1)
TINY = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.yaml"


def tiny_cfg(tmp_path, *overrides) -> FinetuneConfig:
    return resolve(FinetuneConfig(), TINY, [f"out_dir={tmp_path / 'run'}", *overrides])


def test_config_layering_and_unknown_keys(tmp_path):
    cfg = tiny_cfg(tmp_path, "optim.lr=0.5", "loss.weights={dice: 2}")
    assert cfg.optim.lr == 0.5 and cfg.loss.weights == {"dice": 2}
    assert cfg.data.size == yaml.safe_load(TINY.read_text())["data"]["size"]  # from YAML
    assert cfg.optim.grad_clip == FinetuneConfig().optim.grad_clip            # default kept
    with pytest.raises(ConfigError, match="unknown config key"):
        tiny_cfg(tmp_path, "optim.learning_rate=1")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {sise: 32}\n")
    with pytest.raises(ConfigError, match="sise"):
        resolve(FinetuneConfig(), bad)


def test_render_overrides_reach_the_train_split_only(tmp_path):
    """data.render.* sets renderer ranges of the train tiles (typed, unknown keys
    refused); the val split keeps the defaults so that its scores compare across runs."""
    from training.finetune import render_config
    from training.synth import RenderConfig

    cfg = tiny_cfg(tmp_path, "data.source=synth", "data.render.shading_prob=0.7",
                   "data.render.shading_level=[0.2, 0.5]")
    rc = render_config(cfg.data)
    assert rc.shading_prob == 0.7 and rc.shading_level == (0.2, 0.5)
    assert rc.fade_prob == RenderConfig().fade_prob
    assert make_dataset(cfg.data, "train").cfg == rc
    assert make_dataset(cfg.data, "val").cfg == RenderConfig()
    bad = tiny_cfg(tmp_path, "data.source=synth", "data.render.shadingprob=0.7")
    with pytest.raises(ConfigError, match="data.render.shadingprob"):
        make_dataset(bad.data, "train")


def test_tiny_finetune_overfits_handful_of_tiles(tmp_path):
    cfg = tiny_cfg(tmp_path, "data.count=10", "data.val_fraction=0.2", "batch_size=4",
                   "steps=100", "val_every=50", "optim.warmup_steps=3", "optim.lr=0.02")
    train_items = load_items(make_dataset(cfg.data, "train"))
    assert len(train_items) == 8
    torch.manual_seed(cfg.seed)
    fresh = build_model(cfg.model.name, **cfg.model.args)
    dev = torch.device("cpu")
    before = validate(fresh, train_items, 8, dev, False, 5, {i: str(i) for i in range(5)})
    res = run(cfg, quiet=True)
    assert res["step"] == 100
    recs = engine.read_metrics(Path(cfg.out_dir) / "metrics.jsonl")
    losses = [r["loss"] for r in recs if r["event"] == "train"]
    assert losses[-1] < 0.6 * losses[0]
    ck = load_checkpoint(Path(cfg.out_dir) / "last.pt")
    model = build_model(ck["model"]["name"], **ck["model"]["args"])
    model.load_state_dict(ck["state_dict"])
    after = validate(model, train_items, 8, dev, False, 5, {i: str(i) for i in range(5)})
    assert after["binary_curve_iou"] > before["binary_curve_iou"] + 0.3
    assert after["mean_curve_iou"] > before["mean_curve_iou"] + 0.15
    assert (Path(cfg.out_dir) / "config.yaml").is_file()
    assert (Path(cfg.out_dir) / "best.pt").is_file()


def test_checkpoint_round_trip(tmp_path):
    m = build_model("unet_light", base_width=4, depth=2)
    path = save_checkpoint(tmp_path / "c.pt", kind="finetune", model_name=m.name,
                           model_args=m.model_args, state_dict=m.state_dict(),
                           config={"a": 1}, config_sha256="x" * 64, step=7, metrics={"m": 0.5})
    ck = load_checkpoint(path)  # weights_only=True inside
    m2 = build_model(ck["model"]["name"], **ck["model"]["args"])
    m2.load_state_dict(ck["state_dict"])
    x = torch.rand(1, 1, 8, 8)
    m.eval(), m2.eval()
    assert torch.equal(m(x), m2(x))
    assert ck["step"] == 7 and ck["metrics"] == {"m": 0.5}
    torch.save({"not": "ours"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a logdigit checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_average_checkpoints_means_weights_and_refuses_other_networks(tmp_path):
    """`logdigit-train average`: float weights are the mean, counters come from the
    first, the sources are recorded and the config is written beside; checkpoints of
    another network are refused with a message naming the file."""
    from training.cli import main

    def ckpt(name, seed, **args):
        torch.manual_seed(seed)
        m = build_model("unet_light", **args)
        return m, save_checkpoint(tmp_path / name, kind="finetune", model_name=m.name,
                                  model_args=m.model_args, state_dict=m.state_dict(),
                                  config={"seed": seed}, config_sha256="x" * 64, step=seed)

    (m1, p1), (m2, p2) = ckpt("a.pt", 1, base_width=4, depth=2), ckpt("b.pt", 2, base_width=4, depth=2)
    out = tmp_path / "soup" / "best.pt"
    res = CliRunner().invoke(main, ["average", str(p1), str(p2), "-o", str(out)])
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(out)
    for k, v in m1.state_dict().items():
        w = m2.state_dict()[k]
        want = (v + w) / 2 if v.is_floating_point() else v
        assert torch.allclose(ck["state_dict"][k], want, atol=1e-6), k
    assert ck["step"] == 2 and len(ck["metrics"]["weight_average_of"]) == 2
    assert yaml.safe_load((out.parent / "config.yaml").read_text()) == {"seed": 1}
    _, p3 = ckpt("c.pt", 3, base_width=8, depth=2)
    res = CliRunner().invoke(main, ["average", str(p1), str(p3), "-o", str(tmp_path / "x.pt")])
    assert res.exit_code == 1 and "c.pt" in res.output and "differs" in res.output
    assert not (tmp_path / "x.pt").exists()


def test_resume_continues_from_last(tmp_path):
    cfg = tiny_cfg(tmp_path, "steps=8", "max_minutes=0.00001")  # stops after the first step
    r1 = run(cfg, quiet=True)
    assert 1 <= r1["step"] < 8
    r2 = run(tiny_cfg(tmp_path, "steps=8", "max_minutes=0.00001"), quiet=True)
    assert r2["step"] > r1["step"]
    events = [r["event"] for r in engine.read_metrics(Path(cfg.out_dir) / "metrics.jsonl")]
    assert "resume" in events
    with pytest.raises(ConfigError, match="different config"):
        run(tiny_cfg(tmp_path, "steps=9"), quiet=True)


def test_train_fraction_takes_nested_share():
    assert train_indices(100, 0.25) == list(range(25))
    assert train_indices(3, 0.01) == [0]
    with pytest.raises(ConfigError):
        train_indices(10, 0.0)


def test_load_init_reports_parts(tmp_path):
    src = build_model("unet_light", num_classes=1, base_width=8, depth=3)  # inpainting-shaped
    save_checkpoint(tmp_path / "p.pt", kind="inpaint", model_name=src.name, model_args=src.model_args,
                    state_dict=src.state_dict(), config={}, config_sha256="0" * 64, step=1)
    dst = build_model("unet_light", num_classes=5, base_width=8, depth=3)
    rep = load_init(dst, tmp_path / "p.pt", parts=["encoder", "decoder", "head"])
    assert rep["matched"] and not rep["missing"]
    assert set(rep["shape_mismatch"]) == {"head.weight", "head.bias"}
    sd = dst.state_dict()
    k = rep["matched"][0]
    assert torch.equal(sd[k], src.state_dict()[k])
    rep2 = load_init(build_model("unet_light", base_width=8, depth=3), tmp_path / "p.pt", parts=["encoder"])
    assert all(k.startswith("encoder.") for k in rep2["matched"])
    assert any(k.startswith("decoder.") for k in rep2["skipped"])


def test_nonfinite_guard_skips_then_raises():
    g = engine.NonFiniteGuard(patience=3)
    assert g.check(torch.tensor(1.0), 0)
    assert not g.check(torch.tensor(float("nan")), 1)
    assert not g.check(torch.tensor(float("inf")), 2)
    with pytest.raises(engine.NonFiniteLossError, match="diverged"):
        g.check(torch.tensor(float("nan")), 3)


def test_train_step_skips_nan_loss():
    m = build_model("unet_light", base_width=4, depth=2)
    opt = engine.make_optimizer(m, 1e-2, 0.0)
    sched = engine.warmup_cosine(opt, 0, 10)
    before = {k: v.clone() for k, v in m.state_dict().items() if "weight" in k}
    batch = {"image": torch.full((2, 1, 8, 8), float("nan")), "mask": torch.zeros(2, 8, 8, dtype=torch.long)}
    out = engine.train_step(m, batch, build_loss(LossConfig(), 5), opt, sched, torch.device("cpu"),
                            False, 1.0, engine.NonFiniteGuard(5), 0)
    assert out is None
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("kind", ["ce+dice", "ce+dice+cldice", "ce+dice+skel", "ce+lovasz"])
def test_losses_low_on_perfect_and_high_on_wrong(kind):
    t = torch.zeros(2, 16, 16, dtype=torch.long)
    t[:, :, 5] = 1
    t[:, :, 9:11] = 3
    perfect = torch.nn.functional.one_hot(t, 5).permute(0, 3, 1, 2).float() * 20
    wrong = torch.nn.functional.one_hot((t + 1) % 5, 5).permute(0, 3, 1, 2).float() * 20
    fn = build_loss(LossConfig(kind=kind), 5)
    lo, _ = fn(perfect, t)
    hi, parts = fn(wrong, t)
    assert float(lo) < 0.01 and float(hi) > 1.0
    assert set(parts) == set(kind.split("+"))
    with pytest.raises(ValueError, match="unknown term"):
        build_loss(LossConfig(kind="ce+focal"), 5)


def test_cli_runs_and_refuses_unknown_key(tmp_path):
    r = CliRunner().invoke(cli, ["--config", str(TINY), "--out-dir", str(tmp_path / "c"),
                                 "--train-fraction", "0.5", "--quiet", "steps=2"])
    assert r.exit_code == 0, r.output
    saved = yaml.safe_load((tmp_path / "c" / "config.yaml").read_text())
    assert saved["train_fraction"] == 0.5 and saved["steps"] == 2
    r = CliRunner().invoke(cli, ["--config", str(TINY), "--out-dir", str(tmp_path / "d"), "nope=1"])
    assert r.exit_code == 1 and "unknown config key nope" in r.output


def test_time_schedule_decays_and_stops_on_the_clock(tmp_path):
    cfg = tiny_cfg(tmp_path, "schedule=time", "max_minutes=0.02", "steps=100000", "val_every=0",
                   "epochs=1000", "optim.warmup_steps=0", "optim.min_lr_ratio=0.1")
    res = run(cfg, quiet=True)
    assert 0 < res["step"] < 100000
    ck = load_checkpoint(Path(cfg.out_dir) / "last.pt")
    assert ck["scheduler"]["elapsed_s"] >= 0.02 * 60  # stopped because the clock ran out
    final_lr = ck["optimizer"]["param_groups"][0]["lr"]
    assert final_lr < 0.35 * cfg.optim.lr  # annealed to ~min_lr_ratio, however few steps ran


def test_time_cosine_state_round_trip():
    m = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(m.parameters(), lr=1.0)
    s = engine.TimeCosine(opt, warmup_steps=4, budget_s=3600, min_lr_ratio=0.0)
    assert s.get_last_lr()[0] == pytest.approx(0.2, abs=1e-3)  # warm-up step 0 of 4
    for _ in range(4):
        s.step()
    assert s.get_last_lr()[0] == pytest.approx(1.0, abs=1e-3)
    state = s.state_dict()
    state["elapsed_s"] = 1800.0  # half the budget spent before the resume
    s2 = engine.TimeCosine(opt, warmup_steps=4, budget_s=3600, min_lr_ratio=0.0)
    s2.load_state_dict(state)
    assert s2.get_last_lr()[0] == pytest.approx(0.5, abs=1e-3) and not s2.done


def test_epoch_sampler_resumes_and_shards():
    idx = list(range(20))
    full = list(engine.EpochSampler(idx, seed=3, epoch=1))
    assert sorted(full) == idx and full != idx
    assert list(engine.EpochSampler(idx, seed=3, epoch=1, start=7)) == full[7:]
    assert list(engine.EpochSampler(idx, seed=3, epoch=2)) != full
    shards = [list(engine.EpochSampler(idx, seed=3, epoch=1, rank=r, world=3)) for r in range(3)]
    assert all(len(s) == 6 for s in shards)
    assert len(set(sum(shards, []))) == 18
