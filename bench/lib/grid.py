"""The ablation's grid: variants, tuning cells, seeds, and the runs recorded so far."""

from __future__ import annotations

from bench.lib.fits import RECORDS, load_records
from bench.lib.training_api import dropout_acts

RUNS = RECORDS / "ablation_runs.jsonl"
GRID = [{"lr": lr, "dropout": dropout} for lr in (1e-3, 3e-3) for dropout in (0.0, 0.3)]
SEEDS = (0, 1, 2)

# Priority order: the headline comparison first, then the ablations of Table 5.
VARIANTS: dict[str, dict] = {
    "fm": {"model": "fm"},
    "deepfm": {"model": "deepfm"},
    "gmlfm-dnn": {"model": "gmlfm", "distance": "dnn", "layers": 1},
    "gmlfm-dnn-noweight": {"model": "gmlfm", "distance": "dnn", "layers": 1, "weight": False},
    "gmlfm-dnn-paper-init": {"model": "gmlfm", "distance": "dnn", "layers": 1,
                             "transform_init": "paper"},
    "nfm": {"model": "nfm"},
    "transfm": {"model": "transfm"},
    "xdeepfm": {"model": "xdeepfm"},
    "afm": {"model": "afm"},
    "gmlfm-md": {"model": "gmlfm", "distance": "mahalanobis"},
    "gmlfm-md-noweight": {"model": "gmlfm", "distance": "mahalanobis", "weight": False},
    "gmlfm-euclidean-noweight": {"model": "gmlfm", "distance": "euclidean", "weight": False},
    "gmlfm-dnn-L0": {"model": "gmlfm", "distance": "dnn", "layers": 0},
    "gmlfm-dnn-L2": {"model": "gmlfm", "distance": "dnn", "layers": 2},
    "gmlfm-dnn-L3": {"model": "gmlfm", "distance": "dnn", "layers": 3},
    "gmlfm-manhattan": {"model": "gmlfm", "distance": "manhattan", "layers": 1},
    "gmlfm-chebyshev": {"model": "gmlfm", "distance": "chebyshev", "layers": 1},
    "gmlfm-cosine": {"model": "gmlfm", "distance": "cosine", "layers": 1},
}
GEM = {"embedding": "gcn"}
# GEM's ablation (its paper's Table 1 and analysis): every base model with graph a, then graph
# type, sampling ratio and GCN dropout on FM.
VARIANTS |= {
    "fm+gem": {"model": "fm", **GEM},
    "gmlfm-dnn+gem": {"model": "gmlfm", "distance": "dnn", "layers": 1, **GEM},
    "nfm+gem": {"model": "nfm", **GEM},
    "transfm+gem": {"model": "transfm", **GEM},
    "fm+gem-b": {"model": "fm", **GEM, "graph": "b"},
    "fm+gem-s0.5": {"model": "fm", **GEM, "sampling": 0.5},
    "fm+gem-s0": {"model": "fm", **GEM, "sampling": 0.0},
    "fm+gem-gdrop0.3": {"model": "fm", **GEM, "gcn_dropout": 0.3},
}
LOSSES = {"topn": ("squared", "bpr"), "rating": ("squared",)}
# BPR is compared on the models themselves, not on every GML-FM ablation or GEM row.
BPR_VARIANTS = ("fm", "deepfm", "gmlfm-dnn", "nfm", "transfm", "xdeepfm", "afm")
# GEM's own paper is a rating study: its graph, sampling and dropout ablations run there only.
RATING_ONLY = ("fm+gem-b", "fm+gem-s0.5", "fm+gem-s0", "fm+gem-gdrop0.3")
# The GML-FM paper ablates its metric on top-n only (Table 5); its rating table (3) holds the
# models and GML-FM's Mahalanobis and DNN forms.
TOPN_ONLY = ("gmlfm-md-noweight", "gmlfm-euclidean-noweight", "gmlfm-dnn-L0", "gmlfm-dnn-L2",
             "gmlfm-dnn-L3", "gmlfm-manhattan", "gmlfm-chebyshev", "gmlfm-cosine")


def losses(variant: str, task: str) -> tuple[str, ...]:
    """The losses a variant is run with on a task (none: it is not run there)."""
    if variant in (RATING_ONLY if task == "topn" else TOPN_ONLY):
        return ()
    return LOSSES[task] if variant in BPR_VARIANTS else ("squared",)


def cells(variant: str) -> list[dict]:
    """The grid a variant is tuned on: without the dropout axis for a model that has none."""
    if not dropout_acts(VARIANTS[variant]):
        return [c for c in GRID if c["dropout"] == 0.0]
    return GRID


def run_key(variant: str, task: str, loss: str, cell: dict, seed: int) -> str:
    return f"{variant}|{task}|{loss}|lr={cell['lr']}|dropout={cell['dropout']}|seed={seed}"


def load_runs() -> dict[str, dict]:
    return load_records(RUNS)


def headline(task: str, run: dict) -> float:
    return -run["valid"]["rmse"] if task == "rating" else run["valid"]["ndcg@10"]


def best_cell(runs: dict, variant: str, task: str, loss: str) -> dict | None:
    """The grid cell with the best seed-0 validation metric, once the grid is complete."""
    grid = cells(variant)
    done = [runs.get(run_key(variant, task, loss, c, 0)) for c in grid]
    if not all(done):
        return None
    return max(zip(grid, done), key=lambda pair: headline(task, pair[1]))[0]


def seed_runs(runs: dict, variant: str, task: str, loss: str) -> tuple[dict | None, list]:
    """The best cell and the seeds recorded at it (None and none while the grid is open)."""
    cell = best_cell(runs, variant, task, loss)
    if cell is None:
        return None, []
    found = [runs.get(run_key(variant, task, loss, cell, s)) for s in SEEDS]
    return cell, [r for r in found if r]


def row_seeds(runs: dict, variant: str, task: str) -> list[dict]:
    """A finished row's runs: its squared-loss seeds at its best cell; a clear stop if they are
    not all in (the scripts that rerun ablation rows elsewhere start from these)."""
    _, found = seed_runs(runs, variant, task, "squared")
    if len(found) < len(SEEDS):
        raise SystemExit(f"{variant} {task}: the ablation has not run this row to 3 seeds")
    return found
