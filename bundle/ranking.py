"""Top n from a matrix of scores, and a whole catalog's scores gathered in bounded chunks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def chunked_catalog_scores(score: Callable[[np.ndarray, np.ndarray], np.ndarray],
                           state: np.ndarray, n_items: int, chunk_rows: int) -> np.ndarray:
    """(B, N) scores through `score(state, rows)`, at most chunk_rows pairs a call."""
    step, chunks = max(1, chunk_rows // max(len(state), 1)), []
    for start in range(0, n_items, step):
        items = np.arange(start, min(start + step, n_items))
        chunks.append(score(state, np.broadcast_to(items, (len(state), len(items)))))
    return np.concatenate(chunks, axis=1) if chunks else np.zeros((len(state), 0), np.float32)


def top_n_of(scores: np.ndarray, n: int, exclude: Sequence[np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Top n of each row of scores (B, N): positions (B, n) int64 and scores (B, n) float32.

    Excluded positions score -inf; where fewer than n remain the tail is -1 / -inf. Ties go
    to the lower position, as ONNX TopK breaks them, so both scorers agree exactly.
    """
    scores = np.array(scores, np.float32)
    for row, items in enumerate(exclude or ()):
        scores[row, np.asarray(items, np.int64)] = -np.inf
    n_items = scores.shape[1]
    take = min(n, n_items)
    top = np.full((len(scores), n), -1, np.int64)
    best = np.full((len(scores), n), -np.inf, np.float32)
    for row, s in enumerate(scores):
        cut = s[np.argpartition(-s, take - 1)[take - 1]] if take else np.inf
        above = np.flatnonzero(s > cut)
        chosen = np.concatenate([above, np.flatnonzero(s == cut)[:take - len(above)]])
        chosen = chosen[np.lexsort((chosen, -s[chosen]))]
        chosen = chosen[s[chosen] > -np.inf]
        top[row, :len(chosen)], best[row, :len(chosen)] = chosen, s[chosen]
    return top, best
