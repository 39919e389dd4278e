"""bench.gem_context: every row is a valid fit on its data, a row whose node fields equal the
default's reuses the default's fits, and the tables pair each row with FM seed by seed."""

from __future__ import annotations

import pytest

from bench.gem_context import (
    DATASETS,
    ROWS,
    SEEDS,
    node_field_order,
    pending,
    run_key,
    table,
    variants,
    verdict,
)
from training.config import resolve
from training.data.specs import load_data


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_row_is_a_valid_fit_naming_real_fields(dataset):
    data = DATASETS[dataset]
    schema = load_data(data.spec).schema
    assert tuple(f.name for f in schema.fields) == data.fields
    assert {f.name for f in schema.fields if f.size < 3} == set(data.few_values)
    for options in variants(data).values():
        config = resolve({}, {**options, "data": data.spec})
        assert set(config.gem.node_fields) <= set(data.fields)


def record(variant: str, dataset: str, task: str, seed: int, value: float,
           nodes: list[str] | None = None) -> dict:
    key = run_key(variant, dataset, task, seed)
    metrics = {"rmse": value, "mae": value} if task == "rating" else {"ndcg@10": value}
    found = {"key": key, "options": {"seed": seed}, "test": metrics,
             "epochs": 10, "epoch_seconds": 1.0}
    if nodes:
        found["graph"] = {"node_fields": nodes, "link_shares": {}}
    return found


def test_fixed_field_rows_wait_for_the_default_and_skip_what_it_already_ran():
    first = pending({})
    assert len(first) == len(DATASETS) * 2 * len(SEEDS) * 4  # fm, fm+gem, gmlfm-dnn (+gem)
    assert not any("graph_fields" in options for _, options in first)
    pair = len(DATASETS) * 2 * len(SEEDS) * 2
    assert {k.split("|")[0] for k, _ in first[:pair]} == {"fm", "fm+gem"}  # the verdict's first
    rest = [k.split("|")[4] for k, _ in first[pair:]]
    assert rest == sorted(rest)  # then the other rows, seed by seed
    runs = {r["key"]: r for r in (
        record("fm+gem", "ml100k-ctx", "rating", 0, 0.6, ["user_id", "item_id"]),
        record("fm+gem", "synthetic-ctx", "rating", 0, 0.6,
               ["user_id", "item_id", "context_high"]))}
    keys = {k for k, _ in pending(runs)}
    assert run_key("fm+gem-ids", "ml100k-ctx", "rating", 0) not in keys  # the same fit
    assert run_key("fm+gem-every", "ml100k-ctx", "rating", 0) in keys
    assert run_key("fm+gem-ids", "synthetic-ctx", "rating", 0) in keys
    assert run_key("fm+gem-ids", "ml100k-ctx", "rating", 1) not in keys  # its twin not run yet


def test_table_reuses_the_default_and_pairs_each_row_with_fm():
    runs = {}
    for seed in SEEDS:
        for r in (record("fm", "ml100k-ctx", "rating", seed, 0.66 + seed / 100),
                  record("fm+gem", "ml100k-ctx", "rating", seed, 0.65 + seed / 100,
                         ["user_id", "item_id"])):
            runs[r["key"]] = r
    lines = {line.split(" | ")[0]: line.split(" | ") for line in
             table(runs, "ml100k-ctx", "rating")[2:]}
    ids = lines["| FM + GEM, user–item only"]
    assert ids[1:4] == ["user_id, item_id", "3", "0.6600 ± 0.0100"]
    assert ids[5] == "-0.0100 ± 0.0000"  # lower RMSE than FM on every seed
    assert lines["| FM + GEM, every field"][1] == "pending"
    assert len(lines) == len(ROWS)
    assert verdict(runs, "ml100k-ctx", "rating") == \
        "rating: rmse -0.0100 against FM on average, better on 3 of 3 seeds"
    assert verdict(runs, "ml100k-ctx", "topn") == "topn: pending"


@pytest.mark.parametrize(("task", "best_first"), [("rating", "user–item only"),
                                                  ("topn", "every field")])
def test_node_field_choices_are_ordered_best_first_by_the_task_s_own_direction(task,
                                                                                best_first):
    """RMSE: lower is better; NDCG@10: higher is better. Each choice carries its paired
    change against FM."""
    values = {"fm": 0.50, "fm+gem-ids": 0.40, "fm+gem-every": 0.60}
    runs = {}
    for seed in SEEDS:
        for variant, value in values.items():
            r = record(variant, "synthetic-ctx", task, seed, value,
                       None if variant == "fm" else ["user_id", "item_id"])
            runs[r["key"]] = r
    line = node_field_order(runs, "synthetic-ctx", task)
    choices = line.split(": ", 1)[1].split("; ")
    assert choices[0].startswith(best_first) and len(choices) == 2
    assert "user–item only 0.4000 (-0.1000 ± 0.0000)" in line
    assert "every field 0.6000 (+0.1000 ± 0.0000)" in line
