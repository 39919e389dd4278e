"""`python -m training bootstrap`: make sure a model is there to serve.

A fresh checkout (or the compose file's one-shot `train` job) has no bundle. This fits the
default model and exports it, unless the models folder already holds one, so that the API can
start at once and a second start costs nothing. The default is the best split model measured
on MovieLens-100k top-n (bench/RESULTS.md, ablation): GML-FM-dnn with GEM at its best
validation cell, lr 0.003.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from training.config import resolve
from training.export import export_run
from training.pipeline import fit_and_save

DEFAULT_NAME = "gmlfm-gem"
DEFAULT_OPTIONS = {"data": "movielens-100k", "task": "topn", "model": "gmlfm",
                   "distance": "dnn", "layers": 1, "embedding": "gcn", "lr": 0.003, "seed": 0}
RETRAIN_ENV = "GMLREC_RETRAIN"  # "1": fit and export afresh even when a bundle exists


def existing_bundle(models_dir: Path) -> Path | None:
    """Any finished bundle in the models folder (a version folder with its manifest)."""
    if not models_dir.is_dir():
        return None
    finished = [m for m in sorted(models_dir.glob("*/*/manifest.json"))
                if not any(part.startswith(".") for part in m.relative_to(models_dir).parts)]
    return finished[0] if finished else None  # hidden folders are exports being written


def bootstrap(models_dir: Path, runs_dir: Path, force: bool = False,
              progress: bool = True) -> Path:
    """The bundle to serve: an existing one, or the default model fitted and exported."""
    force = force or os.environ.get(RETRAIN_ENV, "0") == "1"
    found = existing_bundle(models_dir)
    if found is not None and not force:
        print(f"bootstrap: {found.parent} exists; serving it (--force retrains)",
              file=sys.stderr)
        return found.parent
    run = runs_dir / DEFAULT_NAME
    print(f"bootstrap: fitting the default model (GML-FM-dnn + GEM on MovieLens-100k) into "
          f"{run}; up to ten minutes on two cores", file=sys.stderr)
    fit_and_save(resolve({}, {**DEFAULT_OPTIONS, "out": str(run)}), progress, overwrite=True)
    return export_run(run, models_dir, DEFAULT_NAME)
