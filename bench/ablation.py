"""The papers' Tables 3–5 on MovieLens-100k: every model and GML-FM variant, both tasks.

Every variant gets the same tuning budget: a grid over lr × dropout on seed 0, the best cell
chosen on validation, then seeds 1 and 2 at that cell. Each finished run is appended to
bench/records/ablation_runs.jsonl (committed), so the runner resumes where any earlier run
stopped; `--report` only rewrites the RESULTS.md section and the charts from that file, fitting
nothing. The fits' run folders go under runs/bench/ablation/.

    python -m bench.ablation --jobs 2 [--only fm gmlfm-dnn] [--tasks topn rating] [--report]
                             [--device cuda]

With --device cuda every worker trains on the one GPU (run as many jobs as CPU cores feed it);
the record's options then say so.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench.lib.ablation_tables import write_report
from bench.lib.fits import device_arg, fits_folder, run_and_record
from bench.lib.grid import (
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
    while True:
        runs = load_runs()
        todo = [item for loss in ("squared", "bpr") for v in variants for t in tasks
                if loss in losses(v, t) for item in pending(runs, v, t, loss)]
        if not todo:
            return
        run_and_record(todo[:jobs * 4], jobs, RUNS, fits_folder("ablation"), device)
        write_report(load_runs())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--tasks", nargs="+", choices=list(LOSSES), default=list(LOSSES))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", type=device_arg, default="cpu",
                        help="cpu, cuda or cuda:N for every run")
    parser.add_argument("--report", action="store_true", help="only rewrite the report")
    args = parser.parse_args(argv)
    if not args.report:
        run_all(args.only, args.tasks, args.jobs, args.device)
    write_report(load_runs())


if __name__ == "__main__":
    main()
