"""The known-good set: constraints.txt pins what pyproject.toml asks for, and every way of
installing gmlrec (the README's command, CI, both images) installs through it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, Version]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    found = [re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line) for line in lines]
    return {canonicalize_name(m[1]): Version(m[2]) for m in found if m}


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    return [Requirement(r) for r in [*project["dependencies"], *(r for e in extras for r in e)]]


def test_every_declared_dependency_is_pinned_within_its_range():
    pinned = pins()
    assert len(pinned) > 50  # direct and transitive
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name == "torch":  # pinned once, in pyproject; its CPU build has a local label
            assert name not in pinned and str(requirement.specifier).startswith("==")
            continue
        assert name in pinned, f"{name} is not in constraints.txt: refresh it (README, Development)"
        assert requirement.specifier.contains(pinned[name], prereleases=True), \
            f"constraints.txt pins {name}=={pinned[name]}, outside pyproject's {requirement}"


def test_the_readme_ci_and_both_images_install_through_the_constraints():
    readme = (ROOT / "README.md").read_text()
    install = re.search(r"```bash\n(pip install [^\n]*)\n", readme)[1]
    assert "-c constraints.txt" in install
    assert re.search(r"pip install [^\n]*-e \"\.\[train,serve,dev\]\" \\\n\s+-c constraints.txt",
                     (ROOT / ".ci/run").read_text())
    for dockerfile in (ROOT / "docker").glob("Dockerfile.*"):
        text = dockerfile.read_text()
        assert re.search(r"^COPY [^\n]*constraints\.txt", text, re.M), dockerfile.name
        assert re.search(r"pip install [^\n]*\\?\n?[^\n]*-c constraints\.txt", text), \
            dockerfile.name


def test_the_floors_pass_pins_every_direct_dependency_at_its_floor():
    done = subprocess.run([sys.executable, str(ROOT / ".ci/floors.py"),
                           str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                          check=True)
    floors = dict(line.split("==") for line in done.stdout.split())
    for requirement in declared():
        lowest = [s.version for s in requirement.specifier if s.operator in (">=", "==")]
        assert floors[requirement.name] == lowest[0], requirement
