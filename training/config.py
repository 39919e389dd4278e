"""The one configuration of a training run, layered: defaults < --config TOML < CLI flags.

The resolved config is written beside the results, so every run says how it was made.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from training.errors import ConfigError

DISTANCES = ("euclidean", "mahalanobis", "dnn", "manhattan", "chebyshev", "cosine")
PAIRWISE_ONLY = ("manhattan", "chebyshev")  # Minkowski p = 1, ∞: no additive form
TRANSFORM_INITS = ("identity", "paper")  # GML-FM's T starts at I, or at the paper's N(0, s²)


@dataclass
class FitConfig:
    # what to train on, and how it is judged
    data: str = "movielens-100k"
    task: str = "topn"  # topn | rating
    model: str = "fm"
    out: str = "runs/latest"
    group_size: int = 100  # libFM top-n: lines per test group, the positive first
    # model shape; the papers use k = 64 for MovieLens and N(0, 0.01) initialisation
    dim: int = 64
    dropout: float = 0.0
    init_std: float = 0.01
    # GML-FM: metric (transform + distance), DNN depth, transformation weight on/off
    distance: str = "dnn"
    layers: int = 1
    weight: bool = True
    form: str = "auto"  # exact forward form: auto | pairwise | gram | additive
    transform_init: str = "identity"  # identity (every metric starts Euclidean) | paper
    # GEM: graph-convolved embeddings for any model
    embedding: str = "plain"  # plain | gcn
    graph: str = "a"  # a: every co-occurring pair of node fields; b: user–item only
    graph_fields: str = ""  # comma-separated node fields; empty: fields with >= 3 values
    gcn_layers: int = 1
    gcn_dropout: float = 0.0
    sampling: float = 1.0  # share of neighbour edges used (0: none, the base model; 1: all)
    gcn_activation: str = "none"  # none | tanh | relu
    # optimisation: the GML-FM paper's Adam, squared loss, batch 256
    loss: str = "squared"  # squared (pointwise, the papers') | bpr (pairwise, top-n only)
    resample_negatives: bool = False  # fresh negatives every epoch instead of one fixed draw
    lr: float = 1e-3
    batch_size: int = 256
    l2: float = 0.0  # Adam weight decay
    epochs: int = 50
    patience: int = 5  # epochs without a better validation metric before stopping
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | cuda:N: where training and evaluation run

    def validate(self) -> FitConfig:
        checks = {
            "task": self.task in ("topn", "rating"),
            "loss": self.loss in ("squared", "bpr"),
            "dim": self.dim >= 1, "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0, "l2": self.l2 >= 0, "patience": self.patience >= 1,
            "dropout": 0.0 <= self.dropout < 1.0, "init_std": self.init_std > 0,
            "group_size": self.group_size >= 2,
            "distance": self.distance in DISTANCES, "layers": 0 <= self.layers <= 8,
            "embedding": self.embedding in ("plain", "gcn"), "graph": self.graph in ("a", "b"),
            "gcn_layers": 1 <= self.gcn_layers <= 4, "gcn_dropout": 0 <= self.gcn_dropout < 1,
            "sampling": 0.0 <= self.sampling <= 1.0,
            "gcn_activation": self.gcn_activation in ("none", "tanh", "relu"),
            "form": self.form in ("auto", "pairwise", "gram", "additive"),
            "transform_init": self.transform_init in TRANSFORM_INITS,
            "device": re.fullmatch(r"cpu|cuda(:\d+)?", self.device) is not None,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"invalid value for --{name.replace('_', '-')}: "
                                  f"{getattr(self, name)!r}")
        if self.form in ("gram", "additive") and self.distance in PAIRWISE_ONLY:
            raise ConfigError(f"--form {self.form}: the {self.distance} distance has only the "
                              "pairwise form")
        if self.embedding == "gcn" and self.device != "cpu":
            raise ConfigError("--embedding gcn trains on the CPU only (its sparse graph stays "
                              "there); leave --device at cpu")
        if self.dropout > 0 and self.dropout_absent() is not None:
            raise ConfigError(f"--dropout: {self.dropout_absent()}; leave it at 0")
        return self

    def dropout_absent(self) -> str | None:
        """Why --dropout would silently do nothing in this model, or None if it acts."""
        if self.model in NO_DROPOUT:
            return (f"{self.model} has no dropout (its pair term is a sum of distances, with "
                    "no vector to drop from)")
        deep = self.distance not in ("euclidean", "mahalanobis") and self.layers >= 2
        if self.model == "gmlfm" and not self.weight and not deep:
            return ("gmlfm without its weight has no dropout below 2 DNN layers (it drops the "
                    "weighted pair vector, or between DNN layers)")
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


NO_DROPOUT = frozenset({"transfm"})  # models whose --dropout would silently do nothing
FIELD_TYPES = {f.name: f.type for f in fields(FitConfig)}


def read_toml(path: Path) -> dict[str, Any]:
    """Options from a TOML file (flat keys, dashes or underscores), checked against FitConfig."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    return {_known_key(key, path): value for key, value in raw.items()}


def _known_key(key: str, path: Path) -> str:
    name = key.replace("-", "_")
    if name not in FIELD_TYPES:
        raise ConfigError(f"{path}: unknown option '{key}'")
    return name


def resolve(file_options: dict[str, Any], cli_options: dict[str, Any]) -> FitConfig:
    """Defaults, overridden by the file, overridden by flags given on the command line."""
    merged = {**file_options, **{k: v for k, v in cli_options.items() if v is not None}}
    config = FitConfig()
    for name, value in merged.items():
        setattr(config, name, _coerce(name, value))
    return config.validate()


def _coerce(name: str, value: Any) -> Any:
    kind = {"int": int, "float": float, "str": str, "bool": bool}[FIELD_TYPES[name]]
    if (kind is bool) != isinstance(value, bool) or kind is int and isinstance(value, float):
        raise ConfigError(f"option '{name}' expects {FIELD_TYPES[name]}, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option '{name}' expects {FIELD_TYPES[name]}, got {value!r}") from None


def write_toml(config: FitConfig, path: Path) -> None:
    import tomli_w

    path.write_text(tomli_w.dumps(config.to_dict()))
