"""The event record, and the two ways it is written down.

One acknowledged POST /users/{id}/interactions is one *batch*: a user, its items (oldest
first, each once), one time, the model version that served the user and an optional
recommendation id. It is stored whole, as one stream entry (Redis) or one line (the file
log), so that a batch is either all there or not at all; readers split it into one Event per
item. Times are unix seconds as floats and travel as `repr(float)`, which reads back to the
same float, so the export writes exactly the time that was acknowledged.

The file log also holds what an export from a directory needs besides interactions, which
the Redis store keeps in keys of its own: profile PUTs (`profile`), added items' records
(`item`) and retirements (`retire`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

FeatureValue = str | list[str]
INTERACTIONS, PROFILE, ITEM, RETIRE = "interactions", "profile", "item", "retire"


class BadRecord(ValueError):
    """A stream entry or a line that is not one this package writes."""


@dataclass(frozen=True)
class Event:
    """One interaction as the export writes it: one row of interactions.csv."""

    user_id: str
    item_id: str
    at: float  # unix seconds
    model_version: str
    recommendation_id: str | None = None

    def sort_key(self) -> tuple[float, str, str]:
        """The export's order: by time, then user, then item."""
        return (self.at, self.user_id, self.item_id)


@dataclass(frozen=True)
class Stamp:
    """What a batch adds to its items: when, which model served the user, and the
    recommendation the user acted on (if the client said)."""

    at: float
    model_version: str
    recommendation_id: str | None = None

    def fields(self, item_ids: list[str]) -> dict[str, str]:
        """The batch as Redis stream fields (`user` is in the key, not here)."""
        fields = {"items": json.dumps(item_ids, ensure_ascii=False, separators=(",", ":")),
                  "at": repr(float(self.at)), "model": self.model_version}
        if self.recommendation_id is not None:
            fields["rec"] = self.recommendation_id
        return fields


def from_fields(user_id: str, fields: Mapping[bytes | str, bytes | str]) -> list[Event]:
    """The events of one stream entry written from Stamp.fields."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    try:
        items = json.loads(text["items"])
        stamp = Stamp(_time(text["at"]), text["model"], text.get("rec"))
    except (KeyError, ValueError) as err:
        raise BadRecord(f"stream entry of user {user_id!r}: {type(err).__name__}: {err}"
                        ) from None
    return _split(user_id, items, stamp)


def interactions_line(user_id: str, item_ids: list[str], stamp: Stamp) -> bytes:
    """A batch as one line of the file log."""
    return _line({"kind": INTERACTIONS, "user_id": user_id, "item_ids": item_ids,
                  "at": float(stamp.at), "model_version": stamp.model_version,
                  "recommendation_id": stamp.recommendation_id})


def profile_line(user_id: str, features: Mapping[str, FeatureValue], at: float) -> bytes:
    """A profile PUT as one line of the file log (the whole profile, as stored)."""
    return _line({"kind": PROFILE, "user_id": user_id, "features": dict(features), "at": at})


def item_line(item_id: str, features: Mapping[str, FeatureValue], at: float) -> bytes:
    """An added item's record put (its features) as one line of the file log."""
    return _line({"kind": ITEM, "item_id": item_id, "features": dict(features), "at": at})


def retire_line(item_id: str, at: float) -> bytes:
    """An item's retirement as one line of the file log."""
    return _line({"kind": RETIRE, "item_id": item_id, "at": at})


@dataclass(frozen=True)
class Line:
    """One decoded line of the file log: its kind and its fields."""

    kind: str
    data: dict[str, Any]

    def events(self) -> list[Event]:
        """An interactions line's events (none for the other kinds)."""
        if self.kind != INTERACTIONS:
            return []
        d = self.data
        return _split(d["user_id"], d["item_ids"],
                      Stamp(_time(d["at"]), d["model_version"], d["recommendation_id"]))


def read_line(raw: bytes) -> Line:
    """A line written by one of the *_line functions (without its newline)."""
    try:
        data = json.loads(raw)
        kind = data["kind"]
    except (ValueError, KeyError, TypeError) as err:
        raise BadRecord(f"not an event line: {type(err).__name__}: {err}") from None
    if kind not in (INTERACTIONS, PROFILE, ITEM, RETIRE):
        raise BadRecord(f"unknown event kind {kind!r}")
    return Line(kind, data)


def _split(user_id: str, items: Any, stamp: Stamp) -> list[Event]:
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BadRecord(f"items of user {user_id!r} are not a list of ids")
    return [Event(user_id, item, stamp.at, stamp.model_version, stamp.recommendation_id)
            for item in items]


def _line(data: dict[str, Any]) -> bytes:
    # ensure_ascii: a line never holds a raw newline or a byte a torn write could split oddly
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"),
                      allow_nan=False).encode("ascii") + b"\n"


def _time(value: Any) -> float:
    at = float(value)
    if not math.isfinite(at):
        raise ValueError(f"time {value!r} is not finite")
    return at


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def lines(data: bytes) -> Iterator[bytes]:
    """The complete lines of a segment's bytes: a last line without its newline is a write
    still under way (or torn by a crash) and is not one yet."""
    end = data.rfind(b"\n")
    if end < 0:
        return
    for raw in data[:end].split(b"\n"):
        if raw:
            yield raw
