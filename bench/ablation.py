"""The papers' Tables 3–5 on MovieLens-100k: every model and GML-FM variant, both tasks.

Every variant gets the same tuning budget: a grid over lr × dropout on seed 0, the best cell
chosen on validation, then seeds 1 and 2 at that cell. Each finished run is appended to
bench/ablation_runs.jsonl (committed), so the runner resumes where any earlier run stopped;
`--report` only rewrites the RESULTS.md section and the chart from that file.

    python -m bench.ablation --jobs 2 [--only fm gmlfm-dnn] [--tasks topn rating] [--report]
                             [--device cuda]

With --device cuda every worker trains on the one GPU (run as many jobs as CPU cores feed it);
the record's options then say so.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from bench.ablation_grid import (
    LOSSES,
    RUNS,
    SEEDS,
    VARIANTS,
    best_cell,
    cells,
    load_runs,
    losses,
    run_key,
)
from bench.ablation_report import write_report


def train_one(key: str, options: dict) -> dict:
    """One fit in a worker process with one torch thread (two workers fill two cores)."""
    import torch

    torch.set_num_threads(1)
    from training.config import resolve
    from training.pipeline import fit_and_save

    config = resolve({}, {**options, "out": f"runs/ablation/{key.replace('|', '_')}"})
    metrics = fit_and_save(config, progress=False)
    keep = ("valid", "test", "epochs", "best_epoch", "epoch_seconds", "train_seconds")
    result = {"key": key, "options": options, **{k: metrics[k] for k in keep}}
    if config.device != "cpu":
        result["device_name"] = torch.cuda.get_device_name(torch.device(config.device))
    return result


def pending(runs: dict, variant: str, task: str, loss: str) -> list[tuple[str, dict]]:
    """The runs this variant still needs: the grid first, then the other seeds."""
    base = {**VARIANTS[variant], "task": task, "loss": loss}
    cell = best_cell(runs, variant, task, loss)
    if cell is None:
        todo = [(run_key(variant, task, loss, c, 0), {**base, **c, "seed": 0})
                for c in cells(variant)]
    else:
        todo = [(run_key(variant, task, loss, cell, s), {**base, **cell, "seed": s})
                for s in SEEDS]
    return [(k, o) for k, o in todo if k not in runs]


def run_all(variants: Sequence[str], tasks: Sequence[str], jobs: int, device: str) -> None:
    extra = {} if device == "cpu" else {"device": device}
    while True:
        runs = load_runs()
        todo = [item for loss in ("squared", "bpr") for v in variants for t in tasks
                if loss in losses(v, t) for item in pending(runs, v, t, loss)]
        if not todo:
            return
        with ProcessPoolExecutor(jobs) as pool:
            futures = [pool.submit(train_one, key, {**options, **extra})
                       for key, options in todo[:jobs * 4]]
            for future in as_completed(futures):  # record each run the moment it ends
                result = future.result()
                with RUNS.open("a") as out:
                    out.write(json.dumps(result) + "\n")
                print(result["key"], result["test"], flush=True)
        write_report(load_runs())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--tasks", nargs="+", choices=list(LOSSES), default=list(LOSSES))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N for every run")
    parser.add_argument("--report", action="store_true", help="only rewrite the report")
    args = parser.parse_args(argv)
    if not args.report:
        run_all(args.only, args.tasks, args.jobs, args.device)
    write_report(load_runs())


if __name__ == "__main__":
    main()
