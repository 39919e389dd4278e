"""One loaded bundle version, as requests use it: its user states, scores and top n.

A ServedModel holds the version's parts, each with its own job: `catalog` (the items, as
answers show them), `union` (that catalog joined with each overlay of added and retired
items, service/union_catalog.py), `training` (the users of the training data), `profiles`
(profiles to feature rows), `description` (what it tells clients of itself). Routes and
user state go through these and never into the bundle itself, so the bundle's API is met in
those modules, in self_check.py and in reload.py (finding the newest version) only.
A ServedModel is immutable once built: a request that took `model_host.current` at its
start finishes on that version whatever a reload does meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bundle import AddedItems, EncodedUser, OnnxScorer, load_bundle
from bundle.incremental import SUMS_SIZE, IncrementalState
from bundle.item_similarity import ItemSimilarity
from service import metrics
from service.catalog import Catalog
from service.explanations import Explanations
from service.model_description import ModelDescription
from service.profiles import ProfileEncoder
from service.training_users import TrainingUsers
from service.union_catalog import UnionViews


class ServedModel:
    """One bundle version, ready to score (see the module doc)."""

    def __init__(self, path: Path, threads: int, ort_cache_dir: Path | None = None, *,
                 two_phase_items: int, prune: str = "off"):
        self.bundle = load_bundle(path)  # for its parts, tools and tests; requests use those
        self.path = self.bundle.path
        self.scorer = OnnxScorer(self.bundle, threads, spinning=False, cache_dir=ort_cache_dir,
                                 two_phase_from=two_phase_items,
                                 observe=metrics.ranked, prune=prune)
        metrics.ranking_paths(self.scorer.paths)
        self.profiles = ProfileEncoder(self.bundle)
        self.catalog = Catalog(self.bundle)
        # items added since the export are scored from their features where the bundle holds
        # the item features' tables (None: exported before them, it serves its own catalog)
        self.added_items = AddedItems(self.bundle, self.scorer.reference) \
            if self.bundle.item_features_supported else None
        # item-to-item similarity (similar items, diversity) reads the same tables
        self.similarity = ItemSimilarity(self.scorer.reference) \
            if self.bundle.item_features_supported else None
        self.union = UnionViews(self.catalog, self.added_items)
        self.training = TrainingUsers(self.bundle, self.profiles.history)
        self.name, self.version = self.bundle.name, self.bundle.version
        self.key = f"{self.name}:{self.version}"  # namespaces cached states in the store
        self.state_size = self.scorer.state_size
        # a history model's states move with each interaction (user_state.py); their pair
        # sums travel after the state in its blob
        self.incremental = IncrementalState(self.scorer.reference, self.profiles.history) \
            if self.profiles.history else None
        self.sums_size = SUMS_SIZE if self.incremental else 0
        self.description = ModelDescription(self.bundle, self.profiles)
        self.explanations = Explanations(self.bundle, self.profiles.id_field)  # explain=true

    def states(self, rows: Sequence[EncodedUser]) -> np.ndarray:
        """(B, D) float32 states of encoded users."""
        return self.scorer.user_state(np.stack([r.idx for r in rows]),
                                      np.stack([r.val for r in rows]))

    def score(self, state: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """One user's state (D,) and catalog positions (C,) -> scores (C,) float32.

        onnxruntime serves, as for top_n, wherever its graph scores the given items only
        (whole-model bundles). A split model.onnx scores the whole catalog on every call and
        its `scores` output gathers the candidates from that (training/export/onnx_graphs.py),
        so split bundles score given items through the numpy reference over their rows
        instead: the one place two paths serve, for this measured reason (100,000 items, one
        user, one thread, median of 30 calls; bench/export_serving.py's synthetic bundles):

            100 items    onnxruntime  numpy      (1 and 1,000 items: the same for split)
            GML-FM-dnn   8.7 ms       0.19 ms    split, k = 64
            FM           1.95 ms      0.03 ms    split, k = 64
            DeepFM       0.59 ms      0.65 ms    whole; 5.4 against 9.4 ms at 1,000 items

        The self-check (self_check.py) holds the two paths to each other at every load.
        """
        candidates = positions[None].astype(np.int64)
        with metrics.SCORING_SECONDS.labels("score").time():
            if self.scorer.whole:
                return self.scorer.score(state[None], candidates)[0]
            return self.scorer.reference.score(state[None], candidates)[0]

    def top_n(self, states: np.ndarray, n: int, exclude: Sequence[np.ndarray]
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per user (states (B, D), exclusions per row): the n best catalog positions, best
        first, with their scores; fewer where fewer items remain."""
        with metrics.SCORING_SECONDS.labels("top_n").time():
            items, scores = self.scorer.top_n(states, n, list(exclude))
        return [(i[i >= 0], s[i >= 0]) for i, s in zip(items, scores)]
