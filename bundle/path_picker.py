"""Which path ranks a lone user, per request shape: the block search only where it pays.

Pruning by block bounds pays on a skewed catalog (a few items with large vectors, most with
small ones) and costs a wasted partial read on one without skew, where every block's bound
reaches the n-th best score (random weights). As "To Index or Not to Index" found for
factor models, neither wins everywhere, so the choice is measured on the bundle itself: at
load, a few known users' states are ranked both ways, taking turns (ABAB), for each shape
(the top n asked, in buckets), and the block search is kept for a shape only where its
median time is at most `PAYS` of the full pass's and it gave up on at most a quarter of
them. Larger n, and calls stacking several users, keep the full pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

SHAPES = (10, 100)  # a top n is measured as the smallest of these at least n
LARGER = "n>100"  # its label for larger n: the full pass
PAYS = 0.8  # the block search must take at most this share of the full pass's time
PROBES, TURNS = 8, 1  # states measured (each ranked by both paths in turn), and rounds
PRUNED, TWO_PHASE, FLOAT32 = "pruned", "two_phase", "float32"

Ranks = Callable[[np.ndarray, int], object]  # (state (1, D), n) -> an answer (None: gave up)


def shape_of(n: int) -> str:
    """The bucket label of a top n: "n<=10", "n<=100" or "n>100"."""
    for limit in SHAPES:
        if n <= limit:
            return f"n<={limit}"
    return LARGER


def measure(states: np.ndarray, pruned: Ranks, full: Ranks) -> dict[str, bool]:
    """Per shape label, whether the block search pays on these states (module doc)."""
    picks = {}
    for limit in SHAPES:
        times: dict[str, list[float]] = {"pruned": [], "full": []}
        gave_up = 0
        for _ in range(TURNS):
            for state in states:
                started = time.perf_counter()
                answer = pruned(state[None], limit)
                if answer is None:
                    gave_up += 1
                    full(state[None], limit)  # what a request that gives up pays
                times["pruned"].append(time.perf_counter() - started)
                started = time.perf_counter()
                full(state[None], limit)
                times["full"].append(time.perf_counter() - started)
        ratio = float(np.median(times["pruned"])) / max(float(np.median(times["full"])), 1e-9)
        picks[f"n<={limit}"] = ratio <= PAYS and gave_up <= len(times["pruned"]) / 4
    return picks
