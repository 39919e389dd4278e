"""The export's dataset: the files `python -m training events export` writes, and nothing else
decides their bytes. docs/training.md, Events, describes them for the trainer:

    manifest.json      {"format": 1, "events", "first_at", "last_at", "model_versions",
                        "users", "items"}: sorted keys, no wall-clock time
    interactions.csv   user_id,item_id,at,model_version,recommendation_id; sorted by
                       (at, user_id, item_id); `at` as repr(float), which reads back exactly;
                       an absent recommendation id is an empty field
    users.jsonl        {"user_id", "features"} per user with an event and a stored profile,
                       sorted by user id
    items.jsonl        {"item_id", "features", "retired"} per added item an event names,
                       sorted by item id

The same events, profiles and items give byte-identical files, whichever log they came from.
Each file is written to a temporary name and renamed into place, the manifest last, so a
reader that finds the manifest finds the files it describes.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.record import Event, FeatureValue

FORMAT = 1
MANIFEST, INTERACTIONS, USERS, ITEMS = ("manifest.json", "interactions.csv", "users.jsonl",
                                        "items.jsonl")
HEADER = ("user_id", "item_id", "at", "model_version", "recommendation_id")


@dataclass(frozen=True)
class AddedItem:
    """An item added through the API, as the export writes it."""

    features: Mapping[str, FeatureValue]
    retired: bool


@dataclass
class Collected:
    """What a log holds, read whole: the events, and the profiles and added items known."""

    events: list[Event] = field(default_factory=list)
    profiles: dict[str, Mapping[str, FeatureValue]] = field(default_factory=dict)
    items: dict[str, AddedItem] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: the manifest's numbers and the folder."""

    out: Path
    events: int
    users: int
    items: int
    first_at: float | None
    last_at: float | None
    model_versions: tuple[str, ...]

    def __str__(self) -> str:
        span = "" if self.first_at is None else f", at {self.first_at!r} .. {self.last_at!r}"
        return (f"{self.events} events of {self.users} profiled users and {self.items} added "
                f"items{span}, model versions {list(self.model_versions)} -> {self.out}")


def write_dataset(collected: Collected, out: Path) -> ExportSummary:
    """Write the dataset of `collected` into `out` (created if needed)."""
    events = sorted(collected.events, key=Event.sort_key)
    users = sorted({e.user_id for e in events} & collected.profiles.keys())
    items = sorted({e.item_id for e in events} & collected.items.keys())
    versions = tuple(sorted({e.model_version for e in events}))
    summary = ExportSummary(out, len(events), len(users), len(items),
                            events[0].at if events else None,
                            events[-1].at if events else None, versions)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / INTERACTIONS, _csv(events))
    _write(out / USERS, _jsonl({"user_id": u, "features": dict(collected.profiles[u])}
                               for u in users))
    _write(out / ITEMS, _jsonl({"item_id": i, "features": dict(collected.items[i].features),
                                "retired": collected.items[i].retired} for i in items))
    manifest = {"format": FORMAT, "events": summary.events, "first_at": summary.first_at,
                "last_at": summary.last_at, "model_versions": list(versions),
                "users": summary.users, "items": summary.items}
    _write(out / MANIFEST, (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode())
    return summary


def _csv(events: list[Event]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    for e in events:
        writer.writerow((e.user_id, e.item_id, repr(e.at), e.model_version,
                         "" if e.recommendation_id is None else e.recommendation_id))
    return text.getvalue().encode()


def _jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, sort_keys=True, ensure_ascii=False,
                               separators=(",", ":")).encode() + b"\n" for r in rows)


def _write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` at once: a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
