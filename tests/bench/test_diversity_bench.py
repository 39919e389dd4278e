"""bench.diversity: its quick run end to end (a tiny fit of the default recipe, the service in
process), into a temporary RESULTS copy: a row per λ, and at λ = 0 the run's own protocol
metrics (the script checks them itself and stops otherwise)."""

from __future__ import annotations

import re

from bench import diversity


def test_the_quick_run_writes_a_row_per_lambda(tmp_path):
    results = tmp_path / "RESULTS.md"
    diversity.main(["--quick", "--results", str(results)])
    text = results.read_text()
    section = text[text.index("<!-- diversity:start -->"):text.index("<!-- diversity:end -->")]
    rows = [line for line in section.splitlines() if re.match(r"\| (0|0\.3|0\.6) \|", line)]
    assert len(rows) == len(diversity.LAMBDAS) == 3
    for row in rows:
        hr, ndcg, _, coverage = (float(cell) for cell in row.strip("|").split("|")[1:])
        assert 0 <= ndcg <= hr <= 1 and 0 < coverage <= 1
