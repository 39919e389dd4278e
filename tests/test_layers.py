"""Imports point one way: data -> models -> loop -> config/runs/pipeline/CLI -> export; the
bundle format and reader (bundle/) and the event log (events/) import neither side, and
training and the service import them and never each other (the service carries no torch
either). Tests import their support from tests/support and never bench (bench may import
tests/support); only tests/bench, which tests bench's scripts, imports bench. Read statically
from every module's imports, so a violation fails here before it can hide behind a lazy
import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> the project packages and modules it must never import
FORBIDDEN = {
    "training/data": ("training.models", "training.loop", "training.config", "training.runs",
                      "training.pipeline", "training.cli", "training.export",
                      "training.retrain"),
    "training/models": ("training.loop", "training.config", "training.runs",
                        "training.pipeline", "training.cli", "training.export",
                        "training.retrain"),
    "training/loop": ("training.config", "training.runs", "training.pipeline", "training.cli",
                      "training.export", "training.retrain"),
    "training/export": ("training.retrain", "training.cli"),
    "training": ("service",),
    "bundle": ("torch", "training", "service"),
    "events": ("torch", "training", "service"),
    "service": ("torch", "training"),
    "tests": ("bench",),
}
# folders of a checked package that its rule does not cover
EXEMPT = {"tests": ("tests/bench",)}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(root: Path, package: str, banned: tuple[str, ...],
               exempt: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in sorted((root / package).rglob("*.py")):
        if any(path.is_relative_to(root / folder) for folder in exempt):
            continue
        for name in imported_modules(path):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    assert (ROOT / package).is_dir()
    assert violations(ROOT, package, FORBIDDEN[package], EXEMPT.get(package, ())) == []


def test_the_check_sees_a_violation(tmp_path):
    """The walk is not vacuous: a model importing the config is caught."""
    fake = tmp_path / "training" / "models"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from training.config import FitConfig\nimport torch\n")
    assert violations(tmp_path, "training/models", FORBIDDEN["training/models"]) == [
        "training/models/bad.py imports training.config"]


def test_the_check_sees_a_test_importing_bench(tmp_path):
    """Test support taken from bench is caught; tests of bench itself are not."""
    for folder in ("support", "bench"):
        (tmp_path / "tests" / folder).mkdir(parents=True)
        (tmp_path / "tests" / folder / "uses.py").write_text("from bench.lib.grid import x\n")
    assert violations(tmp_path, "tests", FORBIDDEN["tests"], EXEMPT["tests"]) == [
        "tests/support/uses.py imports bench.lib.grid"]
