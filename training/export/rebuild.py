"""A finished run folder back to its trained model: the one place export rebuilds a model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import FitConfig
from training.data.schema import FeatureSchema
from training.errors import ConfigError
from training.models import FeatureModel, build_model
from training.runs import METRICS, load_run, load_slot_field


@dataclass(frozen=True)
class RebuiltRun:
    config: FitConfig
    schema: FeatureSchema
    slot_field: np.ndarray  # the field of each input column
    model: FeatureModel  # trained weights, eval mode
    metrics: dict[str, Any]


def rebuild_model(run: Path, slot_field: np.ndarray | None = None) -> RebuiltRun:
    """Load a run's config, schema and weights into a fresh model in eval mode.

    The field of each input column comes from the run folder; runs saved before it was kept
    there need it from the data (`slot_field`), and where both exist they must agree.
    """
    config, schema, weights = load_run(run)
    saved = load_slot_field(run)
    if saved is not None and slot_field is not None and list(saved) != list(slot_field):
        raise ConfigError(f"{run}: the data's columns differ from the ones the run was "
                          "trained on")
    columns = saved if saved is not None else slot_field
    if columns is None:
        raise ConfigError(f"{run}: no columns.json; the run predates it, export it with its "
                          "data")
    model = build_model(config.model, schema.n_features, columns, config)
    model.load_state_dict(weights)
    metrics_file = run / METRICS
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return RebuiltRun(config, schema, np.asarray(columns), model.eval(), metrics)
