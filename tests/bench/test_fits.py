"""Each finished fit lands in the record at once, tagged with the device it asked for, its run
folder under the script's own folder; a bad device stops the script before any fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import bench.device_agreement as device_agreement
import bench.lib.fits as fits
import bench.more_seeds as more_seeds
from bench.lib import training_api


def fake_fit(options: dict, out: Path) -> dict:
    """The fields a record keeps of metrics.json; the run folder made where the fit saves it."""
    out.mkdir(parents=True)
    return {"valid": {}, "test": {"hr@10": options["seed"] / 10}, "epochs": 1, "best_epoch": 1,
            "epoch_seconds": 1.0, "train_seconds": 1.0,
            "config": {"device": options.get("device", "cpu")}}


def test_every_fit_is_recorded_with_its_device_and_its_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(training_api, "fit_in_worker", fake_fit)
    monkeypatch.setattr(training_api, "device_name", lambda device: f"GPU {device}")
    path, folder = tmp_path / "runs.jsonl", tmp_path / "runs" / "bench" / "script"
    todo = [(f"fm|seed={s}", {"model": "fm", "seed": s}) for s in range(3)]
    fits.run_and_record(todo, jobs=2, path=path, folder=folder, device="cuda:1")
    fits.run_and_record(todo[:1], jobs=1, path=tmp_path / "cpu.jsonl", folder=tmp_path / "cpu")
    found = fits.load_records(path)
    assert sorted(found) == [key for key, _ in todo]
    assert all(r["options"]["device"] == "cuda:1" for r in found.values())
    assert all(r["device_name"] == "GPU cuda:1" for r in found.values())
    assert found["fm|seed=2"]["test"]["hr@10"] == 0.2
    assert sorted(p.name for p in folder.iterdir()) == ["fm_seed=0", "fm_seed=1", "fm_seed=2"]
    on_cpu = fits.load_records(tmp_path / "cpu.jsonl")["fm|seed=0"]
    assert "device" not in on_cpu["options"] and "device_name" not in on_cpu
    assert fits.load_records(tmp_path / "absent.jsonl") == {}


@pytest.mark.parametrize("script", [more_seeds, device_agreement])
def test_a_scripts_fits_go_under_runs_bench_and_its_own_name(script, monkeypatch):
    calls = []
    monkeypatch.setattr(fits, "run_and_record", lambda *args: calls.append(args))
    script.rerun("cuda", 1)
    name = script.__name__.rpartition(".")[2]
    # records beside the others, named after the script; run folders under runs/bench
    assert [args[2:4] for args in calls] == [(fits.RECORDS / f"{name}_runs.jsonl",
                                              Path("runs", "bench", name))]


def test_a_bad_or_missing_device_stops_the_script_before_any_fit(capsys):
    missing = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"
    for name, needle in (("tpu", "invalid value for --device"), (missing, "use --device cpu")):
        with pytest.raises(SystemExit) as stop:
            more_seeds.main(["--device", name])
        assert stop.value.code == 2 and needle in capsys.readouterr().err
