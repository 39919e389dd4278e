"""The torchrun comparison fits what its record lacks, one fit at a time, and judges each row
against the ablation's own seed spread."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import bench.ddp_agreement as ddp
from bench.lib import fits, training_api
from bench.lib.grid import SEEDS, VARIANTS, cells, run_key


def ablation_rows(hr: list[float]) -> dict:
    """Both rows at their first grid cell (the best by validation), one test HR@10 per seed."""
    recorded = {}
    for variant in ddp.ROWS:
        for i, cell in enumerate(cells(variant)):
            for seed in SEEDS if i == 0 else (0,):
                key = run_key(variant, "topn", "squared", cell, seed)
                recorded[key] = {
                    "key": key, "valid": {"ndcg@10": -i},
                    "options": {**VARIANTS[variant], "task": "topn", "loss": "squared", **cell,
                                "seed": seed},
                    "test": {"hr@10": hr[seed], "ndcg@10": hr[seed] / 2}, "epochs": 10,
                    "epoch_seconds": 3.0}
    return recorded


def test_each_row_reruns_seed_0_alone_then_every_seed_under_torchrun(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ddp, "load_runs", lambda: ablation_rows([0.5, 0.6, 0.7]))
    monkeypatch.setattr(ddp, "RUNS", tmp_path / "runs.jsonl")
    monkeypatch.setattr(fits, "run_and_record", lambda todo, jobs, path, folder, fit: calls.append(
        (todo[0][0], jobs, folder, fit)))
    ddp.rerun("cpu", 1)
    assert [key.split("|")[0] for key, *_ in calls] == ["fm"] * 4 + ["gmlfm-dnn"] * 4
    assert calls[0][0].endswith("|seed=0|single-rerun") and calls[0][3] is None
    torchrun = calls[1][3]
    assert isinstance(torchrun, functools.partial) and torchrun.keywords == {"processes": 2}
    assert torchrun.func is training_api.fit_with_torchrun
    assert [key.rpartition("|seed=")[2] for key, *_ in calls[1:4]] == [
        f"{s}|torchrun=2" for s in SEEDS]
    folder = Path("runs", "bench", "ddp_agreement")
    assert {(jobs, where) for _, jobs, where, _ in calls} == {(1, folder)}


def test_a_gpu_is_refused_before_any_fit():
    with pytest.raises(SystemExit, match="gloo"):
        ddp.rerun("cuda", 1)


@pytest.mark.parametrize("shift,verdict", [(0.05, "yes"), (0.2, "no")])
def test_a_row_is_within_one_seed_std_or_not(monkeypatch, shift, verdict):
    single = [0.5, 0.6, 0.7]  # std 0.1
    recorded = ablation_rows(single)
    mine = {}
    for variant in ddp.ROWS:
        for seed in SEEDS:
            key = run_key(variant, "topn", "squared", cells(variant)[0], seed)
            run = {**recorded[key], "test": {"hr@10": single[seed] + shift,
                                             "ndcg@10": single[seed] / 2}, "epoch_seconds": 2.0}
            mine[ddp.torchrun_key(key)] = run
            if seed == 0:
                mine[ddp.rerun_key(key)] = {**recorded[key], "epoch_seconds": 3.0}
    monkeypatch.setattr(ddp, "load_runs", lambda: recorded)
    monkeypatch.setattr(fits, "load_records", lambda path: mine)
    text = ddp.section()
    assert f"| fm | hr@10 | 0.6000 ± 0.1000 | {0.6 + shift:.4f} ± 0.1000 | +{shift:.4f} | " \
           f"{verdict} |" in text
    assert "| fm | ndcg@10 | 0.3000 ± 0.0500 | 0.3000 ± 0.0500 | +0.0000 | yes |" in text
    assert "| gmlfm-dnn | 3.00 | 3.00 | 2.00 | 1.50× | identical |" in text
    assert f"| 10 / 10 | {shift:.1e} |" in text  # the largest gap of any metric
    assert "Not run yet" not in text
