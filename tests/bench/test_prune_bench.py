"""bench.prune --quick end to end on small catalogs: every catalog and path in its section,
the block search's answers equal to model.onnx's (never timings)."""

from __future__ import annotations

from bench.prune import main


def test_the_quick_bench_reports_every_catalog_and_path(tmp_path):
    results = tmp_path / "RESULTS.md"
    main(["--quick", "--requests", "6", "--out", str(tmp_path / "runs"),
          "--results", str(results)])
    text = results.read_text()
    assert "<!-- prune:start -->" in text and "NOT ALL" not in text
    for catalog in ("(a)", "(a2)", "(b)", "(c)"):
        for path in ("float32", "two-phase", "auto"):
            assert f"| {path} |" in text and catalog in text
    assert "GB/s" in text and "rank^-1." in text and "by vector norm" in text
