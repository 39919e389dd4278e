"""Model registry: CLI names to constructors. Each model maps (idx, val) rows to scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from training.config import FitConfig
from training.errors import ConfigError
from training.models.afm import AFM
from training.models.base import FeatureModel
from training.models.deepfm import DeepFM
from training.models.fm import FM
from training.models.gmlfm import GMLFM
from training.models.nfm import NFM
from training.models.transfm import TransFM
from training.models.xdeepfm import XDeepFM

__all__ = ["MODELS", "build_model", "FeatureModel"]

# (n_features, slot_field: the field position of each input column, config) -> model
Builder = Callable[[int, Sequence[int], FitConfig], FeatureModel]

MODELS: dict[str, Builder] = {
    "fm": lambda n, slots, c: FM(n, c.dim, c.dropout, c.init_std),
    "gmlfm": lambda n, slots, c: GMLFM(n, c.dim, c.distance, c.layers, c.weight, c.dropout,
                                       c.init_std, c.form, c.transform_init),
    "nfm": lambda n, slots, c: NFM(n, c.dim, c.dropout, c.init_std),
    # TransFM's linear-time form is prefix sums; the config calls GML-FM's "additive"
    "transfm": lambda n, slots, c: TransFM(n, c.dim, c.init_std,
                                           "prefix" if c.form == "additive" else c.form),
    "deepfm": lambda n, slots, c: DeepFM(n, c.dim, slots, c.dropout, c.init_std),
    "xdeepfm": lambda n, slots, c: XDeepFM(n, c.dim, slots, c.dropout, c.init_std),
    "afm": lambda n, slots, c: AFM(n, c.dim, slots, c.dropout, c.init_std),
}


def build_model(name: str, n_features: int, slot_field: Sequence[int],
                config: FitConfig) -> FeatureModel:
    if name not in MODELS:
        raise ConfigError(f"unknown --model '{name}'; choose from {', '.join(sorted(MODELS))}")
    return MODELS[name](n_features, slot_field, config)
