"""export_events: read a whole event log (Redis or a file log's directory), write its dataset
(dataset.py), record the watermark, then trim what the retention and the watermark let go.

The dataset is written before the watermark moves, and trimming follows the watermark, so a
crash anywhere leaves every event either in the log or in a dataset already written. The
Redis password comes from a file (GMLREC_REDIS_PASSWORD_FILE, as the service reads it),
never from the command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from events import file_log
from events.dataset import ExportSummary, write_dataset
from events.record import BadRecord
from events.retention import BadRetention, Retention, retention_from_env

SCHEMES = ("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")
DEFAULT_PREFIX = "gmlrec"


class ExportError(Exception):
    """The log cannot be read or the dataset written; the message says why in one line
    (and holds no password)."""


def export_events(source: str, out: Path, *, prefix: str | None = None,
                  retention: Retention | None = None, password_file: Path | None = None,
                  progress: Callable[[int], None] | None = None) -> ExportSummary:
    """Export the log at `source` (a redis:// or redis+cluster:// URL, or a directory of the
    file log) into `out`. `prefix` defaults to GMLREC_REDIS_PREFIX (else gmlrec), the
    retention to GMLREC_EVENTS_RETAIN, the password file to GMLREC_REDIS_PASSWORD_FILE;
    `progress` is called with the events read so far."""
    try:
        retention = retention_from_env() if retention is None else retention
        if source.startswith(SCHEMES):
            return _from_redis(source, out, prefix or os.environ.get("GMLREC_REDIS_PREFIX")
                               or DEFAULT_PREFIX, retention, password_file, progress)
        return _from_directory(Path(source), out, retention, progress)
    except BadRetention as err:
        raise ExportError(str(err)) from None
    except BadRecord as err:
        raise ExportError(f"{source}: {err}") from None
    except (KeyError, TypeError, ValueError) as err:  # a line or entry of another writer
        raise ExportError(f"{source}: not a record the service writes: "
                          f"{type(err).__name__}: {err}") from None
    except OSError as err:
        raise ExportError(f"{type(err).__name__}: {err}") from None


def _from_directory(directory: Path, out: Path, retention: Retention,
                    progress: Callable[[int], None] | None) -> ExportSummary:
    if not directory.is_dir():
        raise ExportError(f"--from {directory}: neither a redis:// URL nor a directory")
    if out.resolve() == directory.resolve():
        raise ExportError("--out must not be the log's own directory")
    reading = file_log.read_log(directory, progress)
    summary = write_dataset(reading.collected, out)
    if reading.last_segment:
        file_log.write_watermark(directory, reading.last_segment)
    file_log.trim(directory, retention)
    return summary


def _from_redis(url: str, out: Path, prefix: str, retention: Retention,
                password_file: Path | None, progress: Callable[[int], None] | None
                ) -> ExportSummary:
    """Imports redis only here: a directory's export needs no Redis client installed."""
    try:
        from redis.exceptions import RedisClusterException, RedisError

        from events import redis_log
    except ImportError:
        raise ExportError("a redis:// source needs the redis package (pip install "
                          "'gmlrec[serve]' or '.[train]')") from None
    try:
        return _read_redis(redis_log, url, out, prefix, retention, password_file, progress)
    except (RedisError, RedisClusterException) as err:
        raise ExportError(f"redis: {type(err).__name__}: {err}") from None


def _read_redis(redis_log: Any, url: str, out: Path, prefix: str, retention: Retention,
                password_file: Path | None, progress: Callable[[int], None] | None
                ) -> ExportSummary:
    if password_file is None and os.environ.get("GMLREC_REDIS_PASSWORD_FILE"):
        password_file = Path(os.environ["GMLREC_REDIS_PASSWORD_FILE"])
    try:
        password = redis_log.read_password(password_file)
    except (OSError, UnicodeDecodeError, IndexError) as err:
        raise ExportError(f"GMLREC_REDIS_PASSWORD_FILE: cannot read a password from "
                          f"{password_file}: {type(err).__name__}") from None
    client = redis_log.connect(url, password)
    try:
        collected, watermark, streams = redis_log.read_redis(client, prefix, progress)
        summary = write_dataset(collected, out)
        redis_log.record_watermark(client, prefix, watermark)
        redis_log.trim(streams, watermark, retention,
                       redis_log.clock_ms(redis_log.masters(client)[0]))
        return summary
    finally:
        client.close()

