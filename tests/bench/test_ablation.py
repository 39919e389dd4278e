"""The ablation runner's bookkeeping: grid first, then seeds at the validation-best cell."""

from __future__ import annotations

from bench.ablation import pending
from bench.lib.ablation_tables import bpr_against_squared, gem_effect, off_cpu_rows, where
from bench.lib.grid import GRID, SEEDS, best_cell, cells, losses, run_key


def _run(variant: str, cell: dict, seed: int, ndcg: float) -> dict:
    key = run_key(variant, "topn", "squared", cell, seed)
    return {"key": key, "valid": {"ndcg@10": ndcg}, "test": {"ndcg@10": 0.0}}


def test_grid_runs_come_first_and_seeds_follow_the_best_validation_cell():
    assert len(pending({}, "fm", "topn", "squared")) == len(GRID)
    runs = {r["key"]: r for r in (_run("fm", c, 0, 0.1 * i) for i, c in enumerate(GRID))}
    assert best_cell(runs, "fm", "topn", "squared") == GRID[-1]
    todo = pending(runs, "fm", "topn", "squared")
    assert [o["seed"] for _, o in todo] == [1, 2]
    assert all(o["lr"] == GRID[-1]["lr"] and o["model"] == "fm" for _, o in todo)


def test_incomplete_grid_has_no_best_cell():
    runs = {r["key"]: r for r in (_run("fm", GRID[0], 0, 0.5),)}
    assert best_cell(runs, "fm", "topn", "squared") is None
    assert len(pending(runs, "fm", "topn", "squared")) == len(GRID) - 1


def test_each_variant_runs_where_its_paper_reports_it():
    assert losses("fm", "topn") == ("squared", "bpr") and losses("fm", "rating") == ("squared",)
    assert losses("gmlfm-dnn-L2", "topn") == ("squared",)
    assert losses("fm+gem", "topn") == ("squared",)
    assert losses("fm+gem-b", "topn") == () and losses("fm+gem-b", "rating") == ("squared",)
    assert losses("gmlfm-dnn-L2", "rating") == () and losses("gmlfm-md", "rating") == ("squared",)


def test_variants_without_dropout_are_tuned_on_lr_only():
    assert cells("fm") == GRID
    for variant in ("transfm", "gmlfm-dnn-noweight", "gmlfm-euclidean-noweight"):
        assert [c["dropout"] for c in cells(variant)] == [0.0, 0.0]


def test_bpr_comparison_says_which_loss_wins_per_model():
    def runs(hr: float, ndcg: float) -> list[dict]:
        return [{"test": {"hr@10": hr, "ndcg@10": ndcg}}] * 3

    squared = {"fm": runs(0.58, 0.31), "deepfm": runs(0.58, 0.31), "nfm": runs(0.50, 0.30)}
    bpr = {"fm": runs(0.54, 0.28), "deepfm": runs(0.60, 0.32), "nfm": runs(0.52, 0.29)}
    rows = {line.split(" | ")[0].strip("| "): line
            for line in bpr_against_squared(squared, bpr).splitlines()[2:]}
    assert rows["fm"].endswith("| no |") and rows["deepfm"].endswith("| yes |")
    assert rows["nfm"].endswith("| mixed |")


def test_gem_table_tells_a_pending_run_from_one_outside_the_grid():
    def runs(rmse: float) -> list[dict]:
        return [{"test": {"rmse": rmse + 0.001 * s}} for s in SEEDS]

    complete = {"rating": {"fm": runs(0.66), "fm+gem": runs(0.65), "fm+gem-b": runs(0.64)},
                "topn": {}}
    rows = {line.split(" | ")[0].strip("| "): line
            for line in gem_effect(complete).splitlines()[2:]}
    assert "0.6610 → 0.6510 (-0.0100)" in rows["fm+gem"]
    assert rows["fm+gem"].endswith("| not run yet |")  # fm+gem belongs to the top-n grid
    assert rows["fm+gem-b"].endswith("| — (not in the grid) |")  # rating-only by design
    assert "not run yet | not run yet" in rows["nfm+gem"]


def test_epoch_seconds_off_the_cpu_are_marked_with_the_device():
    cpu = {"epoch_seconds": 100.0}
    gpu = {"epoch_seconds": 4.0, "device_name": "NVIDIA H200"}
    assert where([cpu, cpu]) == ""
    assert where([gpu, gpu]) == " (NVIDIA H200)"
    assert where([cpu, gpu]) == " (NVIDIA H200, cpu)"


def test_rows_trained_off_the_cpu_are_named_once_each():
    runs = {k: {"key": k, **extra} for k, extra in (
        ("xdeepfm|topn|squared|lr=0.001|dropout=0.0|seed=0", {"device_name": "NVIDIA H200"}),
        ("xdeepfm|topn|squared|lr=0.001|dropout=0.0|seed=1", {"device_name": "NVIDIA H200"}),
        ("fm|topn|squared|lr=0.001|dropout=0.0|seed=0", {}))}
    assert off_cpu_rows(runs) == "xdeepfm topn squared (NVIDIA H200)"
    assert off_cpu_rows({}) == ""
