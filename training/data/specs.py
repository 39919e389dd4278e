"""`--data SPEC` strings to datasets: the one place that knows every reader."""

from __future__ import annotations

import os
from pathlib import Path

from training.data.instances import Interactions, LibfmData
from training.data.libfm import load_libfm
from training.data.movielens import load_movielens_1m, load_movielens_100k
from training.data.synthetic import load_synthetic
from training.errors import ConfigError

VALID_FORMS = ("movielens-100k, movielens-1m:PATH, libfm:PATH[:user=COLS][:item=COLS], "
               "synthetic[:key=value,...]")


def default_data_dir() -> Path:
    """Where fetched datasets are cached: $GMLREC_DATA_DIR, else ~/.cache/gmlrec."""
    env = os.environ.get("GMLREC_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gmlrec"


def load_data(spec: str, data_dir: Path | None = None) -> Interactions | LibfmData:
    """Load the dataset a spec names; data_dir (default: default_data_dir()) caches fetches."""
    kind, sep, arg = spec.strip().partition(":")
    if kind == "movielens-100k" and not sep:
        return load_movielens_100k(data_dir or default_data_dir())
    if kind == "synthetic":
        return load_synthetic(arg)
    if kind in ("movielens-1m", "libfm"):
        if not arg.strip():
            raise ConfigError(f"--data {kind}: needs a folder, as in {kind}:PATH")
        if kind == "libfm":
            return _libfm(arg)
        return load_movielens_1m(Path(arg.strip()).expanduser())
    raise ConfigError(f"--data: unknown spec {spec!r}; valid forms: {VALID_FORMS}")


def _libfm(arg: str) -> LibfmData:
    """`PATH[:user=0,1][:item=2]`: the folder, then which column positions are user and item."""
    path, *options = arg.strip().split(":")
    columns: dict[str, list[int]] = {"user": [], "item": []}
    for option in options:
        key, _, values = option.partition("=")
        positions = [v.strip() for v in values.split(",")]
        if key not in columns or not all(v.isdigit() for v in positions):
            raise ConfigError(f"--data libfm: bad option {option!r}; expected user=COLS or "
                              "item=COLS, COLS comma-separated column positions")
        columns[key] = [int(v) for v in positions]
    return load_libfm(Path(path).expanduser(), columns["user"], columns["item"])
