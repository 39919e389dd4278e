"""No bench test may rewrite the committed bench/RESULTS.md or its charts: each reports into a
temporary copy."""

from __future__ import annotations

import pytest

from bench.lib.results import BENCH

COMMITTED = ("RESULTS.md", "ablation.png", "gem.png")


@pytest.fixture(autouse=True, scope="session")
def committed_results_untouched():
    before = {name: (BENCH / name).read_bytes() for name in COMMITTED}
    yield
    assert {name: (BENCH / name).read_bytes() for name in COMMITTED} == before
