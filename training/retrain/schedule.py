"""`retrain --every DURATION`: a cycle, then the next one DURATION after it started, forever
(or `--cycles N` of them). Each cycle logs one line; one that fails (a Redis away, a full
disk, a bug) is logged and the loop goes on, so a bad night never stops the schedule.

DURATION is a whole number and a unit, s, m, h or d (`90s`, `30m`, `6h`, `1d`); plain `--every`
takes GMLREC_RETRAIN_EVERY, else one day.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from training.errors import ConfigError

log = logging.getLogger(__name__)
EVERY_ENV = "GMLREC_RETRAIN_EVERY"
DEFAULT_EVERY = "1d"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"\s*(\d+)\s*([smhd])\s*")


def every_from_env() -> str:
    """What plain `--every` means: GMLREC_RETRAIN_EVERY, else one day."""
    return os.environ.get(EVERY_ENV) or DEFAULT_EVERY


def parse_every(text: str) -> float:
    """Seconds of a DURATION; anything else is a ConfigError naming the grammar."""
    match = DURATION.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"--every {text!r}: expects a positive whole number and a unit, "
                          "s, m, h or d (90s, 30m, 6h, 1d)")
    return int(match.group(1)) * UNITS[match.group(2)]


def run_every(seconds: float, cycles: int, cycle: Callable[[], dict[str, Any]],
              sleep: Callable[[float], None] = time.sleep) -> int:
    """Run `cycle` every `seconds` (from one start to the next), `cycles` times (0: for
    ever); each record is printed as one JSON line, each failure as one line on stderr.
    Returns how many cycles failed."""
    done = failed = 0
    while cycles == 0 or done < cycles:
        started = time.monotonic()
        try:
            record = cycle()
            print(json.dumps({"round": done + 1, **record}), flush=True)
        except Exception as err:  # one failed cycle never ends the schedule
            failed += 1
            log.exception("retrain cycle failed")
            print(f"retrain: cycle {done + 1} failed: {type(err).__name__}: {err}",
                  file=sys.stderr, flush=True)
        done += 1
        if cycles == 0 or done < cycles:
            sleep(max(0.0, seconds - (time.monotonic() - started)))
    return failed
