"""bench/RESULTS.md is assembled from sections, each owned and rewritten by one script."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1]
RESULTS = BENCH / "RESULTS.md"
HEADER = "# Benchmark results\n\nEvery number here was written by a script in `bench/`; each " \
         "section names its command.\n"


def write_section(name: str, body: str, results: Path = RESULTS) -> None:
    """Replace (or append) the section delimited by markers named `name`.

    A section whose body is already the same is left as it is: its stamp says when and where
    the numbers were measured, which re-rendering the same records does not change (so a
    report regenerated from unchanged records is byte-identical)."""
    text = results.read_text() if results.exists() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->\n(.*?)<!-- {re.escape(name)}:end -->",
                         re.S)
    found = pattern.search(text)
    if found and found.group(1).rpartition("\n\n_Measured ")[0] == body.rstrip():
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {platform.python_version()}, {_cores()} cores"
    block = (f"<!-- {name}:start -->\n{body.rstrip()}\n\n_Measured {stamp} on {machine}._\n"
             f"<!-- {name}:end -->")
    text = text[:found.start()] + block + text[found.end():] if found else \
        text.rstrip() + "\n\n" + block + "\n"
    results.write_text(text)


def mean_std(values: list[float], digits: int = 4) -> str:
    """'mean ± std' (sample std over seeds); a single value alone."""
    arr = np.asarray(values, float)
    if len(arr) == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


def _cores() -> int:
    return len(os.sched_getaffinity(0))
