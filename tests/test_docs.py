"""No file of the project points at a document that is not there: every `*.md` path named in
its code, configuration and documents exists in the repository, every link between its
documents lands on a file and a heading that exist, and the README stays short enough to be
read as the entry (the reference lives in docs/)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
MD_NAME = re.compile(r"(?<![\w./-])((?:\.\.?/)*[\w-][\w./-]*\.md)(?!\w)")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
SHELLS = ("#!/bin/sh", "#!/bin/bash", "#!/usr/bin/env bash", "#!/usr/bin/env sh")


def project_files() -> list[Path]:
    """The repository's files: tracked ones, and new ones git does not ignore."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: which files are the project's is git's to say")
    return sorted({ROOT / name for name in listed.splitlines() if (ROOT / name).is_file()})


def is_source(path: Path) -> bool:
    """Code, documents, configuration, Dockerfiles and shell scripts: what may name a file."""
    if path.suffix in (".py", ".md", ".toml", ".yml", ".yaml", ".sh"):
        return True
    if path.name.startswith("Dockerfile"):
        return True
    if path.suffix == "":
        with path.open("rb") as file:
            return file.readline().decode("utf-8", "replace").strip().startswith(SHELLS)
    return False


def missing_names(text: str, where: Path, files: list[Path]) -> list[str]:
    """The `*.md` names in `text` (written in the file `where`) that name no file: a path is
    looked for from the repository root and from the file's own folder; a bare name may be
    any file of the repository with that name."""
    names = {file.name for file in files}
    missing = []
    for name in MD_NAME.findall(URL.sub("", text)):
        if (ROOT / name).is_file() or (where.parent / name).is_file():
            continue
        if "/" not in name and name in names:
            continue
        missing.append(name)
    return missing


def test_every_named_document_exists():
    files = project_files()
    assert len(files) > 100 and ROOT / "README.md" in files
    missing = [f"{file.relative_to(ROOT)}: {name}" for file in files if is_source(file)
               for name in missing_names(file.read_text(encoding="utf-8"), file, files)]
    assert not missing, "documents named but not in the repository:\n" + "\n".join(missing)


def test_the_check_catches_a_missing_document():
    files = project_files()
    here = ROOT / "docs" / "index.txt"
    gone = "NOWHERE" + ".md"
    text = (f"see {gone}, docs/{gone}, `README.md`, docs/math.md#history, RESULTS.md, "
            f"[map](README.md) and https://example.org/{gone}")
    assert missing_names(text, here, files) == [gone, f"docs/{gone}"]


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.S)
    return {anchor(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_link_between_documents_lands():
    broken = []
    for document in (f for f in project_files() if f.suffix == ".md"):
        text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.S)
        for target in MD_LINK.findall(text):
            if URL.match(target):
                continue
            path, _, fragment = target.partition("#")
            landing = (document.parent / path).resolve() if path else document
            if not landing.exists():
                broken.append(f"{document.relative_to(ROOT)}: {target}")
            elif fragment and landing.suffix == ".md" and fragment not in anchors(landing):
                broken.append(f"{document.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "links that land nowhere:\n" + "\n".join(broken)


def test_the_anchor_rule_matches_githubs():
    assert anchor("Two-phase ranking") == "two-phase-ranking"
    assert anchor("Keys, scopes and who may call what") == "keys-scopes-and-who-may-call-what"
    assert anchor("`GET /recommend/{user_id}`") == "get-recommenduser_id"


def test_the_readme_is_an_entry_not_a_reference():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert 100 < len(lines) <= README_MAX_LINES, len(lines)
