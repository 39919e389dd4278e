"""fit and evaluate end to end: data -> protocol -> model -> trainer -> metrics -> run folder."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from training.config import FitConfig
from training.data.instances import Interactions, LibfmData
from training.data.schema import FeatureSchema
from training.data.specs import load_data
from training.device import training_device
from training.errors import ConfigError
from training.evaluation import Evaluator, test_report
from training.graph import build_adjacency, node_fields
from training.models import FeatureModel, build_model
from training.models.gem import GraphEmbedding
from training.protocols import Split, make_split
from training.runs import load_run, save_run
from training.trainer import fit


def prepare(config: FitConfig) -> tuple[Interactions | LibfmData, Split]:
    data = load_data(config.data)
    return data, make_split(data, config.task, config.seed, config.group_size)


def fit_and_save(config: FitConfig, progress: bool = True) -> dict[str, Any]:
    device = training_device(config.device)  # before any work: a missing GPU fails at once
    data, split = prepare(config)
    torch.manual_seed(config.seed)  # the initialisation is part of what a seed reproduces
    model = build_model(config.model, data.schema.n_features, split.train.slot_field, config)
    graph = attach_graph(model, split, data.schema, config) if config.embedding == "gcn" else {}
    model.to(device)
    result = fit(model, split, config, progress)
    model.materialize_graph()  # from here on an ordinary table: what is saved and tested
    epoch_seconds = statistics.mean(r.seconds for r in result.history)
    metrics = {
        "model": config.model, "task": config.task, "data": config.data,
        "config": config.to_dict(), "epochs": len(result.history),
        "best_epoch": result.best_epoch, "train_seconds": round(result.train_seconds, 3),
        "epoch_seconds": round(epoch_seconds, 3),
        "train_instances_per_second": round(len(split.train) / epoch_seconds, 1),
        "instances": {"train": len(split.train), "valid": _size(split.valid),
                      "test": _size(split.test)},
        "data_fingerprint": data.fingerprint, "notes": list(split.notes), "graph": graph,
        "valid": result.history[result.best_epoch - 1].valid,
        "test": test_report(model, split, config.seed),
    }
    save_run(Path(config.out), config, data.schema, model, result, metrics,
             split.train.slot_field)
    return metrics


def attach_graph(model: FeatureModel, split: Split, schema: FeatureSchema,
                 config: FitConfig) -> dict[str, Any]:
    """GEM: build the training co-occurrence graph and let the model embed through it."""
    started = time.perf_counter()
    names = [n.strip() for n in config.graph_fields.split(",") if n.strip()]
    adjacency = build_adjacency(split.train, schema, node_fields(schema, names, 3), config.graph)
    model.use_graph(GraphEmbedding(adjacency, config.dim, config.gcn_layers, config.gcn_dropout,
                                   config.sampling, config.gcn_activation))
    return {"nodes": adjacency.n_nodes, "edges": int((adjacency.degree() - 1).sum() // 2),
            "build_seconds": round(time.perf_counter() - started, 3)}


def evaluate_run(run: Path, data_spec: str | None = None) -> dict[str, Any]:
    """Rebuild the run's split (deterministic for its seed), load the best weights, re-test."""
    config, schema, weights = load_run(run)
    if data_spec:
        config.data = data_spec
    data, split = prepare(config)
    _check_same_features(schema, data.schema, config.data)
    model = build_model(config.model, schema.n_features, split.train.slot_field, config)
    model.load_state_dict(weights)
    metrics = {"model": config.model, "task": config.task, "data": config.data,
               "test": test_report(model, split, config.seed)}
    if split.valid is not None:
        metrics["valid"] = Evaluator(split.valid)(model)
    return metrics


def _check_same_features(trained: FeatureSchema, given: FeatureSchema, spec: str) -> None:
    if trained != given:
        raise ConfigError(f"data '{spec}' has different features than the run was trained on "
                          f"({given.n_features} vs {trained.n_features} features)")


def _size(held_out: Any) -> int:
    if held_out is None:
        return 0
    return len(getattr(held_out, "instances", held_out))
