"""Vectorized sampling of items a user never interacted with.

Rejection in rounds: draw every slot at once, then redraw only the slots that hit a known
(user, item) pair or repeat an item within their row. Sparse data settles in a few rounds.
"""

from __future__ import annotations

import numpy as np

from training.errors import DataError

MAX_ROUNDS = 64


def pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """One int64 per (user, item) pair, for set membership by binary search."""
    return users.astype(np.int64) * n_items + items.astype(np.int64)


def is_known(keys: np.ndarray, sorted_known: np.ndarray) -> np.ndarray:
    """Boolean mask: which keys are in sorted_known."""
    if len(sorted_known) == 0:
        return np.zeros(keys.shape, bool)
    pos = np.searchsorted(sorted_known, keys).clip(max=len(sorted_known) - 1)
    return sorted_known[pos] == keys


def sample_unseen(users: np.ndarray, per_row: int, n_items: int, sorted_known: np.ndarray,
                  rng: np.random.Generator, distinct: bool) -> np.ndarray:
    """(len(users), per_row) items never interacted with by each row's user.

    distinct=True also makes a row's items pairwise different (ranking candidates);
    False lets them repeat across slots (training negatives, like the papers' samplers).
    """
    _check_enough_unseen(users, per_row if distinct else 1, n_items, sorted_known)
    out = rng.integers(0, n_items, size=(len(users), per_row))
    bad = _invalid(users, out, n_items, sorted_known, distinct)
    for _ in range(MAX_ROUNDS):
        if not bad.any():
            return out
        out[bad] = rng.integers(0, n_items, size=int(bad.sum()))
        bad = _invalid(users, out, n_items, sorted_known, distinct)
    raise DataError(f"negative sampling did not settle in {MAX_ROUNDS} rounds; the data is "
                    "too dense for rejection sampling")


def _check_enough_unseen(users: np.ndarray, needed: int, n_items: int,
                         sorted_known: np.ndarray) -> None:
    known_per_user = np.bincount(sorted_known // n_items, minlength=int(users.max(initial=0)) + 1)
    short = users[n_items - known_per_user[users] < needed]
    if len(short):
        raise DataError(f"user code {int(short[0])} has fewer than {needed} items it never "
                        "interacted with; cannot sample negatives")


def _invalid(users: np.ndarray, items: np.ndarray, n_items: int, sorted_known: np.ndarray,
             distinct: bool) -> np.ndarray:
    bad = is_known(pair_keys(users[:, None], items, n_items), sorted_known)
    if distinct:
        order = np.argsort(items, axis=1, kind="stable")
        ordered = np.take_along_axis(items, order, axis=1)
        repeat = np.zeros_like(bad)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        np.put_along_axis(bad, order, np.take_along_axis(bad, order, axis=1) | repeat, axis=1)
    return bad
