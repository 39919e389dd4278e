"""Do GPU runs land where CPU runs land? Reruns CPU-recorded ablation rows on a GPU.

xDeepFM's top-n rows were trained on a GPU (its CIN costs 41× FM per epoch on this project's 2
cores). This check reruns rows the ablation trained on the CPU — same options, same seeds —
on a GPU and sets the 3-seed means side by side; the GPU's kernels sum in another order and
draw dropout from another generator, so runs agree in distribution, not bit for bit.

    python -m bench.device_agreement --device cuda --jobs 12  # on a GPU machine
    python -m bench.device_agreement --report                  # rewrite the section
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from bench.ablation import train_one
from bench.ablation_grid import SEEDS, best_cell, load_runs, run_key
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
    recorded, done = load_runs(), _load()
    todo = [(r["key"], {**r["options"], "device": device}) for v, t, _ in ROWS
            for r in cpu_runs(recorded, v, t) if r["key"] not in done]
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(train_one, key, options) for key, options in todo]
        for future in as_completed(futures):
            result = future.result()
            with RUNS.open("a") as out:
                out.write(json.dumps(result) + "\n")
            print(result["key"], result["test"], flush=True)


def report() -> None:
    recorded, gpu = load_runs(), _load()
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


def _load() -> dict[str, dict]:
    if not RUNS.exists():
        return {}
    return {r["key"]: r for r in map(json.loads, RUNS.read_text().splitlines()) if r}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the GPU to rerun on")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--report", action="store_true", help="only rewrite the report")
    args = parser.parse_args(argv)
    if not args.report:
        rerun(args.device, args.jobs)
    report()


if __name__ == "__main__":
    main()
