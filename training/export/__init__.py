"""`python -m training export`: a finished run folder -> a servable, torch-free bundle.

    rebuild.py       run folder -> trained model (the one place that rebuilds it)
    catalog.py       data + split -> users, items, training interactions, feature sides
    tables.py        model -> numpy tables and the scoring record of its family
    onnx_graphs.py   tables -> model.onnx (graph_builder.py: onnx.helper with external data)
    two_phase_graph.py  int8 codes -> two_phase.onnx, the exact reduced-precision first pass
    writer.py        all of it -> models/<name>/<version>/ with its manifest
    replay.py        the run's top-n test protocol replayed through a bundle
The bundle's format and reader live in the top-level `bundle` package, which this package
imports and never the reverse (the service imports it too, so neither side carries the other).
"""

from __future__ import annotations

import re
from pathlib import Path

from training.errors import ConfigError
from training.export.catalog import serving_data
from training.export.rebuild import rebuild_model
from training.export.writer import Provenance, write_bundle
from training.runs import load_run

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

__all__ = ["check_bundle_name", "export_run"]


def check_bundle_name(name: str, flag: str = "--name") -> None:
    """A bundle name is one folder name the service can be told (GMLREC_MODEL)."""
    if not NAME.fullmatch(name):
        raise ConfigError(f"{flag} {name!r}: use letters, digits, '.', '_' or '-'")


def export_run(run: Path, models_dir: Path, name: str | None = None,
               pair_form: str | None = None) -> Path:
    """Write the bundle of a finished run; returns its version folder (`pair_form`:
    write_bundle's)."""
    from training.pipeline import prepare

    run = Path(run)
    config = load_run(run)[0]
    name = name or config.run.model
    check_bundle_name(name)
    models_dir = Path(models_dir)
    if models_dir.exists() and not models_dir.is_dir():
        raise ConfigError(f"--models-dir {models_dir}: not a folder")
    data, split = prepare(config)  # the catalog, the users and their training interactions
    rebuilt = rebuild_model(run)
    trained_on = rebuilt.metrics["data_fingerprint"]
    if data.fingerprint != trained_on or list(split.train.slot_field) != list(rebuilt.slot_field):
        raise ConfigError(f"data '{config.run.data}' has changed since {run} was trained "
                          f"(fingerprint {data.fingerprint}, trained on {trained_on})")
    serving = serving_data(data, split, rebuilt.slot_field)
    provenance = Provenance(config.run.model, str(run), config.run.data, data.fingerprint,
                            rebuilt.metrics)
    try:
        return write_bundle(rebuilt.model, data.schema, rebuilt.slot_field, serving,
                            provenance, models_dir, name, pair_form)
    except OSError as err:
        raise ConfigError(f"--models-dir {models_dir}: cannot write the bundle "
                          f"({err.strerror or err})") from None
