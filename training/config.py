"""The one configuration of a training run, layered: defaults < --config TOML < CLI flags.

A run's options come in groups, each declared beside the code that uses it: the run's own
(`RunOptions`, here), the loop's (`TrainOptions`), the chosen model's (its entry in
`training.models.MODELS`) and GEM's (`GemOptions`). The resolved config is written beside the
results as one flat table, so every run says how it was made.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from training.data.history import Weighting
from training.data.libfm import parse_field_names
from training.errors import ConfigError
from training.loop.trainer import TrainOptions
from training.models import MODELS, model_entry
from training.models.gem import GemOptions
from training.options import Bounds, Options, Spec, option, specs

NO_ORDER = ("--history: libFM files hold no order of interactions (no user, time or item "
            "columns known as such), so no window of earlier interactions; use interaction "
            "data (MovieLens, synthetic) or leave --history at 0")


@dataclass(frozen=True)
class RunOptions(Options):
    data: str = option("movielens-100k", "movielens-100k | movielens-1m:PATH | libfm:PATH | "
                       "synthetic:key=value,...")
    task: Literal["topn", "rating"] = option(
        "topn", "topn (leave-one-out ranking) or rating (±1 regression)")
    model: str = option("fm", "model name: " + ", ".join(MODELS))
    out: str = option("runs/latest", "run folder for metrics.json, weights, config and plots")
    events: str = option(
        "", "a folder of exported events (python -m training events export) fitted after "
        "--data's interactions: new users, items and interactions join the base data")
    data_until: int = option(
        0, "only --data's interactions before this Unix time (seconds; 0: all); users and items "
        "stay known", Bounds(0))
    group_size: int = option(100, "libFM top-n: lines per test group, the positive first",
                             Bounds(2))
    libfm_fields: str = option(
        "", "libFM: names of the columns' fields, comma-separated, each NAME or NAME:SIDE (side "
        "user, item or context; a bare user or item is that side, any other name context)")
    seed: int = option(0, "seed of the split, the negatives, the initialisation and the "
                       "shuffling", Bounds(0))
    history: int = option(
        0, "a user-side field of the user's last N earlier interactions, N (0: off; "
        "interaction data only, which has an order)", Bounds(0))
    history_weight: Weighting = option(
        "sqrt", "weight of each of the m items of the --history window: sqrt (1/√m) or mean "
        "(1/m)")
    device: str = option("cpu", "where to train and evaluate: cpu, cuda or cuda:N (results come "
                         "back to the CPU)")

    def __post_init__(self) -> None:
        model_entry(self.model)
        if self.history and self.data.strip().startswith("libfm:"):
            raise ConfigError(NO_ORDER)
        if (self.events or self.data_until) and self.data.strip().startswith("libfm:"):
            raise ConfigError("--events, --data-until: need interaction data (MovieLens, "
                              "synthetic), which has users, items and times; not libfm:PATH")
        if parse_field_names(self.libfm_fields) and not self.data.strip().startswith("libfm:"):
            raise ConfigError(f"--libfm-fields: names the columns of libFM files; --data "
                              f"{self.data} is not libfm:PATH")
        if re.fullmatch(r"cpu|cuda(:\d+)?", self.device) is None:
            raise ConfigError(f"invalid value for --device: {self.device!r} (expects cpu, cuda "
                              "or cuda:N)")


@dataclass(frozen=True)
class FitConfig:
    run: RunOptions
    train: TrainOptions
    model: Options  # the options of run.model, e.g. GMLFMOptions
    gem: GemOptions

    def to_dict(self) -> dict[str, Any]:
        """One flat table: every option of this run, GEM's only when it is on."""
        gem = self.gem.to_dict() if self.gem.embedding == "gcn" else {"embedding": "plain"}
        return {**self.run.to_dict(), **self.train.to_dict(), **self.model.to_dict(), **gem}


SHARED_GROUPS: tuple[type[Options], ...] = (RunOptions, TrainOptions, GemOptions)


def all_specs() -> Iterator[Spec]:
    """Every option any run can take, once each: shared groups first, then the models'."""
    seen: set[str] = set()
    groups = [*SHARED_GROUPS, *(entry.options for entry in MODELS.values())]
    for group in groups:
        for spec in specs(group):
            if spec.name not in seen:
                seen.add(spec.name)
                yield spec


def models_taking(name: str) -> list[str]:
    return [model for model, entry in MODELS.items() if name in entry.options.names()]


def read_toml(path: Path) -> dict[str, Any]:
    """Options from a TOML file (flat keys, dashes or underscores), each a known option."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    known = {spec.name for spec in all_specs()}
    options = {key.replace("-", "_"): value for key, value in raw.items()}
    for key, name in zip(raw, options):
        if name not in known:
            raise ConfigError(f"{path}: unknown option '{key}'")
    return options


def resolve(file_options: dict[str, Any], cli_options: dict[str, Any]) -> FitConfig:
    """Defaults, overridden by the file, overridden by flags given on the command line; every
    value checked, and an option the chosen model (or plain embedding) does not take refused."""
    merged = {**file_options, **{k: v for k, v in cli_options.items() if v is not None}}
    run = RunOptions.make(merged)
    model_options = model_entry(run.model).options
    _refuse_foreign(merged, run.model, model_options)
    gem = GemOptions.make(merged)
    config = FitConfig(run, TrainOptions.make(merged), model_options.make(merged), gem)
    if gem.embedding == "gcn" and run.device != "cpu":
        raise ConfigError("--embedding gcn trains on the CPU only (its sparse graph stays "
                          "there); leave --device at cpu")
    return config


def _refuse_foreign(merged: dict[str, Any], model: str, model_options: type[Options]) -> None:
    taken = {*model_options.names(), *RunOptions.names(), *TrainOptions.names(), "embedding"}
    gem_only = set(GemOptions.names()) - taken
    for name in merged:
        flag = "--" + name.replace("_", "-")
        if name in gem_only and merged.get("embedding") != "gcn":
            raise ConfigError(f"{flag}: a GEM option; it needs --embedding gcn")
        if name not in taken | gem_only:
            takers = models_taking(name)
            if not takers:
                raise ConfigError(f"unknown option {flag}")
            own = ", ".join("--" + n.replace("_", "-") for n in model_options.names())
            raise ConfigError(f"{flag}: model {model} does not take this option (taken by "
                              f"{', '.join(takers)}; {model} takes {own})")


def write_toml(config: FitConfig, path: Path) -> None:
    import tomli_w

    path.write_text(tomli_w.dumps(config.to_dict()))
