"""Event folders as `python -m training events export` writes them (format 1), for tests
that fit on base data plus events without a service to record them."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def write_event_folder(folder: Path, interactions: Iterable[tuple[str, str, float]],
                       users: Mapping[str, Mapping[str, Any]] | None = None,
                       items: Mapping[str, Mapping[str, Any]] | None = None,
                       model_version: str = "test") -> Path:
    """interactions: (user_id, item_id, at) in any order (written sorted by at); users and
    items: id -> features of those the service created (users) or added (items)."""
    rows = sorted(interactions, key=lambda r: r[2])
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "interactions.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user_id", "item_id", "at", "model_version", "recommendation_id"])
        out.writerows([u, i, repr(float(at)), model_version, ""] for u, i, at in rows)
    (folder / "users.jsonl").write_text("".join(
        json.dumps({"user_id": u, "features": dict(f)}) + "\n" for u, f in (users or {}).items()))
    (folder / "items.jsonl").write_text("".join(
        json.dumps({"item_id": i, "features": dict(f), "retired": False}) + "\n"
        for i, f in (items or {}).items()))
    manifest = {"format": 1, "events": len(rows),
                "first_at": rows[0][2] if rows else None, "last_at": rows[-1][2] if rows else None,
                "model_versions": [model_version] if rows else [],
                "users": len(users or {}), "items": len(items or {})}
    (folder / "manifest.json").write_text(json.dumps(manifest) + "\n")
    return folder
