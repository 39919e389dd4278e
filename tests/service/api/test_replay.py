"""End to end: the run's top-n test protocol replayed through POST /score of a real server
gives the run's HR@10 / NDCG@10 (synthetic data here; `python -m bench.serve_replay` does
MovieLens-100k and writes bench/RESULTS.md)."""

from __future__ import annotations

import json

from tests.service.api.conftest import settings_for
from tests.service.api.live import live_server
from tests.support.replay import replay_over_http


def test_the_test_protocol_over_http_gives_the_runs_metrics(gmlfm):
    with live_server(settings_for(gmlfm.models_dir)) as base:
        served = replay_over_http(base, gmlfm.run)
    trained = json.loads((gmlfm.run / "metrics.json").read_text())["test"]
    for metric in ("hr@10", "ndcg@10"):
        assert round(served[metric], 4) == round(trained[metric], 4)
