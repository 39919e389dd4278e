"""Item-to-item similarity under a model, and the lists built from it (docs/math.md, Similar
items and Diversity).

The similarity of item a to item b is the model's own pair term between the two items' rows:

    sim(a, b) = Σ_{l ∈ a} Σ_{m ∈ b} x_l x_m φ(l, m)

with φ the family's pair value on the item side's feature tables (FM v_l · v_m; TransFM
‖a_l − v_m‖², a's features placed before b's; GML-FM w_lm D(t_l, t_m)); with GEM the tables
are the convolved ones. It is what the pair adds to a score when both items' features stand in
one row. NFM, DeepFM, xDeepFM and AFM score pairs through layers that do not split by pair,
so their similarity is the inner product of the two rows' embeddings, φ = v_l · v_m: DeepFM's
FM component exactly, and for the other three the pair value their interaction layers are
built from. It is bilinear in the two rows, so it is computed from the distinct features
involved: one query against a whole catalog is the gains g_m = Σ_{l ∈ a} x_l φ(l, m) of every
item-side feature m, then a gather of W_i of them per item; K items among themselves are
X Φ Xᵀ over their distinct features.
"""

from __future__ import annotations

import numpy as np

from bundle.layout import SQUARED
from bundle.pairs import PairValue
from bundle.reference import ReferenceScorer

PAIR_CELLS = 1 << 22  # φ entries × vector width per step: bounds the distance temporaries
FEATURE_STEP = 1 << 15  # second-side features per matrix product: bounds their float64 copy


