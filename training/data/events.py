"""Base data plus an events folder: the interactions the service recorded, fitted after the
original ones (`--events DIR`; docs/training.md, Fit on base data plus events).

The folder is what `python -m training events export` writes (format 1): interactions.csv
(user_id, item_id, at, model_version, recommendation_id; `at` in Unix seconds, sorted), the
profiles of users the service created (users.jsonl) and the items added through the API
(items.jsonl). Merging keeps every base row and index meaning and extends them:

- ids the base data lacks (users from a PUT or an interaction, items from the API) extend the
  id fields' vocabularies, at their end, in order of first appearance;
- a new user's row holds its profile, a new item's its features, each value mapped onto the
  base field's vocabulary; a value the vocabulary lacks is left out (as serving's encoder
  leaves it out: an FM has no feature for it), and counted in `merge.dropped`;
- a base user or item keeps its base row (its profile is the base data's);
- interactions are appended with their time (`at` floored to the second, the base data's
  unit), so the protocols, which order by time, see one timeline: a history window continues
  across the seam, and each user's newest interactions are the held-out ones.

`before(data, until)` is `--data-until`: the base interactions strictly before a time, with
the user and item tables whole (users and items known before they first interact).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.data.instances import Interactions
from training.data.schema import FeatureSchema, FeatureTable, Field
from training.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST, INTERACTIONS, USERS, ITEMS = ("manifest.json", "interactions.csv", "users.jsonl",
                                        "items.jsonl")
COLUMNS = ["user_id", "item_id", "at", "model_version", "recommendation_id"]


@dataclass(frozen=True)
class EventLog:
    """An export folder read: interactions in time order and the records they refer to."""

    folder: Path
    manifest: dict[str, Any]
    users: list[str]  # (E,) per interaction
    items: list[str]
    at: np.ndarray  # (E,) float64 Unix seconds
    profiles: dict[str, dict[str, Any]]  # users the service created: their features
    added: dict[str, dict[str, Any]]  # items added through the API: their features
    digest: str  # of the folder's files, for the data fingerprint

    @property
    def last_at(self) -> float | None:
        return float(self.at.max()) if len(self.at) else None

    def summary(self) -> dict[str, Any]:
        """What a model fitted on these events was fitted on (the bundle records it)."""
        return {"folder": str(self.folder), "events": len(self.at), "last_at": self.last_at,
                "digest": self.digest}


def is_export(folder: Path) -> bool:
    """Whether `folder` holds an export (its manifest names format 1)."""
    try:
        return json.loads((folder / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_events(folder: Path) -> EventLog:
    """Read an export folder; a missing or malformed file is a DataError naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--events {folder}: no such folder")
    manifest = _json(folder / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"not an events export of format {FORMAT}", folder / MANIFEST)
    users, items, at = _interactions(folder / INTERACTIONS)
    digest = hashlib.sha256()
    for name in (MANIFEST, INTERACTIONS, USERS, ITEMS):
        path = folder / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return EventLog(folder, manifest, users, items, at,
                    _records(folder / USERS, "user_id"), _records(folder / ITEMS, "item_id"),
                    digest.hexdigest()[:16])


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("missing required file", path) from None
    except ValueError as err:
        raise DataError(f"not JSON: {err}", path) from None


def _interactions(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    if not path.is_file():
        raise DataError("missing required file", path)
    users, items, at = [], [], []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != COLUMNS:
            raise DataError(f"header {header}, expected {','.join(COLUMNS)}", path, 1)
        for line, row in enumerate(reader, 2):
            if len(row) != len(COLUMNS) or not row[0] or not row[1]:
                raise DataError(f"expected {len(COLUMNS)} fields with a user and an item", path,
                                line)
            try:
                at.append(float(row[2]))
            except ValueError:
                raise DataError(f"at is not a number: {row[2]!r}", path, line) from None
            users.append(row[0])
            items.append(row[1])
    times = np.asarray(at, np.float64)
    if len(times) and not (np.isfinite(times).all() and (np.diff(times) >= 0).all()):
        raise DataError("interactions are not in time order (or a time is not finite)", path)
    return users, items, times


def _records(path: Path, key: str) -> dict[str, dict[str, Any]]:
    """id -> features of a jsonl file (absent: none); a later line for an id replaces it."""
    found: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return found
    for line, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
            found[str(record[key])] = dict(record.get("features") or {})
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"not a record with {key!r} and features: {err}", path,
                            line) from None
    return found


def before(data: Interactions, until: int) -> Interactions:
    """`--data-until`: the interactions strictly before `until` (Unix seconds); the user and
    item tables stay whole."""
    keep = data.times < until
    if not keep.any():
        raise ConfigError(f"--data-until {until}: {data.name} has no interaction before it")
    contexts = data.contexts[keep] if data.contexts is not None else None
    return dataclasses.replace(
        data, name=f"{data.name}@until={until}", users=data.users[keep], items=data.items[keep],
        times=data.times[keep], contexts=contexts,
        fingerprint=_hash(data.fingerprint, f"until={until}"))


