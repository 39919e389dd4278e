"""`python -m training export` end to end: fit (GML-FM with GEM) -> export -> the run's top-n
test protocol replayed through the bundle's ONNX graph gives the metrics of metrics.json; bad
input is one line and exit status 2; a bundle that does not score like its torch model is
refused and nothing is published; libFM data exports with its user, item and context
columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bundle import AddedItems, OnnxScorer, load_bundle, reference_scorer
from bundle import format as fmt
from tests.export.helpers import assert_close, export, random_model
from tests.training.test_cli import cli
from tests.training.test_readers import write_libfm
from training.cli import main
from training.data.protocols import make_split
from training.data.specs import load_data
from training.export import writer
from training.export.replay import replay_topn

SMALL = "synthetic:users=100,items=300,interactions=2500,seed=3"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "gmlfm"
    done = cli("fit", "--data", SMALL, "--model", "gmlfm", "--embedding", "gcn", "--epochs",
               "1", "--dim", "8", "--out", str(run), "--quiet")  # GEM: its table is exported
    assert done.returncode == 0, done.stderr
    return run


def test_export_prints_a_bundle_that_replays_the_runs_metrics(fitted, tmp_path):
    done = cli("export", "--run", str(fitted), "--models-dir", str(tmp_path / "models"))
    assert done.returncode == 0, done.stderr
    bundle_dir = Path(done.stdout.strip())
    assert bundle_dir.parent == tmp_path / "models" / "gmlfm"
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    metrics = json.loads((fitted / "metrics.json").read_text())
    assert manifest["metrics"]["test"] == metrics["test"]
    assert manifest["data"]["fingerprint"] == metrics["data_fingerprint"]
    assert manifest["scoring"]["path"] == "split" and manifest["version"] == bundle_dir.name
    replayed = replay_topn(fitted, bundle_dir)
    for key in ("hr@10", "ndcg@10"):
        assert round(replayed[key], 4) == round(metrics["test"][key], 4)


def test_a_history_run_exports_and_replays_its_metrics(tmp_path):
    """--history: the bundle declares the field and its window; replayed with each test
    group's own window (the stored row holds the user's latest, the test item in it), the
    test protocol gives the run's metrics."""
    run = tmp_path / "run"
    done = cli("fit", "--data", SMALL, "--model", "deepfm", "--history", "5",
               "--history-weight", "mean", "--epochs", "1", "--dim", "8", "--out", str(run),
               "--quiet")
    assert done.returncode == 0, done.stderr
    assert main(["export", "--run", str(run), "--models-dir", str(tmp_path / "models")]) == 0
    bundle = load_bundle(next((tmp_path / "models" / "deepfm").iterdir()))
    assert {k: bundle.manifest["history"][k] for k in ("field", "size", "weight")} == \
        {"field": "history", "size": 5, "weight": "mean"}
    metrics = json.loads((run / "metrics.json").read_text())
    replayed = replay_topn(run, bundle.path)
    for key in ("hr@10", "ndcg@10"):
        assert round(replayed[key], 4) == round(metrics["test"][key], 4)


