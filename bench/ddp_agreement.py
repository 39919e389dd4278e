"""Does a torchrun fit land where a single process lands? FM and GML-FM-dnn, MovieLens-100k.

Each row is the ablation's best cell for its variant (top-n, squared loss), seeds 0–2, trained
by `torchrun --nproc-per-node 2`: gloo on loopback, one process and torch thread per core of
this 2-core machine, the global batch of 256 split 128 + 128. Its test metrics are set beside
the ablation's own single-process records of the same keys. Seed 0 of each row is also rerun
in one process here and now (one torch thread, as the ablation's fits ran): its epoch seconds
are the baseline on today's machine, and its metrics show that single-process fits still give
the recorded numbers. One fit at a time, since each torchrun fit takes both cores.

    nice -n 10 python -m bench.ddp_agreement   # ~15 min on 2 cores
    python -m bench.ddp_agreement --report
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Sequence

from bench.lib import fits, training_api
from bench.lib.grid import load_runs, row_seeds
from bench.lib.results import mean_std

RUNS = fits.RECORDS / "ddp_agreement_runs.jsonl"
PROCESSES = 2
ROWS = ("fm", "gmlfm-dnn")
TASK = "topn"
METRICS = ("hr@10", "ndcg@10")


def torchrun_key(key: str) -> str:
    return f"{key}|torchrun={PROCESSES}"


def rerun_key(key: str) -> str:
    return f"{key}|single-rerun"


def rerun(device: str, jobs: int) -> None:
    """Per row: seed 0 in one process, then every seed under torchrun; each fit alone."""
    if device != "cpu":
        raise SystemExit("ddp_agreement trains with gloo on this machine's CPU cores: leave "
                         "--device at cpu")
    done, folder = fits.load_records(RUNS), fits.fits_folder("ddp_agreement")
    torchrun = functools.partial(training_api.fit_with_torchrun, processes=PROCESSES)
    for variant in ROWS:
        runs = row_seeds(load_runs(), variant, TASK)
        todo = [(rerun_key(runs[0]["key"]), runs[0]["options"], None)]
        todo += [(torchrun_key(r["key"]), r["options"], torchrun) for r in runs]
        for key, options, fit in todo:
            if key not in done:
                fits.run_and_record([(key, options)], jobs, RUNS, folder, fit=fit)


def seed_rows(variant: str, single: list[dict], two: list[dict]) -> list[str]:
    """One line per seed: the record's and the torchrun fit's test metrics and epochs."""
    lines = []
    for one, other in zip(single, two):
        seed = one["options"]["seed"]
        metrics = " | ".join(f"{one['test'][m]:.4f} | {other['test'][m]:.4f}" for m in METRICS)
        lines.append(f"| {variant} | {seed} | {metrics} | {one['epochs']} / {other['epochs']} "
                     f"| {largest_gap(one, other):.1e} |")
    return lines


def largest_gap(one: dict, other: dict) -> float:
    """The largest difference between two fits' metrics, validation and test, all of them."""
    return max(abs(one[part][m] - other[part][m]) for part in ("valid", "test")
               for m in one[part])


def summary_rows(variant: str, single: list[dict], two: list[dict]) -> list[str]:
    """Per metric: both 3-seed means, their gap, and whether it is within one seed-std of the
    single-process runs."""
    lines = []
    for metric in METRICS:
        ones, others = ([r["test"][metric] for r in runs] for runs in (single, two))
        gap, std = statistics.mean(others) - statistics.mean(ones), statistics.stdev(ones)
        lines.append(f"| {variant} | {metric} | {mean_std(ones)} | {mean_std(others)} | "
                     f"{gap:+.4f} | {'yes' if abs(gap) <= std else 'no'} |")
    return lines


def timing_row(variant: str, single: list[dict], two: list[dict], again: dict) -> str:
    """Epoch seconds: the ablation's, today's single-process seed 0, the torchrun fits'."""
    same = largest_gap(again, single[0]) == 0
    mean_two = statistics.mean(r["epoch_seconds"] for r in two)
    return (f"| {variant} | {statistics.mean(r['epoch_seconds'] for r in single):.2f} | "
            f"{again['epoch_seconds']:.2f} | {mean_two:.2f} | "
            f"{again['epoch_seconds'] / mean_two:.2f}× | "
            f"{'identical' if same else 'differ'} |")


def section() -> str:
    """The section's text from the ablation's records and this script's."""
    recorded, mine = load_runs(), fits.load_records(RUNS)
    per_seed, summary, timing, missing = [], [], [], []
    for variant in ROWS:
        single = row_seeds(recorded, variant, TASK)
        two = [mine.get(torchrun_key(r["key"])) for r in single]
        again = mine.get(rerun_key(single[0]["key"]))
        if not all(two) or again is None:
            missing.append(variant)
            continue
        per_seed += seed_rows(variant, single, two)
        summary += summary_rows(variant, single, two)
        timing.append(timing_row(variant, single, two, again))
    cells = [row_seeds(recorded, v, TASK)[0]["options"] for v in ROWS]
    cell = ", ".join(f"{v} lr {o['lr']} dropout {o['dropout']}" for v, o in zip(ROWS, cells))
    text = [
        f"## ddp-agreement: torchrun --nproc-per-node {PROCESSES} against one process\n",
        f"Command: `nice -n 10 python -m bench.ddp_agreement`, then `--report`. MovieLens-100k "
        f"top-n, squared loss, each row at the ablation's best cell ({cell}), seeds 0–2. "
        f"torchrun runs {PROCESSES} gloo processes on loopback, one torch thread each; "
        f"`--batch-size` 256 stays the global batch (128 per process), and each step is the "
        f"step one process takes on the same 256 instances. The single-process numbers are the "
        f"ablation's records of the same keys (one torch thread per fit, two fits side by "
        f"side).\n",
        "| variant | seed | hr@10 single | hr@10 torchrun | ndcg@10 single | ndcg@10 torchrun "
        "| epochs single / torchrun | largest gap, any valid or test metric |",
        "|---|---|---|---|---|---|---|---|", *per_seed, "",
        "| variant | metric | single process (mean ± std) | torchrun | torchrun − single | "
        "within one seed-std |", "|---|---|---|---|---|---|", *summary, "",
        "Epoch seconds. Ablation: the mean of its 3 single-process fits, which ran two side by "
        "side. Rerun: seed 0 in one process (one torch thread), alone, just before its torchrun "
        "fits; its metrics against the ablation's seed-0 record in the last column. This "
        "machine is shared, and its epoch seconds move 2–3× with the other jobs' load (section "
        "epoch-time), so compare the rerun with the torchrun fits that ran right after it. "
        "Each torchrun step all-reduces the whole gradient (about 175,000 floats for either "
        "model at k = 64, 1,150 steps an epoch) between the two processes on the same 2 "
        "cores.\n",
        "| variant | ablation single | rerun single | torchrun (mean of 3) | speed-up (rerun / "
        "torchrun) | rerun metrics vs record |", "|---|---|---|---|---|---|", *timing,
    ]
    if missing:
        text.append(f"\nNot run yet: {', '.join(missing)}.")
    return "\n".join(text)


def main(argv: Sequence[str] | None = None) -> None:
    fits.rerun_main(argv, __doc__, rerun, "ddp-agreement", section, jobs=1)


if __name__ == "__main__":
    main()
