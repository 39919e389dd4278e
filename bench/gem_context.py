"""GEM on data with context fields: which fields to make nodes, against FM and GML-FM-dnn.

Two datasets with context: MovieLens-100k with each rating's weekday and time of day
(`movielens-100k+context`), and synthetic data with a planted 2-value and a planted 300-value
context field. On each, both tasks, seeds 0–2: FM; FM + GEM with the default node fields (the
user and item ids, and every field whose values each link to at most 10% of the graph), with
user–item only, with every field of at least 3 values (the default before issue 15) and with
every field; GML-FM-dnn alone and with GEM's default node fields. lr 0.001 and no dropout for
every row (FM's cell in the ablation), otherwise the defaults: k = 64, batch 256, at most 50
epochs with patience 5.

Each fit is appended to bench/records/gem_context_runs.jsonl as it ends, so the runner resumes
where it stopped; `--report` only rewrites the section from that file.

    nice -n 19 python -m bench.gem_context --jobs 2   # about 1.5 h on 2 cores (2.7 h of fits)
    python -m bench.gem_context --report
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.lib import fits
from bench.lib.results import mean_std

RUNS = fits.RECORDS / "gem_context_runs.jsonl"
SEEDS = (0, 1, 2)
TASKS = ("rating", "topn")
SHARED = {"lr": 0.001, "dropout": 0.0}
GEM = {"embedding": "gcn"}
METRICS = {"rating": ("rmse", "mae"), "topn": ("hr@10", "ndcg@10", "full_hr@10", "full_ndcg@10")}
VERDICT_ROWS = ("fm", "fm+gem")  # the done-when pair, run on every seed before the rest
HEADLINE = {"rating": ("rmse", min), "topn": ("ndcg@10", max)}


@dataclass(frozen=True)
class Dataset:
    spec: str
    title: str
    fields: tuple[str, ...]  # every field, in schema order
    few_values: tuple[str, ...]  # the fields of fewer than 3 values (the old default's cut)


DATASETS = {
    "ml100k-ctx": Dataset(
        "movielens-100k+context", "MovieLens-100k + context (weekday 7, time of day 6)",
        ("user_id", "gender", "age", "occupation", "item_id", "genre", "weekday", "time_of_day"),
        ("gender",)),
    "synthetic-ctx": Dataset(
        "synthetic:context_low=2,context_high=300",
        "synthetic + context (context_low 2 values, context_high 300)",
        ("user_id", "segment", "item_id", "category", "context_low", "context_high"),
        ("context_low",)),
}
IDS = "user_id,item_id"


def variants(data: Dataset) -> dict[str, dict]:
    """Each row's options on a dataset; the GEM rows differ only in their node fields."""
    return {
        "fm": {"model": "fm"},
        "fm+gem": {"model": "fm", **GEM},
        "fm+gem-ids": {"model": "fm", **GEM, "graph_fields": IDS},
        "fm+gem-3values": {"model": "fm", **GEM, "graph_fields": ",".join(
            f for f in data.fields if f not in data.few_values)},
        "fm+gem-every": {"model": "fm", **GEM, "graph_fields": ",".join(data.fields)},
        "gmlfm-dnn": {"model": "gmlfm", "distance": "dnn", "layers": 1},
        "gmlfm-dnn+gem": {"model": "gmlfm", "distance": "dnn", "layers": 1, **GEM},
    }


ROWS = tuple(variants(DATASETS["ml100k-ctx"]))
LABELS = {"fm": "FM", "fm+gem": "FM + GEM, default node fields",
          "fm+gem-ids": "FM + GEM, user–item only",
          "fm+gem-3values": "FM + GEM, fields of ≥ 3 values",
          "fm+gem-every": "FM + GEM, every field", "gmlfm-dnn": "GML-FM-dnn",
          "gmlfm-dnn+gem": "GML-FM-dnn + GEM, default node fields"}


def run_key(variant: str, dataset: str, task: str, seed: int) -> str:
    return f"{variant}|{dataset}|{task}|lr={SHARED['lr']}|seed={seed}"


def same_fit(runs: dict, variant: str, dataset: str, task: str, seed: int) -> dict | None:
    """The default row's run when it used exactly this row's node fields (on MovieLens the
    default takes only the ids): the same fit, so it is not run twice."""
    options = variants(DATASETS[dataset])[variant]
    default = runs.get(run_key("fm+gem", dataset, task, seed))
    if variant == "fm+gem" or "graph_fields" not in options or default is None:
        return None
    return default if default["graph"]["node_fields"] == options["graph_fields"].split(",") \
        else None


def pending(runs: dict) -> list[tuple[str, dict]]:
    """Every fit not yet recorded: first FM and FM + GEM's default on every seed (the pair the
    verdict needs), then the other rows seed by seed; a fixed-field GEM row waits for its default
    twin, which may be the same fit."""
    todo = []
    for seed in SEEDS:
        for dataset, data in DATASETS.items():
            for task in TASKS:
                twin = run_key("fm+gem", dataset, task, seed)
                for variant, options in variants(data).items():
                    key = run_key(variant, dataset, task, seed)
                    waits = "graph_fields" in options and twin not in runs
                    if key in runs or waits or same_fit(runs, variant, dataset, task, seed):
                        continue
                    todo.append((key, {**options, **SHARED, "data": data.spec, "task": task,
                                       "seed": seed}))
    return sorted(todo, key=lambda fit: fit[0].split("|")[0] not in VERDICT_ROWS)


