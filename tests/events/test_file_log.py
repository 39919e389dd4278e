"""The file log and the dataset it exports: deterministic bytes, torn lines, retention that
never passes the watermark, and profiles and items that survive the segments they came in."""

from __future__ import annotations

import csv
import json
import os
import random
import time

import pytest

from events import file_log
from events.dataset import HEADER, AddedItem, Collected, write_dataset
from events.export import ExportError, export_events
from events.file_log import FileLog, read_log, segments
from events.record import (
    Event,
    Stamp,
    interactions_line,
    item_line,
    profile_line,
    retire_line,
)
from events.retention import BadRetention, Retention, parse_retention


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def random_traffic(seed: int, n: int = 300) -> list[bytes]:
    """Lines of random batches, profiles and item changes; ids with commas and quotes."""
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(12)] + ['we,ird "user"']
    items = [f"i{i}" for i in range(20)] + ["new,1", "new2"]
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.1:
            out.append(profile_line(rng.choice(users), {"age": str(rng.randrange(90)),
                                                        "tags": ["a", "b"]}, 5.0))
        elif roll < 0.15:
            out.append(item_line(rng.choice(items[-2:]), {"genre": rng.choice("xyz")}, 5.0))
        elif roll < 0.17:
            out.append(retire_line(rng.choice(items), 5.0))
        else:
            batch = rng.sample(items, rng.randrange(1, 4))
            at = rng.choice([1.5, 1e9 + rng.random(), 1.7e9 + rng.random() / 3])
            out.append(interactions_line(rng.choice(users), batch,
                                         Stamp(at, rng.choice(["1", "2"]),
                                               rng.choice([None, "rec-1", "r,2"]))))
    return out


def replay(lines: list[bytes]) -> Collected:
    """The naive definition: apply every line in order."""
    collected = Collected()
    for raw in lines:
        data = json.loads(raw)
        if data["kind"] == "interactions":
            collected.events += [Event(data["user_id"], i, data["at"], data["model_version"],
                                       data["recommendation_id"]) for i in data["item_ids"]]
        elif data["kind"] == "profile":
            collected.profiles[data["user_id"]] = data["features"]
        elif data["kind"] == "item":
            collected.items[data["item_id"]] = AddedItem(data["features"], False)
        elif data["item_id"] in collected.items:
            collected.items[data["item_id"]] = AddedItem(
                collected.items[data["item_id"]].features, True)
    return collected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_export_is_the_replay_and_twice_gives_the_same_bytes(tmp_path, seed):
    lines = random_traffic(seed)
    log = FileLog(tmp_path / "log", segment_bytes=2000)  # many segments
    for raw in lines:
        log.append(raw)
    log.close()
    assert len(segments(tmp_path / "log")) > 3
    first = export_events(str(tmp_path / "log"), tmp_path / "a", retention=Retention())
    second = export_events(str(tmp_path / "log"), tmp_path / "b", retention=Retention())
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert first == second.__class__(**{**second.__dict__, "out": first.out})
    write_dataset(replay(lines), tmp_path / "naive")
    assert files(tmp_path / "a") == files(tmp_path / "naive")
    rows = list(csv.reader((tmp_path / "a" / "interactions.csv").read_text().splitlines()))
    assert tuple(rows[0]) == HEADER
    keys = [(float(r[2]), r[0], r[1]) for r in rows[1:]]
    assert keys == sorted(keys) and len(keys) == first.events
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["events"] == first.events and manifest["format"] == 1
    assert manifest["model_versions"] == sorted(manifest["model_versions"])


def test_times_travel_losslessly(tmp_path):
    at = 1733539200.123456789
    log = FileLog(tmp_path / "log")
    log.append(interactions_line("u", ["i"], Stamp(at, "v")))
    export_events(str(tmp_path / "log"), tmp_path / "out", retention=Retention())
    row = list(csv.DictReader((tmp_path / "out" / "interactions.csv").read_text().splitlines()))[0]
    assert float(row["at"]) == at and row["recommendation_id"] == ""


def test_a_torn_last_line_is_skipped_and_a_new_writer_never_appends_after_it(tmp_path):
    log = FileLog(tmp_path / "log")
    log.append(interactions_line("u", ["a"], Stamp(1.0, "v")))
    log.close()
    first = segments(tmp_path / "log")[0][1]
    with open(first, "ab") as f:
        f.write(interactions_line("u", ["torn"], Stamp(2.0, "v"))[:20])
    again = FileLog(tmp_path / "log")
    again.append(interactions_line("u", ["b"], Stamp(3.0, "v")))
    assert len(segments(tmp_path / "log")) == 2
    events = read_log(tmp_path / "log").collected.events
    assert [e.item_id for e in events] == ["a", "b"]


