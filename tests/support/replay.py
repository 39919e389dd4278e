"""A run's top-n test protocol replayed through POST /score of a running server.

Every test group (a user's held-out item and its sampled candidates) is scored over HTTP and
ranked as the trainer ranks it, so equal HR@10 / NDCG@10 say the server serves the model that
was measured. tests/service/api/test_replay.py runs it on synthetic data; bench.serve_replay on
MovieLens-100k.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from training.export.replay import held_out_groups
from training.loop.metrics import ranking_report

CLIENTS = 4  # requests in flight


def replay_over_http(base: str, run: Path) -> dict[str, float]:
    """The run's test ranking metrics with every score from POST /score at `base`, and how
    many groups they cover."""
    groups = held_out_groups(run)

    def scores(group: int) -> list[float]:
        r = client.post("/score", json={"user_id": groups.user_ids[group],
                                        "item_ids": groups.item_ids[group]})
        r.raise_for_status()
        return [s["score"] for s in r.json()["scores"]]

    with httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(CLIENTS) as pool:
        rows = list(pool.map(scores, range(len(groups.user_ids))))
    return {**ranking_report(np.array(rows)), "groups": len(rows)}
