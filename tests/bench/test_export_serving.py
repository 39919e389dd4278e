"""The export-serving report: every target judged on medians, and every miss says why."""

from __future__ import annotations

from bench.export_serving import report
from bench.lib.timing import Timing, interleaved


def _rows(ort_ms: float, naive_ms: float) -> list[dict]:
    times = {"user_state": Timing(0.04, 0.03), "read_once": Timing(4.0, 3.0),
             "numpy": Timing(40.0, 30.0), "naive": Timing(naive_ms, naive_ms),
             "ort1": Timing(ort_ms, ort_ms / 2), "ort2": Timing(ort_ms + 1, ort_ms),
             "batch1": Timing(2.0, 1.5), "batch2": Timing(3.0, 2.0)}
    row = {"name": "x", "items": 100_000, "export_s": 1.0, "size_mb": 55.0, "item_mb": 50.0,
           "times": times}
    return [row | {"replay": {"hr@10": 0.5, "ndcg@10": 0.25},
                   "metrics": {"hr@10": 0.5, "ndcg@10": 0.25}},
            row, row | {"faiss": (Timing(2.0, 1.0), Timing(1.9, 1.0), True)}]


def test_met_targets_are_met_and_misses_say_by_how_much_and_why():
    fine = report(_rows(ort_ms=5.0, naive_ms=900.0), [1, 2])
    assert fine.count(", met.") == 5 and "missed" not in fine
    slow = report(_rows(ort_ms=20.0, naive_ms=900.0), [1, 2])
    top, naive, ratio = (line for line in slow.splitlines()
                         if line.startswith("- ") and "missed" in line)
    assert "20.00 ms (target ≤ 15 ms), missed by 5.00 ms: the graph reads 50 MB" in top
    assert "45.00 × (target ≥ 100 ×), missed by 55.00 ×" in naive
    assert "5.00 × (target ≤ 3 ×), missed by 2.00 ×" in ratio


def test_interleaved_runs_slow_calls_every_nth_round():
    calls = {"fast": [], "slow": []}
    times = interleaved({"fast": (lambda: calls["fast"].append(1), 1),
                         "slow": (lambda: calls["slow"].append(1), 4)}, rounds=8)
    assert len(calls["fast"]) == 1 + 8 and len(calls["slow"]) == 1 + 2  # a warm call each
    assert times["fast"].best <= times["fast"].median
