"""bench.history chooses N and the weighting on the tuned model's validation NDCG@10, then runs
that pair on every model, reusing the ablation's runs without history; its report pairs with
and without seed by seed. bench.history_serving's report says whether every write showed."""

from __future__ import annotations

from bench import history
from bench.history_serving import Freshness, http_lines
from bench.lib.grid import SEEDS, cells, run_key


def ablation(test_hr: dict[str, float] | None = None) -> dict:
    """Every model's grid at seed 0 (the last cell wins), and seeds 0–2 at that cell with the
    options the history script would give them, test HR@10 from `test_hr`."""
    runs = {}
    for variant in history.MODELS:
        grid = cells(variant)
        for i, cell in enumerate(grid):
            key = run_key(variant, "topn", "squared", cell, 0)
            runs[key] = {"key": key, "valid": {"ndcg@10": i}}
        for seed in SEEDS:
            key = run_key(variant, "topn", "squared", grid[-1], seed)
            hr = (test_hr or {}).get(variant, 0.5) + 0.01 * seed
            runs[key] = record(key, history.options(variant, grid[-1], seed, {}), hr,
                               valid_ndcg=len(grid))  # seed 0's stays the grid's best
    return runs


def record(key: str, options: dict, hr: float, valid_ndcg: float = 0.3) -> dict:
    return {"key": key, "options": options, "valid": {"hr@10": 0.5, "ndcg@10": valid_ndcg},
            "test": {"hr@10": hr, "ndcg@10": hr / 2}, "epochs": 10, "epoch_seconds": 2.0}


def tuned(base: dict, best: tuple[int, str]) -> dict:
    """The six tuning fits recorded, `best` of the highest validation NDCG@10."""
    runs = {}
    for key, options in history.tuning_fits(base, {}):
        pair = (options["history"], options["history_weight"])
        runs[key] = record(key, options, 0.55, 0.4 if pair == best else 0.3)
    return runs


def test_the_six_tuning_fits_come_first_and_the_ablation_is_reused_without_history():
    base = ablation()
    todo = history.pending(base, {}, {})
    assert len(todo) == len(history.SIZES) * len(history.WEIGHTINGS) == 6
    assert {o["model"] for _, o in todo} == {"gmlfm"} and all(o["seed"] == 0 for _, o in todo)
    assert all(o["embedding"] == "gcn" and o["lr"] == cells("gmlfm-dnn+gem")[-1]["lr"]
               for _, o in todo)  # the tuned model's recorded best cell
    assert history.remaining(base, {}, {}) == (6, 14)
    assert history.choose(base, {}, {}) is None


def test_the_best_validation_pair_runs_on_every_model_and_seed():
    base = ablation()
    runs = tuned(base, (30, "mean"))
    assert history.choose(base, runs, {}) == (30, "mean")
    todo = history.pending(base, runs, {})
    assert history.remaining(base, runs, {}) == (len(todo), 0)
    assert len(todo) == len(history.MODELS) * len(SEEDS) - 1  # the tuned seed 0 is in
    assert all((o["history"], o["history_weight"]) == (30, "mean") for _, o in todo)
    for key, options in todo:
        variant = key.split("|")[0].removesuffix("+history30-mean")
        cell = cells(variant)[-1]
        assert (options["lr"], options["dropout"], options["task"], options["loss"]) == \
            (cell["lr"], cell["dropout"], "topn", "squared")


def test_an_ablation_run_of_other_options_is_fitted_here_not_reused():
    base = ablation()
    key = run_key("fm", "topn", "squared", cells("fm")[-1], 1)
    base[key] = {**base[key], "options": {**base[key]["options"], "epochs": 3}}
    todo = history.pending(base, {}, {})
    assert [k for k, o in todo if "history" not in o] == [key]
    smoke = history.pending(base, {}, history.SMOKE)  # other data: nothing is reused
    assert len([o for _, o in smoke if "history" not in o]) == len(history.MODELS) * len(SEEDS)
    assert all(o["data"] == history.SMOKE["data"] for _, o in smoke)


def test_the_report_pairs_with_and_without_by_seed_and_names_the_best_served_model():
    base = ablation({"deepfm": 0.60, "fm": 0.58})
    runs = tuned(base, (50, "sqrt"))
    for key, options in history.pending(base, runs, {}):
        lift = 0.03 if options["model"] == "deepfm" else 0.01
        without = base[run_key(key.split("+history")[0], "topn", "squared",
                               {"lr": options["lr"], "dropout": options["dropout"]},
                               options["seed"])]
        runs[key] = record(key, options, without["test"]["hr@10"] + lift)
    text = history.section(base, runs)
    assert "| 50 | sqrt | 0.5000 | 0.4000 | 10 | **chosen** |" in text
    deepfm = next(line for line in text.splitlines() if line.startswith("| DeepFM |"))
    cols = [c.strip() for c in deepfm.split("|")[1:-1]]
    assert cols[3] == "3 / 3"
    assert cols[4:7] == ["0.6100 ± 0.0100", "0.6400 ± 0.0100", "+0.0300 ± 0.0000"]
    assert "Best served model: DeepFM with history (N = 50, sqrt), test HR@10 0.6400 ± " \
           "0.0100; the bar is HR@10 ≥ 0.62: it reaches it (3 of 3 seeds" in text
    tuner = next(line for line in text.splitlines() if line.startswith("| GML-FM-dnn + GEM |"))
    # seed 0 with history is the chosen tuning fit (HR@10 0.55, +0.05), seeds 1-2 +0.01
    assert "| 0.5333 ± 0.0153 | +0.0233 ± 0.0231 |" in tuner


def test_an_open_plan_reports_pending_and_the_best_so_far():
    base = ablation({"deepfm": 0.60})
    text = history.section(base, {})
    assert text.count("| pending | | | |") == 6
    assert "(among the 5 of 10 rows with every seed so far): DeepFM without history" in text
    assert "misses it by 0.0000" not in text and "misses it by" in text


def test_the_freshness_lines_say_whether_every_write_showed():
    posts = [4.0, 5.0, 6.0]
    every = Freshness(posts, [1.0, 2.0, 3.0], [0.5, 0.5, 0.5], 3, 3, 3)
    assert "Reflected the write: every round." in "\n".join(http_lines(every))
    missed = Freshness(posts, [1.0, 2.0, 3.0], [0.5, 0.5, 0.5], 3, 2, 3)
    lines = http_lines(missed)
    assert "NOT every round (1 missed)" in "\n".join(lines)
    assert lines[2].startswith("| POST /users/{id}/interactions") and lines[2].endswith("| 3 |")
    assert lines[3].startswith("| GET /recommend right after the POST's answer")
