"""A finished run folder back to its trained model: the one place export rebuilds a model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import FitConfig
from training.data.schema import FeatureSchema
from training.models import FeatureModel, build_model
from training.runs import METRICS, load_run, load_slot_field


@dataclass(frozen=True)
class RebuiltRun:
    config: FitConfig
    schema: FeatureSchema
    slot_field: np.ndarray  # the field of each input column
    model: FeatureModel  # trained weights, eval mode
    metrics: dict[str, Any]


def rebuild_model(run: Path) -> RebuiltRun:
    """Load a finished run's config, schema, columns and weights into a fresh model in eval
    mode."""
    config, schema, weights = load_run(run)
    columns = load_slot_field(run)
    model = build_model(config.run.model, schema.n_features, columns, config.model)
    model.load_state_dict(weights)
    metrics = json.loads((run / METRICS).read_text())
    return RebuiltRun(config, schema, np.asarray(columns), model.eval(), metrics)
