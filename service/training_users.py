"""The served version's training users: who they are, their profiles, windows and seen items.

A user of the model's training data is known to the service without any write: its
profile, its interactions and its history window come from the bundle. User state meets
them through these methods only.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from bundle import Bundle
from bundle.history import HistoryField


class TrainingUsers:
    """One bundle version's users."""

    def __init__(self, bundle: Bundle, history: HistoryField | None):
        self._bundle, self._history = bundle, history
        self.size = len(bundle.users)

    def position(self, user_id: str) -> int | None:
        """The user's row in the bundle (a user of the training data), or None."""
        return self._bundle.users.position(user_id)

    def profile(self, position: int) -> dict[str, Any]:
        """A training user's field values, as a client would send them (its history is not
        one of them: it comes from the user's interactions)."""
        profile: dict[str, Any] = self._bundle.users.profile(position)
        if self._history:
            profile.pop(self._history.field, None)
        return profile

    def window(self, position: int | None, recorded: Sequence[str]) -> list[str]:
        """The history window of any user: its training interactions (a training user's)
        then those recorded since; [] for a model without a history field."""
        if self._history is None:
            return []
        trained = self._history.trained(position) if position is not None else []
        return self._history.window([*trained, *recorded])

    def seen(self, position: int) -> np.ndarray:
        """Catalog positions a training user interacted with in training."""
        return self._bundle.users.seen_items(position)

    def ids(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` ids of training users: the first ones, or those starting with
        `prefix` in text order (a bisection over the sorted ids, built on first use)."""
        if not prefix:
            return [str(u) for u in self._bundle.users.ids[:limit].tolist()]
        ids = self._sorted_ids
        start = bisect.bisect_left(ids, prefix)
        return list(itertools.takewhile(lambda u: u.startswith(prefix),
                                        ids[start:start + limit]))

    @functools.cached_property
    def _sorted_ids(self) -> list[str]:
        return sorted(str(u) for u in self._bundle.users.ids.tolist())
