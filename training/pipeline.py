"""fit and evaluate end to end: data -> protocol -> model -> trainer -> metrics -> run folder."""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from training.config import NO_ORDER, FitConfig, RunOptions
from training.data.events import before, read_events, with_events
from training.data.graph import build_adjacency, node_fields
from training.data.history import with_history_field
from training.data.instances import Interactions, LibfmData
from training.data.protocols import Split, make_split
from training.data.schema import FeatureSchema
from training.data.specs import load_data
from training.errors import ConfigError
from training.loop.distributed import (
    World,
    barrier,
    draw_seed,
    process_device,
    process_group,
    require_same,
    world_from_env,
)
from training.loop.evaluation import Evaluator, test_report
from training.loop.interrupt import StopRequest
from training.loop.trainer import FitResult, fit
from training.models import FeatureModel, build_model
from training.models.gem import GemOptions, GraphEmbedding
from training.runs import RunFolder, load_run, save_run

log = logging.getLogger(__name__)


def prepare(config: FitConfig) -> tuple[Interactions | LibfmData, Split]:
    """The run's data (with the history field when --history asks for it) and its split."""
    run = config.run
    data = base_data(run)
    if run.history:
        if isinstance(data, LibfmData):
            raise ConfigError(NO_ORDER)
        data = with_history_field(data, run.history, run.history_weight)
    return data, make_split(data, run.task, run.seed, run.group_size)


def base_data(run: RunOptions) -> Interactions | LibfmData:
    """The run's data before the history field: --data, cut at --data-until, plus --events."""
    data = load_data(run.data, libfm_fields=run.libfm_fields)
    if isinstance(data, Interactions) and run.data_until:
        data = before(data, run.data_until)
    if isinstance(data, Interactions) and run.events:
        data = with_events(data, read_events(Path(run.events)))
    return data


def fit_and_save(config: FitConfig, progress: bool = True, overwrite: bool = False
                 ) -> dict[str, Any]:
    """The one fit entry point (CLI, benchmarks, each process torchrun starts): train, test,
    write the run folder. Under torchrun every rank trains; rank 0 alone makes the run folder,
    tests, writes and returns the metrics; the other ranks return {}."""
    run = config.run
    world = world_from_env()
    device = process_device(run.device, world)  # before any work: a missing GPU fails at once
    with _run_folder(Path(run.out), overwrite, world) as folder, StopRequest() as stop, \
            process_group(world, device):
        data, split = prepare(config)
        # the seed fixes the initialisation, then, afresh, training's dropout draws
        torch.manual_seed(run.seed)
        model = build_model(run.model, data.schema.n_features, split.train.slot_field,
                            config.model)
        graph = attach_graph(model, split, data.schema, config.gem, config.model.dim) \
            if config.gem.embedding == "gcn" else {}
        require_same(world, "training set or GEM graph", _training_inputs(split, model))
        model.to(device)
        torch.manual_seed(draw_seed(run.seed, world))
        result = fit(model, split, config.train, run.seed, progress, stop, world)
        metrics: dict[str, Any] = {}
        if folder is not None:
            model.materialize_graph()  # from here on an ordinary table: what is saved and tested
            metrics = _run_metrics(config, data, split, result, graph, world)
            metrics["test"] = test_report(model, split, run.seed)
            save_run(folder.staging, config, data.schema, model, result, metrics,
                     split.train.slot_field)
            folder.commit()
        barrier(world)  # every rank ends once the run folder is in place
    return metrics


def _run_folder(out: Path, overwrite: bool, world: World) -> RunFolder | nullcontext[None]:
    """Rank 0's RunFolder (checked before any training, as for a single process); the other
    ranks write nothing, so they make none."""
    return RunFolder(out, overwrite) if world.is_main else nullcontext()


def _training_inputs(split: Split, model: FeatureModel) -> list[Any]:
    """What every rank must hold alike: the training instances and, with GEM, its graph, which
    each rank builds itself from those instances (deterministic, and cheaper than sending)."""
    train = split.train
    arrays = [*train.rows, *(t.idx for t in train.tables), *(t.val for t in train.tables),
              train.labels]
    if isinstance(model.graph, GraphEmbedding):
        adjacency = model.graph.adjacency
        arrays += [adjacency.crow, adjacency.col, adjacency.weight]
    return arrays


def _run_metrics(config: FitConfig, data: Interactions | LibfmData, split: Split,
                 result: FitResult, graph: dict[str, Any], world: World) -> dict[str, Any]:
    epoch_seconds = statistics.mean(r.seconds for r in result.history)
    return {
        "model": config.run.model, "task": config.run.task, "data": config.run.data,
        "config": config.to_dict(), "epochs": len(result.history),
        "best_epoch": result.best_epoch, "interrupted": result.interrupted,
        "train_seconds": round(result.train_seconds, 3),
        "epoch_seconds": round(epoch_seconds, 3),
        "train_instances_per_second": round(len(split.train) / epoch_seconds, 1),
        "instances": {"train": len(split.train), "valid": _size(split.valid),
                      "test": _size(split.test)},
        "data_fingerprint": data.fingerprint, "graph": graph,
        "notes": [*split.notes, *([f"GEM: history {graph['history']}"] if "history" in graph
                                  else [])],
        "world_size": world.size, "valid": result.history[result.best_epoch - 1].valid,
        **({"events": read_events(Path(config.run.events)).summary()} if config.run.events
           else {}),
    }


def attach_graph(model: FeatureModel, split: Split, schema: FeatureSchema, gem: GemOptions,
                 dim: int) -> dict[str, Any]:
    """GEM: build the training co-occurrence graph and let the model embed through it."""
    started = time.perf_counter()
    history = [split.history.position] if split.history else []
    nodes = node_fields(split.train, schema, gem.node_fields, apart=history)
    for warning in nodes.warnings:
        log.warning("warning: %s", warning)  # the CLI's stderr line, through logging's last resort
    adjacency = build_adjacency(split.train, schema, nodes.positions, gem.graph)
    model.use_graph(GraphEmbedding(adjacency, dim, gem.gcn_layers, gem.gcn_dropout,
                                   gem.sampling, gem.gcn_activation))
    graph = {"nodes": adjacency.n_nodes, "edges": int((adjacency.degree() - 1).sum() // 2),
             "node_fields": [schema.fields[pos].name for pos in nodes.positions],
             "link_shares": nodes.shares, "warnings": nodes.warnings,
             "build_seconds": round(time.perf_counter() - started, 3)}
    if history:  # why the history field is, or is not, a node (training.data.graph)
        graph["history"] = "a node field: named in --graph-fields" \
            if history[0] in nodes.positions else \
            "not a node field: the default; name it in --graph-fields to make it one"
    return graph


def evaluate_run(run: Path, data_spec: str | None = None) -> dict[str, Any]:
    """Rebuild the run's split (deterministic for its seed), load the best weights, re-test."""
    config, schema, weights = load_run(run)
    if data_spec:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, data=data_spec))
    data, split = prepare(config)
    _check_same_features(schema, data.schema, config.run.data)
    model = build_model(config.run.model, schema.n_features, split.train.slot_field,
                        config.model)
    model.load_state_dict(weights)
    metrics = {"model": config.run.model, "task": config.run.task, "data": config.run.data,
               "test": test_report(model, split, config.run.seed)}
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
