"""The history field in a bundle: each known user's window as served, and the interactions it
was built from, in order, so the service can move a window on as the user interacts.

A served user is recommended from its state after everything it did: the window in its
stored row holds its last m ≤ N interactions of all in the data (training, validation and
test alike), oldest first, built by the very code and order training uses
(training.data.history), so training and serving agree on N, order and weighting. The
interactions themselves ship as CSR arrays in that order (`users/history_*.npy`), named in
the manifest's `history` record, beside the distinct training items of `users/seen_*.npy`
(a set, for leaving seen items out). The service reads them back, and builds windows, with
bundle.history.HistoryField.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.data.history import FIELD, chronological, latest_windows
from training.data.instances import Interactions
from training.data.protocols import unique_interactions
from training.data.schema import FeatureTable

OFFSETS, ITEMS, TIMES = ("users/history_offsets.npy", "users/history_items.npy",
                         "users/history_times.npy")
ORDER = ("oldest first: by time, ties by catalog position (the training protocols' order); a "
         "(user, item) pair repeated in the data counts once, at its latest time")


@dataclass(frozen=True)
class ServedHistory:
    """What a history bundle adds: the served windows, their columns, and the interactions."""

    size: int  # N
    weight: str  # sqrt | mean
    windows: FeatureTable  # (U, N) each known user's latest window, global indices
    columns: np.ndarray  # (N,) where the window's columns sit in the model's rows
    offsets: np.ndarray  # (U + 1,) int64: user u's interactions are [offsets[u], offsets[u+1])
    items: np.ndarray  # (P,) int32 catalog positions, in ORDER
    times: np.ndarray  # (P,) int64 their times (Unix seconds for MovieLens)

    def arrays(self) -> dict[str, np.ndarray]:
        return {OFFSETS: self.offsets, ITEMS: self.items, TIMES: self.times}

    def manifest(self, user_columns: int) -> dict[str, Any]:
        """The manifest's `history` record; the window is the last N of a user row's
        `user_columns` columns."""
        return {"field": FIELD, "size": self.size, "weight": self.weight,
                "user_columns": list(range(user_columns - self.size, user_columns)),
                "order": ORDER, "offsets": OFFSETS, "items": ITEMS, "times": TIMES}


def served_history(data: Interactions, slot_field: np.ndarray) -> ServedHistory:
    """Every known user's latest window and ordered interactions (data with --history)."""
    spec = data.history
    assert spec is not None, "served_history needs data with the history field"
    users, items, times, _ = unique_interactions(data)
    order = chronological(users, times)
    users, items, times = users[order], items[order], times[order]
    windows = latest_windows(users, items, data.n_users, spec,
                             data.schema.fields[spec.position])
    counts = np.bincount(users, minlength=data.n_users)
    return ServedHistory(spec.size, spec.weight, windows,
                         np.flatnonzero(np.asarray(slot_field) == spec.position),
                         np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                         items.astype(np.int32), times.astype(np.int64))
