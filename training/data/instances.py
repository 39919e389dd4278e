"""Datasets as readers deliver them, and labelled instance sets as protocols produce them.

An instance is a row of features gathered from one or more tables, e.g. user row u and item
row i. Storing (u, i) pairs and the two tables, not the joined rows, keeps 10M instances small
and makes the user/item split of the serving side the natural layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.data.history_spec import HistorySpec
from training.data.schema import FeatureSchema, FeatureTable


@dataclass(frozen=True)
class InstanceSet:
    """N labelled instances; block b contributes row rows[b][n] of tables[b] to instance n."""

    rows: tuple[np.ndarray, ...]
    tables: tuple[FeatureTable, ...]
    labels: np.ndarray  # (N,) float32

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, selector: np.ndarray) -> InstanceSet:
        rows = tuple(r[selector] for r in self.rows)
        return InstanceSet(rows, self.tables, self.labels[selector])

    @property
    def slot_field(self) -> np.ndarray:
        return np.concatenate([t.slot_field for t in self.tables])

    def gather(self, selector: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """Joined feature rows of the selected instances: idx, val of shape (n, W)."""
        idx = np.concatenate([t.idx[r[selector]] for r, t in zip(self.rows, self.tables)], axis=1)
        val = np.concatenate([t.val[r[selector]] for r, t in zip(self.rows, self.tables)], axis=1)
        return idx, val


@dataclass(frozen=True)
class RankingGroups:
    """Test or validation groups: G groups of C consecutive instances, the positive first."""

    instances: InstanceSet  # G * C instances
    group_size: int

    @property
    def n_groups(self) -> int:
        return len(self.instances) // self.group_size


@dataclass(frozen=True)
class Interactions:
    """Implicit-feedback data (MovieLens, synthetic): who interacted with what, and when.

    Users and items are dense codes 0..U-1 / 0..I-1 indexing user_table / item_table; user_ids
    and item_ids map them back to the source's identifiers. Data with context (the weekday of a
    rating) gives each interaction a row of context_table: an instance made from an interaction
    (its negatives, its ranking candidates) carries that interaction's context. With the history
    field (`history`, training.data.history) a split gives each of its interactions a row of
    window_table the same way: the user's window of earlier interactions as that interaction
    saw it, shared by every instance made from it.
    """

    name: str
    schema: FeatureSchema
    users: np.ndarray  # (N,) int64
    items: np.ndarray  # (N,) int64
    times: np.ndarray  # (N,) int64
    user_table: FeatureTable
    item_table: FeatureTable
    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    fingerprint: str = ""
    # display text per item, in item order (MovieLens: title, genres); never a model feature
    item_attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    context_table: FeatureTable | None = None  # distinct context rows
    contexts: np.ndarray | None = None  # (N,) the context_table row of each interaction
    history: HistorySpec | None = None  # the history field is in the schema (--history N)
    window_table: FeatureTable | None = None  # a split's windows, one row per its interaction

    @property
    def n_users(self) -> int:
        return len(self.user_table)

    @property
    def n_items(self) -> int:
        return len(self.item_table)

    def pairs(self, users: np.ndarray, items: np.ndarray, labels: np.ndarray,
              contexts: np.ndarray | None = None, windows: np.ndarray | None = None
              ) -> InstanceSet:
        """Instances joining user rows, item rows and, for data with context, context rows,
        then, for a split with history, window rows (the history columns come last)."""
        rows, tables = [users, items], [self.user_table, self.item_table]
        for name, table, chosen in (("context", self.context_table, contexts),
                                    ("history windows", self.window_table, windows)):
            if table is None:
                continue
            if chosen is None:
                raise ValueError(f"{self.name} has {name}: every instance needs its row of them")
            rows.append(chosen)
            tables.append(table)
        return InstanceSet(tuple(rows), tuple(tables), labels.astype(np.float32))


@dataclass(frozen=True)
class LibfmData:
    """Pre-split instance files (libFM format): the protocol is already in the files."""

    name: str
    schema: FeatureSchema
    train: InstanceSet
    valid: InstanceSet | None
    test: InstanceSet
    fingerprint: str = ""
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # split -> the file it was read from
