"""Print a pip constraints file that pins every direct dependency of gmlrec to the lowest
version pyproject.toml admits (its `>=` floor), for CI's floors pass: a floor that does not
install or does not pass fails CI. Transitive dependencies resolve freely, as they would for
someone installing gmlrec beside their own pins."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = [*project["dependencies"],
                *(r for extra in project["optional-dependencies"].values() for r in extra)]
    pins = {}
    for requirement in map(Requirement, declared):
        lowest = [s.version for s in requirement.specifier if s.operator in (">=", "==")]
        if lowest:
            pins[requirement.name] = f"{requirement.name}=={lowest[0]}"
    return sorted(pins.values())


if __name__ == "__main__":
    print("\n".join(floors(Path(sys.argv[1]))))
