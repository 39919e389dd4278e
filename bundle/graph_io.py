"""Shape what the top-n graphs take and give: exclusions as one padded array, answers to n.

model.onnx and two_phase.onnx share these inputs and outputs (bundle/format.py): both take the
positions to leave out as a (B, E) array padded with -1, and both answer at most as many items
as the catalog holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_rows(rows: Sequence[np.ndarray] | None, batch: int) -> np.ndarray:
    """Ragged per-user position lists as one (B, E) int64 array padded with -1 (E >= 1)."""
    rows = list(rows or [])
    width = max([1, *(len(r) for r in rows)])
    out = np.full((batch, width), -1, np.int64)
    for b, r in enumerate(rows):
        out[b, :len(r)] = r
    return out


def padded(items: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-n outputs widened to n columns (-1 / -inf) where the catalog had fewer items."""
    short = n - items.shape[1]
    if short > 0:
        items = np.pad(items, ((0, 0), (0, short)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, short)), constant_values=-np.inf)
    return items, scores
