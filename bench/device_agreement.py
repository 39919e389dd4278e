"""Do GPU runs land where CPU runs land? Reruns CPU-recorded ablation rows on a GPU.

xDeepFM's top-n rows were trained on a GPU (its CIN costs 41× FM per epoch on this project's 2
cores). This check reruns rows the ablation trained on the CPU — same options, same seeds —
on a GPU and sets the 3-seed means side by side; the GPU's kernels sum in another order and
draw dropout from another generator, so runs agree in distribution, not bit for bit.

    python -m bench.device_agreement --device cuda --jobs 12  # on a GPU machine
    python -m bench.device_agreement --report                  # rewrite the section
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from bench.ablation_grid import SEEDS, best_cell, load_runs, run_key
from bench.records import load_records, rerun_main, run_and_record
from bench.results import mean_std, write_section

RUNS = Path(__file__).resolve().parent / "device_agreement_runs.jsonl"
# (variant, task, metric): the baselines, GML-FM-dnn, and xDeepFM's CPU-trained rating row.
ROWS = (("fm", "topn", "hr@10"), ("deepfm", "topn", "hr@10"), ("gmlfm-dnn", "topn", "hr@10"),
        ("xdeepfm", "rating", "rmse"))


def cpu_runs(recorded: dict, variant: str, task: str) -> list[dict]:
    cell = best_cell(recorded, variant, task, "squared")
    if cell is None:
        raise SystemExit(f"{variant} {task}: no complete CPU grid in the ablation runs")
    return [recorded[run_key(variant, task, "squared", cell, s)] for s in SEEDS]


def rerun(device: str, jobs: int) -> None:
    if device == "cpu":
        raise SystemExit("device_agreement reruns CPU rows on a GPU: give --device cuda")
    recorded, done = load_runs(), load_records(RUNS)
    todo = [(r["key"], r["options"]) for v, t, _ in ROWS for r in cpu_runs(recorded, v, t)
            if r["key"] not in done]
    run_and_record(todo, jobs, RUNS, device)


def report() -> None:
    recorded, gpu = load_runs(), load_records(RUNS)
    lines = ["## device-agreement: the same runs on the CPU and on a GPU\n",
             "Command: `python -m bench.device_agreement --device cuda` on a GPU machine, then "
             "`--report`. Each row: the ablation's best cell, seeds 0–2, test metric mean ± "
             "std; the CPU runs are the ablation's own records. On the GPU machine 12 runs share "
             "the one GPU (one process and CPU core each), as the ablation's GPU rows did.\n",
             "| variant | task | metric | CPU (2 cores) | GPU | GPU − CPU | GPU epoch s |",
             "|---|---|---|---|---|---|---|"]
    for variant, task, metric in ROWS:
        cpu = cpu_runs(recorded, variant, task)
        found = [gpu[r["key"]] for r in cpu if r["key"] in gpu]
        if len(found) < len(cpu):
            lines.append(f"| {variant} | {task} | {metric} | — | not run yet | — | — |")
            continue
        ours = [[r["test"][metric] for r in runs] for runs in (cpu, found)]
        names = sorted({r.get("device_name", "?") for r in found})
        lines.append(f"| {variant} | {task} | {metric} | {mean_std(ours[0])} | "
                     f"{mean_std(ours[1])} | "
                     f"{statistics.mean(ours[1]) - statistics.mean(ours[0]):+.4f} | "
                     f"{statistics.mean(r['epoch_seconds'] for r in found):.1f} "
                     f"({', '.join(names)}) |")
    write_section("device-agreement", "\n".join(lines))


def main(argv: Sequence[str] | None = None) -> None:
    rerun_main(argv, __doc__, rerun, report, jobs=12)


if __name__ == "__main__":
    main()
