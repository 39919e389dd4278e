"""Encode raw field values into a feature row of one side: a request's user and context
values, or an added item's own.

Both sides encode alike, as export encoded the bundle's rows: a field's values fill its columns
in the order given, a multi-hot field's m known values weigh 1/m each, a value the vocabulary
lacks is left out (an FM ignores an unseen feature) and reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.errors import BundleInputError
from bundle.fields import Fields
from bundle.id_index import IdIndex

# what each side's encoder takes, for the message naming a field it does not
SIDE_NAMES = {fmt.USER_SIDE: "a user or context field", fmt.ITEM_SIDE: "an item field"}


@dataclass(frozen=True)
class EncodedUser:
    """One user-side feature row and the values it had to leave out."""

    idx: np.ndarray  # (W_u,) int32
    val: np.ndarray  # (W_u,) float32
    ignored: dict[str, list[str]]  # field -> values unknown to the vocabulary


@dataclass(frozen=True)
class EncodedItem:
    """One item-side feature row (the catalog's columns), the feature values it had to leave
    out, and whether the model knows the item's own id (a new id contributes nothing)."""

    idx: np.ndarray  # (W_i,) int32
    val: np.ndarray  # (W_i,) float32
    ignored: dict[str, list[str]]  # field -> values unknown to the vocabulary
    id_known: bool


class RowEncoder:
    """Turns raw field values into rows laid out as the bundle's columns of one side."""

    def __init__(self, fields: Fields, columns: tuple[str, ...], side: str):
        self._fields, self._columns, self._side = fields, columns, side

    @cached_property
    def _vocabularies(self) -> dict[str, IdIndex]:
        """Each field's vocabulary, searchable in 8 bytes a value (a dict of a million item
        ids as Python strings would hold 140 MB in every worker)."""
        return {f.name: IdIndex(np.asarray(f.vocab, dtype=str))
                for f in self._fields.on_table_side(self._side)}

    def knows(self, name: str, value: str) -> bool:
        """Whether field `name` of this side has `value` in its vocabulary."""
        return bool(self._vocabularies[name].positions([value])[0] >= 0)

    def row(self, values: Mapping[str, Any]
            ) -> tuple[np.ndarray, np.ndarray, dict[str, list[str]]]:
        """idx (W,) int32, val (W,) float32 and the ignored values of one row.

        A multi-hot field takes a list; its m known distinct values weigh 1/m each, as in
        training. A field of another side, an unknown one or too many values raise
        BundleInputError naming the field.
        """
        idx = np.zeros(len(self._columns), np.int32)
        val = np.zeros(len(self._columns), np.float32)
        ignored: dict[str, list[str]] = {}
        for name, raw in values.items():
            field = self._fields.named(name)
            if field is None or field.table_side != self._side:
                names = ", ".join(f.name for f in self._fields.on_table_side(self._side))
                raise BundleInputError(name, f"not {SIDE_NAMES[self._side]} (known: {names})")
            given = [str(v) for v in (raw if isinstance(raw, list | tuple) else [raw])]
            columns = [c for c, col in enumerate(self._columns) if col == name]
            if len(given) > len(columns):  # counted as sent: the published maxItems counts so
                raise BundleInputError(name, f"at most {len(columns)} value(s), got "
                                             f"{len(given)}")
            given = list(dict.fromkeys(given))  # a set: a value repeated is one feature
            codes: list[int] = self._vocabularies[name].positions(given).tolist()
            known = [code for code in codes if code >= 0]
            if len(known) < len(given):
                ignored[name] = [v for v, code in zip(given, codes) if code < 0]
            for column, code in zip(columns, known):
                idx[column] = field.offset + code
                val[column] = 1.0 / len(known) if field.kind == "multihot" else 1.0
        return idx, val, ignored


class UserEncoder(RowEncoder):
    """A request's user and context values as a row of the bundle's user columns."""

    def __init__(self, fields: Fields, columns: tuple[str, ...]):
        super().__init__(fields, columns, fmt.USER_SIDE)

    def encode(self, features: Mapping[str, Any],
               context: Mapping[str, Any] | None = None) -> EncodedUser:
        """A user-side row from raw field values (a profile, plus context for this request)."""
        return EncodedUser(*self.row({**features, **(context or {})}))


class ItemEncoder(RowEncoder):
    """An added item's values as a row of the bundle's item columns, laid out as the
    catalog's rows; `id_field` is the item field holding each item's own id, if one does."""

    def __init__(self, fields: Fields, columns: tuple[str, ...], id_field: str | None):
        super().__init__(fields, columns, fmt.ITEM_SIDE)
        self.id_field = id_field

    def encode(self, features: Mapping[str, Any], item_id: str | None = None) -> EncodedItem:
        """An item-side row from an item's raw feature values and its own id.

        The id goes into the id field: an id the bundle knows brings its vectors, a new one
        contributes nothing and is not reported as ignored (`id_known` says which). The id
        field is not taken among `features`: the id is given once, as `item_id`.
        """
        if self.id_field is not None and self.id_field in features:
            raise BundleInputError(self.id_field, "the item's own id: give it as the item's "
                                                  "id, not among its features")
        values, field = dict(features), self.id_field
        if field is not None and item_id is not None and self.knows(field, str(item_id)):
            values[field] = str(item_id)
        idx, val, ignored = self.row(values)
        return EncodedItem(idx, val, ignored, id_known=field is not None and field in values)
