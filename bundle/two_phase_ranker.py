"""Rank one user through two_phase.onnx, keeping an answer only where its certificate holds.

The graph (bundle/two_phase.py has the proof) scores every item from int8 codes with a bound,
rescores a shortlist of K items in float32 and says whether its top n is provably model.onnx's.
An answer it does not certify is dropped: the caller then runs the float32 graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from bundle import format as fmt
from bundle import two_phase
from bundle.graph_io import pad_rows, padded

SHORTLIST_MARGIN = 64  # the two-phase graph rescores K = 2 n + this many items


class TwoPhaseRanker:
    """One session over a bundle's two_phase.onnx."""

    def __init__(self, session: ort.InferenceSession, scoring: dict[str, Any], n_items: int):
        self.session, self.scoring, self.n_items = session, scoring, n_items
        self.shortlist_margin = SHORTLIST_MARGIN

    def shortlist(self, n: int) -> int:
        """K, the items the graph rescores in float32 for a top n."""
        return min(self.n_items, 2 * n + self.shortlist_margin)

    def top_n(self, state: np.ndarray, n: int, exclude: Sequence[np.ndarray] | None
              ) -> tuple[np.ndarray, np.ndarray] | None:
        """One user's (state (1, D)) top n, best first, leaving out `exclude[0]`; None where
        the certificate does not hold."""
        take = min(n, self.n_items)
        feed = two_phase.user_feed(self.scoring, state[0]) | {
            fmt.STATE: np.ascontiguousarray(state, np.float32),
            fmt.EXCLUDE: pad_rows(exclude, 1), fmt.TOP_N: np.array([take], np.int64),
            fmt.SHORTLIST: np.array([self.shortlist(take)], np.int64)}
        items, scores, certified = self.session.run(
            [fmt.TOP_ITEMS, fmt.TOP_SCORES, fmt.CERTIFIED], feed)
        if not certified[0]:
            return None
        return padded(items, scores, n)
