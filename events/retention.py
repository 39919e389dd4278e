"""GMLREC_EVENTS_RETAIN: how much of the event log trimming keeps.

    (unset or empty)   keep everything
    <n><unit>          an age: events older than it may go; unit s, m, h, d or w
                       (`30d`, `12h`, `3600s`)
    <n>                a count: the newest n events are kept; on Redis each user's stream
                       keeps its newest n, in the file log the newest whole segments that
                       together hold at least n

Whatever it says, nothing newer than the last export's watermark is dropped: trimming cuts at
the older of the two (docs/operations.md, Events).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
GRAMMAR = re.compile(r"^(\d{1,12})([smhdw]?)$")


class BadRetention(ValueError):
    """A GMLREC_EVENTS_RETAIN value outside the grammar; the message says what it takes."""


@dataclass(frozen=True)
class Retention:
    """Keep events younger than `age_s`, or the newest `count`; neither: keep everything."""

    age_s: float | None = None
    count: int | None = None

    @property
    def keeps_all(self) -> bool:
        return self.age_s is None and self.count is None


def parse_retention(text: str | None, name: str = "GMLREC_EVENTS_RETAIN") -> Retention:
    """A Retention from the grammar in this module's doc; `name` is what the error calls
    the value's source."""
    text = (text or "").strip()
    if not text:
        return Retention()
    match = GRAMMAR.match(text)
    if match is None or int(match.group(1)) == 0:
        raise BadRetention(f"{name}: {text!r} is neither an age like 30d "
                           "(s, m, h, d, w) nor a count like 1000000 (above 0)")
    number, unit = int(match.group(1)), match.group(2)
    return Retention(age_s=float(number * UNITS[unit])) if unit else Retention(count=number)


def retention_from_env() -> Retention:
    """The retention GMLREC_EVENTS_RETAIN names (everything kept where it is unset)."""
    return parse_retention(os.environ.get("GMLREC_EVENTS_RETAIN"))
