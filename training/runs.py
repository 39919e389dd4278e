"""A run folder: resolved config, metrics, per-epoch history, best weights, learning curve.

Written atomically: every file goes into a staging folder beside `--out`, which gets its
completion marker last and is then renamed into place. So `--out` holds either nothing, the
old run, or the whole new one, and a folder without the marker (a copy cut short, a staging
folder left by a killed process) is never taken for a run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from training.config import FitConfig, read_toml, resolve, write_toml
from training.data.schema import FeatureSchema
from training.errors import ConfigError
from training.loop.trainer import FitResult

CONFIG, METRICS, HISTORY, WEIGHTS, SCHEMA, CURVE, COMPLETE = (
    "config.toml", "metrics.json", "history.json", "model.pt", "schema.json",
    "learning_curve.png", "COMPLETE")
COLUMNS = "columns.json"  # the field of each input column: what a model's constructor needs


class RunFolder:
    """Where one fit writes. Made before training, so a bad `--out` fails in a second, not
    after an hour; committed (renamed into place) only once every file is written."""

    def __init__(self, out: Path, overwrite: bool = False):
        self.out, self.overwrite = out, overwrite
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: is a file, not a folder")
        if is_finished_run(out) and not overwrite:
            raise ConfigError(f"--out {out}: holds a finished run; pass --overwrite to replace "
                              "it, or choose another --out")
        if out.is_dir() and not is_finished_run(out) and any(out.iterdir()):
            raise ConfigError(f"--out {out}: exists and is not a run folder; refusing to write "
                              "into it")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        except OSError as err:
            raise ConfigError(f"--out {out}: cannot write there ({err.strerror})") from None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)  # gone once committed; else discarded

    def commit(self) -> None:
        """Mark the staged run complete and swap it in for whatever `--out` held."""
        (self.staging / COMPLETE).write_text("fit finished writing this folder\n")
        previous = None
        if self.out.exists():  # an empty folder, or a finished run with --overwrite
            previous = self.staging.with_name(self.staging.name + "-old")
            os.replace(self.out, previous)
        os.replace(self.staging, self.out)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)


def is_finished_run(folder: Path) -> bool:
    return (folder / COMPLETE).is_file()


def save_run(folder: Path, config: FitConfig, schema: FeatureSchema, model: torch.nn.Module,
             result: FitResult, metrics: dict[str, Any], slot_field: Sequence[int]) -> None:
    """Every file of a run into `folder` (a RunFolder's staging folder)."""
    write_toml(config, folder / CONFIG)
    (folder / COLUMNS).write_text(json.dumps({"slot_field": [int(f) for f in slot_field]}))
    (folder / SCHEMA).write_text(json.dumps(schema.to_dict()))
    (folder / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    (folder / HISTORY).write_text(json.dumps([vars(r) for r in result.history], indent=1)
                                  + "\n")
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, folder / WEIGHTS)
    plot_learning_curve(result, folder / CURVE)


def load_run(run: Path) -> tuple[FitConfig, FeatureSchema, dict[str, torch.Tensor]]:
    """Config, schema and weights of a finished run; a clear error if the folder is not one."""
    if not run.is_dir():
        raise ConfigError(f"--run {run}: no such folder")
    if not is_finished_run(run):
        raise ConfigError(f"--run {run}: not a finished run folder (no {COMPLETE} marker: the "
                          "fit that wrote it did not finish)")
    config = resolve(read_toml(run / CONFIG), {})
    schema = FeatureSchema.from_dict(json.loads((run / SCHEMA).read_text()))
    return config, schema, torch.load(run / WEIGHTS, weights_only=True)


def load_slot_field(run: Path) -> list[int]:
    """The field of each input column as fit saw it (a finished run always has it)."""
    return json.loads((run / COLUMNS).read_text())["slot_field"]


def plot_learning_curve(result: FitResult, path: Path) -> None:
    """Training loss and every headline validation metric per epoch; the best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in result.history]
    names = [k for k in (result.history[0].valid if result.history else {})
             if "optimistic" not in k]
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(4 * (1 + len(names)), 3.2))
    axes = list(axes) if len(names) else [axes]
    series = [("train loss", [r.train_loss for r in result.history])]
    series += [(f"valid {n}", [r.valid[n] for r in result.history]) for n in names]
    for ax, (title, values) in zip(axes, series):
        ax.plot(epochs, values, marker=".")
        ax.axvline(result.best_epoch, color="grey", linestyle=":", label="best epoch")
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
