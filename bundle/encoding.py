"""Encode a request's raw user and context values into a user-side feature row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.errors import BundleInputError
from bundle.fields import Fields


@dataclass(frozen=True)
class EncodedUser:
    """One user-side feature row and the values it had to leave out."""

    idx: np.ndarray  # (W_u,) int32
    val: np.ndarray  # (W_u,) float32
    ignored: dict[str, list[str]]  # field -> values unknown to the vocabulary


class UserEncoder:
    """Turns raw field values into rows laid out as the bundle's user columns."""

    def __init__(self, fields: Fields, columns: tuple[str, ...]):
        self._fields, self._columns = fields, columns

    @cached_property
    def _codes(self) -> dict[str, dict[str, int]]:
        return {f.name: f.codes() for f in self._fields.on_table_side(fmt.USER_SIDE)}

    def encode(self, features: Mapping[str, Any],
               context: Mapping[str, Any] | None = None) -> EncodedUser:
        """A user-side row from raw field values (a profile, plus context for this request).

        A multi-hot field takes a list; its m known values weigh 1/m each, as in training.
        Values a vocabulary lacks are ignored, as an FM ignores an unseen feature, and
        reported; an unknown field, an item field or too many values raise BundleInputError.
        """
        idx = np.zeros(len(self._columns), np.int32)
        val = np.zeros(len(self._columns), np.float32)
        ignored: dict[str, list[str]] = {}
        for name, raw in {**features, **(context or {})}.items():
            field = self._fields.named(name)
            if field is None or field.table_side != fmt.USER_SIDE:
                known = ", ".join(f.name for f in self._fields.on_table_side(fmt.USER_SIDE))
                raise BundleInputError(name, f"not a user or context field (known: {known})")
            values = [str(v) for v in (raw if isinstance(raw, list | tuple) else [raw])]
            columns = [c for c, col in enumerate(self._columns) if col == name]
            if len(values) > len(columns):
                raise BundleInputError(name, f"at most {len(columns)} value(s), got "
                                             f"{len(values)}")
            codes = self._codes[name]
            known_values = [v for v in values if v in codes]
            if len(known_values) < len(values):
                ignored[name] = [v for v in values if v not in codes]
            for column, value in zip(columns, known_values):
                idx[column] = field.offset + codes[value]
                val[column] = 1.0 / len(known_values) if field.kind == "multihot" else 1.0
        return EncodedUser(idx, val, ignored)
