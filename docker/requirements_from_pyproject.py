"""Print the dependencies of gmlrec's chosen extras, one per line, from pyproject.toml alone.

The images install these before copying the code, so a code change rebuilds in seconds instead
of re-resolving every dependency (the layer cache keys on pyproject.toml only)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"error: unknown extra(s) {', '.join(unknown)}; pyproject has "
                         f"{', '.join(optional)}")
    return [*project["dependencies"], *(dep for e in extras for dep in optional[e])]


if __name__ == "__main__":
    print("\n".join(requirements(Path(sys.argv[1]), sys.argv[2:])))
