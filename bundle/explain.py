"""Each score as the exact sum of its terms (docs/math.md, Reasons): what `explain=true` shows.

A model whose pair term is a sum over pairs of features (FM, TransFM, every GML-FM, and GEM,
whose convolved table is an ordinary one once exported) scores a user row U joined with an
item row I as

    ŷ = w0 + [Σ_U x_j w_j + Σ_{j<j' ∈ U} x_j x_j' φ(j, j')]     the user's own terms
           + [Σ_I x_l w_l + Σ_{l<l' ∈ I} x_l x_l' φ(l, l')]     the item's own terms
           + Σ_{j ∈ U} Σ_{l ∈ I} x_j x_l φ(j, l)                one term per user column

so each user-side column (a profile value, a context value, a history item at its window
weight) adds its pairs with the item's columns, and nothing else depends on both. The terms
are computed here by the definition, in float64, from the tables the bundle holds (the same
the served scorer reads), over the few columns of one user row and each item row: O(A·R·W_i·k)
for A items, no decomposition to get wrong. GML-FM's φ(j, l) = w_jl · D(t_j, t_l) is kept as
its two factors too. NFM (its MLP), DeepFM, xDeepFM and AFM (attention over every pair of the
row) have no such sum: `Explainer.why_not` says so and nothing is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundle import format as fmt
from bundle.loaded import Bundle
from bundle.pairs import PairValue, SideTables, distance, pair_weights, within_pairs

NOT_A_SUM = {
    fmt.NFM: "NFM passes its pair terms through an MLP together, so a score is not a sum of "
             "per-feature terms",
    fmt.WHOLE: "this model's deep part (DeepFM's and xDeepFM's towers, AFM's attention over "
               "every pair of the row) mixes all features at once, so a score is not a sum of "
               "per-feature terms",
}


@dataclass(frozen=True)
class Terms:
    """The terms of A items for one user row of R columns, items of W_i columns (float64).

    The score of item a is `total[a]` = global_ + user_linear + user_pairs + item_linear[a]
    .sum() + item_pairs[a] + cross[a].sum().
    """

    global_: float  # w0
    user_linear: float  # Σ_U x_j w_j: the same for every item
    user_pairs: float  # Σ_{j<j' ∈ U} x_j x_j' φ(j, j'): the same for every item
    item_linear: np.ndarray  # (A, W_i) x_l w_l
    item_pairs: np.ndarray  # (A,) the item row's own pair term
    cross: np.ndarray  # (A, R, W_i) x_j x_l φ(j, l)
    weight: np.ndarray | None  # (A, R, W_i) GML-FM's w_jl (None without the weight, and
    distance: np.ndarray | None  # for other families); D(t_j, t_l) (GML-FM only)

    @property
    def total(self) -> np.ndarray:
        """(A,) the score each item's terms add up to."""
        return (self.global_ + self.user_linear + self.user_pairs + self.item_linear.sum(1)
                + self.item_pairs + self.cross.sum((1, 2)))


def _rows(tables: SideTables, idx: np.ndarray) -> tuple[SideTables, np.ndarray]:
    """The rows of `tables` that idx uses, as float64, and idx renumbered into them: the
    terms are computed in float64 without copying a whole (mapped, float32) table."""
    used, local = np.unique(idx, return_inverse=True)
    gathered = {name: np.asarray(table[used], np.float64) if table.size else table
                for name in ("bias", "v", "t", "a") for table in [getattr(tables, name)]}
    return SideTables(**gathered), local.reshape(idx.shape)


class Explainer:
    """One bundle's decomposition: `why_not` is None where its family has one."""

    def __init__(self, bundle: Bundle):
        scoring = bundle.scoring
        self.why_not: str | None = NOT_A_SUM.get(scoring["family"])
        if self.why_not is None and not bundle.item_features_supported:
            self.why_not = ("this bundle was exported before the item features' tables were "
                            "(re-export it)")
        if self.why_not is not None:
            return
        names = fmt.feature_tables(scoring)
        self.user = SideTables.load(bundle.table, "user_", names)
        self.item = SideTables.load(bundle.item_table, "feature_", names)
        self.w0 = float(bundle.table("w0")[0])
        self.kind, self.dist = scoring["kind"], scoring.get("distance", "")
        weighted = self.kind == "gmlfm" and scoring.get("weighted", False)
        self.h = np.asarray(bundle.table("h"), np.float64) if weighted else None
        self.pair = PairValue(self.kind, self.dist, self.h)
        # TransFM: which user columns come after the item's in the row (a history window)
        self.after = np.asarray(scoring.get("after_items", []), bool)

    @property
    def available(self) -> bool:
        return self.why_not is None

    def terms(self, user_idx: np.ndarray, user_val: np.ndarray, item_idx: np.ndarray,
              item_val: np.ndarray) -> Terms:
        """One user row (R,) and item rows (A, W_i) -> their terms."""
        assert self.why_not is None, self.why_not
        user, u_idx = _rows(self.user, np.asarray(user_idx, np.int64))
        item, i_idx = _rows(self.item, np.asarray(item_idx, np.int64))
        u_x, i_x = np.asarray(user_val, np.float64), np.asarray(item_val, np.float64)
        own = within_pairs(u_x[None], self.pair(user, u_idx[None], user, u_idx[None]))[0]
        item_pairs = within_pairs(i_x, self.pair(item, i_idx, item, i_idx))
        phi, weight, dist = self._cross_pairs(user, u_idx, item, i_idx)
        cross = u_x[None, :, None] * i_x[:, None, :] * phi
        return Terms(self.w0, float((user.bias[u_idx] * u_x).sum()), float(own),
                     item.bias[i_idx] * i_x, item_pairs, cross, weight, dist)

    def _cross_pairs(self, user: SideTables, u_idx: np.ndarray, item: SideTables,
                     i_idx: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """φ(j, l) (A, R, W_i) of each user column j with each item column l; GML-FM's
        weight (None without one) and distance beside it."""
        a = len(i_idx)
        users = np.broadcast_to(u_idx, (a, len(u_idx)))
        if self.kind == "transfm":  # |a_j − v_l|² for j before l, |a_l − v_j|² after
            before = self.pair(user, users, item, i_idx)
            after = np.swapaxes(self.pair(item, i_idx, user, users), 1, 2)
            late = self.after[:len(u_idx)] if len(self.after) else np.zeros(len(u_idx), bool)
            return np.where(late[None, :, None], after, before), None, None
        if self.kind == "fm":
            return self.pair(user, users, item, i_idx), None, None
        dist = distance(user.t[users][:, :, None], item.t[i_idx][:, None], self.dist)
        if self.h is None:
            return dist, None, dist
        weight = np.asarray(pair_weights(user.v[users][:, :, None], item.v[i_idx][:, None],
                                         self.h))
        return weight * dist, weight, dist
