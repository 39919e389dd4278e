"""A dataset less some items, as if they had never existed: the cold-start bench's fit data.

`without_items` drops the items, every interaction with them, and every item-side feature
value no remaining item holds (their ids, a genre only they had), and renumbers what is
left, so a fit on it has no embedding row, graph node or history entry for them: to the
model they are as new as an item added after the fit. `item_values` reads an item's values
back from a dataset, as `PUT /items/{id}` takes them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection

import numpy as np

from training.data.instances import Interactions, LibfmData
from training.data.schema import FeatureSchema, FeatureTable, Field


def without_items(data: Interactions | LibfmData, item_ids: Collection[str]) -> Interactions:
    """`data` without the items `item_ids` (the module doc). Every user stays, with the
    interactions it has left. Refused: libFM files (instances, no catalog of items) and a
    dataset already given a history field (add it after: its vocabulary is the items)."""
    if isinstance(data, LibfmData):
        raise ValueError(f"{data.name}: libFM instances have no item catalog to leave out of")
    if data.history is not None:
        raise ValueError(f"{data.name}: leave items out before the history field is added")
    dropped = set(item_ids)
    keep = np.array([i not in dropped for i in data.item_ids], bool)
    rows = np.flatnonzero(keep)
    items = FeatureTable(data.item_table.idx[rows], data.item_table.val[rows],
                         data.item_table.slot_field)
    held = set(items.idx[items.val != 0].tolist())  # the item-side features still used
    fields = [Field(f.name, f.side, f.kind,
                    tuple(v for j, v in enumerate(f.vocab) if f.offset + j in held)
                    if f.side == "item" else f.vocab) for f in data.schema.fields]
    schema = FeatureSchema.build(fields)
    renumber = np.full(data.schema.n_features, -1, np.int64)
    for old, new in zip(data.schema.fields, schema.fields, strict=True):
        position = {v: new.offset + j for j, v in enumerate(new.vocab)}
        for j, v in enumerate(old.vocab):
            renumber[old.offset + j] = position.get(v, -1)
    code = np.cumsum(keep) - 1
    kept = keep[data.items]
    digest = hashlib.sha256(f"{data.fingerprint} without {sorted(dropped)}".encode())
    return dataclasses.replace(
        data, name=f"{data.name} less {len(data.item_ids) - len(rows)} items", schema=schema,
        users=data.users[kept], items=code[data.items[kept]], times=data.times[kept],
        user_table=_renumbered(data.user_table, renumber),
        item_table=_renumbered(items, renumber),
        item_ids=tuple(data.item_ids[r] for r in rows.tolist()),
        item_attributes={k: tuple(v[r] for r in rows.tolist())
                         for k, v in data.item_attributes.items()},
        context_table=None if data.context_table is None
        else _renumbered(data.context_table, renumber),
        contexts=None if data.contexts is None else data.contexts[kept],
        fingerprint=digest.hexdigest()[:16])


def _renumbered(table: FeatureTable, renumber: np.ndarray) -> FeatureTable:
    """`table` with its features' new indices; padding (value 0) stays index 0."""
    idx = np.where(table.val != 0, renumber[table.idx], 0)
    if (idx < 0).any():
        raise ValueError("a feature still in use lost its place")
    return FeatureTable(idx, table.val, table.slot_field)


def item_values(data: Interactions, code: int) -> dict[str, str | list[str]]:
    """Item `code`'s value in each item-side categorical field, and its values in each
    multi-hot one, by field name, the id field's included."""
    fields, table = data.schema.fields, data.item_table
    values: dict[str, str | list[str]] = {}
    for column, position in enumerate(table.slot_field.tolist()):
        if table.val[code, column] == 0:
            continue
        field = fields[position]
        value = field.vocab[int(table.idx[code, column]) - field.offset]
        if field.kind == "multihot":
            listed = values.setdefault(field.name, [])
            assert isinstance(listed, list)
            listed.append(value)
        else:
            values[field.name] = value
    return values
