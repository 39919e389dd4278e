"""bench.events_log: its smoke run end to end (every run with the log on exported and counted
by the bench itself), and the section it writes (never a timing)."""

from __future__ import annotations

from bench import events_log


def test_the_smoke_run_writes_its_section_with_all_four_configurations(tmp_path):
    results = tmp_path / "RESULTS.md"
    events_log.main(["--smoke", "--results", str(results)])
    text = results.read_text()
    section = text[text.index("<!-- events-log:start -->"):text.index("<!-- events-log:end -->")]
    rows = [line for line in section.splitlines() if line.startswith(("| redis |",
                                                                       "| in-process |"))]
    assert [r.split(" | ")[:2] for r in rows] == [["| redis", "on"], ["| redis", "off"],
                                                   ["| in-process", "on"],
                                                   ["| in-process", "off"]]
    assert "held every acknowledged event" in section
