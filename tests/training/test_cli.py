"""The CLI end to end on small synthetic data: fit writes a complete run folder, evaluate
reproduces its test metrics, and bad input ends in one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from training.cli import main

SMALL = "synthetic:users=80,items=300,interactions=2400,seed=1"
TOPN_KEYS = {"hr@10", "ndcg@10", "hr@10_optimistic", "ndcg@10_optimistic", "full_hr@10",
             "full_ndcg@10"}
RUN_KEYS = {"model", "task", "data", "config", "epochs", "train_seconds", "valid", "test"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("task,keys", [("topn", TOPN_KEYS), ("rating", {"rmse", "mae"})])
def test_fit_then_evaluate_reproduces_test_metrics(tmp_path, task, keys):
    out = tmp_path / task
    done = cli("fit", "--data", SMALL, "--task", task, "--model", "fm", "--epochs", "3",
               "--dim", "8", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics.keys() >= RUN_KEYS and keys <= metrics["test"].keys()
    assert metrics["config"]["dim"] == 8 and 1 <= metrics["epochs"] <= 3
    for name in ("config.toml", "model.pt", "learning_curve.png", "history.json"):
        assert (out / name).is_file()
    again = cli("evaluate", "--run", str(out))
    assert again.returncode == 0, again.stderr
    recomputed = json.loads(again.stdout)
    for key in keys:
        assert recomputed[key] == pytest.approx(metrics["test"][key], abs=1e-6)


@pytest.mark.parametrize("args,needle", [
    (["fit", "--dimm", "3"], "--dimm"),
    (["fit", "--data", "libfm:/no/such/folder", "--epochs", "1"], "/no/such/folder"),
    (["fit", "--data", "imagenet"], "imagenet"),
    (["fit", "--model", "gpt", "--data", SMALL], "gpt"),
    (["fit", "--lr", "fast"], "--lr"),
    (["evaluate", "--run", "/no/run"], "/no/run"),
    (["fit", "--device", "tpu"], "--device"),
    (["fit", "--device", "cuda:99", "--data", SMALL], "--device cuda:99"),
    (["fit", "--data", "libfm:/no/such/folder", "--history", "3"], "--history: libFM files"),
])
def test_bad_input_is_one_clear_line(capsys, tmp_path, args, needle):
    out = ["--out", str(tmp_path / "run")] if args[0] == "fit" else []
    assert main([*args, *out]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines


def test_a_real_process_ends_a_user_error_in_one_line_without_traceback():
    done = cli("fit", "--dimm", "3")
    assert done.returncode == 2 and done.stderr == "error: unrecognized arguments: --dimm 3\n"


def test_same_seed_reproduces_the_run_exactly(tmp_path):
    from training.config import resolve
    from training.pipeline import fit_and_save

    runs = [fit_and_save(resolve({}, {"data": SMALL, "epochs": 2, "dim": 8, "seed": 4,
                                      "out": str(tmp_path / str(n))}), progress=False)
            for n in range(2)]
    assert runs[0]["test"] == runs[1]["test"]


def test_help_lists_every_declared_option_once_with_its_help():
    from training.config import all_specs
    from training.models import MODELS

    done = cli("fit", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps lines
    for spec in all_specs():
        switch = f"--no-{spec.name}".replace("_", "-") if spec.kind is bool and spec.default \
            else spec.flag
        assert text.count(switch + " ") + text.count(switch + ",") >= 1, switch
        assert " ".join(spec.help.split())[:30] in text, spec.name
    assert f"model name: {', '.join(MODELS)}" in text


def test_bare_command_prints_usage_and_exits_2():
    done = cli()
    assert done.returncode == 2 and done.stderr.startswith("usage: python -m training")


def test_gem_run_saves_a_plain_table_that_evaluate_reproduces(tmp_path):
    out = tmp_path / "gem"
    done = cli("fit", "--data", SMALL, "--task", "rating", "--model", "gmlfm", "--embedding",
               "gcn", "--sampling", "0.5", "--gcn-dropout", "0.2", "--epochs", "2", "--dim",
               "8", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["graph"]["edges"] > 0 and metrics["graph"]["nodes"] > 0
    again = json.loads(cli("evaluate", "--run", str(out)).stdout)
    assert again["rmse"] == pytest.approx(metrics["test"]["rmse"], abs=1e-6)


def test_gem_records_its_node_fields_and_warns_of_a_named_hub(tmp_path):
    data = SMALL + ",context_low=2,context_high=120"
    common = ["fit", "--data", data, "--task", "topn", "--embedding", "gcn", "--epochs", "1",
              "--dim", "8", "--quiet"]
    default = cli(*common, "--out", str(tmp_path / "default"))
    assert default.returncode == 0 and "warning" not in default.stderr, default.stderr
    graph = json.loads((tmp_path / "default" / "metrics.json").read_text())["graph"]
    assert graph["node_fields"] == ["user_id", "item_id", "context_high"]
    assert graph["link_shares"]["context_low"] > 0.5 and graph["warnings"] == []
    named = cli(*common, "--graph-fields", "user_id,item_id,context_low", "--out",
                str(tmp_path / "named"))
    assert named.returncode == 0, named.stderr
    assert named.stderr.startswith("warning: GEM node field context_low: each of its values")
    graph = json.loads((tmp_path / "named" / "metrics.json").read_text())["graph"]
    assert graph["node_fields"] == ["user_id", "item_id", "context_low"]
    assert len(graph["warnings"]) == 1
