"""--history through the rest of training: every model (and GML-FM's every distance) trains on
windowed instances with and without GEM, full-catalog ranking scores each test user's items in
that user's test window, and the option works from the CLI and a TOML file alike."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.training.test_cli import SMALL, cli
from tests.training.test_history import tied_interactions
from training.config import read_toml, resolve
from training.data.history import with_history_field
from training.data.protocols import topn_split
from training.loop.batches import TensorInstances, predict
from training.loop.evaluation import full_catalog_report
from training.loop.metrics import hit_ratio, ndcg
from training.models import MODELS, build_model
from training.models.gmlfm import DISTANCES
from training.pipeline import attach_graph

VARIANTS = [*[(m, {}) for m in MODELS if m != "gmlfm"],
            *[("gmlfm", {"distance": d}) for d in DISTANCES]]


@pytest.fixture(scope="module")
def split():
    data = with_history_field(tied_interactions(n_users=20), 5, "sqrt")
    return data, topn_split(data, seed=0)


@pytest.mark.parametrize("gem", [False, True], ids=["plain", "gcn"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join([v[0], *v[1].values()]))
def test_every_model_trains_on_history_windows(split, variant, gem):
    data, split = split
    name, options = variant
    config = resolve({}, {"model": name, "dim": 8, "init_std": 0.1, **options,
                          **({"embedding": "gcn"} if gem else {})})
    torch.manual_seed(0)
    model = build_model(name, data.schema.n_features, split.train.slot_field, config.model)
    if gem:
        graph = attach_graph(model, split, data.schema, config.gem, 8)
        assert "history" not in graph["node_fields"] and "history" not in graph["link_shares"]
        assert graph["history"].startswith("not a node field")
    idx, val, labels = TensorInstances(split.train).batch(torch.arange(64))
    assert idx.shape[1] == len(split.train.slot_field) and split.train.tables[-1].width == 5
    loss = torch.nn.functional.mse_loss(model(idx, val), labels)
    loss.backward()
    window = model.embedding.weight.grad[data.schema.field("history").offset:]
    assert torch.isfinite(loss) and window.abs().sum() > 0  # the window's vectors learn
    assert np.isfinite(predict(model, split.test.instances)).all()


def test_full_catalog_ranks_each_test_user_in_its_test_window(split):
    data, split = split
    torch.manual_seed(1)
    model = build_model("fm", data.schema.n_features, split.train.slot_field,
                        MODELS["fm"].options.make({"dim": 8, "init_std": 0.3}))
    catalog, groups = split.catalog, split.test
    ranks = []
    for g in range(groups.n_groups):
        first = groups.instances.subset(np.array([g * groups.group_size]))
        u, positive = int(first.rows[0][0]), int(first.rows[1][0])
        every = data.n_items
        rows = (np.full(every, u), np.arange(every), np.full(every, first.rows[-1][0]))
        pairs = catalog.data.pairs(*rows[:2], np.zeros(every), windows=rows[2])
        scores = predict(model, pairs)
        known = {int(k % every) for k in catalog.known_keys if k // every == u}
        rivals = [i for i in range(every) if i not in known and i != positive]
        ranks.append(1 + sum(scores[i] >= scores[positive] for i in rivals))
    report = full_catalog_report(model, catalog)
    assert report["full_hr@10"] == pytest.approx(hit_ratio(np.array(ranks), 10))
    assert report["full_ndcg@10"] == pytest.approx(ndcg(np.array(ranks), 10))


def test_history_options_come_from_flags_and_toml_and_show_in_help(tmp_path):
    file = tmp_path / "run.toml"
    file.write_text('history = 7\nhistory-weight = "mean"\n')
    config = resolve(read_toml(file), {})
    assert (config.run.history, config.run.history_weight) == (7, "mean")
    assert resolve(read_toml(file), {"history": "2"}).run.history == 2
    assert resolve({}, {}).run.history == 0 and resolve({}, {}).run.history_weight == "sqrt"
    text = " ".join(cli("fit", "--help").stdout.split())
    assert "--history HISTORY" in text and "--history-weight HISTORY_WEIGHT" in text


def test_a_history_run_records_it_and_evaluate_reproduces_it(tmp_path):
    out = tmp_path / "run"
    done = cli("fit", "--data", SMALL, "--model", "gmlfm", "--embedding", "gcn", "--history",
               "4", "--epochs", "1", "--dim", "8", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["history"] == 4 and metrics["config"]["history_weight"] == "sqrt"
    assert any(n.startswith("history: field 'history'") for n in metrics["notes"])
    assert "GEM: history not a node field: the default; name it in --graph-fields to make it " \
           "one" in metrics["notes"]
    again = json.loads(cli("evaluate", "--run", str(out)).stdout)
    for key in ("hr@10", "ndcg@10", "full_hr@10"):
        assert again[key] == pytest.approx(metrics["test"][key], abs=1e-6)
