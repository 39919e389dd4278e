"""The in-process event log: append-only JSON-lines segments under one directory.

    <dir>/segment-<n>.jsonl   one line per event (record.py), n counting up; the service
                              writes only the newest, and starts a new one when it starts
                              and when one passes SEGMENT_BYTES
    <dir>/base.jsonl          the profiles and items of segments trimmed away (compaction),
                              read before the segments
    <dir>/exported.json       the last export's watermark: {"segment": n}, every segment
                              below n was read whole by it

Durability (docs/operations.md, Events): each append is one write() of one whole line to a
file opened O_APPEND, so once acknowledged it is in the kernel and survives the process's
kill -9; it reaches the disk at the next fsync, which a thread of the writer's runs every
`fsync_s` (1 s by default) while there are unsynced appends, and which runs as a segment
closes (`fsync_s` 0: within every append). So a crash of the machine may lose the appends of
about the last second, and the last line of a segment may be torn: readers skip a last line
without its newline, and a writer never appends to a segment it did not create, so a torn
line is only ever last.

Trimming (trim()) drops whole segments below the watermark that the retention lets go, after
folding their profile and item lines into base.jsonl, so an export after it finds the same
profiles and items.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from events.dataset import AddedItem, Collected
from events.record import INTERACTIONS, ITEM, PROFILE, RETIRE, Line, lines, read_line
from events.retention import Retention

SEGMENT_BYTES = 64 << 20
SEGMENT = re.compile(r"^segment-(\d{10})\.jsonl$")
BASE, WATERMARK = "base.jsonl", "exported.json"


def segment_name(number: int) -> str:
    return f"segment-{number:010d}.jsonl"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The segments under `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / p.name) for p in directory.iterdir()
             if (m := SEGMENT.match(p.name))]
    return sorted(found)


class FileLog:
    """The writer. Its appends are not thread-safe: the in-process store calls it from its one
    event loop, with no await between the append and the state it goes with. With `fsync_s`
    above 0, a thread of its own fsyncs the segment every `fsync_s` while appends are
    unsynced, so no request waits on the disk; 0 fsyncs within each append."""

    def __init__(self, directory: Path, fsync_s: float = 1.0,
                 segment_bytes: int = SEGMENT_BYTES):
        self.directory, self.fsync_s, self.segment_bytes = directory, fsync_s, segment_bytes
        self._fd: int | None = None
        self._size = 0
        self._dirty = threading.Event()  # appended since the syncer's last fsync
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None

    def append(self, line: bytes) -> None:
        """Write one line (ending in a newline); OSError if it could not be written whole,
        in which case the segment is closed and the next append starts another, so the
        partial line stays the last of its segment."""
        fd = self._fd if self._fd is not None else self._open()
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"event log: short write ({written} of {len(line)} bytes)")
        except OSError:
            self._close()
            raise
        self._size += written
        if self._size >= self.segment_bytes:
            self._close()
        elif self.fsync_s <= 0:
            os.fsync(fd)
        else:
            self._dirty.set()

    def close(self) -> None:
        """Fsync and close the segment being written, and stop the syncer (the next append
        opens another segment and starts it again)."""
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        self._close()

    def _open(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        number = max((n for n, _ in segments(self.directory)), default=0) + 1
        while True:  # another writer on this directory never shares a segment
            try:
                fd = os.open(self.directory / segment_name(number),
                             os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                number += 1
        self._fd, self._size = fd, 0
        if self.fsync_s > 0 and self._syncer is None:
            self._stop.clear()
            self._syncer = threading.Thread(target=self._sync_loop, daemon=True,
                                            name="event-log-fsync")
            self._syncer.start()
        return fd

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.fsync_s):
            if not self._dirty.is_set():
                continue
            self._dirty.clear()
            fd = self._fd
            if fd is not None:
                # the segment may close meanwhile (it is fsynced as it closes), and its
                # number go to another file: an fsync of that is harmless, a failure moot
                with contextlib.suppress(OSError):
                    os.fsync(fd)

    def _close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class Reading:
    """A directory's log read whole, and how far: the newest segment it read."""

    collected: Collected
    last_segment: int  # 0: none


