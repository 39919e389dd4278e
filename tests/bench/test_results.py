"""RESULTS.md sections: rewritten when their numbers change, left byte for byte when they do
not, and regenerated from the committed records exactly as committed."""

from __future__ import annotations

import shutil

import bench.ddp_agreement as ddp_agreement
import bench.device_agreement as device_agreement
import bench.more_seeds as more_seeds
from bench.lib.ablation_tables import ablation_section
from bench.lib.grid import load_runs
from bench.lib.results import HEADER, RESULTS, write_section

OLD = "<!-- a:start -->\n| x |\n\n_Measured 2020-01-01 00:00 UTC on old, 3.0, 1 cores._\n" \
      "<!-- a:end -->"


def test_a_new_section_is_appended_and_a_changed_one_replaced_in_place(tmp_path):
    results = tmp_path / "RESULTS.md"
    write_section("a", "| x |\n", results)
    write_section("b", "| y |", results)
    assert results.read_text().startswith(HEADER)
    write_section("a", "| z |", results)
    text = results.read_text()
    assert "| x |" not in text and text.index("| z |") < text.index("| y |")
    assert text.count("<!-- a:start -->") == 1 and "_Measured 20" in text


def test_an_unchanged_section_keeps_when_and_where_it_was_measured(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text(f"{HEADER}\n{OLD}\n")
    write_section("a", "| x |", results)
    assert results.read_text() == f"{HEADER}\n{OLD}\n"
    write_section("a", "| x2 |", results)
    assert "2020-01-01" not in results.read_text()


def test_the_reports_regenerate_the_committed_sections_byte_for_byte(tmp_path):
    copy = tmp_path / "RESULTS.md"
    shutil.copy(RESULTS, copy)
    write_section("ablation", ablation_section(load_runs())[0], copy)
    write_section("more-seeds", more_seeds.section(), copy)
    write_section("device-agreement", device_agreement.section(), copy)
    write_section("ddp-agreement", ddp_agreement.section(), copy)
    assert copy.read_bytes() == RESULTS.read_bytes()