class ItemSimilarity:
    """sim(a, b) (the module doc) for one bundle's item rows (item-side feature indices and
    values, as the catalog's `items/idx.npy` and an added item's encoded row hold them)."""

    def __init__(self, scorer: ReferenceScorer):
        """`scorer`: the bundle's numpy reference. Raises BundleError for a bundle exported
        before added items (it lacks the item features' own tables)."""
        scorer.bundle.require_item_features()
        self.side = scorer.item_side
        self.pair = scorer.pair if scorer.pair is not None else PairValue("fm")
        # the model's own pair term, or (NFM, the whole models) the embeddings' inner product
        self.own_pair_term = scorer.pair is not None
        self.n_features = len(self.side.bias)
        self._width = max(table.shape[-1] for table in (self.side.v, self.side.t, self.side.a))
        # φ as matrix products: inner products and squared distances (Manhattan and
        # Chebyshev have no such form)
        self.by_products = self.pair.kind != "gmlfm" or self.pair.distance in (*SQUARED,
                                                                              "cosine")

    def phi(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """φ(l, m) (A, C) float64 of item-side features `first` (A,), each before each of
        `second` (C,): as matrix products where the pair value has that form (inner
        products, squared distances expanded as s_l + s_m − 2 t_l · t_m, the weight
        (h ⊙ v_l) · v_m), else pair by pair in steps that keep the temporaries under
        PAIR_CELLS (Manhattan, Chebyshev)."""
        first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
        out = np.zeros((len(first), len(second)))
        if not len(first) or not len(second):
            return out
        if self.by_products:  # in steps, each a bounded float64 copy of the tables' rows
            for start in range(0, len(second), FEATURE_STEP):
                chunk = second[start:start + FEATURE_STEP]
                out[:, start:start + len(chunk)] = self._products(first, chunk)
            return out
        step = max(1, PAIR_CELLS // (len(first) * max(self._width, 1)))
        for start in range(0, len(second), step):
            chunk = second[start:start + step]
            out[:, start:start + len(chunk)] = self.pair(self.side, first[None], self.side,
                                                         chunk[None])[0]
        return out

    def _products(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """φ (A, C) through matrix products (`by_products`)."""
        side, pair = self.side, self.pair

        def rows(table: np.ndarray, features: np.ndarray) -> np.ndarray:
            return np.asarray(table[features], np.float64)

        if pair.kind == "fm":
            return rows(side.v, first) @ rows(side.v, second).T
        if pair.kind == "transfm":  # ‖a_l − v_m‖²
            a, v = rows(side.a, first), rows(side.v, second)
            return np.square(a).sum(1)[:, None] + np.square(v).sum(1)[None] - 2 * a @ v.T
        t_l, t_m = rows(side.t, first), rows(side.t, second)
        if pair.distance == "cosine":  # t holds unit vectors
            d = t_l @ t_m.T
        else:  # a squared distance
            d = np.square(t_l).sum(1)[:, None] + np.square(t_m).sum(1)[None] - 2 * t_l @ t_m.T
        if pair.h is None:
            return d
        h = np.asarray(pair.h, np.float64)
        return d * ((rows(side.v, first) * h) @ rows(side.v, second).T)

    def gains(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """g (M,) float64 of one query row idx, val (W,): g_m = Σ_l x_l φ(l, m) for every
        item-side feature m."""
        features, x = _distinct(np.asarray(idx)[None], np.asarray(val)[None])
        return x[0] @ self.phi(features, np.arange(self.n_features))

    @staticmethod
    def gather(g: np.ndarray, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """sim(query, b) (R,) float64 of rows idx, val (R, W), from the query's gains."""
        if not len(idx):
            return np.zeros(0)
        return (g[np.asarray(idx, np.int64)] * np.asarray(val, np.float64)).sum(1)

    def among(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """sim(a, b) (K, K) float64 of rows idx, val (K, W) among themselves, a before b
        (the diagonal holds each row against itself)."""
        features, x = _distinct(np.asarray(idx), np.asarray(val))
        return x @ self.phi(features, features) @ x.T


def _distinct(idx: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct features of rows idx, val (R, W) with a value, and each row's value on
    each of them (R, F) float64 (a feature twice in a row adds up, as the sum over pairs
    does)."""
    held = np.asarray(val) != 0
    features, where = np.unique(np.asarray(idx)[held], return_inverse=True)
    x = np.zeros((len(idx), len(features)))
    rows = np.broadcast_to(np.arange(len(idx))[:, None], held.shape)[held]
    np.add.at(x, (rows, where), np.asarray(val, np.float64)[held])
    return features, x


def symmetric(sim: np.ndarray) -> np.ndarray:
    """½ (sim + simᵀ): the similarity of two listed items whatever their order (only
    TransFM's differs with the order)."""
    return 0.5 * (sim + sim.T)


def intra_list_similarity(sim: np.ndarray) -> float | None:
    """The mean of sim(a, b) over the ordered pairs a ≠ b of a list (K, K) (so the mean of
    the symmetric similarity over its unordered pairs); None for fewer than two items."""
    k = len(sim)
    if k < 2:
        return None
    return float((sim.sum() - np.trace(sim)) / (k * (k - 1)))


def min_max(values: np.ndarray) -> np.ndarray:
    """values scaled onto [0, 1] by their own minimum and maximum; zeros where all equal."""
    values = np.asarray(values, np.float64)
    if not values.size:
        return values
    low, span = values.min(), values.max() - values.min()
    return (values - low) / span if span > 0 else np.zeros_like(values)


def mmr(scores: np.ndarray, sim: np.ndarray, n: int, diversity: float) -> np.ndarray:
    """Maximal marginal relevance: the order (n,) in which to take n of K candidates ranked
    best first with `scores` (K,) and their similarity `sim` (K, K, symmetric). Each step
    takes the candidate of highest (1 − λ) r_i − λ max_{j taken} s_ij, with r the scores and
    s the off-diagonal similarities each scaled onto [0, 1] over the K candidates (min_max),
    ties to the better ranked; the first step takes the best. λ = 0 is the ranking itself."""
    k = len(scores)
    n = min(n, k)
    if k == 0 or n == 0:
        return np.zeros(0, np.int64)
    relevance = min_max(scores)
    off = ~np.eye(k, dtype=bool)
    scaled = np.zeros((k, k))
    if k > 1:
        scaled[off] = min_max(sim[off])
    chosen = [0]
    left = np.ones(k, bool)
    left[0] = False
    nearest = scaled[0].copy()  # each candidate's largest similarity to those taken
    for _ in range(n - 1):
        gain = np.where(left, (1 - diversity) * relevance - diversity * nearest, -np.inf)
        best = int(np.argmax(gain))  # the first of equal gains: the better ranked
        chosen.append(best)
        left[best] = False
        nearest = np.maximum(nearest, scaled[best])
    return np.asarray(chosen, np.int64)
