"""`--data SPEC` strings to datasets: the one place that knows every reader."""

from __future__ import annotations

import os
from pathlib import Path

from training.data.instances import Interactions, LibfmData
from training.data.libfm import load_libfm, parse_field_names
from training.data.movielens import load_movielens_1m, load_movielens_100k
from training.data.synthetic import load_synthetic
from training.errors import ConfigError

VALID_FORMS = ("movielens-100k[+context], movielens-1m[+context]:PATH, libfm:PATH, "
               "synthetic[:key=value,...]")
CONTEXT = "+context"  # MovieLens with the rating's weekday and time of day as context fields


def default_data_dir() -> Path:
    """Where fetched datasets are cached: $GMLREC_DATA_DIR, else ~/.cache/gmlrec."""
    env = os.environ.get("GMLREC_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gmlrec"


def load_data(spec: str, data_dir: Path | None = None, libfm_fields: str = ""
              ) -> Interactions | LibfmData:
    """Load the dataset a spec names; data_dir (default: default_data_dir()) caches fetches;
    libfm_fields (`--libfm-fields`) names a libFM folder's columns."""
    kind, sep, arg = spec.strip().partition(":")
    base = kind.removesuffix(CONTEXT)
    context = base != kind
    if base == "movielens-100k" and not sep:
        return load_movielens_100k(data_dir or default_data_dir(), context)
    if kind == "synthetic":
        return load_synthetic(arg)
    if base == "movielens-1m" or kind == "libfm":
        if not arg.strip():
            raise ConfigError(f"--data {kind}: needs a folder, as in {kind}:PATH")
        folder = Path(arg.strip()).expanduser()
        if base == "movielens-1m":
            return load_movielens_1m(folder, context)
        return load_libfm(folder, parse_field_names(libfm_fields))
    raise ConfigError(f"--data: unknown spec {spec!r}; valid forms: {VALID_FORMS}")
