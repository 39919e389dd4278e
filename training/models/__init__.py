"""The model registry: each CLI name, its class and its options (declared in the model's own
module). Every model maps padded feature rows (idx, val) to scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from training.errors import ConfigError
from training.models.afm import AFM, AFMOptions
from training.models.base import FeatureModel
from training.models.deepfm import DeepFM, DeepFMOptions
from training.models.fm import FM, FMOptions
from training.models.gmlfm import GMLFM, GMLFMOptions
from training.models.nfm import NFM, NFMOptions
from training.models.transfm import TransFM, TransFMOptions
from training.models.xdeepfm import XDeepFM, XDeepFMOptions
from training.options import Options

__all__ = ["MODELS", "ModelEntry", "build_model", "model_entry", "FeatureModel"]


@dataclass(frozen=True)
class ModelEntry:
    cls: type[FeatureModel]
    options: type[Options]
    summary: str
    fielded: bool = False  # pools its input columns by field, so it needs each column's field


MODELS: dict[str, ModelEntry] = {
    "fm": ModelEntry(FM, FMOptions, "Rendle's factorization machine"),
    "gmlfm": ModelEntry(GMLFM, GMLFMOptions,
                        "GML-FM: pair term = learned distance x transformation weight"),
    "nfm": ModelEntry(NFM, NFMOptions, "neural FM: bi-interaction pooling, then an MLP"),
    "transfm": ModelEntry(TransFM, TransFMOptions, "translation-based FM"),
    "deepfm": ModelEntry(DeepFM, DeepFMOptions, "DeepFM: FM beside a DNN", fielded=True),
    "xdeepfm": ModelEntry(XDeepFM, XDeepFMOptions, "xDeepFM: CIN beside a DNN", fielded=True),
    "afm": ModelEntry(AFM, AFMOptions, "attentional FM", fielded=True),
}


def model_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ConfigError(f"invalid value for --model: {name!r} (expects one of "
                          f"{', '.join(MODELS)})")
    return MODELS[name]


def build_model(name: str, n_features: int, slot_field: Sequence[int],
                options: Options) -> FeatureModel:
    """A fresh model; slot_field is the field position of each input column."""
    entry = model_entry(name)
    extra = {"slot_field": slot_field} if entry.fielded else {}
    return entry.cls(n_features, **extra, **options.to_dict())