def with_events(data: Interactions, events: EventLog) -> Interactions:
    """`data` with the events' interactions appended and their new users and items added
    (the module doc says how)."""
    if data.context_table is not None:
        raise ConfigError(f"--events: {data.name} has context fields, which recorded events do "
                          "not carry; fit on data without +context")
    if data.history is not None or data.window_table is not None:
        raise ValueError("add events before the history field (pipeline.prepare does)")
    user_field, item_field = _id_field(data, "user"), _id_field(data, "item")
    new_users = _new_ids(data.user_ids, [*events.users, *events.profiles])
    new_items = _new_ids(data.item_ids, [*events.items, *events.added])
    fields = list(data.schema.fields)
    fields[user_field] = _extended(fields[user_field], new_users)
    fields[item_field] = _extended(fields[item_field], new_items)
    schema = FeatureSchema.build(fields)
    moved = _index_map(data.schema, schema)
    dropped: dict[str, int] = {}
    user_rows = _rows(schema, data.user_table, user_field, len(data.user_ids),
                      [events.profiles.get(u, {}) for u in new_users], dropped)
    item_rows = _rows(schema, data.item_table, item_field, len(data.item_ids),
                      [events.added.get(i, {}) for i in new_items], dropped)
    user_ids = (*data.user_ids, *new_users)
    item_ids = (*data.item_ids, *new_items)
    user_code = {u: k for k, u in enumerate(user_ids)}
    item_code = {i: k for k, i in enumerate(item_ids)}
    if dropped:
        log.warning("warning: --events: feature values outside the base vocabularies left "
                    "out: %s", ", ".join(f"{k} ×{v}" for k, v in sorted(dropped.items())))
    attributes = {name: (*values, *_display(name, new_items, events.added))
                  for name, values in data.item_attributes.items()}
    return dataclasses.replace(
        data, name=f"{data.name}+events", schema=schema,
        users=np.concatenate([data.users, [user_code[u] for u in events.users]]).astype(np.int64),
        items=np.concatenate([data.items, [item_code[i] for i in events.items]]).astype(np.int64),
        times=np.concatenate([data.times, np.floor(events.at)]).astype(np.int64),
        user_table=_stack(_moved(data.user_table, moved), user_rows),
        item_table=_stack(_moved(data.item_table, moved), item_rows),
        user_ids=user_ids, item_ids=item_ids, item_attributes=attributes,
        fingerprint=_hash(data.fingerprint, events.digest))


def _id_field(data: Interactions, side: str) -> int:
    """The position of the field whose vocabulary is the side's ids (its code is the row)."""
    ids = data.user_ids if side == "user" else data.item_ids
    for position, f in enumerate(data.schema.fields):
        if f.side == side and f.kind == "categorical" and f.vocab == ids:
            return position
    raise ConfigError(f"--events: {data.name} has no {side} id field to extend")


def _new_ids(known: tuple[str, ...], seen: list[str]) -> list[str]:
    have = set(known)
    return [i for i in dict.fromkeys(seen) if i not in have]


def _extended(f: Field, new: list[str]) -> Field:
    return Field(f.name, f.side, f.kind, (*f.vocab, *new))


def _index_map(old: FeatureSchema, new: FeatureSchema) -> np.ndarray:
    """Old global feature index -> new one (fields keep their order and old values)."""
    moved = np.zeros(max(old.n_features, 1), np.int64)
    for a, b in zip(old.fields, new.fields, strict=True):
        moved[a.offset:a.offset + a.size] = b.offset + np.arange(a.size)
    return moved


def _moved(table: FeatureTable, moved: np.ndarray) -> FeatureTable:
    return FeatureTable(np.where(table.val != 0, moved[table.idx], 0), table.val,
                        table.slot_field)


def _rows(schema: FeatureSchema, table: FeatureTable, id_field: int, first_code: int,
          features: list[dict[str, Any]], dropped: dict[str, int]) -> FeatureTable:
    """Rows of new ids (codes first_code, first_code + 1, ...) in the table's column layout:
    the id column, then each field's values from `features`, known ones only."""
    idx = np.zeros((len(features), table.width), np.int64)
    val = np.zeros((len(features), table.width), np.float32)
    columns: dict[int, list[int]] = {}
    for column, position in enumerate(table.slot_field.tolist()):
        columns.setdefault(position, []).append(column)
    for row, values in enumerate(features):
        for position, cols in columns.items():
            f = schema.fields[position]
            if position == id_field:
                idx[row, cols[0]], val[row, cols[0]] = f.offset + first_code + row, 1.0
                continue
            raw = values.get(f.name)
            given = [] if raw is None else [str(v) for v in
                                            (raw if isinstance(raw, list | tuple) else [raw])]
            code = {v: k for k, v in enumerate(f.vocab)}
            known = [code[v] for v in dict.fromkeys(given) if v in code][:len(cols)]
            if len(known) < len(set(given)):
                dropped[f.name] = dropped.get(f.name, 0) + len(set(given)) - len(known)
            for column, c in zip(cols, known):
                idx[row, column] = f.offset + c
                val[row, column] = 1.0 / len(known) if f.kind == "multihot" else 1.0
    return FeatureTable(idx, val, table.slot_field)


def _stack(table: FeatureTable, rows: FeatureTable) -> FeatureTable:
    return FeatureTable(np.concatenate([table.idx, rows.idx]),
                        np.concatenate([table.val, rows.val]), table.slot_field)


def _display(name: str, items: list[str], added: dict[str, dict[str, Any]]) -> list[str]:
    """A new item's display text: the feature of that name if it has one ('|'-joined), else
    empty (events carry item features, not display text)."""
    out = []
    for item in items:
        raw = added.get(item, {}).get(name.removesuffix("s"), added.get(item, {}).get(name))
        out.append("|".join(map(str, raw)) if isinstance(raw, list) else
                   "" if raw is None else str(raw))
    return out


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