def test_a_failed_append_starts_a_new_segment(tmp_path):
    log = FileLog(tmp_path / "log")
    log.append(interactions_line("u", ["a"], Stamp(1.0, "v")))
    assert log._fd is not None
    os.close(log._fd)  # the next write fails: EBADF
    with pytest.raises(OSError):
        log.append(interactions_line("u", ["lost"], Stamp(2.0, "v")))
    log.append(interactions_line("u", ["b"], Stamp(3.0, "v")))
    assert [e.item_id for e in read_log(tmp_path / "log").collected.events] == ["a", "b"]
    assert len(segments(tmp_path / "log")) == 2


def test_trimming_never_passes_the_watermark_and_keeps_profiles(tmp_path):
    directory = tmp_path / "log"
    log = FileLog(directory, segment_bytes=1)  # one line a segment
    log.append(profile_line("u", {"age": "7"}, 1.0))
    log.append(item_line("new", {"genre": "x"}, 1.0))
    for i in range(6):
        log.append(interactions_line("u", ["new"], Stamp(float(i), "v")))
    everything = Retention(age_s=0.001)
    assert file_log.trim(directory, everything, now=1e12) == []  # no export yet: no trim
    export_events(str(directory), tmp_path / "before", retention=Retention())
    assert file_log.read_watermark(directory) == 8  # the last read segment is not whole yet
    log.append(interactions_line("u", ["new"], Stamp(9.0, "v")))  # segment 9: not exported
    dropped = file_log.trim(directory, everything, now=1e12)
    assert [p.name for p in dropped] == [file_log.segment_name(n) for n in range(1, 8)]
    after = read_log(directory).collected
    assert after.profiles == {"u": {"age": "7"}}
    assert after.items == {"new": AddedItem({"genre": "x"}, False)}
    assert [e.at for e in after.events] == [5.0, 9.0]  # the watermark's segment and newer


def test_a_count_keeps_at_least_that_many(tmp_path):
    directory = tmp_path / "log"
    log = FileLog(directory, segment_bytes=1)
    for i in range(10):
        log.append(interactions_line("u", ["a", "b"], Stamp(float(i), "v")))
    export_events(str(directory), tmp_path / "out", retention=parse_retention("5"))
    kept = read_log(directory).collected.events
    assert [e.at for e in kept] == [7.0, 7.0, 8.0, 8.0, 9.0, 9.0]  # 3 segments hold >= 5


@pytest.mark.parametrize("text, expected", [
    ("", Retention()), ("30d", Retention(age_s=30 * 86400.0)), ("12h", Retention(age_s=43200.0)),
    ("3600s", Retention(age_s=3600.0)), ("1w", Retention(age_s=604800.0)),
    ("1000", Retention(count=1000))])
def test_the_retention_grammar(text, expected):
    assert parse_retention(text) == expected


@pytest.mark.parametrize("text", ["0", "30x", "-1d", "1.5d", "d", "30 days"])
def test_retention_outside_the_grammar_is_refused(text):
    with pytest.raises(BadRetention, match="GMLREC_EVENTS_RETAIN"):
        parse_retention(text)


def test_an_unreadable_source_is_one_error(tmp_path):
    with pytest.raises(ExportError, match="neither a redis:// URL nor a directory"):
        export_events(str(tmp_path / "absent"), tmp_path / "out")


@pytest.mark.parametrize("line", [b'{"kind": "interactions", "user_id": "u"}\n', b"not json\n",
                                  b'{"kind": "mystery"}\n', b'{"kind": "profile"}\n'])
def test_a_line_no_service_wrote_is_one_error(tmp_path, line):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / file_log.segment_name(1)).write_bytes(line)
    with pytest.raises(ExportError, match="log"):
        export_events(str(tmp_path / "log"), tmp_path / "out", retention=Retention())


def test_the_syncer_catches_up_without_more_appends_and_stops_at_close(tmp_path):
    log = FileLog(tmp_path / "log", fsync_s=0.01)
    log.append(interactions_line("u", ["a"], Stamp(1.0, "v")))
    deadline = time.monotonic() + 30
    while log._dirty.is_set():  # its own thread fsyncs: no append needed
        assert time.monotonic() < deadline, "the syncer never ran"
        time.sleep(0.01)
    syncer = log._syncer
    log.close()
    assert syncer is not None and not syncer.is_alive() and log._syncer is None
    log.append(interactions_line("u", ["b"], Stamp(2.0, "v")))  # reopens, syncer again
    assert log._syncer is not None and log._syncer.is_alive()
    log.close()
    assert [e.item_id for e in read_log(tmp_path / "log").collected.events] == ["a", "b"]
