"""bench.loop: its quick run end to end (fit, replay over HTTP, retrain, three models judged)
writes its section with every row, and its report is rebuilt from its records alone."""

from __future__ import annotations

import json

from bench import loop


def test_the_quick_run_writes_the_section_and_the_report_rebuilds_it(tmp_path):
    results, out = tmp_path / "RESULTS.md", tmp_path / "out"
    loop.main(["--quick", "--results", str(results), "--out", str(out)])
    text = results.read_text()
    section = text[text.index("<!-- loop:start -->"):text.index("<!-- loop:end -->")]
    for model in ("| stale |", "| stale+online |", "| retrained |"):
        assert model in section
    assert "stale+online beats stale" in section and "retrained beats stale+online" in section
    record = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    assert record["replay"]["events"] > 0 and record["retrain"]["verdict"] in (
        "published", "refused")
    # the service's own log, exported, is what retrain fitted on; `at` went with each event
    assert record["replay"]["log"] == "the service's event log" and record["replay"]["at_sent"]
    cases = {m["cases"] for m in record["models"].values()}
    assert len(cases) == 1 and cases.pop() > 0  # the three models judged on the same cases
    if record["retrain"]["verdict"] == "published":
        assert record["retrain"]["served_after_s"] is not None
    again = tmp_path / "again" / "RESULTS.md"
    again.parent.mkdir()
    loop.main(["--report", "--results", str(again), "--out", str(out)])
    rebuilt = again.read_text()
    assert rebuilt[rebuilt.index("## loop"):rebuilt.index("_Measured")] == \
        text[text.index("## loop"):text.index("_Measured")]
