"""Train models on both tasks over several seeds; write mean ± std of the test metrics, epoch
time and throughput to a section of bench/RESULTS.md. Run folders go under
runs/bench/compare/.

    python -m bench.compare --models fm --seeds 0 1 2 --section fm-baseline
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from bench.lib import training_api
from bench.lib.fits import fits_folder
from bench.lib.results import mean_std, write_section

COLUMNS = {"topn": ["hr@10", "ndcg@10", "hr@10_optimistic", "full_hr@10", "full_ndcg@10"],
           "rating": ["rmse", "mae"]}


def run_one(model: str, task: str, seed: int, data: str, extra: dict) -> dict:
    options = {"model": model, "task": task, "seed": seed, "data": data, **extra}
    return training_api.fit(options, fits_folder("compare") / f"{model}-{task}-{seed}")


def table(task: str, results: dict[str, list[dict]]) -> str:
    cols = COLUMNS[task]
    head = "| model | " + " | ".join(cols) + " | epochs | epoch s | train inst/s |\n"
    head += "|---" * (len(cols) + 4) + "|\n"
    rows = []
    for model, runs in results.items():
        cells = [mean_std([r["test"][c] for r in runs]) for c in cols]
        cells.append(mean_std([r["epochs"] for r in runs], 1))
        cells.append(mean_std([r["epoch_seconds"] for r in runs], 2))
        cells.append(mean_std([r["train_instances_per_second"] for r in runs], 0))
        rows.append(f"| {model} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fm"])
    parser.add_argument("--tasks", nargs="+", default=["topn", "rating"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data", default="movielens-100k")
    parser.add_argument("--section", default="fm-baseline")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    extra = {"epochs": args.epochs} if args.epochs else {}
    parts = [f"## {args.section}: {args.data}, seeds {args.seeds}\n",
             "Command: `python -m bench.compare " + shlex.join(sys.argv[1:] if argv is None
                                                                else list(argv)) + "`\n",
             "Test metrics are mean ± sample std over the seeds (each seed re-draws the split "
             "and negatives); `epochs` counts epochs run including the patience tail.\n"]
    for task in args.tasks:
        results = {m: [] for m in args.models}
        for model in args.models:
            for seed in args.seeds:
                metrics = run_one(model, task, seed, args.data, extra)
                print(f"{model} {task} seed {seed}: {metrics['test']}", flush=True)
                results[model].append(metrics)
        parts.append(f"### {task}\n\n{table(task, results)}\n")
    write_section(args.section, "\n".join(parts))


if __name__ == "__main__":
    main()
