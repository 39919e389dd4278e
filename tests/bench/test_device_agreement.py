"""The CPU/GPU table compares the same keys, waits for every seed, and refuses a CPU rerun."""

from __future__ import annotations

import pytest

from bench.device_agreement import ROWS, rerun, rows
from bench.lib.grid import SEEDS, cells, row_seeds, run_key


def _ablation(test_value: float) -> dict:
    """Complete 3-seed rows at each variant's first cell (seed 0's grid, first cell best)."""
    recorded = {}
    for variant, task, metric in ROWS:
        for i, cell in enumerate(cells(variant)):
            for seed in SEEDS if i == 0 else (0,):
                key = run_key(variant, task, "squared", cell, seed)
                recorded[key] = {"key": key, "valid": {"ndcg@10": -i, "rmse": i},
                                 "test": {metric: test_value}, "epoch_seconds": 100.0}
    return recorded


def test_gpu_column_compares_the_same_keys_and_waits_for_every_seed():
    recorded = _ablation(0.5)
    fm = row_seeds(recorded, "fm", "topn")
    gpu = {r["key"]: {**r, "test": {"hr@10": 0.52}, "epoch_seconds": 4.0,
                      "device_name": "GPU-X"} for r in fm}
    table = {line.split(" | ")[0].strip("| "): line for line in rows(recorded, gpu)}
    assert table["fm"].endswith("| +0.0200 | 4.0 (GPU-X) |")
    assert "not run yet" in table["deepfm"]
    partial = dict(list(gpu.items())[:2])
    assert "not run yet" in {line.split(" | ")[0].strip("| "): line
                             for line in rows(recorded, partial)}["fm"]


def test_an_incomplete_ablation_row_and_a_cpu_rerun_are_clear_stops():
    recorded = _ablation(0.5)
    del recorded[run_key("fm", "topn", "squared", cells("fm")[0], 2)]
    with pytest.raises(SystemExit, match="fm topn"):
        row_seeds(recorded, "fm", "topn")
    with pytest.raises(SystemExit, match="--device cuda"):
        rerun("cpu", jobs=1)
