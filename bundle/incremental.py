"""A history model's user state, moved one interaction at a time (docs/math.md, History).

A user row holds the profile's columns P (values x_p) and the window's columns H, each at the
window weight c (1/√m or 1/m). Every part of the state but the row's own pair term is a
gather and a few sums over the row, O(W_u·k). The pair term is the quadratic part, and it
splits by where its two features come from:

    Σ_{i<j} x_i x_j φ(i, j) = own + c·cross + c²·window
    own    = Σ_{p<q ∈ P} x_p x_q φ(p, q)     the profile's pairs
    cross  = Σ_{h ∈ H} Σ_{p ∈ P} x_p φ(p, h)  profile × window (P's columns come first)
    window = Σ_{g before h ∈ H} φ(g, h)      within the window, oldest first

None of the three depends on c, so they are kept as raw sums (`PairSums`, float64). An item
entering the window at its end adds Σ_p x_p φ(p, h) to `cross` and Σ_{g ∈ H} φ(g, h) to
`window`; an item leaving it (the oldest, once the window is full, or one met again, which
moves to the end) subtracts its own share. One interaction then costs O((|P| + m)·k), where
a recompute costs O((|P| + m)²·k) (bench/history_serving.py measures both).

float64 sums of float32 pair values: after thousands of updates the sums still agree with a
recompute to ~1e-12 relative, so nothing needs a periodic rebuild (tests/bundle/
test_incremental.py holds them to 1e-5 after 1,000 interactions with evictions). φ(a, b)
comes from the scorer's own `pair_matrix`, the one the full state is computed with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bundle.history import HistoryField, window_weight
from bundle.pairs import within_pairs
from bundle.reference import ReferenceScorer

SUMS_SIZE = 3  # floats of PairSums.as_array


@dataclass(frozen=True)
class PairSums:
    """The raw pair sums of one user row (see the module doc)."""

    own: float
    cross: float
    window: float

    def as_array(self) -> np.ndarray:
        return np.array([self.own, self.cross, self.window], np.float64)

    @staticmethod
    def of(values: np.ndarray) -> PairSums:
        own, cross, window = (float(v) for v in values)
        return PairSums(own, cross, window)

    def total(self, c: float) -> float:
        return self.own + c * self.cross + c * c * self.window


class IncrementalState:
    """Builds a history model's user state once, then moves it with each interaction."""

    def __init__(self, scorer: ReferenceScorer, history: HistoryField):
        self.scorer, self.history = scorer, history

    def build(self, idx: np.ndarray, val: np.ndarray, window: Sequence[str]
              ) -> tuple[np.ndarray, PairSums]:
        """State (D,) and pair sums of a profile row (idx, val; its history columns empty)
        with this window: the full O((|P| + m)²·k) computation, done once per user and
        model version (or after the profile changes)."""
        p_idx, p_x = self._profile(idx, val)
        w_idx = self.history.features(window)
        ones = np.ones(len(w_idx), np.float32)
        own = float(within_pairs(p_x[None], self._phi(p_idx, p_idx)[None])[0])
        cross = float((p_x[:, None] * self._phi(p_idx, w_idx)).sum())
        inside = float(within_pairs(ones[None], self._phi(w_idx, w_idx)[None])[0])
        sums = PairSums(own, cross, inside)
        return self.state(idx, val, window, sums), sums

    def update(self, idx: np.ndarray, val: np.ndarray, window: Sequence[str], sums: PairSums,
               item_ids: Sequence[str]) -> tuple[list[str], np.ndarray, PairSums]:
        """The window, state and sums after these interactions (oldest first), from the
        window and sums before them: O((|P| + m)·k) per interaction. Items the model does
        not know leave the window alone, as HistoryField.window skips them."""
        p_idx, p_x = self._profile(idx, val)
        moved, cross, inside = list(window), sums.cross, sums.window
        for item in item_ids:
            if not self.history.knows(item):
                continue
            if item in moved:
                cross, inside = self._leave(moved, moved.index(item), p_idx, p_x, cross, inside)
            feature = self.history.features([item])
            others = self.history.features(moved)
            cross += float((p_x[:, None] * self._phi(p_idx, feature)).sum())
            inside += float(self._phi(others, feature).sum())
            moved.append(item)
            if len(moved) > self.history.size:
                cross, inside = self._leave(moved, 0, p_idx, p_x, cross, inside)
        after = PairSums(sums.own, cross, inside)
        return moved, self.state(idx, val, moved, after), after

    def state(self, idx: np.ndarray, val: np.ndarray, window: Sequence[str], sums: PairSums
              ) -> np.ndarray:
        """The (D,) state of the profile row with this window, its pair term from `sums`:
        O(W_u·k), no pair is recomputed."""
        row_idx, row_val = self.history.apply(idx, val, window)
        pairs = np.array([sums.total(window_weight(len(window), self.history.weight))])
        return self.scorer.user_state(row_idx[None], row_val[None], pairs=pairs)[0]

    def _leave(self, window: list[str], at: int, p_idx: np.ndarray, p_x: np.ndarray,
               cross: float, inside: float) -> tuple[float, float]:
        """Take window[at] out (in place) and its share out of the sums."""
        feature = self.history.features([window[at]])
        before, after = (self.history.features(window[:at]),
                         self.history.features(window[at + 1:]))
        cross -= float((p_x[:, None] * self._phi(p_idx, feature)).sum())
        inside -= float(self._phi(before, feature).sum() + self._phi(feature, after).sum())
        del window[at]
        return cross, inside

    def _profile(self, idx: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The profile's own columns with a value: its features and their x."""
        keep = np.ones(len(idx), bool)
        keep[self.history.columns] = False
        keep &= val != 0
        return idx[keep], val[keep].astype(np.float32)

    def _phi(self, idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray:
        """φ(a, b) (A, C) as float64, each a before each b; zeros for a family without a
        pair term or an empty side."""
        if len(idx_a) == 0 or len(idx_b) == 0:
            return np.zeros((len(idx_a), len(idx_b)))
        phi = self.scorer.pair_matrix(idx_a[None], idx_b[None])
        if phi is None:
            return np.zeros((len(idx_a), len(idx_b)))
        return phi[0].astype(np.float64)