def rerun(device: str, jobs: int) -> None:
    while todo := pending(fits.load_records(RUNS)):
        fits.run_and_record(todo[:jobs], jobs, RUNS, fits.fits_folder("gem_context"), device)


def found(runs: dict, variant: str, dataset: str, task: str) -> list[dict]:
    """The row's runs, seed by seed: its own, or its default twin's where that is the same
    fit."""
    out = []
    for seed in SEEDS:
        run = runs.get(run_key(variant, dataset, task, seed)) or \
            same_fit(runs, variant, dataset, task, seed)
        if run:
            out.append(run)
    return out


def table(runs: dict, dataset: str, task: str) -> list[str]:
    names = METRICS[task]
    headline = HEADLINE[task][0]
    lines = [f"| row | node fields | seeds | {' | '.join(names)} | {headline} − FM | epochs "
             "| epoch s |", "|---" * (6 + len(names)) + "|"]
    fm = found(runs, "fm", dataset, task)
    for variant in ROWS:
        mine = found(runs, variant, dataset, task)
        if not mine:
            lines.append(f"| {LABELS[variant]} | pending |" + " |" * (4 + len(names)))
            continue
        graph = mine[0].get("graph")
        nodes = ", ".join(graph["node_fields"]) if graph else "—"
        metrics = " | ".join(mean_std([r["test"][m] for r in mine]) for m in names)
        change = fits.paired_change(mine, fm, headline) if variant != "fm" else "—"
        epochs = statistics.mean(r["epochs"] for r in mine)
        seconds = statistics.mean(r["epoch_seconds"] for r in mine)
        lines.append(f"| {LABELS[variant]} | {nodes} | {len(mine)} | {metrics} | {change} | "
                     f"{epochs:.0f} | {seconds:.1f} |")
    return lines


def verdict(runs: dict, dataset: str, task: str) -> str:
    """The done-when check: FM + GEM with the default node fields against FM, seed by seed."""
    metric, better = HEADLINE[task]
    fm = {r["options"]["seed"]: r["test"][metric] for r in found(runs, "fm", dataset, task)}
    gem = {r["options"]["seed"]: r["test"][metric] for r in found(runs, "fm+gem", dataset, task)}
    seeds = sorted(fm.keys() & gem.keys())
    if not seeds:
        return f"{task}: pending"
    wins = sum(better(gem[s], fm[s]) == gem[s] and gem[s] != fm[s] for s in seeds)
    change = statistics.mean(gem[s] - fm[s] for s in seeds)
    return (f"{task}: {metric} {change:+.4f} against FM on average, better on {wins} of "
            f"{len(seeds)} seeds")


def node_field_order(runs: dict, dataset: str, task: str) -> str:
    """FM + GEM's node-field choices ordered best first by their mean headline metric, each
    with its paired change against FM: the evidence for what docs/training.md (GEM) tells
    users to choose."""
    metric, better = HEADLINE[task]
    fm = found(runs, "fm", dataset, task)
    means = {}
    for variant in (v for v in ROWS if v.startswith("fm+gem")):
        mine = found(runs, variant, dataset, task)
        if mine:
            means[variant] = (statistics.mean(r["test"][metric] for r in mine),
                              fits.paired_change(mine, fm, metric))
    order = sorted(means, key=lambda v: means[v][0], reverse=better is max)
    return f"{task} ({metric}, change against FM): " + "; ".join(
        f"{LABELS[v].removeprefix('FM + GEM, ')} {means[v][0]:.4f} ({means[v][1]})"
        for v in order)


def shares(runs: dict, dataset: str) -> str:
    """Each field's link share in the training graph of the rating split, seed 0."""
    run = runs.get(run_key("fm+gem", dataset, "rating", 0))
    if run is None:
        return "Link shares: pending."
    parts = ", ".join(f"{name} {share:.0%}" for name, share in run["graph"]["link_shares"].items())
    return ("Link share (the mean share of the graph's other nodes one value of the field is "
            f"joined to, rating split, seed 0): {parts}.")


def section() -> str:
    runs = fits.load_records(RUNS)
    lines = ["## gem-context: GEM's node fields on data with context\n",
             "Command: `nice -n 19 python -m bench.gem_context --jobs 2`, then `--report` "
             "(resumable; raw runs in `bench/records/gem_context_runs.jsonl`). "
             f"lr {SHARED['lr']}, no dropout, k = 64, batch 256, at most 50 epochs with "
             "patience 5, for every row; test metrics mean ± std over seeds 0–2; the change "
             "against FM is paired by seed (same split, same negatives). A row whose node "
             "fields equal the default's on that data reuses the default's fits. The fits ran "
             "one or two at a time under `nice -n 19`, some beside other benchmarks, so their "
             "epoch seconds do not compare.\n"]
    for dataset, data in DATASETS.items():
        lines.append(f"### {data.title}: `{data.spec}`\n")
        lines.append(shares(runs, dataset) + "\n")
        for task in TASKS:
            lines += [f"{task}:\n", *table(runs, dataset, task), ""]
        lines.append("Default node fields against FM: " + "; ".join(
            verdict(runs, dataset, task) for task in TASKS) + ".\n")
        lines.append("Node-field choices, best first: " + "; ".join(
            node_field_order(runs, dataset, task) for task in TASKS) + ".\n")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    fits.rerun_main(argv, __doc__, rerun, "gem-context", section, jobs=2)


if __name__ == "__main__":
    main()
