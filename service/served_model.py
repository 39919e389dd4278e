"""One loaded bundle version, as requests use it: states, scores, top n, catalog lookups.

Routes and user state go through these methods and never into the bundle itself, so the
bundle's API is met here, in profiles.py (profiles to feature rows) and in reload.py (finding
the newest version) only.
A ServedModel is immutable once built: a request that took `host.current` at its start
finishes on that version whatever a reload does meanwhile.

Before a version serves, `self_check` holds its onnxruntime session to the numpy reference
on a few users (reload.py refuses a version that fails it).
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bundle import BundleError, EncodedUser, OnnxScorer, load_bundle
from bundle import format as fmt
from bundle.incremental import SUMS_SIZE, IncrementalState
from service import metrics
from service.profiles import ProfileEncoder

CHECK_USERS, CHECK_ITEMS = 4, 16  # rows of the self-check run on every bundle before serving
CHECK_TOLERANCE = 1e-3  # onnxruntime against the numpy reference, relative to the score scale
FILTER_MASKS = 32  # item-field filter masks kept per version (N bytes each)


class ServedModel:
    """One bundle version, ready to score (see the module doc)."""

    def __init__(self, path: Path, threads: int, ort_cache_dir: Path | None = None, *,
                 two_phase_items: int):
        self.bundle = load_bundle(path)  # for tools and tests; requests use the methods
        self.path = self.bundle.path
        self.scorer = OnnxScorer(self.bundle, threads, spinning=False, cache_dir=ort_cache_dir,
                                 two_phase_from=two_phase_items,
                                 observe=lambda answered: metrics.TWO_PHASE.labels(answered).inc())
        self.profiles = ProfileEncoder(self.bundle)
        self.name, self.version = self.bundle.name, self.bundle.version
        self.key = f"{self.name}:{self.version}"  # namespaces cached states in the store
        self.state_size = self.scorer.state_size
        # a history model's states move with each interaction (user_state.py); their pair
        # sums travel after the state in its blob
        self.incremental = IncrementalState(self.scorer.reference, self.profiles.history) \
            if self.profiles.history else None
        self.sums_size = SUMS_SIZE if self.incremental else 0
        self.n_items, self.n_users = len(self.bundle.catalog), len(self.bundle.users)
        # the mapped (N,) str array itself: a list of a million Python strings would be 61 MB
        # in every worker
        self.item_ids: np.ndarray = self.bundle.catalog.ids
        self.display_names = self.bundle.catalog.display_names
        self._title = ("title",) if "title" in self.display_names else ()
        # per instance, so a version's masks go with it (a cache on the class would keep every
        # version it ever saw alive)
        self._items_with = functools.lru_cache(maxsize=FILTER_MASKS)(self._mask_of)

    # ---- users of the training data --------------------------------------------------------
    def known_user(self, user_id: str) -> int | None:
        """The user's row in the bundle (a user of the training data), or None."""
        return self.bundle.users.position(user_id)

    def training_profile(self, position: int) -> dict[str, Any]:
        """A training user's field values, as a client would send them (its history is not
        one of them: it comes from the user's interactions)."""
        profile = self.bundle.users.profile(position)
        if self.profiles.history:
            profile.pop(self.profiles.history.field, None)
        return profile

    def window(self, position: int | None, recorded: Sequence[str]) -> list[str]:
        """The history window of a user: its training interactions (a training user's)
        then those recorded since; [] for a model without a history field."""
        history = self.profiles.history
        if history is None:
            return []
        trained = history.trained(position) if position is not None else []
        return history.window([*trained, *recorded])

    def training_seen(self, position: int) -> np.ndarray:
        """Catalog positions a training user interacted with in training."""
        return self.bundle.users.seen_items(position)

    def user_ids(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` ids of training users: the first ones, or those starting with
        `prefix` in text order (a bisection over the sorted ids, built on first use)."""
        if not prefix:
            return [str(u) for u in self.bundle.users.ids[:limit].tolist()]
        ids = self._sorted_user_ids
        start = bisect.bisect_left(ids, prefix)
        return list(itertools.takewhile(lambda u: u.startswith(prefix),
                                        ids[start:start + limit]))

    @functools.cached_property
    def _id_fields(self) -> frozenset[str]:
        """Fields whose values are ids (the users', the catalog's, a history of item ids):
        GET /model lists none of them, so a read key cannot enumerate who the users are."""
        names = {self.profiles.id_field} if self.profiles.id_field else set()
        if self.profiles.history:
            names.add(self.profiles.history.field)
        for field in self.bundle.fields:
            if field.kind == "categorical" and len(field.vocab) == self.n_items \
                    and np.array_equal(np.asarray(field.vocab, dtype=str), self.item_ids):
                names.add(field.name)
        return frozenset(names)

    @functools.cached_property
    def _sorted_user_ids(self) -> list[str]:
        return sorted(str(u) for u in self.bundle.users.ids.tolist())

    # ---- scoring ---------------------------------------------------------------------------
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

        The self-check holds the two paths to each other at every load.
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

    def request_fields(self) -> tuple[dict[str, int], tuple[str, ...]]:
        """The user-side fields a request may name, each with the most values it takes (one
        per column of the user row), and the item fields a filter may name: what the
        published schema says of feature maps while this version serves
        (service/model_schema.py)."""
        columns = self.bundle.user_columns
        user = {name: columns.count(name) for name in self.profiles.user_fields}
        return user, tuple(f.name for f in self.bundle.fields if f.side == fmt.ITEM_SIDE)

    # ---- catalog ---------------------------------------------------------------------------
    def item_positions(self, item_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Catalog positions of the ids, in order, and the ids the catalog lacks."""
        return self.bundle.catalog.positions(list(item_ids))

    def display(self, position: int, every: bool = False) -> dict[str, str]:
        """What an answer shows of an item beside its id: its title where the catalog has
        titles (a list of bare ids tells a person nothing); with `every`, each display
        attribute (details=true)."""
        return self.bundle.catalog.display(position, None if every else self._title)

    def items_with(self, field: str, values: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
        """(N,) bool of the items holding one of `values` in item field `field`, and the
        values it does not know (service/filters.py). The last FILTER_MASKS asked are kept:
        a filter is usually asked again and again, and its mask is a pass over the catalog's
        rows; the caller must not write into the mask."""
        return self._items_with(field, tuple(sorted(set(values))))

    def _mask_of(self, field: str, values: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
        mask, unknown = self.bundle.catalog.items_with(field, values)
        mask.setflags(write=False)
        return mask, unknown

    def item_details(self, position: int) -> dict[str, Any]:
        """An item's id, feature values and display attributes (GET /items/{id})."""
        return self.bundle.catalog.details(position)

    def describe(self, values: int) -> dict[str, Any]:
        """What GET /model tells: the model, its catalog, and each field with up to `values`
        of its vocabulary (enough for a client to build a profile form)."""
        manifest = self.bundle.manifest
        fields = [{"name": f.name, "side": f.side, "kind": f.kind, "size": len(f.vocab),
                   "values": [] if f.name in self._id_fields else
                   [str(v) for v in f.vocab[:values]]} for f in self.bundle.fields]
        return {"name": self.name, "version": self.version, "kind": manifest["model"]["kind"],
                "created_at": manifest.get("created_at"), "items": self.n_items,
                "users": self.n_users, "user_fields": list(self.profiles.user_fields),
                "id_field": self.profiles.id_field, "fields": fields,
                "metrics": manifest.get("metrics", {})}

    # ---- the check a version passes before it serves ---------------------------------------
    def self_check(self) -> None:
        """Score a few users through onnxruntime and the numpy reference: the two must agree
        and be finite, and the top n must be real catalog positions. Raises BundleError."""
        users = range(min(CHECK_USERS, self.n_users))
        rows = [EncodedUser(*self.bundle.users.row(u), {}) for u in users] or \
            [self.profiles.encode(None, {})]
        states = self.states(rows)
        candidates = np.arange(min(CHECK_ITEMS, self.n_items))[None]
        # one user a call, as requests make them: onnxruntime keeps its largest call's
        # buffers, and at a million items each user of a call holds about 30 MB
        for state in states:
            served = self.scorer.score(state[None], candidates)
            reference = self.scorer.reference.score(state[None], candidates)
            scale = max(1.0, float(np.abs(reference).max()))
            if not np.isfinite(served).all() or \
                    np.abs(served - reference).max() > CHECK_TOLERANCE * scale:
                raise BundleError(self.bundle.onnx_path, "model.onnx disagrees with the "
                                                         "bundle's tables on the self-check")
            items, _ = self.scorer.top_n(state[None], 1, None)
            if not ((items >= 0) & (items < self.n_items)).all():
                raise BundleError(self.bundle.onnx_path, "top-n returned a position outside "
                                                         "the catalog on the self-check")
