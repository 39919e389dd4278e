"""Every call bench makes into the training package, in this one module.

A benchmark fit is the pipeline's own fit (`fit_and_save` with a config from `resolve`), never
a copy of it; the scripts that time one step (an epoch, a protocol, a pair term) reach the
pipeline's own pieces from here. Keeping the imports in one place means a move inside
`training` is mended here and nowhere else. They sit inside the functions so that the report
tools never load torch, and a worker process sets its thread count before torch starts work.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.ports import free_port


def fit_workers(processes: int) -> ProcessPoolExecutor:
    """A pool of `processes` fresh interpreters for fits. Spawned, not forked: a child forked
    from a process whose torch thread pools have started can deadlock in its first parallel
    region (CI hung so in bench.experiment's fit, its test having run after in-process fits)."""
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))


def fit(options: dict[str, Any], out: Path, progress: bool = False) -> dict[str, Any]:
    """One fit through the pipeline's entry point, saved as a run folder at `out` (a rerun
    replaces the run there); its metrics.json as a dict."""
    from training.config import resolve
    from training.pipeline import fit_and_save

    return fit_and_save(resolve({}, {**options, "out": str(out)}), progress=progress,
                        overwrite=True)


def fit_in_worker(options: dict[str, Any], out: Path) -> dict[str, Any]:
    """`fit` with one torch thread, so that two worker processes fill the two cores."""
    import torch

    torch.set_num_threads(1)
    return fit(options, out)


def fit_with_torchrun(options: dict[str, Any], out: Path, processes: int) -> dict[str, Any]:
    """One fit by `torchrun --nproc-per-node processes` (python -m torch.distributed.run, this
    interpreter's) on loopback: the CLI's own fit in every process, the options handed over
    as its --config file; rank 0's metrics.json as a dict."""
    import json
    import subprocess
    import sys
    import tempfile

    import tomli_w

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "fit.toml")
        config.write_text(tomli_w.dumps(options))
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                               str(processes), "--master-port", str(free_port()), "-m",
                               "training", "fit", "--config", str(config), "--out", str(out),
                               "--overwrite", "--quiet"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun fit of {out} failed: {done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    if metrics["world_size"] != processes:
        raise RuntimeError(f"{out}: trained by {metrics['world_size']} processes, not "
                           f"{processes}")
    return metrics


def fit_with_leaky_negatives(options: dict[str, Any], out: Path) -> dict[str, Any]:
    """`fit_in_worker` with per-epoch negatives that avoid every interaction, held-out ones
    included: the leak that `--resample-negatives` avoids, measured by bench.negatives_leak.

    The product has no such option, so the pipeline's split is swapped for the leaky one for
    this one fit; a fit that never asked for the split fails rather than measure no leak."""
    import training.pipeline as pipeline

    original, swapped = pipeline.prepare, []

    def leaky_prepare(config: Any) -> tuple[Any, Any]:  # the pipeline's own split, then the leak
        data, split = original(config)
        swapped.append(True)
        return data, leaky_split(data, split)

    pipeline.prepare = leaky_prepare
    try:
        metrics = fit_in_worker({**options, "resample_negatives": True}, out)
    finally:
        pipeline.prepare = original
    if not swapped:
        raise RuntimeError("fit_and_save no longer takes its split from pipeline.prepare")
    return metrics


def fit_and_export_without_items(options: dict[str, Any], out: Path, models_dir: Path,
                                 name: str, item_ids: list[str]) -> Path:
    """`fit_in_worker` on the options' data less `item_ids` (bench/lib/held_out.py), then its
    export into models_dir/name; the bundle's version folder. The items are never seen:
    neither the fit nor the export's catalog holds them, so they can be added to the
    served model as new items.

    The product has no option for this, so the pipeline's data loader is swapped for one that
    leaves them out, for this fit and its export (which reloads the run's data through
    pipeline.prepare); a pipeline that no longer loads its data there fails here."""
    import training.pipeline as pipeline
    from bench.lib.held_out import without_items
    from training.export import export_run

    original, loaded = pipeline.load_data, []

    def load_without(*args: Any, **kwargs: Any) -> Any:
        loaded.append(True)
        return without_items(original(*args, **kwargs), item_ids)

    pipeline.load_data = load_without
    try:
        fit_in_worker(options, out)
        bundle = export_run(out, models_dir, name)
    finally:
        pipeline.load_data = original
    if len(loaded) < 2:
        raise RuntimeError("the fit and its export no longer load their data through "
                           "pipeline.load_data")
    return bundle


def leaky_split(data: Any, split: Any) -> Any:
    """The split whose per-epoch negatives avoid every interaction of `data`, held-out ones
    included, instead of the training positives alone."""
    import numpy as np

    from training.data.sampling import pair_keys

    every = np.unique(pair_keys(data.users, data.items, data.n_items))
    return dataclasses.replace(split, sampler=dataclasses.replace(split.sampler, known=every))


def device_problem(name: str) -> str | None:
    """Why `name` is no device to train on here (a bad name, a missing GPU), or None."""
    from training.config import resolve
    from training.errors import ConfigError
    from training.loop.device import training_device

    try:
        training_device(resolve({}, {"device": name}).run.device)
    except ConfigError as err:
        return str(err)
    return None


def device_name(device: str) -> str:
    """The GPU's own name for a CUDA device string."""
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def dropout_acts(options: dict[str, Any]) -> bool:
    """Whether --dropout does anything in the model these options describe: a model with
    nothing to drop refuses the option."""
    from training.config import resolve
    from training.errors import ConfigError

    try:
        resolve({}, {**options, "dropout": 0.1})
    except ConfigError:
        return False
    return True


def epoch_runners(variants: dict[str, dict[str, Any]], data: str
                  ) -> dict[str, Callable[[], None]]:
    """Per named variant, a call that trains it one more epoch on the one top-n split of
    `data` (seed 0): the pipeline's model, graph and split, the trainer's objective, optimizer
    and epoch, nothing of the fit around them (validation, early stopping, saving)."""
    import torch

    from training.config import resolve
    from training.loop.interrupt import StopRequest
    from training.loop.objectives import make_objective
    from training.loop.trainer import make_optimizer, train_epoch
    from training.models import build_model
    from training.pipeline import attach_graph, prepare

    base = resolve({}, {"data": data, "task": "topn"})
    dataset, split = prepare(base)
    generator = torch.Generator().manual_seed(0)
    runners = {}
    for name, options in variants.items():
        config = resolve({}, {**base.to_dict(), **options})
        model = build_model(config.run.model, dataset.schema.n_features,
                            split.train.slot_field, config.model)
        if config.gem.embedding == "gcn":
            attach_graph(model, split, dataset.schema, config.gem, config.model.dim)
        train = config.train
        objective = make_objective(split, train.loss, train.batch_size, None)
        optimizer = make_optimizer(model, train)
        runners[name] = (lambda m=model, o=optimizer, b=objective:
                         train_epoch(m, o, b, generator, 1, False, StopRequest()))
    return runners


def dataset(spec: str) -> Any:
    """The interaction set a `--data` spec names, as a fit loads it (no history field)."""
    from training.data.specs import load_data

    return load_data(spec)


def synthetic_data(params: str) -> Any:
    """The synthetic interaction set a `synthetic:` data spec names."""
    from training.data.synthetic import load_synthetic

    return load_synthetic(params)


def split_data(data: Any, task: str) -> Any:
    """The task's protocol on `data` at seed 0, as a fit makes it."""
    from training.data.protocols import make_split

    return make_split(data, task, 0)


def gem_graph(split: Any, schema: Any) -> Any:
    """GEM's graph (type a, every field) from the split's training set."""
    from training.data.graph import build_adjacency

    return build_adjacency(split.train, schema, range(len(schema.fields)), "a")


def gmlfm_dnn(n_features: int, dim: int) -> Any:
    """A 1-layer GML-FM-dnn, whose pair-term forms (`pairwise`, `gram`, `additive`) and
    `cheapest_form` bench.gmlfm_forms times and checks."""
    from training.models.gmlfm import GMLFM

    return GMLFM(n_features, dim, "dnn", layers=1)



def default_options() -> dict[str, Any]:
    """The fit options of the model `python -m training bootstrap` serves by default."""
    from training.bootstrap import DEFAULT_OPTIONS

    return dict(DEFAULT_OPTIONS)


def held_out_items(spec: str) -> dict[str, tuple[str | None, str]]:
    """Per user of the `--data` spec, the two interactions top-n holds out, as the protocol
    picks them (each pair's latest, in its chronological order): (validation item, or None
    for a user with two interactions only; test item, the user's latest)."""
    import numpy as np

    from training.data.history import chronological
    from training.data.protocols import unique_interactions

    data = dataset(spec)
    users, items, times, _ = unique_interactions(data)
    order = chronological(users, times)
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=data.n_users)
    ends = np.cumsum(counts)
    held: dict[str, tuple[str | None, str]] = {}
    for user in np.flatnonzero(counts >= 2).tolist():
        end = int(ends[user])
        valid = data.item_ids[items[end - 2]] if counts[user] >= 3 else None
        held[data.user_ids[user]] = (valid, data.item_ids[items[end - 1]])
    return held


