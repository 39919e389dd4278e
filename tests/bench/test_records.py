"""Each finished fit lands in the record at once, tagged with the device it asked for; a bad
device stops the script before any fit."""

from __future__ import annotations

import pytest
import torch

import bench.records as records
from bench.more_seeds import main


def fake_fit(key: str, options: dict) -> dict:
    return {"key": key, "options": options, "test": {"hr@10": options["seed"] / 10}}


def test_every_fit_is_recorded_with_its_device(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "train_one", fake_fit)
    path = tmp_path / "runs.jsonl"
    todo = [(f"fm|seed={s}", {"model": "fm", "seed": s}) for s in range(3)]
    records.run_and_record(todo, jobs=2, path=path, device="cuda:1")
    records.run_and_record(todo[:1], jobs=1, path=tmp_path / "cpu.jsonl")
    found = records.load_records(path)
    assert sorted(found) == [key for key, _ in todo]
    assert all(r["options"]["device"] == "cuda:1" for r in found.values())
    assert found["fm|seed=2"]["test"]["hr@10"] == 0.2
    assert "device" not in records.load_records(tmp_path / "cpu.jsonl")["fm|seed=0"]["options"]
    assert records.load_records(tmp_path / "absent.jsonl") == {}


def test_a_bad_or_missing_device_stops_the_script_before_any_fit(capsys):
    missing = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"
    for name, needle in (("tpu", "invalid value for --device"), (missing, "use --device cpu")):
        with pytest.raises(SystemExit) as stop:
            main(["--device", name])
        assert stop.value.code == 2 and needle in capsys.readouterr().err
