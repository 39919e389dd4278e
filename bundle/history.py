"""The history field (docs/math.md, History): a window of a user's last m ≤ N interactions,
each weighing 1/√m (`sqrt`) or 1/m (`mean`), as the last N columns of a user row.

The weighting lives here, once, for both sides: training (training/data/history.py) weighs
the windows it trains on with `window_weights`, and serving the windows it builds. Training
builds windows from the protocol's order and export writes, for every known user, its
latest window into its row and its interactions in order (manifest["history"]). The service
builds a window the same way from a list of item ids, oldest first: the user's interactions
in the training data followed by those recorded since, an item met twice counting once, at
its latest place (as training counts a repeated (user, item) pair once, at its latest time).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from bundle import format as fmt
from bundle.errors import BundleError

if TYPE_CHECKING:
    from bundle.loaded import Bundle

Weighting = Literal["sqrt", "mean"]
WEIGHTINGS: tuple[Weighting, ...] = typing.get_args(Weighting)


def window_weights(m: np.ndarray, weight: str) -> np.ndarray:
    """The value of each item of windows of m items: 1/√m (sqrt) or 1/m (mean); 0 for m = 0."""
    m = np.asarray(m, np.float64)
    share = np.sqrt(m) if weight == "sqrt" else m
    return np.divide(1.0, share, out=np.zeros(len(m)), where=m > 0)


def window_weight(m: int, weight: str) -> float:
    """The value each of one window's m items carries (`window_weights` of that window)."""
    return float(window_weights(np.array([m]), weight)[0])


def latest_first_once(item_ids: Sequence[str]) -> list[str]:
    """The ids in order, each kept at its last place only."""
    return list(dict.fromkeys(reversed(item_ids)))[::-1]


class HistoryField:
    """How one bundle turns a user's interactions into the history columns of its row."""

    def __init__(self, bundle: Bundle):
        record = bundle.manifest["history"]
        self.field, self.size, self.weight = record["field"], int(record["size"]), record["weight"]
        self.columns = np.asarray(record["user_columns"], np.int64)
        info = bundle.fields.named(self.field)
        if info is None:
            raise BundleError(bundle.path / fmt.MANIFEST,
                              f"history field {self.field!r} is not among the fields")
        self._offset = info.offset
        self._codes = info.codes()
        self._item_ids = bundle.catalog.ids
        self._offsets = bundle.array(record["offsets"])
        self._items = bundle.array(record["items"])

    @staticmethod
    def of(bundle: Bundle) -> HistoryField | None:
        """The bundle's history field, or None for a model without one."""
        return HistoryField(bundle) if "history" in bundle.manifest else None

    def trained(self, position: int) -> list[str]:
        """A known user's interactions in the training data, oldest first."""
        start, stop = int(self._offsets[position]), int(self._offsets[position + 1])
        return [str(self._item_ids[p]) for p in self._items[start:stop]]

    def knows(self, item_id: str) -> bool:
        """Whether the field's vocabulary holds the item (a window skips those it lacks)."""
        return item_id in self._codes

    def window(self, item_ids: Sequence[str]) -> list[str]:
        """The items a window over these interactions (oldest first) holds: the last N
        distinct ones the model knows, oldest first."""
        known = [i for i in latest_first_once(item_ids) if i in self._codes]
        return known[-self.size:] if self.size else []

    def features(self, window: Sequence[str]) -> np.ndarray:
        """The feature indices (m,) of a window's items."""
        return np.array([self._offset + self._codes[i] for i in window], np.int64)

    def encode(self, window: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """A window (from `window`) as the history columns' indices and values, padded."""
        idx = np.zeros(self.size, np.int32)
        val = np.zeros(self.size, np.float32)
        idx[:len(window)] = self.features(window)
        val[:len(window)] = window_weight(len(window), self.weight)
        return idx, val

    def apply(self, idx: np.ndarray, val: np.ndarray, window: Sequence[str]
              ) -> tuple[np.ndarray, np.ndarray]:
        """A user row (idx, val) with its history columns holding `window`."""
        idx, val = idx.copy(), val.copy()
        idx[self.columns], val[self.columns] = self.encode(window)
        return idx, val