@pytest.mark.parametrize("args,needle", [
    (["export", "--run", "/no/run"], "/no/run"),
    (["export"], "--run"),
])
def test_bad_export_input_is_one_clear_line(args, needle):
    done = cli(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr


def test_bad_name_and_models_dir_are_one_clear_line(fitted, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for args, needle in [(["--name", "../up"], "--name"),
                         (["--models-dir", str(a_file)], str(a_file))]:
        assert main(["export", "--run", str(fitted), *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], lines


@pytest.fixture(scope="module")
def fitted_deepfm(tmp_path_factory) -> Path:
    """A whole-path model, on the service tests' small synthetic data."""
    run = tmp_path_factory.mktemp("run") / "deepfm"
    assert main(["fit", "--data", "synthetic:users=60,items=200,interactions=2000,"
                 "categories=5,segments=3", "--task", "topn", "--model", "deepfm",
                 "--epochs", "1", "--dim", "8", "--out", str(run), "--quiet"]) == 0
    return run


def test_pair_form_from_the_command_line(fitted, fitted_deepfm, tmp_path, capsys):
    """--pair-form reaches the bundle (the matrix form: no two-phase graph), and a run
    without a pair term refuses it in one line naming the flag."""
    models = tmp_path / "models"
    assert main(["export", "--run", str(fitted), "--models-dir", str(models),
                 "--pair-form", fmt.PAIR_MATRIX]) == 0
    bundle = load_bundle(Path(capsys.readouterr().out.strip()))
    assert bundle.scoring["pair_form"] == fmt.PAIR_MATRIX
    assert fmt.TWO_PHASE_MODEL not in bundle.manifest["files"]
    assert main(["export", "--run", str(fitted_deepfm), "--models-dir", str(models),
                 "--pair-form", fmt.PAIR_ROWS]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--pair-form 'rows'" in lines[0], lines
    assert list((models / "deepfm").glob("*")) == []


BOTH = ("onnxruntime", "numpy reference")


@pytest.mark.parametrize("which,table,paths", [
    ("gmlfm", fmt.item_table_file("const"), BOTH),
    ("deepfm", fmt.table_file("user_v"), (*BOTH, "added items' parts")),
    ("gmlfm", fmt.item_table_file("feature_bias"), ("added items' parts",))])
def test_export_refuses_a_mismatch(request, tmp_path, capsys, monkeypatch, which, table,
                                   paths):
    """A table written wrong (here: one table perturbed on its way to disk) fails export's
    check of the staged bundle against the torch model: exit 2, one line naming what
    disagreed (an item feature's table: the added items' path alone), and no version or
    staging folder left behind; earlier versions stay."""
    run = request.getfixturevalue("fitted" if which == "gmlfm" else "fitted_deepfm")
    models = tmp_path / "models"
    earlier = set()
    if which == "gmlfm":  # a published version of the same name is left as it was
        assert main(["export", "--run", str(run), "--models-dir", str(models)]) == 0
        earlier = set((models / which).iterdir())
        capsys.readouterr()
    written = writer.bundle_arrays

    def perturbed(*args, **kwargs) -> dict[str, np.ndarray]:
        arrays = written(*args, **kwargs)
        arrays[table] = arrays[table] + np.float32(0.5)
        return arrays

    monkeypatch.setattr(writer, "bundle_arrays", perturbed)
    assert main(["export", "--run", str(run), "--models-dir", str(models)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "does not score like the torch model" in lines[0] and which in lines[0]
    assert [p for p in (*BOTH, "added items' parts") if f"{p} off by" in lines[0]] \
        == list(paths)
    if earlier:
        assert set((models / which).iterdir()) == earlier
    else:
        assert list(models.rglob("*")) == []



LIBFM_LINES = 60


def _libfm_folder(tmp_path: Path) -> Path:
    """user (3 values), item (5), context (2): column 0, 1, 2 of every line."""
    rng = np.random.default_rng(0)

    def lines(n: int) -> str:
        rows = zip(rng.choice([-1, 1], n), rng.integers(0, 3, n), rng.integers(3, 8, n),
                   rng.integers(8, 10, n))
        return "".join(f"{y} {u}:1 {i}:1 {c}:1\n" for y, u, i, c in rows)

    return write_libfm(tmp_path / "d", train=lines(LIBFM_LINES), test=lines(20))


@pytest.mark.parametrize("model", ["transfm", "gmlfm", "deepfm"])
def test_libfm_context_joins_the_user_side(tmp_path, model):
    """Context after the item column: TransFM's order-aware cross terms get it right too."""
    data = load_data(f"libfm:{_libfm_folder(tmp_path)}",
                     libfm_fields="field0:user,field1:item,field2")
    assert [f.side for f in data.schema.fields] == ["user", "item", "context"]
    split = make_split(data, "rating", seed=0)
    net = random_model(data, split, model)
    bundle = load_bundle(export(net, data, split, tmp_path / "models"))
    assert len(bundle.users) == 3 and len(bundle.catalog) == 5
    lines = data.test.tables[0]
    for scorer in (reference_scorer(bundle), OnnxScorer(bundle, threads=1)):
        for line in range(len(lines)):
            idx, val = lines.idx[line], lines.val[line]
            values = [data.schema.fields[f].vocab[i - data.schema.fields[f].offset]
                      for f, i in enumerate(idx)]
            row = bundle.encoder.encode({"field0": values[0]}, {"field2": values[2]})
            item = bundle.catalog.positions([values[1]])[0]
            got = scorer.score(scorer.user_state(row.idx[None], row.val[None]), item[None])
            with torch.no_grad():  # the line as the model saw it: user, item, context
                want = net(torch.from_numpy(idx[None]), torch.from_numpy(val[None])).numpy()
            assert_close(got[0], want)
            added = AddedItems(bundle)  # the item again, added by its id: the line's score
            state = added.scorer.user_state(row.idx[None], row.val[None])
            assert_close(added.score(state, added.parts([added.encode({}, values[1])]))[0], want)
    assert bundle.manifest[fmt.ITEM_ID_FIELD] == "field1"  # the one item column holds the ids