def fit_and_export_in_worker(options: dict[str, Any], run: Path, models_dir: Path,
                             name: str) -> Path:
    """`fit_in_worker` then the pipeline's export of that run as model `name`; the bundle's
    version folder."""
    from training.export import export_run

    fit_in_worker(options, run)
    return export_run(run, models_dir, name)


def fit_and_export(options: dict[str, Any], out: Path, models_dir: Path, name: str) -> Path:
    """A fit, then its bundle exported into models_dir/name; the version folder."""
    from training.export import export_run

    fit(options, out)
    return export_run(out, models_dir, name)


def retrain_once(source: Path, models_dir: Path, work_dir: Path,
                 min_cases: int = 20) -> dict[str, Any]:
    """One `python -m training retrain` cycle over an export folder; its record."""
    from training.retrain.command import RetrainOptions, retrain

    return retrain(RetrainOptions(str(source), models_dir, None, work_dir, {},
                                  min_cases=min_cases))


def judge_cases(bundle_dir: Path, cases: dict[str, Any]) -> Any:
    """retrain's judge of one bundle over cases given as Cases' fields (bench/loop.py's)."""
    from training.retrain.judge import Cases, judge

    return judge(bundle_dir, Cases(**cases))


def protocol_groups(run: Path) -> tuple[Any, Any]:
    """A finished run's test protocol, scored by its own model: the candidates' item ids
    (G, C) str, the positive first in each group, and their scores (G, C) float64 (the
    forward that metrics.json's test hr@10 and ndcg@10 rank)."""
    import numpy as np

    from training.export.rebuild import rebuild_model
    from training.loop.batches import predict
    from training.pipeline import prepare

    rebuilt = rebuild_model(run)
    data, split = prepare(rebuilt.config)
    groups = split.test
    instances = groups.instances
    scores = predict(rebuilt.model, instances).astype(np.float64)
    items = np.asarray(data.item_ids, dtype=str)[instances.rows[1]]
    shape = (groups.n_groups, groups.group_size)
    return items.reshape(shape), scores.reshape(shape)
