"""Models with random weights, exported from memory, and the torch scores they must match."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from bundle import Bundle
from training.config import resolve
from training.data.instances import Interactions
from training.data.protocols import Split
from training.export.catalog import serving_data
from training.export.verify import tolerance, torch_scores
from training.export.writer import Provenance, write_bundle
from training.models import FeatureModel, build_model
from training.pipeline import attach_graph

T = TypeVar("T")

GEM = {"embedding": "gcn", "gcn_layers": 2, "gcn_activation": "tanh", "sampling": 0.5}


def random_model(data: Interactions, split: Split, model: str, seed: int = 0,
                 std: float = 0.3, **options) -> FeatureModel:
    """A registry model on `data` with every parameter drawn N(0, std²), so each term of the
    score (biases, pairs, transforms, towers) moves it; GEM options attach the graph."""
    config = resolve({}, {"model": model, "dim": 4, **options})
    net = build_model(model, data.schema.n_features, split.train.slot_field, config.model)
    if config.gem.embedding == "gcn":
        attach_graph(net, split, data.schema, config.gem, config.model.dim)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * std)
    return net.eval()


def export(net: FeatureModel, data, split: Split, models_dir: Path, name: str = "m",
           pair_form: str | None = None) -> Path:
    """write_bundle straight from memory (export_run does the same from a run folder)."""
    net.materialize_graph()
    slot_field = split.train.slot_field
    provenance = Provenance(name, "memory", data.name, data.fingerprint, {})
    return write_bundle(net, data.schema, slot_field, serving_data(data, split, slot_field),
                        provenance, models_dir, name, pair_form)


__all__ = ["GEM", "assert_close", "assert_same_top", "export", "known_rows", "random_model",
           "torch_scores"]  # torch_scores lives with export's own check of what it wrote


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """float32 agreement: 1e-4 relative to each score, or to the scale of the scores (the
    tolerance export itself holds a written bundle to)."""
    np.testing.assert_allclose(got, want, **tolerance(want))


def assert_same_top(items: np.ndarray, want: np.ndarray, excluded: np.ndarray) -> None:
    """items (n,) are the model's top n of `want` (N,) without `excluded`, best first: their
    true scores equal the n best in order, so lists differ at most within exact ties."""
    masked = want.astype(np.float64).copy()
    masked[excluded] = -np.inf
    best = np.sort(masked)[::-1][:len(items)]
    assert len(set(items.tolist())) == len(items) and not set(items) & set(excluded.tolist())
    assert_close(masked[items], best)


def known_rows(bundle: Bundle, data: Interactions, users: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's stored rows of some of the data's users, found by id."""
    rows = [bundle.users.row(bundle.users.position(data.user_ids[u])) for u in users]
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])


def once_per_case(build: Callable[[Any], T], key: Callable[[Any], str]) -> Callable[[Any], T]:
    """`build(case)`, made once per `key(case)`: a module-scoped fixture returns this, so that
    the cases sharing a bundle export it once, and only the cases a run selects pay for one."""
    made: dict[str, T] = {}

    def get(case: Any) -> T:
        name = key(case)
        if name not in made:
            made[name] = build(case)
        return made[name]
    return get
