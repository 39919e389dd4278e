"""Feature schema and padded feature tables: the one shape every reader produces.

A *field* (gender, genre, item id) owns a contiguous range of global feature indices. A row of
features (one user, one item, one libFM line) is stored padded to a fixed width as index and
value arrays; padding has value 0, so it adds nothing to any model that weights by x.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import numpy as np

Side = Literal["user", "item", "context"]
SIDES: tuple[Side, ...] = typing.get_args(Side)
Kind = Literal["categorical", "multihot", "numeric"]


@dataclass(frozen=True)
class Field:
    """One feature field: its side of the user/item split, its kind and its vocabulary."""

    name: str
    side: Side
    kind: Kind
    vocab: tuple[str, ...]
    offset: int = 0  # global index of vocab[0]

    @property
    def size(self) -> int:
        return len(self.vocab)


@dataclass(frozen=True)
class FeatureSchema:
    """Ordered fields; feature i belongs to the field whose [offset, offset + size) holds i."""

    fields: tuple[Field, ...]

    @staticmethod
    def build(fields: list[Field]) -> FeatureSchema:
        """Assign consecutive offsets in the given order."""
        placed, offset = [], 0
        for f in fields:
            placed.append(Field(f.name, f.side, f.kind, f.vocab, offset))
            offset += f.size
        return FeatureSchema(tuple(placed))

    @property
    def n_features(self) -> int:
        return sum(f.size for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"fields": [
            {"name": f.name, "side": f.side, "kind": f.kind, "offset": f.offset,
             "vocab": list(f.vocab)} for f in self.fields]}

    @staticmethod
    def from_dict(d: dict) -> FeatureSchema:
        return FeatureSchema(tuple(
            Field(f["name"], f["side"], f["kind"], tuple(f["vocab"]), f["offset"])
            for f in d["fields"]))


@dataclass(frozen=True)
class FeatureTable:
    """Rows of active features, padded: idx (R, W) int64, val (R, W) float32, slot_field (W,).

    slot_field[j] is the position in the schema of the field that column j belongs to, so models
    that need per-field vectors (DeepFM, AFM) can pool columns by field.
    """

    idx: np.ndarray
    val: np.ndarray
    slot_field: np.ndarray

    def __post_init__(self) -> None:
        assert self.idx.shape == self.val.shape and self.idx.shape[1] == len(self.slot_field)

    @property
    def width(self) -> int:
        return self.idx.shape[1]

    def __len__(self) -> int:
        return self.idx.shape[0]


def categorical_columns(field: Field, field_pos: int, codes: np.ndarray) -> FeatureTable:
    """One column: feature offset + code, value 1."""
    n = len(codes)
    return FeatureTable(
        (field.offset + codes.astype(np.int64)).reshape(n, 1),
        np.ones((n, 1), np.float32),
        np.array([field_pos]))


def multihot_columns(field: Field, field_pos: int, code_lists: list[list[int]]) -> FeatureTable:
    """Columns padded to the longest list; each of a row's m values weighs 1/m so the field
    contributes like one feature whatever m is (libFM's convention for sets)."""
    n = len(code_lists)
    width = max((len(c) for c in code_lists), default=1) or 1
    idx = np.zeros((n, width), np.int64)
    val = np.zeros((n, width), np.float32)
    lengths = np.array([len(c) for c in code_lists])
    flat = np.fromiter((c for codes in code_lists for c in codes), np.int64, lengths.sum())
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    idx[rows, cols] = field.offset + flat
    val[rows, cols] = np.repeat(1.0 / np.maximum(lengths, 1), lengths)
    return FeatureTable(idx, val, np.full(width, field_pos))


def context_rows(fields: tuple[Field, ...], positions: list[int], codes: list[np.ndarray]
                 ) -> tuple[FeatureTable, np.ndarray]:
    """Per-interaction context codes (one array per field) as a table of their distinct
    combinations, and each interaction's row in it: a few dozen rows, not one per rating."""
    combos, rows = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    table = concat_tables([categorical_columns(f, p, combos[:, j])
                           for j, (f, p) in enumerate(zip(fields, positions, strict=True))])
    return table, rows.reshape(-1)


def concat_tables(tables: list[FeatureTable]) -> FeatureTable:
    """Side by side: the same rows, the columns of every table."""
    return FeatureTable(
        np.concatenate([t.idx for t in tables], axis=1),
        np.concatenate([t.val for t in tables], axis=1),
        np.concatenate([t.slot_field for t in tables]))
