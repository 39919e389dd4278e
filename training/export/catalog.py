"""What a bundle serves besides the model: the item catalog, the known users, their training
interactions, and the map from the model's feature indices to each side's own tables.

Interaction data (MovieLens, synthetic) has user and item tables already; libFM data has
only instance lines, so its users and items are the distinct user-side and item-side parts
of those lines (which columns are which comes from the data spec, e.g.
`--libfm-fields user,item,...`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bundle import format as fmt
from training.data.instances import InstanceSet, Interactions, LibfmData, RankingGroups
from training.data.protocols import Split
from training.data.schema import FeatureSchema, Field
from training.errors import ConfigError
from training.export.history import ServedHistory, served_history


@dataclass(frozen=True)
class SideIndex:
    """Global feature index -> index in its side's tables (user and context share one)."""

    user_features: np.ndarray  # (n_u,) global indices, in side-local order
    item_features: np.ndarray  # (n_i,)
    local: np.ndarray  # (n,) side-local index of every global feature
    offsets: dict[str, int]  # field name -> side-local index of its first value

    @staticmethod
    def of(schema: FeatureSchema) -> SideIndex:
        ranges: dict[str, list[np.ndarray]] = {fmt.USER_SIDE: [], fmt.ITEM_SIDE: []}
        offsets = {}
        for f in schema.fields:
            side = fmt.ITEM_SIDE if f.side == fmt.ITEM_SIDE else fmt.USER_SIDE
            offsets[f.name] = sum(len(r) for r in ranges[side])
            ranges[side].append(np.arange(f.offset, f.offset + f.size))
        user, item = (np.concatenate(ranges[s] or [np.zeros(0, np.int64)])
                      for s in (fmt.USER_SIDE, fmt.ITEM_SIDE))
        local = np.zeros(schema.n_features, np.int64)
        local[user], local[item] = np.arange(len(user)), np.arange(len(item))
        return SideIndex(user, item, local, offsets)

    def to_local(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """Rows of global indices as int32 side-local ones; padding (val 0) points at 0."""
        return np.where(val != 0, self.local[idx], 0).astype(np.int32)


@dataclass(frozen=True)
class ServingData:
    """Users and items as rows of global feature indices, in the model's column layout."""

    user_ids: np.ndarray  # (U,) str
    user_idx: np.ndarray  # (U, W_u) int64, the user-side columns (user and context fields)
    user_val: np.ndarray  # (U, W_u) float32
    item_ids: np.ndarray  # (N,) str
    item_idx: np.ndarray  # (N, W_i) int64
    item_val: np.ndarray  # (N, W_i) float32
    user_columns: np.ndarray  # (W_u,) position of each user column in the model's rows
    item_columns: np.ndarray  # (W_i,)
    seen_users: np.ndarray  # (P,) training interactions: user positions ...
    seen_items: np.ndarray  # (P,) ... and item positions
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # display text per item
    history: ServedHistory | None = None  # --history runs: the window ends each user row

    def seen_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """Offsets (U + 1,) and items of each user's distinct training interactions."""
        keys = np.unique(self.seen_users.astype(np.int64) * len(self.item_ids) + self.seen_items)
        users, items = np.divmod(keys, len(self.item_ids))
        counts = np.bincount(users, minlength=len(self.user_ids))
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), items.astype(np.int32)


def item_id_field(schema: FeatureSchema, serving: ServingData,
                  slot_field: np.ndarray) -> str | None:
    """The item field whose value is each catalog item's id (MovieLens' item_id, the one item
    column of a libFM file), or None: an added item's own id is encoded there, so a bundle
    that knows the id scores it with its vectors (bundle/added_items.py)."""
    fields = [schema.fields[f] for f in np.asarray(slot_field)[serving.item_columns]]
    for column, f in enumerate(fields):
        if f.kind != "categorical" or fields.count(f) != 1 or not len(serving.item_ids):
            continue
        codes, held = serving.item_idx[:, column] - f.offset, serving.item_val[:, column] != 0
        if held.all() and np.array_equal(np.asarray(f.vocab)[codes], serving.item_ids):
            return f.name
    return None


def serving_data(data: Interactions | LibfmData, split: Split,
                 slot_field: np.ndarray) -> ServingData:
    if isinstance(data, LibfmData):
        return _from_libfm(data, split, slot_field)
    n_user_cols = data.user_table.width
    train = _positives(split.train)
    user_idx, user_val, user_columns = data.user_table.idx, data.user_table.val, \
        np.arange(n_user_cols)
    history = served_history(data, slot_field) if data.history is not None else None
    if history is not None:  # the user's latest window joins the user row, at its end
        user_idx = np.concatenate([user_idx, history.windows.idx], axis=1)
        user_val = np.concatenate([user_val, history.windows.val], axis=1)
        user_columns = np.concatenate([user_columns, history.columns])
    return ServingData(
        np.array(data.user_ids), user_idx, user_val,
        np.array(data.item_ids), data.item_table.idx, data.item_table.val,
        user_columns, n_user_cols + np.arange(data.item_table.width),
        train.rows[0], train.rows[1],
        {name: np.array(values) for name, values in data.item_attributes.items()}, history)


def _positives(instances: InstanceSet) -> InstanceSet:
    return instances.subset(instances.labels > 0)


def _from_libfm(data: LibfmData, split: Split, slot_field: np.ndarray) -> ServingData:
    """Users and items are the distinct user-side and item-side parts of the instance lines."""
    sides = np.array([data.schema.fields[f].side for f in slot_field])
    user_cols = np.flatnonzero(sides == fmt.USER_SIDE)
    item_cols = np.flatnonzero(sides == fmt.ITEM_SIDE)
    if not len(user_cols) or not len(item_cols):
        raise ConfigError(f"{data.name}: export needs user and item columns; name the columns "
                          "with --libfm-fields, e.g. user,item,weekday (other names: context)")
    side_cols = np.flatnonzero(sides != fmt.ITEM_SIDE)  # user and context, in column order
    sets = [s for s in (split.train, split.valid, split.test) if s is not None]
    lines = [s.instances if isinstance(s, RankingGroups) else s for s in sets]
    idx = np.concatenate([line.tables[0].idx for line in lines])
    val = np.concatenate([line.tables[0].val for line in lines])
    users, first_user, user_of = np.unique(idx[:, user_cols], axis=0, return_index=True,
                                           return_inverse=True)
    items, first_item, item_of = np.unique(idx[:, item_cols], axis=0, return_index=True,
                                           return_inverse=True)
    user_val = val[first_user][:, side_cols] * (sides[side_cols] == fmt.USER_SIDE)
    train = np.flatnonzero(lines[0].labels > 0)  # train lines come first in idx
    fields = [data.schema.fields[f] for f in slot_field]
    return ServingData(
        _row_ids(users, [fields[c] for c in user_cols]),
        idx[first_user][:, side_cols], user_val.astype(np.float32),
        _row_ids(items, [fields[c] for c in item_cols]),
        idx[first_item][:, item_cols], val[first_item][:, item_cols],
        side_cols, item_cols, user_of.reshape(-1)[train], item_of.reshape(-1)[train])


def _row_ids(rows: np.ndarray, fields: list[Field]) -> np.ndarray:
    """An id per distinct row: the raw values of its columns joined by '|'."""
    return np.array(["|".join(f.vocab[i - f.offset] for f, i in zip(fields, row))
                     for row in rows.tolist()])
