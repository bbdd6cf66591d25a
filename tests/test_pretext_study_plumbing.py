"""bench/pretext_study.py plumbing: sharding, per-run records, table and lift (no training)."""

from __future__ import annotations

import pytest

from _bench import load_bench


@pytest.fixture(scope="module")
def ps():
    return load_bench("pretext_study")


def test_parse_shard(ps):
    assert ps.parse_shard("0/1") == (0, 1) and ps.parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "1", "a/b", "0/0"):
        with pytest.raises(SystemExit):
            ps.parse_shard(bad)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_shards_cover_every_run_once(ps, n):
    grid = ps.GRIDS["cpu"]
    todo = ps.plan(grid, seeds=(0, 1))
    assert len(todo) == len(set(todo)) == 2 * 3 * (1 + 2 * 3)
    taken = [run for k in range(n) for j, run in enumerate(todo) if j % n == k]
    assert sorted(taken, key=str) == sorted(todo, key=str)


def test_records_merge_into_table_and_lift(ps, tmp_path):
    grid = ps.GRIDS["smoke"]
    rec = ps.Records(tmp_path / "records")
    iou = {"random": 0.10, "inpaint": 0.18, "densecl": 0.12, "densecl+inpaint": 0.15}
    for init, budget, frac, seed in ps.plan(grid):
        r = {"init": init, "pretrain_budget": budget, "label_fraction": frac, "seed": seed,
             "mean_curve_iou": iou[init] + (0.01 if budget == 32 else 0.0),
             "mean_curve_f1_tol2": 0.5, "binary_curve_iou": 0.6}
        rec.put("finetune", ps.run_name(init, budget, frac, seed), r)
    rec.put("finetune", ps.run_name("random", None, 0.1, 0), {   # a rerun overwrites, not adds
        "init": "random", "pretrain_budget": None, "label_fraction": 0.1, "seed": 0,
        "mean_curve_iou": 0.10, "mean_curve_f1_tol2": 0.5, "binary_curve_iou": 0.6})
    runs = rec.get("finetune")
    assert len(runs) == len(ps.plan(grid))
    lift = ps.lift(runs, grid)
    assert lift["0.1@16"] == {"best_init": "inpaint", "lift": 0.08, "random": 0.1, "best": 0.18,
                              "seeds": 1}
    assert lift["1@32"]["lift"] == pytest.approx(0.09)
    table = ps.summary_table(runs, grid)
    assert table[0].split()[:2] == ["init", "pretrain"] and len(table) == 1 + 1 + 2 * 3
    out = tmp_path / "study.json"
    ps.write_results(out, grid, rec.get("pretrain"), runs, 0.0, True)
    assert out.is_file()


def test_plan_filters(ps):
    grid = ps.GRIDS["cpu"]
    todo = ps.plan(grid, seeds=(1,), fractions=(0.01, 0.1), inits=("random", "inpaint"),
                   budgets=(15000,))
    assert todo == [("random", None, 0.01, 1), ("inpaint", 15000, 0.01, 1),
                    ("random", None, 0.1, 1), ("inpaint", 15000, 0.1, 1)]
