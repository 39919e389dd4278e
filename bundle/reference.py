"""The numpy reference scorer of the split, score = part_U + const_I + cross(U, I) (docs/math.md).

One class per scoring family; each turns user feature rows into states and states into scores
for given candidates or for the whole catalog. model.onnx computes the same from the same
tables; tests hold both to the trained torch model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bundle import format as fmt
from bundle.errors import BundleError
from bundle.layout import PAIRWISE_ONLY, StateLayout
from bundle.loaded import Bundle
from bundle.mlp import dense_layers, mlp
from bundle.pairs import distance, pair_weights, within_pairs
from bundle.whole import WholeModel

ITEM_CHUNK = 16384  # item features per step of FeaturePairScorer's (B, R, M) temporaries


class ReferenceScorer:
    """Base: the state layout, the bundle's catalog rows and whole-catalog top-n."""

    chunk_rows = 1 << 16  # (user, item) rows per step of the default catalog_scores

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.layout = StateLayout.of(bundle.scoring)
        self.n_items = len(bundle.catalog)

    @property
    def state_size(self) -> int:
        return self.layout.size

    def user_state(self, idx: np.ndarray, val: np.ndarray, pairs: np.ndarray | None = None
                   ) -> np.ndarray:
        """User-side rows idx (B, W_u), val (B, W_u) -> states (B, D) float32.

        `pairs` (B,), where given, is the rows' own pair term Σ_{i<j} x_i x_j φ(i, j),
        already summed (bundle/incremental.py keeps it up to date one interaction at a
        time); the state then costs O(W_u·k) instead of O(W_u²·k).
        """
        raise NotImplementedError

    def pair_matrix(self, idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray | None:
        """φ(a, b) (B, A, C) of the features idx_a (B, A), each placed before each of
        idx_b (B, C) in the row; None for a family whose state holds no pair term."""
        return None

    def own_pairs(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """Σ_{i<j} x_i x_j φ(i, j) of rows (B, W_u) -> (B,); 0 without a pair term."""
        phi = self.pair_matrix(idx, idx)
        if phi is None:
            return np.zeros(len(idx), np.float32)
        return within_pairs(val.astype(np.float32), phi)

    def score(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """States (B, D), catalog positions (B, C) -> scores (B, C)."""
        raise NotImplementedError

    def catalog_scores(self, state: np.ndarray) -> np.ndarray:
        """States (B, D) -> the score of every catalog item (B, N)."""
        return chunked_catalog_scores(self.score, state, self.n_items, self.chunk_rows)

    def top_n(self, state: np.ndarray, n: int, exclude: Sequence[np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """The n best catalog positions per user, best first, leaving out `exclude[b]`."""
        return top_n_of(self.catalog_scores(state), n, exclude)


def chunked_catalog_scores(score: Callable[[np.ndarray, np.ndarray], np.ndarray],
                           state: np.ndarray, n_items: int, chunk_rows: int) -> np.ndarray:
    """(B, N) scores through `score(state, candidates)`, at most chunk_rows pairs a call."""
    step, chunks = max(1, chunk_rows // len(state)), []
    for start in range(0, n_items, step):
        items = np.arange(start, min(start + step, n_items))
        chunks.append(score(state, np.broadcast_to(items, (len(state), len(items)))))
    return np.concatenate(chunks, axis=1)


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


class LinearScorer(ReferenceScorer):
    """fm, transfm and gmlfm without its weight: cross(U, I) = matrix_I · query_U."""

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        scoring = bundle.scoring
        self.kind, self.distance = scoring["kind"], scoring.get("distance", "")  # gmlfm's
        self.after = np.asarray(scoring.get("after_items", []), bool)
        self.bias = bundle.table("user_bias")
        self.v = bundle.table("user_t" if self.kind == "gmlfm" else "user_v")
        self.a = bundle.table("user_a") if self.kind == "transfm" else None  # transfm alone
        self.const, self.matrix = bundle.array(fmt.ITEM_CONST), bundle.item_table("matrix")

    def pair_matrix(self, idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray:
        v_b = self.v[idx_b]
        if self.kind == "fm":
            return np.einsum("bik,bjk->bij", self.v[idx_a], v_b)
        if self.a is not None:  # transfm: |a_i − v_j|², i before j
            return distance(self.a[idx_a][:, :, None], v_b[:, None], "euclidean")
        # gmlfm without weight; v holds t (unit vectors for cosine)
        return distance(self.v[idx_a][:, :, None], v_b[:, None], self.distance)

    def user_state(self, idx: np.ndarray, val: np.ndarray, pairs: np.ndarray | None = None
                   ) -> np.ndarray:
        x, v = val.astype(np.float32), self.v[idx]  # (B, R), (B, R, k)
        lin = (self.bias[idx] * x).sum(1)
        xv = (x[..., None] * v).sum(1)  # (B, k)
        if self.kind == "fm":
            parts = [xv]
        elif self.a is not None:  # transfm
            a = self.a[idx]
            before, after = x * ~self.after, x * self.after
            parts = [(before * np.square(a).sum(-1) + after * np.square(v).sum(-1)).sum(1),
                     before.sum(1), -2 * (before[..., None] * a).sum(1)]
            if self.after.any():
                parts += [after.sum(1), -2 * (after[..., None] * v).sum(1)]
        else:
            parts = [xv] if self.distance == "cosine" else [
                (x * np.square(v).sum(-1)).sum(1), x.sum(1), -2 * xv]
        query = np.concatenate([q.reshape(len(x), -1) for q in parts], axis=1)
        pairs = self.own_pairs(idx, x) if pairs is None else pairs
        return self.layout.pack({"part": lin + pairs, "query": query})

    def score(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        query = self.layout.view(state, "query", -1)
        cross = np.einsum("bcm,bm->bc", self.matrix[candidates], query)
        return self.layout.view(state, "part", 1) + self.const[candidates] + cross

    def catalog_scores(self, state: np.ndarray) -> np.ndarray:
        query = self.layout.view(state, "query", -1)
        return self.layout.view(state, "part", 1) + self.const + query @ self.matrix.T


class FeaturePairScorer(ReferenceScorer):
    """GML-FM with its weight (and Manhattan / Chebyshev without): the cross term is a gain
    g_l per item-side feature l, Σ_j x_j w_jl D(t_j, t_l), gathered per item."""

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        scoring = bundle.scoring
        self.distance, self.weighted = scoring["distance"], scoring["weighted"]
        self.k, self.width = scoring["dim"], scoring["user_width"]
        self.h = bundle.table("h") if self.weighted else None
        self.bias, self.v, self.t = (bundle.table(n) for n in ("user_bias", "user_v", "user_t"))
        self.item_v = bundle.item_table("feature_v") if self.weighted else None
        self.item_t = bundle.item_table("feature_t")
        self.item_s = bundle.item_table("feature_s") if self.layout.has("a") else None
        self.item_idx, self.item_val = bundle.array(fmt.ITEM_IDX), bundle.array(fmt.ITEM_VAL)
        self.const = bundle.array(fmt.ITEM_CONST)

    def pair_matrix(self, idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray:
        v_a, v_b = self.v[idx_a][:, :, None], self.v[idx_b][:, None]
        t_a, t_b = self.t[idx_a][:, :, None], self.t[idx_b][:, None]
        return pair_weights(v_a, v_b, self.h) * distance(t_a, t_b, self.distance)

    def user_state(self, idx: np.ndarray, val: np.ndarray, pairs: np.ndarray | None = None
                   ) -> np.ndarray:
        x, v, t = val.astype(np.float32), self.v[idx], self.t[idx]
        pairs = self.own_pairs(idx, x) if pairs is None else pairs
        parts = {"part": (self.bias[idx] * x).sum(1) + pairs, "x": x, "t": t}
        if self.layout.has("a"):
            xv = x[..., None] * v
            parts |= {"a": self.h * xv.sum(1),
                      "b": self.h * (np.square(t).sum(-1)[..., None] * xv).sum(1)}
        if self.weighted:
            parts["hv"] = v * self.h
        return self.layout.pack(parts)

    def gains(self, state: np.ndarray, features: np.ndarray) -> np.ndarray:
        """g (B, M) for item-side features `features` (M,)."""
        lay, width = self.layout, self.width
        x, t = lay.view(state, "x", width), lay.view(state, "t", width, -1)
        item_t = self.item_t[features]  # (M, k')
        item_v = None if self.item_v is None else self.item_v[features]  # (M, k): weighted
        weight = 1.0 if item_v is None else np.einsum(
            "brk,mk->brm", lay.view(state, "hv", width, -1), item_v)
        if self.distance in PAIRWISE_ONLY:
            pair = distance(t[:, :, None], item_t[None, None], self.distance)  # (B, R, M)
        else:
            pair = np.einsum("brk,mk->brm", t, item_t)
        g = np.einsum("br,brm->bm", x, weight * pair)
        if self.item_s is not None and item_v is not None:
            # squared distances (weighted here): D = s_j + s_l − 2 t_j·t_l, spread out
            g = self.item_s[features] * (lay.view(state, "a", -1) @ item_v.T) \
                + lay.view(state, "b", -1) @ item_v.T - 2 * g
        return g

    def score(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        features, where = np.unique(self.item_idx[candidates], return_inverse=True)
        g = self.gains(state, features)  # (B, M)
        rows = where.reshape(*candidates.shape, -1)  # (B, C, W_i) into g's columns
        cross = (np.take_along_axis(g, rows.reshape(len(g), -1), 1).reshape(rows.shape)
                 * self.item_val[candidates]).sum(-1)
        return self.layout.view(state, "part", 1) + self.const[candidates] + cross

    def catalog_scores(self, state: np.ndarray) -> np.ndarray:
        n_features = len(self.item_t)
        g = np.concatenate([self.gains(state, np.arange(s, min(s + ITEM_CHUNK, n_features)))
                            for s in range(0, n_features, ITEM_CHUNK)], axis=1)
        cross = (g[:, self.item_idx] * self.item_val).sum(-1)  # (B, N)
        return self.layout.view(state, "part", 1) + self.const + cross


class NFMScorer(ReferenceScorer):
    """NFM: the additive (S, Q) of user and item, then the MLP on every candidate."""

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        self.k = bundle.scoring["dim"]
        self.bias, self.v = bundle.table("user_bias"), bundle.table("user_v")
        self.const = bundle.array(fmt.ITEM_CONST)
        self.item_s, self.item_q = bundle.item_table("s"), bundle.item_table("q")
        self.layers = dense_layers(bundle)

    def user_state(self, idx: np.ndarray, val: np.ndarray, pairs: np.ndarray | None = None
                   ) -> np.ndarray:
        x, v = val.astype(np.float32), self.v[idx]
        return self.layout.pack({"part": (self.bias[idx] * x).sum(1),
                                 "s": (x[..., None] * v).sum(1),
                                 "q": (np.square(x)[..., None] * np.square(v)).sum(1)})

    def score(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        s = self.layout.view(state, "s", 1, self.k) + self.item_s[candidates]  # (B, C, k)
        q = self.layout.view(state, "q", 1, self.k) + self.item_q[candidates]
        deep = mlp(0.5 * (np.square(s) - q), self.layers)[..., 0]
        return self.layout.view(state, "part", 1) + self.const[candidates] + deep


class WholeScorer(ReferenceScorer):
    """DeepFM, xDeepFM, AFM: no split; each candidate's whole row goes through the model."""

    chunk_rows = 2048  # xDeepFM's CIN holds (rows, H·F, k) per layer

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        self.width = bundle.scoring["user_width"]
        self.model = WholeModel.from_bundle(bundle)

    def user_state(self, idx: np.ndarray, val: np.ndarray, pairs: np.ndarray | None = None
                   ) -> np.ndarray:
        return self.layout.pack({"idx": idx.astype(np.float32), "val": val})

    def score(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        idx = self.layout.view(state, "idx", self.width).astype(np.int64)
        return self.model(idx, self.layout.view(state, "val", self.width), candidates)


FAMILIES = {fmt.LINEAR: LinearScorer, fmt.FEATURE_PAIRS: FeaturePairScorer,
            fmt.NFM: NFMScorer, fmt.WHOLE: WholeScorer}


def reference_scorer(bundle: Bundle) -> ReferenceScorer:
    """The numpy scorer for a bundle's family."""
    family = bundle.scoring.get("family")
    if family not in FAMILIES:
        raise BundleError(bundle.path / fmt.MANIFEST, f"unknown scoring family {family!r}")
    return FAMILIES[family](bundle)
