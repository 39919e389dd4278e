"""JSON-lines logging with the request id of whatever request the line belongs to.

The id lives in a context variable set by the request middleware, so a line logged deep in
the scoring code carries it without being passed around.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# attributes of a LogRecord that are not extra fields passed by the caller
STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName",
                                                      "color_message"}  # uvicorn: ANSI copy


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z"),
                "level": record.levelname.lower(), "logger": record.name,
                "msg": record.getMessage()}
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        line |= {k: v for k, v in record.__dict__.items() if k not in STANDARD}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str) -> None:
    """One JSON handler on stdout for our loggers and uvicorn's (its access log is off: the
    request middleware writes one line per request with the id, route and status). Called by
    `python -m service` and again by each worker's startup, so `uvicorn service.app:app`
    logs the same way."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JSONFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JSONFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True

