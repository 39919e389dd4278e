"""The README and the configuration reference stay true: every number of the README's results
section comes from bench/RESULTS.md, docs/configuration.md names every `GMLREC_*` variable the
code reads and no variable nothing reads, and it names every option of every CLI command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from service.settings import Settings
from training.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs/configuration.md").read_text()
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
SOURCES = ("training", "bundle", "events", "service", "docker", "bench", "tests",
           "docker-compose.yml")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def quotes(text: str, number: str) -> bool:
    """Whether `text` holds `number` whole: not as a part of a longer number."""
    return re.search(rf"(?<![\w.]){re.escape(number)}(?![\d])", text) is not None


def test_every_number_in_the_results_comes_from_the_benchmark_file():
    results = (ROOT / "bench/RESULTS.md").read_text()
    prose = re.sub(r"!\[[^]]*\]\([^)]*\)|`[^`]*`", "", section("Results"))  # images, code
    numbers = set(NUMBER.findall(prose))
    assert len(numbers) > 40  # the section is there and quotes the file
    missing = sorted(n for n in numbers if not quotes(results, n))
    assert not missing, f"README results quote numbers bench/RESULTS.md lacks: {missing}"
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", section("Results")):
        assert (ROOT / image).is_file(), image


def test_the_check_catches_a_number_not_in_the_file():
    results = "| fm | 0.5786 ± 0.0173 |"
    found = [n for n in ("0.5786", "0.578", "0.57861", "5786", "0.0173") if quotes(results, n)]
    assert found == ["0.5786", "0.0173"]


def variables_read() -> set[str]:
    names = {f"GMLREC_{name.upper()}" for name in Settings.model_fields}
    for source in SOURCES:
        path = ROOT / source
        files = [path] if path.is_file() else [
            f for f in path.rglob("*") if f.is_file() and f.suffix in ("", ".py", ".conf")]
        for file in files:
            names |= set(re.findall(r"GMLREC_[A-Z][A-Z_]*[A-Z]", file.read_text()))
    return names


def test_every_variable_is_in_the_configuration_reference():
    missing = sorted(v for v in variables_read() if f"`{v}`" not in CONFIGURATION)
    assert not missing, f"not in docs/configuration.md: {missing}"


def test_every_documented_variable_is_read_somewhere():
    documented = set(re.findall(r"`(GMLREC_[A-Z_]+)`", CONFIGURATION))
    assert len(documented) > 20
    unread = sorted(documented - variables_read())
    assert not unread, f"documented in docs/configuration.md, read by nothing: {unread}"


def test_every_cli_option_is_in_the_configuration_reference():
    commands = next(a for a in build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {flag}" for name, parser in commands.choices.items()
               for action in parser._actions for flag in action.option_strings
               if flag.startswith("--") and flag != "--help"
               and f"`{flag}" not in CONFIGURATION]
    assert not missing, f"CLI options docs/configuration.md does not name: {missing}"
