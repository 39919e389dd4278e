"""The extra-seed runs reuse each row's ablation-best cell and only add seeds past the grid's."""

from __future__ import annotations

from bench.ablation_grid import SEEDS, cells, run_key
from bench.more_seeds import EXTRA_SEEDS, ROWS, extra_runs


def test_extra_seeds_run_at_the_validation_best_cell_and_nowhere_else():
    recorded = {}
    for variant, task in ROWS:
        for i, cell in enumerate(cells(variant)):
            key = run_key(variant, task, "squared", cell, 0)
            # the last cell wins on either task: highest NDCG@10, lowest RMSE
            recorded[key] = {"key": key, "valid": {"ndcg@10": i, "rmse": -i}}
    todo = extra_runs(recorded)
    assert len(todo) == len(ROWS) * len(EXTRA_SEEDS)
    assert not set(SEEDS) & {options["seed"] for _, options in todo}
    for variant, task in ROWS:
        last = cells(variant)[-1]
        mine = [o for k, o in todo if k.startswith(f"{variant}|{task}|")]
        assert all(o["lr"] == last["lr"] and o["dropout"] == last["dropout"] for o in mine)
        assert all(o["task"] == task and o["loss"] == "squared" for o in mine)