def read_log(directory: Path, progress: Callable[[int], None] | None = None) -> Reading:
    """Every complete line of base.jsonl then the segments, replayed: the events, the last
    profile of each user and each added item's last record."""
    collected = Collected()
    last = 0
    for _, raw in _base_lines(directory):
        apply(collected, read_line(raw))
    for number, path in segments(directory):
        for raw in lines(path.read_bytes()):
            apply(collected, read_line(raw))
        last = number
        if progress is not None:
            progress(len(collected.events))
    return Reading(collected, last)


def apply(collected: Collected, line: Line) -> None:
    """One line's effect on what a replay knows."""
    d = line.data
    if line.kind == INTERACTIONS:
        collected.events.extend(line.events())
    elif line.kind == PROFILE:
        collected.profiles[d["user_id"]] = d["features"]
    elif line.kind == ITEM:
        collected.items[d["item_id"]] = AddedItem(d["features"], False)
    elif line.kind == RETIRE and d["item_id"] in collected.items:  # a bundle item's: not added
        collected.items[d["item_id"]] = AddedItem(collected.items[d["item_id"]].features, True)


def write_watermark(directory: Path, segment: int) -> None:
    """Record that every segment below `segment` has been exported (the one a reading ended
    in may still grow, so it is not yet)."""
    tmp = directory / f".{WATERMARK}.tmp"
    tmp.write_text(json.dumps({"segment": segment}) + "\n")
    os.replace(tmp, directory / WATERMARK)


def read_watermark(directory: Path) -> int:
    """The lowest segment not yet exported whole; 0 (nothing may go) before any export."""
    try:
        return int(json.loads((directory / WATERMARK).read_text())["segment"])
    except FileNotFoundError:
        return 0


def trim(directory: Path, retention: Retention, now: float | None = None) -> list[Path]:
    """Drop the segments below the watermark that `retention` lets go (age: last written
    before now - age; count: older than the newest segments holding `count` events), after
    folding their profiles and items into base.jsonl; the dropped paths."""
    if retention.keeps_all:
        return []
    held, watermark = segments(directory), read_watermark(directory)
    if retention.age_s is not None:
        cutoff = (time.time() if now is None else now) - retention.age_s
        may_go = {n for n, p in held if n < watermark and p.stat().st_mtime < cutoff}
    else:
        assert retention.count is not None
        kept, may_go = 0, set()
        for n, p in reversed(held):
            if kept >= retention.count and n < watermark:
                may_go.add(n)
            else:
                kept += sum(len(line.events()) for line in map(read_line, lines(p.read_bytes())))
    # only the oldest segments, up to the first kept one, so base.jsonl never skips a segment
    run = list(itertools.takewhile(lambda held_one: held_one[0] in may_go, held))
    if not run:
        return []
    _fold(directory, [p for _, p in run])
    for _, path in run:
        path.unlink()
    return [p for _, p in run]


def _fold(directory: Path, dropped: list[Path]) -> None:
    """base.jsonl becomes the last profile of each user and the last state of each item
    of itself and `dropped`, in that order."""
    profiles: dict[str, bytes] = {}
    items: dict[str, list[bytes]] = {}  # the item line, then a retire line if retired
    sources = [raw for _, raw in _base_lines(directory)]
    sources += [raw for p in dropped for raw in lines(p.read_bytes())]
    for raw in sources:
        line = read_line(raw)
        if line.kind == PROFILE:
            profiles[line.data["user_id"]] = raw
        elif line.kind == ITEM:
            items[line.data["item_id"]] = [raw]
        elif line.kind == RETIRE and line.data["item_id"] in items:
            items[line.data["item_id"]] = items[line.data["item_id"]][:1] + [raw]
    body = b"".join(raw + b"\n" for raw in [*profiles.values(),
                                              *(r for rs in items.values() for r in rs)])
    tmp = directory / f".{BASE}.tmp"
    with open(tmp, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / BASE)


def _base_lines(directory: Path) -> Iterator[tuple[int, bytes]]:
    path = directory / BASE
    if path.exists():
        for raw in lines(path.read_bytes()):
            yield 0, raw
