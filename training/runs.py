"""A run folder: resolved config, metrics, per-epoch history, best weights, learning curve."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from training.config import FitConfig, read_toml, resolve, write_toml
from training.data.schema import FeatureSchema
from training.errors import ConfigError
from training.trainer import FitResult

CONFIG, METRICS, HISTORY, WEIGHTS, SCHEMA, CURVE = (
    "config.toml", "metrics.json", "history.json", "model.pt", "schema.json",
    "learning_curve.png")
COLUMNS = "columns.json"  # the field of each input column: what a model's constructor needs


def save_run(out: Path, config: FitConfig, schema: FeatureSchema, model: torch.nn.Module,
             result: FitResult, metrics: dict[str, Any],
             slot_field: Sequence[int] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if slot_field is not None:
        (out / COLUMNS).write_text(json.dumps({"slot_field": [int(f) for f in slot_field]}))
    write_toml(config, out / CONFIG)
    (out / SCHEMA).write_text(json.dumps(schema.to_dict()))
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    (out / HISTORY).write_text(json.dumps([vars(r) for r in result.history], indent=1) + "\n")
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, out / WEIGHTS)
    plot_learning_curve(result, out / CURVE)


def load_run(run: Path) -> tuple[FitConfig, FeatureSchema, dict[str, torch.Tensor]]:
    """Config, schema and weights of a finished run; a clear error if the folder is not one."""
    missing = [name for name in (CONFIG, SCHEMA, WEIGHTS) if not (run / name).is_file()]
    if missing:
        raise ConfigError(f"{run} is not a finished run folder (missing {', '.join(missing)})")
    config = resolve(read_toml(run / CONFIG), {})
    schema = FeatureSchema.from_dict(json.loads((run / SCHEMA).read_text()))
    return config, schema, torch.load(run / WEIGHTS, weights_only=True)


def load_slot_field(run: Path) -> list[int] | None:
    """The field of each input column as fit saw it; None for runs saved before it was kept."""
    path = run / COLUMNS
    return json.loads(path.read_text())["slot_field"] if path.is_file() else None


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
