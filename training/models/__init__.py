"""Model registry: CLI names to constructors. Each model maps (idx, val) rows to scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from training.config import FitConfig
from training.errors import ConfigError
from training.models.base import FeatureModel
from training.models.fm import FM

__all__ = ["MODELS", "build_model", "FeatureModel"]

# (n_features, slot_field: the field position of each input column, config) -> model
Builder = Callable[[int, Sequence[int], FitConfig], FeatureModel]

MODELS: dict[str, Builder] = {
    "fm": lambda n, slots, c: FM(n, c.dim, c.dropout, c.init_std),
}


def build_model(name: str, n_features: int, slot_field: Sequence[int],
                config: FitConfig) -> FeatureModel:
    if name not in MODELS:
        raise ConfigError(f"unknown --model '{name}'; choose from {', '.join(sorted(MODELS))}")
    return MODELS[name](n_features, slot_field, config)
