"""bench/RESULTS.md is assembled from sections, each owned and rewritten by one script."""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEvery number here was written by a script in `bench/`; each " \
         "section names its command.\n"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section delimited by markers named `name`."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {platform.python_version()}, {_cores()} cores"
    block = (f"<!-- {name}:start -->\n{body.rstrip()}\n\n_Measured {stamp} on {machine}._\n"
             f"<!-- {name}:end -->")
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->",
                         re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def mean_std(values: list[float], digits: int = 4) -> str:
    """'mean ± std' (sample std over seeds); a single value alone."""
    arr = np.asarray(values, float)
    if len(arr) == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))
