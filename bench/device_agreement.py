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

from bench.lib import fits
from bench.lib.grid import load_runs, row_seeds
from bench.lib.results import mean_std

RUNS = fits.RECORDS / "device_agreement_runs.jsonl"
# (variant, task, metric): the baselines, GML-FM-dnn, and xDeepFM's CPU-trained rating row.
ROWS = (("fm", "topn", "hr@10"), ("deepfm", "topn", "hr@10"), ("gmlfm-dnn", "topn", "hr@10"),
        ("xdeepfm", "rating", "rmse"))


def rerun(device: str, jobs: int) -> None:
    if device == "cpu":
        raise SystemExit("device_agreement reruns CPU rows on a GPU: give --device cuda")
    recorded, done = load_runs(), fits.load_records(RUNS)
    todo = [(r["key"], r["options"]) for v, t, _ in ROWS for r in row_seeds(recorded, v, t)
            if r["key"] not in done]
    fits.run_and_record(todo, jobs, RUNS, fits.fits_folder("device_agreement"), device)


def rows(recorded: dict, gpu: dict) -> list[str]:
    """One table row per ROWS entry: CPU and GPU means of the same keys, side by side."""
    lines = []
    for variant, task, metric in ROWS:
        cpu = row_seeds(recorded, variant, task)
        found = [gpu[r["key"]] for r in cpu if r["key"] in gpu]
        if len(found) < len(cpu):
            lines.append(f"| {variant} | {task} | {metric} | — | not run yet | — | — |")
            continue
        on_cpu, on_gpu = ([r["test"][metric] for r in runs] for runs in (cpu, found))
        lines.append(f"| {variant} | {task} | {metric} | {mean_std(on_cpu)} | "
                     f"{mean_std(on_gpu)} | "
                     f"{statistics.mean(on_gpu) - statistics.mean(on_cpu):+.4f} | "
                     f"{statistics.mean(r['epoch_seconds'] for r in found):.1f} "
                     f"({', '.join(fits.device_names(found))}) |")
    return lines


def section() -> str:
    """The section's text from the two records."""
    header = ["## device-agreement: the same runs on the CPU and on a GPU\n",
              "Command: `python -m bench.device_agreement --device cuda` on a GPU machine, then "
              "`--report`. Each row: the ablation's best cell, seeds 0–2, test metric mean ± "
              "std; the CPU runs are the ablation's own records. On the GPU machine 12 runs "
              "share the one GPU (one process and CPU core each), as the ablation's GPU rows "
              "did.\n",
              "| variant | task | metric | CPU (2 cores) | GPU | GPU − CPU | GPU epoch s |",
              "|---|---|---|---|---|---|---|"]
    return "\n".join(header + rows(load_runs(), fits.load_records(RUNS)))


def main(argv: Sequence[str] | None = None) -> None:
    fits.rerun_main(argv, __doc__, rerun, "device-agreement", section, jobs=12)


if __name__ == "__main__":
    main()
