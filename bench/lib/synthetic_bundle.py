"""Synthetic bundles with random weights: what serving costs at a catalog size no fit reaches.

Training adds nothing to a timing or a memory figure, so the model is built with its
initial (seeded) weights and exported with write_bundle as a fitted one would be.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from training.config import resolve
from training.data.history import with_history_field
from training.data.instances import Interactions
from training.data.protocols import make_split
from training.data.specs import load_data
from training.export.catalog import serving_data
from training.export.writer import Provenance, write_bundle
from training.models import build_model


@dataclass(frozen=True)
class SyntheticBundle:
    path: Path  # the bundle's version folder
    export_s: float  # write_bundle alone (data generation and model building excluded)
    net: torch.nn.Module  # the model exported, in eval mode
    data: Interactions


def export_synthetic(spec: str, model: str, models_dir: Path, name: str,
                     dim: int = 64, history: int = 0, pair_form: str | None = None,
                     weight_std: float | None = None) -> SyntheticBundle:
    """Generate `spec`, build `model` (GML-FM: the dnn distance, one layer) with random
    weights and export it into models_dir/name; the export alone is timed. `history` adds a
    history field of that window (weighed 1/√m), `pair_form` is write_bundle's, and
    `weight_std` redraws every parameter N(0, std²) (the initial ones are small enough that
    pair terms hardly move a float32 score, which a comparison of answers needs them to)."""
    data = load_data(spec)
    if history:
        data = with_history_field(data, history, "sqrt")
    split = make_split(data, "topn", 0)
    dnn = {"distance": "dnn", "layers": 1} if model == "gmlfm" else {}
    config = resolve({}, {"model": model, "dim": dim, **dnn})
    torch.manual_seed(0)
    slot_field = split.train.slot_field
    net = build_model(model, data.schema.n_features, slot_field, config.model).eval()
    if weight_std is not None:
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0.0, weight_std)
    serving = serving_data(data, split, slot_field)
    start = time.perf_counter()
    path = write_bundle(net, data.schema, slot_field, serving,
                        Provenance(model, "random weights", spec, data.fingerprint, {}),
                        models_dir, name, pair_form)
    return SyntheticBundle(path, time.perf_counter() - start, net, data)


def size_mb(folder: Path) -> float:
    """Bytes on disk of every file under `folder`, in MiB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
