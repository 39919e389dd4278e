"""A bundle's feature fields: look one up, and decode a feature row back into raw values.

The manifest lists every field with its vocabulary; `Fields` holds them once, so the catalog,
the known users and request encoding all read the same vocabularies the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bundle import format as fmt

LARGE_VOCAB = 10_000  # values from which a vocabulary is kept as a numpy array
# a small vocabulary as a tuple, a large one as an (N,) numpy str array: both index, slice
# and iterate alike
Vocabulary = tuple[str, ...] | np.ndarray


@dataclass(frozen=True)
class FieldInfo:
    """A feature field as the bundle stores it: `offset` is the local index of vocab[0] in the
    tables of its side (user and context fields share the user side)."""

    name: str
    side: str  # user | item | context
    kind: str  # categorical | multihot | numeric
    vocab: Vocabulary
    offset: int

    @property
    def table_side(self) -> str:
        return fmt.ITEM_SIDE if self.side == fmt.ITEM_SIDE else fmt.USER_SIDE

    def codes(self) -> dict[str, int]:
        """Each value's index in the vocabulary (its feature is `offset` + that); built anew
        each call, so that a caller keeps it only where it pays (a million values: ~140 MB)."""
        return {str(value): code for code, value in enumerate(self.vocab)}


def compact_vocabulary(vocab: list[str]) -> Vocabulary:
    """A small vocabulary as a tuple, a large one as a numpy str array (a third the memory)."""
    return np.asarray(vocab, dtype=str) if len(vocab) >= LARGE_VOCAB else tuple(vocab)


class Fields:
    """The bundle's fields in the manifest's order, iterable as FieldInfo."""

    def __init__(self, manifest_fields: list[dict[str, Any]]):
        # the vocabularies leave the manifest: a million item ids as Python strings cost
        # 58 MB in every worker, as one numpy array a third of that
        self._fields = tuple(FieldInfo(f["name"], f["side"], f["kind"],
                                       compact_vocabulary(f.pop("vocab")), f["offset"])
                             for f in manifest_fields)
        self._by_name = {f.name: f for f in self._fields}

    def __iter__(self) -> Iterator[FieldInfo]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def named(self, name: str) -> FieldInfo | None:
        return self._by_name.get(name)

    def on_table_side(self, side: str) -> tuple[FieldInfo, ...]:
        """The fields whose features live in `side`'s tables (context joins the user side)."""
        return tuple(f for f in self._fields if f.table_side == side)

    def decode(self, idx: np.ndarray, val: np.ndarray,
               columns: Sequence[str]) -> dict[str, str | list[str]]:
        """A feature row's raw values by field: a list for a multi-hot field, else one value;
        `columns` names the field of each column."""
        values: dict[str, list[str]] = {}
        for name, i, v in zip(columns, idx.tolist(), val.tolist()):
            if v != 0:
                field = self._by_name[name]
                values.setdefault(name, []).append(str(field.vocab[i - field.offset]))
        return {name: vals if self._by_name[name].kind == "multihot" else vals[0]
                for name, vals in values.items()}
