"""History: does the user's last N interactions, as a field, lift the models on MovieLens-100k?

Top-n, the project's protocol (leave-one-out, 99 sampled negatives, squared loss), for FM,
GML-FM-dnn, GML-FM-dnn + GEM, NFM and DeepFM, each at the ablation's recorded best cell (lr,
dropout; not re-tuned), without and with `--history N --history-weight W`. N and W are chosen
first, on validation NDCG@10 with seed 0 on GML-FM-dnn + GEM, among N ∈ {10, 30, 50} × {sqrt,
mean} (6 fits); then that pair runs on every model, seeds 0–2 (14 more fits: the tuned model's
seed 0 is one of the six). The "without" rows are the ablation's own records of the same cell
and seeds (a run missing there is fitted here). The report gives test HR@10 and NDCG@10, mean
± std over the seeds, without and with, their change paired by seed, and the best served model
against the HR@10 ≥ 0.62 bar.

Each fit is appended to bench/records/history_runs.jsonl as it ends, so the runner resumes
where it stopped; `--report` only rewrites the section. `--smoke` runs the whole plan on tiny
synthetic data (1 epoch, k = 8) into a temporary record and RESULTS copy, and prints it.

    python -m bench.history --jobs 2   # 20 fits, not yet timed with history: at the
                                       # ablation's times without it, 35 min of worker time
    python -m bench.history --report
    python -m bench.history --smoke    # 35 tiny fits, 1 min on 2 busy cores
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.lib import fits
from bench.lib.grid import SEEDS, VARIANTS, best_cell, load_runs, run_key
from bench.lib.results import RESULTS, mean_std, write_section

RUNS = fits.RECORDS / "history_runs.jsonl"
MODELS = ("fm", "gmlfm-dnn", "gmlfm-dnn+gem", "nfm", "deepfm")
LABELS = {"fm": "FM", "gmlfm-dnn": "GML-FM-dnn", "gmlfm-dnn+gem": "GML-FM-dnn + GEM",
          "nfm": "NFM", "deepfm": "DeepFM"}
TUNED_ON = "gmlfm-dnn+gem"
SIZES = (10, 30, 50)
WEIGHTINGS = ("sqrt", "mean")
TASK, LOSS = "topn", "squared"
METRICS = ("hr@10", "ndcg@10")
CHOSEN_BY = "ndcg@10"  # on validation, seed 0
BAR = 0.62  # test HR@10 the best served model should reach
SMOKE = {"data": "synthetic:users=60,items=300,interactions=2000,seed=0", "epochs": 1, "dim": 8}


@dataclass(frozen=True)
class Setup:
    """Where a plan's fits are recorded and saved, and what every fit adds to its options
    (the smoke run's data and size; nothing for the real one)."""

    records: Path = RUNS
    folder: Path = fits.fits_folder("history")
    extra: dict = field(default_factory=dict)


Choice = tuple[int, str]  # (N, weighting)


def model_cell(ablation: dict, variant: str) -> dict:
    """The ablation's best top-n cell of a model; a clear stop while its grid is open."""
    cell = best_cell(ablation, variant, TASK, LOSS)
    if cell is None:
        raise SystemExit(f"{variant} {TASK}: the ablation has no complete grid yet")
    return cell


def history_variant(variant: str, choice: Choice) -> str:
    size, weight = choice
    return f"{variant}+history{size}-{weight}"


def options(variant: str, cell: dict, seed: int, extra: dict, choice: Choice | None = None
            ) -> dict:
    """A fit's options: the ablation's for that cell and seed, plus the history's if any."""
    made = {**VARIANTS[variant], "task": TASK, "loss": LOSS, **cell, "seed": seed, **extra}
    if choice:
        made |= {"history": choice[0], "history_weight": choice[1]}
    return made


def with_fit(ablation: dict, variant: str, seed: int, choice: Choice, extra: dict
             ) -> tuple[str, dict]:
    cell = model_cell(ablation, variant)
    return (run_key(history_variant(variant, choice), TASK, LOSS, cell, seed),
            options(variant, cell, seed, extra, choice))


def tuning_fits(ablation: dict, extra: dict) -> list[tuple[str, dict]]:
    """The six seed-0 fits of the tuned model that choose N and the weighting."""
    return [with_fit(ablation, TUNED_ON, 0, (size, weight), extra)
            for size in SIZES for weight in WEIGHTINGS]


def choose(ablation: dict, runs: dict, extra: dict) -> Choice | None:
    """The (N, weighting) of the best validation NDCG@10 once all six are in (a tie goes to
    the smaller N, then sqrt)."""
    found = [(fit[1], runs.get(fit[0])) for fit in tuning_fits(ablation, extra)]
    if not all(run for _, run in found):
        return None
    best = max(found, key=lambda pair: pair[1]["valid"][CHOSEN_BY])[0]
    return best["history"], best["history_weight"]


def same_options(a: dict, b: dict) -> bool:
    """Whether two fits' options name the same fit (where it ran aside)."""
    return {k: v for k, v in a.items() if k != "device"} == \
        {k: v for k, v in b.items() if k != "device"}


def without_run(ablation: dict, runs: dict, variant: str, seed: int, extra: dict
                ) -> tuple[str, dict, dict | None]:
    """(key, options, record) of a model's fit without history: the ablation's own when it
    ran exactly these options, else this script's (None while not run)."""
    cell = model_cell(ablation, variant)
    key, wanted = run_key(variant, TASK, LOSS, cell, seed), options(variant, cell, seed, extra)
    theirs = ablation.get(key)
    if theirs and same_options(theirs["options"], wanted):
        return key, wanted, theirs
    return key, wanted, runs.get(key)


def pending(ablation: dict, runs: dict, extra: dict) -> list[tuple[str, dict]]:
    """Every fit that can run now and is not recorded: the missing "without" fits and the
    tuning fits, or, once N and the weighting are chosen, every model with them."""
    todo = [(key, wanted) for variant in MODELS for seed in SEEDS
            for key, wanted, found in [without_run(ablation, runs, variant, seed, extra)]
            if found is None]
    choice = choose(ablation, runs, extra)
    withs = tuning_fits(ablation, extra) if choice is None else \
        [with_fit(ablation, v, s, choice, extra) for v in MODELS for s in SEEDS]
    return todo + [(key, wanted) for key, wanted in withs if key not in runs]


def remaining(ablation: dict, runs: dict, extra: dict) -> tuple[int, int]:
    """Fits not yet recorded: (those that can run now, those that wait for the choice)."""
    now = len(pending(ablation, runs, extra))
    if choose(ablation, runs, extra) is not None:
        return now, 0
    return now, len(MODELS) * len(SEEDS) - 1  # the tuned model's seed 0 is a tuning fit


def rerun(device: str, jobs: int, setup: Setup) -> None:
    ablation = load_runs()
    now, later = remaining(ablation, fits.load_records(setup.records), setup.extra)
    print(f"history: {now + later} fits remain ({now} now"
          + (f", then {later} once N and the weighting are chosen)" if later else ")"),
          flush=True)
    while todo := pending(ablation, fits.load_records(setup.records), setup.extra):
        fits.run_and_record(todo, jobs, setup.records, setup.folder, device)


def tuning_table(ablation: dict, runs: dict, extra: dict) -> list[str]:
    choice = choose(ablation, runs, extra)
    lines = ["| N | weighting | valid hr@10 | valid ndcg@10 | epochs | |", "|---" * 6 + "|"]
    for key, wanted in tuning_fits(ablation, extra):
        pair = (wanted["history"], wanted["history_weight"])
        run = runs.get(key)
        if run is None:
            lines.append(f"| {pair[0]} | {pair[1]} | pending | | | |")
            continue
        valid = run["valid"]
        lines.append(f"| {pair[0]} | {pair[1]} | {valid['hr@10']:.4f} | "
                     f"{valid['ndcg@10']:.4f} | {run['epochs']} | "
                     f"{'**chosen**' if pair == choice else ''} |")
    return lines


def model_runs(ablation: dict, runs: dict, extra: dict, choice: Choice | None
               ) -> dict[str, tuple[list[dict], list[dict]]]:
    """Per model, its recorded runs (without, with), seed by seed."""
    out = {}
    for variant in MODELS:
        without = [without_run(ablation, runs, variant, s, extra)[2] for s in SEEDS]
        withs = [runs.get(with_fit(ablation, variant, s, choice, extra)[0]) for s in SEEDS] \
            if choice else []
        out[variant] = ([r for r in without if r], [r for r in withs if r])
    return out


def cell_text(runs: list[dict], metric: str) -> str:
    return mean_std([r["test"][metric] for r in runs]) if runs else "pending"


def epoch_seconds(runs: list[dict]) -> str:
    return f"{statistics.mean(r['epoch_seconds'] for r in runs):.1f}" if runs else "—"


def model_table(ablation: dict, by_model: dict) -> list[str]:
    lines = ["| model | lr | dropout | seeds without / with | hr@10 without | hr@10 with | "
             "hr@10 change | ndcg@10 without | ndcg@10 with | ndcg@10 change | epochs with | "
             "epoch s without / with |", "|---" * 12 + "|"]
    for variant, (without, withs) in by_model.items():
        cell = model_cell(ablation, variant)
        metrics = " | ".join(f"{cell_text(without, m)} | {cell_text(withs, m)} | "
                             f"{fits.paired_change(withs, without, m)}" for m in METRICS)
        epochs = f"{statistics.mean(r['epochs'] for r in withs):.0f}" if withs else "—"
        lines.append(f"| {LABELS[variant]} | {cell['lr']:g} | {cell['dropout']:g} | "
                     f"{len(without)} / {len(withs)} | {metrics} | {epochs} | "
                     f"{epoch_seconds(without)} / {epoch_seconds(withs)} |")
    return lines


def best_served(by_model: dict, choice: Choice | None) -> str:
    """The row (model, without or with) of the highest mean test HR@10 among the rows with
    every seed, against the bar."""
    rows = {(v, side): found for v, pair in by_model.items()
            for side, found in zip(("without", "with"), pair) if len(found) == len(SEEDS)}
    if not rows:
        return "Best served model: pending."
    (variant, side), found = max(rows.items(), key=lambda row: statistics.mean(
        r["test"]["hr@10"] for r in row[1]))
    values = [r["test"]["hr@10"] for r in found]
    mean = statistics.mean(values)
    how = f"with history (N = {choice[0]}, {choice[1]})" if side == "with" else "without history"
    verdict = "reaches it" if mean >= BAR else f"misses it by {BAR - mean:.4f}"
    above = sum(v >= BAR for v in values)
    complete = "" if len(rows) == 2 * len(MODELS) else \
        f" (among the {len(rows)} of {2 * len(MODELS)} rows with every seed so far)"
    return (f"Best served model{complete}: {LABELS[variant]} {how}, test HR@10 "
            f"{mean_std(values)}; the bar is HR@10 ≥ {BAR}: it {verdict} ({above} of "
            f"{len(values)} seeds at or above).")


def devices(by_model: dict) -> str:
    without = [r for pair in by_model.values() for r in pair[0]]
    withs = [r for pair in by_model.values() for r in pair[1]]
    return (f"Fits without history ran on {', '.join(fits.device_names(without)) or '—'}, "
            f"with history on {', '.join(fits.device_names(withs)) or '—'}.")


def section(ablation: dict, runs: dict, extra: dict | None = None) -> str:
    extra = extra or {}
    choice = choose(ablation, runs, extra)
    chosen = f"N = {choice[0]}, {choice[1]}" if choice else "pending"
    by_model = model_runs(ablation, runs, extra, choice)
    data = f" Smoke run: every fit with {extra}." if extra else ""
    lines = ["## history: the user's last N interactions as a field (MovieLens-100k top-n)\n",
             "Command: `python -m bench.history --jobs 2`, then `--report` (resumable; raw runs "
             "in `bench/records/history_runs.jsonl`). Each model at the ablation's best top-n "
             "cell (squared loss; not re-tuned with history), k = 64, batch 256, at most 50 "
             "epochs with patience 5. N and the weighting were chosen on validation NDCG@10, "
             f"seed 0, {LABELS[TUNED_ON]}, then used for every model. Without: the ablation's "
             "own runs of the same cell and seeds. Test metrics mean ± std over seeds 0–2; "
             "the change is with minus without, paired by seed (same split, same negatives). "
             f"Epoch seconds come from fits run beside others, so they compare loosely.{data}\n",
             f"Choosing N and the weighting ({LABELS[TUNED_ON]}, seed 0, validation):\n",
             *tuning_table(ablation, runs, extra), "",
             f"Every model without and with history ({chosen}):\n",
             *model_table(ablation, by_model), "",
             best_served(by_model, choice), "", devices(by_model)]
    return "\n".join(lines)


def smoke(device: str, jobs: int) -> None:
    """The whole plan on tiny synthetic data into a temporary record and RESULTS copy."""
    with tempfile.TemporaryDirectory(prefix="gmlrec-history-smoke-") as tmp:
        setup = Setup(Path(tmp, "history_runs.jsonl"), Path(tmp, "runs"), SMOKE)
        rerun(device, jobs, setup)
        results = Path(tmp, "RESULTS.md")
        write_section("history", section(load_runs(), fits.load_records(setup.records), SMOKE),
                      results)
        print(results.read_text())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=fits.device_arg, default="cpu",
                        help="cpu, cuda or cuda:N for every fit")
    parser.add_argument("--jobs", type=int, default=2, help="fits at once")
    parser.add_argument("--report", action="store_true", help="only rewrite the report")
    parser.add_argument("--smoke", action="store_true",
                        help=f"the plan on tiny data ({SMOKE['data']}, 1 epoch), printed; "
                             f"leaves {RESULTS.name} and the records alone")
    args = parser.parse_args(argv)
    if args.smoke:
        smoke(args.device, args.jobs)
        return
    if not args.report:
        rerun(args.device, args.jobs, Setup())
    write_section("history", section(load_runs(), fits.load_records(RUNS)))


if __name__ == "__main__":
    main()
