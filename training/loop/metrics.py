"""Rating and ranking metrics. Ranks are 1-based; ties are resolved both ways (docs/protocol.md).

pessimistic rank = number of candidates scoring >= the positive (itself included)
optimistic rank  = 1 + number of candidates scoring > the positive
A model that scores everything alike is pessimistically last, not luckily first.
"""

from __future__ import annotations

import numpy as np


def rmse(pred: np.ndarray, labels: np.ndarray) -> float:
    """RMSE with predictions clamped to the label range [-1, 1], as the papers report it."""
    return float(np.sqrt(np.mean((np.clip(pred, -1.0, 1.0) - labels) ** 2)))


def mae(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.abs(np.clip(pred, -1.0, 1.0) - labels)))


def positive_ranks(scores: np.ndarray, valid: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pessimistic and optimistic rank of column 0 within each row of scores (G, C).

    valid (G, C) marks which candidates take part (full-catalog ranking leaves out known items);
    NaN scores count as the worst possible score.
    """
    scores = np.nan_to_num(scores.astype(np.float64), nan=-np.inf)
    pos = scores[:, :1]
    take = np.ones(scores.shape, bool) if valid is None else valid.copy()
    take[:, 0] = False  # the positive itself is counted separately below
    pessimistic = 1 + ((scores >= pos) & take).sum(axis=1)
    optimistic = 1 + ((scores > pos) & take).sum(axis=1)
    return pessimistic, optimistic


def hit_ratio(ranks: np.ndarray, k: int = 10) -> float:
    return float(np.mean(ranks <= k))


def ndcg(ranks: np.ndarray, k: int = 10) -> float:
    """One relevant item per row: its gain 1 / log2(rank + 1) when it is within the top k."""
    gains = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
    return float(np.mean(gains))


def ranking_report(scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """Headline (tie-pessimistic) and optimistic HR@k / NDCG@k for groups, positive first."""
    pessimistic, optimistic = positive_ranks(scores)
    return {f"hr@{k}": hit_ratio(pessimistic, k), f"ndcg@{k}": ndcg(pessimistic, k),
            f"hr@{k}_optimistic": hit_ratio(optimistic, k),
            f"ndcg@{k}_optimistic": ndcg(optimistic, k)}


def rating_report(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"rmse": rmse(pred, labels), "mae": mae(pred, labels)}
