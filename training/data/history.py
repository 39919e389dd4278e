"""The history field (docs/math.md, History): a user-side multi-hot window of the user's last m ≤ N
earlier interactions, each of its m items weighing 1/√m (`sqrt`) or 1/m (`mean`).

The field has a vocabulary of its own over the item ids (its own feature indices, appended
after every other field, so no other feature moves): an item seen before is a different
signal from the item being scored, as in SVD++'s implicit feedback and libFM's "other movies
rated" block. `m = 0` is an empty window, every value 0: padding, which adds nothing.

A window belongs to an interaction, not to an instance: the instances made from one
interaction (its negatives, its ranking candidates, the catalog ranked for its user) share it,
exactly as they share its context row. So a split holds one table of window rows, one row per
interaction (`Interactions.window_table`), and each instance points at its interaction's row.

"Earlier" is the protocols' own order: by user, then time, ties in the order of the
interactions as `protocols.unique_interactions` returns them (by item code). Every builder here
is vectorised over all interactions at once: the window of position p is a slice [lo, hi) of
one sequence of eligible items, so it is a gather, never a Python loop per interaction. Each
item of a window weighs as the bundle's (bundle/history.py, the weighting's one home), so a
served window is the trained one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bundle.history import Weighting, window_weights
from training.data.history_spec import FIELD, HistorySpec
from training.data.instances import Interactions
from training.data.schema import FeatureSchema, FeatureTable, Field
from training.errors import DataError


def with_history_field(data: Interactions, size: int, weight: Weighting) -> Interactions:
    """`data` with the history field appended to its schema; a split then builds the windows."""
    if FIELD in (f.name for f in data.schema.fields):
        raise DataError(f"{data.name} already has a field named '{FIELD}'; --history adds one")
    fields = list(data.schema.fields)
    schema = FeatureSchema.build([*fields, Field(FIELD, "user", "multihot", data.item_ids)])
    return dataclasses.replace(data, schema=schema,
                               history=HistorySpec(size, weight, len(fields)))


def chronological(users: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The protocols' order of interactions: by user, then time, ties kept in the given order
    (stable), i.e. by item code for `unique_interactions`' output."""
    return np.lexsort((np.arange(len(users)), times, users))


def windows_before(users: np.ndarray, items: np.ndarray, eligible: np.ndarray,
                   spec: HistorySpec, field: Field) -> FeatureTable:
    """Row p: the last m ≤ N eligible interactions of users[p] strictly before p.

    users, items (P,) are in `chronological` order; eligible (P,) says which interactions may
    enter a window (top-n: all; rating: training positives only)."""
    eligible = np.asarray(eligible, bool)
    before = np.cumsum(eligible) - eligible  # eligible interactions before each position
    block_start = np.searchsorted(users, users, side="left")  # the user's first position
    hi = before
    lo = np.maximum(before[block_start], hi - spec.size)
    return window_rows(items[eligible], lo, hi, spec, field)


def latest_windows(users: np.ndarray, items: np.ndarray, n_users: int, spec: HistorySpec,
                   field: Field) -> FeatureTable:
    """Row u: user u's last m ≤ N interactions of all (users, items, in `chronological`
    order): the state a served user is recommended from next."""
    ends = np.cumsum(np.bincount(users, minlength=n_users))
    starts = ends - np.bincount(users, minlength=n_users)
    return window_rows(items, np.maximum(starts, ends - spec.size), ends, spec, field)


def window_rows(sequence: np.ndarray, lo: np.ndarray, hi: np.ndarray, spec: HistorySpec,
                field: Field) -> FeatureTable:
    """Row r holds sequence[lo[r]:hi[r]] (m ≤ N items, oldest first) as features of `field`,
    each weighing 1/√m or 1/m; columns beyond m are padding (index 0, value 0). Width N."""
    m = (hi - lo).astype(np.int64)  # (R,)
    cols = np.arange(spec.size)
    filled = cols[None, :] < m[:, None]  # (R, N)
    at = np.minimum(lo[:, None] + cols[None, :], max(len(sequence) - 1, 0))
    items = sequence[at] if len(sequence) else np.zeros(at.shape, np.int64)
    idx = np.where(filled, field.offset + items, 0).astype(np.int64)
    val = np.where(filled, window_weights(m, spec.weight)[:, None], 0.0).astype(np.float32)
    return FeatureTable(idx, val, np.full(spec.size, spec.position))


def attach_windows(data: Interactions, users: np.ndarray, items: np.ndarray,
                   times: np.ndarray, eligible: np.ndarray
                   ) -> tuple[Interactions, np.ndarray | None]:
    """For data with the history field: `data` holding the window table of the interactions
    (users, items, times, in any order; ties in time fall in that order) and each
    interaction's row in it; for other data, `data` and None. eligible (P,) says which
    interactions may enter a window."""
    if data.history is None:
        return data, None
    order = chronological(users, times)
    table = windows_before(users[order], items[order], np.asarray(eligible, bool)[order],
                           data.history, data.schema.fields[data.history.position])
    rows = np.empty(len(order), np.int64)
    rows[order] = np.arange(len(order))
    return dataclasses.replace(data, window_table=table), rows
