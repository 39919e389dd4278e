"""`python -m training bootstrap` serves what is there: with a bundle in the models folder it
returns it at once and trains nothing (the compose file's train job relies on this on every
`docker compose up` after the first)."""

from __future__ import annotations

import json
from pathlib import Path

from training.bootstrap import bootstrap, existing_bundle
from training.cli import main


def fake_bundle(models_dir: Path) -> Path:
    version = models_dir / "gmlfm-gem" / "20260101T000000Z-abcdef12"
    version.mkdir(parents=True)
    (version / "manifest.json").write_text(json.dumps({
        "name": "gmlfm-gem", "version": version.name,
        "model": {"kind": "gmlfm", "options": {"distance": "dnn", "embedding": "gcn"}},
        "history": {"size": 10, "weight": "mean"}, "data": {"spec": "movielens-100k"},
        "metrics": {"test": {"hr@10": 0.66281, "ndcg@10": 0.38531, "full_hr@10": 0.1}}}))
    return version


def test_an_existing_bundle_is_served_without_training(tmp_path, capsys):
    version = fake_bundle(tmp_path / "models")
    runs = tmp_path / "runs"
    assert bootstrap(tmp_path / "models", runs) == version
    assert not runs.exists()  # nothing was fitted
    assert main(["bootstrap", "--models-dir", str(tmp_path / "models"),
                 "--runs-dir", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(version) and "exists; serving it" in err
    assert "bootstrap: model gmlfm-gem (gmlfm, dnn, GEM, history of the last 10 (mean)), " \
           f"version {version.name}" in err  # what will be served, before the first curl
    assert "bootstrap: test HR@10 0.6628, NDCG@10 0.3853 on movielens-100k" in err
    assert f"bootstrap: bundle {version}" in err


def test_only_a_finished_bundle_counts(tmp_path):
    models = tmp_path / "models"
    partial = models / "gmlfm-gem" / ".partial-write"  # an export being written, or cut short
    partial.mkdir(parents=True)
    (partial / "manifest.json").write_text("{}")
    assert existing_bundle(models) is None
    assert existing_bundle(tmp_path / "nowhere") is None


def test_a_bad_config_is_one_line_and_trains_nothing(tmp_path, capsys, monkeypatch):
    config = tmp_path / "mine.toml"
    config.write_text('model = "fm"\ndistance = "dnn"\n')  # FM takes no distance
    runs = tmp_path / "runs"
    args = ["bootstrap", "--models-dir", str(tmp_path / "models"), "--runs-dir", str(runs)]
    assert main([*args, "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --distance: model fm does not take this option")
    assert "\n" not in err and not runs.exists()
    monkeypatch.setenv("GMLREC_TRAIN_CONFIG", str(tmp_path / "missing.toml"))
    assert main(args) == 2
    missing = tmp_path / "missing.toml"
    assert capsys.readouterr().err.strip() == f"error: config file not found: {missing}"


def test_a_config_whose_name_cannot_be_a_bundle_is_refused_before_any_fit(tmp_path, capsys):
    config = tmp_path / "my model.toml"
    config.write_text('model = "fm"\n')
    runs = tmp_path / "runs"
    assert main(["bootstrap", "--models-dir", str(tmp_path / "models"), "--runs-dir",
                 str(runs), "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == ("error: --config: the bundle takes the file's "
                                               "name; 'my model': use letters, digits, '.', "
                                               "'_' or '-'")
    assert not runs.exists()
