"""bench.pair_form's report: a row per window, and how often export picked the faster form
(never timings)."""

from __future__ import annotations

from bench.pair_form import Measured, report
from bundle import format as fmt


def _measured(window: int, picked: str, rows_ms: float, matrix_ms: float) -> Measured:
    return Measured(window, window + 2, {fmt.PAIR_ROWS: 128 * (window + 2),
                                         fmt.PAIR_MATRIX: 4160}, picked,
                    {fmt.PAIR_ROWS: rows_ms, fmt.PAIR_MATRIX: matrix_ms}, 59, 60, 2.5e-7)


def test_the_report_names_the_faster_form_and_counts_exports_picks():
    text = report([_measured(10, fmt.PAIR_ROWS, 2.0, 4.0),
                   _measured(50, fmt.PAIR_MATRIX, 6.0, 4.0),
                   _measured(30, fmt.PAIR_ROWS, 5.0, 4.0)], 100_000, [0.5, 1.5], 60)
    assert "| 10 | 12 | 1,536 / 4,160 | rows | 2.0 | 4.0 | rows (2.00×) | 59 of 60 | " \
           "2.5e-07 |" in text
    assert "| 50 | 52 | 6,656 / 4,160 | matrix | 6.0 | 4.0 | matrix (1.50×) |" in text
    assert "--windows 10 50 30 --users 60" in text
    assert "Export picked the faster form for 2 of 3 windows." in text
