"""The numpy reference scorer of the split, score = part_U + const_I + cross(U, I) (docs/math.md).

One class per scoring family; each turns user feature rows into states, item feature rows
into item parts (bundle/item_parts.py), and states and item parts into scores: the catalog's
parts as exported, or those of items the catalog lacks, computed from their rows here.
model.onnx computes the same from the same tables; tests hold both to the trained torch model.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from bundle import format as fmt
from bundle.errors import BundleError
from bundle.item_parts import ItemParts
from bundle.layout import PAIRWISE_ONLY, StateLayout
from bundle.loaded import Bundle
from bundle.mlp import dense_layers, mlp
from bundle.pairs import PairValue, SideTables, distance, within_pairs
from bundle.ranking import chunked_catalog_scores, top_n_of
from bundle.whole import WholeModel

ITEM_CHUNK = 16384  # item features per step of FeaturePairScorer's (B, R, M) temporaries
ROW_CHUNK = 2048  # item rows per step of item_parts' (A, W, W, k) pair temporaries


class ReferenceScorer:
    """Base: the state layout, the catalog's item parts, item parts of any rows, top n."""

    chunk_rows = 1 << 16  # (user, item) rows per step of the default score_items
    pair: PairValue | None = None  # φ of a family whose state holds a pair term

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.layout = StateLayout.of(bundle.scoring)
        self.user = SideTables.load(bundle.table, "user_", fmt.feature_tables(bundle.scoring))
        self.items = ItemParts({name: bundle.item_table(name)
                                for name in fmt.ITEM_PARTS[bundle.scoring["family"]]})
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
        """φ(a, b) (B, A, C) of the user-side features idx_a (B, A), each placed before each
        of idx_b (B, C) in the row; None for a family whose state holds no pair term."""
        return None if self.pair is None else self.pair(self.user, idx_a, self.user, idx_b)

    def own_pairs(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """Σ_{i<j} x_i x_j φ(i, j) of rows (B, W_u) -> (B,); 0 without a pair term."""
        phi = self.pair_matrix(idx, idx)
        if phi is None:
            return np.zeros(len(idx), np.float32)
        return within_pairs(val.astype(np.float32), phi)

    @cached_property
    def item_side(self) -> SideTables:
        """The item features' own tables (items/feature_*.npy), which added items need."""
        return SideTables.load(self.bundle.item_table, "feature_",
                               fmt.feature_tables(self.bundle.scoring))

    def item_parts(self, idx: np.ndarray, val: np.ndarray) -> ItemParts:
        """Item-side rows idx (A, W_i) int, val (A, W_i) -> their parts (fmt.ITEM_PARTS), the
        model's own item-only forward as export computed the catalog's; BundleError for a
        bundle exported before added items."""
        self.bundle.require_item_features()
        idx, val = np.asarray(idx, np.int32), np.asarray(val, np.float32)
        return ItemParts.concat([ItemParts(self.row_parts(idx[s:s + ROW_CHUNK],
                                                          val[s:s + ROW_CHUNK]))
                                 for s in range(0, max(len(idx), 1), ROW_CHUNK)])

    def row_parts(self, idx: np.ndarray, val: np.ndarray) -> dict[str, np.ndarray]:
        """item_parts of a chunk of rows, by the family."""
        raise NotImplementedError

    def item_const(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """const (A,): w0 + Σ x_i w_i + the row's own pair term Σ_{i<j} x_i x_j φ(i, j)."""
        side = self.item_side
        pairs = 0.0 if self.pair is None else within_pairs(val, self.pair(side, idx, side, idx))
        return (self.bundle.table("w0")[0] + (side.bias[idx] * val).sum(1) + pairs
                ).astype(np.float32)

    def score(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """States (B, D), catalog positions (B, C) -> scores (B, C)."""
        return self.score_parts(state, self.items, candidates)

    def score_parts(self, state: np.ndarray, parts: ItemParts, rows: np.ndarray) -> np.ndarray:
        """States (B, D), rows (B, C) of `parts` -> scores (B, C)."""
        raise NotImplementedError

    def score_items(self, state: np.ndarray, parts: ItemParts) -> np.ndarray:
        """States (B, D) -> the score of every item of `parts` (B, A)."""
        return chunked_catalog_scores(lambda s, rows: self.score_parts(s, parts, rows),
                                      state, len(parts), self.chunk_rows)

    def catalog_scores(self, state: np.ndarray) -> np.ndarray:
        """States (B, D) -> the score of every catalog item (B, N)."""
        return self.score_items(state, self.items)

    def top_n(self, state: np.ndarray, n: int, exclude: Sequence[np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """The n best catalog positions per user, best first, leaving out `exclude[b]`."""
        return top_n_of(self.catalog_scores(state), n, exclude)


def moments(x: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Σ x, Σ x |w|², Σ x w over the columns of rows x (B, W), vectors w (B, W, k)."""
    return x.sum(1), (x * np.square(vectors).sum(-1)).sum(1), (x[..., None] * vectors).sum(1)


class LinearScorer(ReferenceScorer):
    """fm, transfm and gmlfm without its weight: cross(U, I) = matrix_I · query_U."""

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        scoring = bundle.scoring
        self.kind, self.distance = scoring["kind"], scoring.get("distance", "")  # gmlfm's
        self.after = np.asarray(scoring.get("after_items", []), bool)  # transfm's
        self.pair = PairValue(self.kind, self.distance)

    def user_state(self, idx: np.ndarray, val: np.ndarray, pairs: np.ndarray | None = None
                   ) -> np.ndarray:
        x, user = val.astype(np.float32), self.user
        lin = (user.bias[idx] * x).sum(1)
        if self.kind == "fm":
            parts = [moments(x, user.v[idx])[2]]
        elif self.kind == "transfm":  # the user's columns before the item's, and after
            before, after = x * ~self.after, x * self.after
            x_b, aa_b, a_b = moments(before, user.a[idx])
            x_a, vv_a, v_a = moments(after, user.v[idx])
            parts = [aa_b + vv_a, x_b, -2 * a_b]
            if self.after.any():
                parts += [x_a, -2 * v_a]
        elif self.distance == "cosine":  # t holds unit vectors u
            parts = [moments(x, user.t[idx])[2]]
        else:
            x_sum, xs, xt = moments(x, user.t[idx])
            parts = [xs, x_sum, -2 * xt]
        query = np.concatenate([q.reshape(len(x), -1) for q in parts], axis=1)
        pairs = self.own_pairs(idx, x) if pairs is None else pairs
        return self.layout.pack({"part": lin + pairs, "query": query})

    def row_parts(self, idx: np.ndarray, val: np.ndarray) -> dict[str, np.ndarray]:
        side = self.item_side
        if self.kind == "fm":
            matrix = [moments(val, side.v[idx])[2]]
        elif self.kind == "transfm":  # the item as the later side, and as the earlier one
            matrix = list(moments(val, side.v[idx]))
            if self.after.any():
                matrix += list(moments(val, side.a[idx]))[1:]
        elif self.distance == "cosine":
            matrix = [moments(val, side.t[idx])[2]]
        else:
            matrix = list(moments(val, side.t[idx]))
        # each moment as (A, width): a width of its own, so that no rows (A = 0) stay (0, 1)
        return {"const": self.item_const(idx, val), "matrix": np.concatenate(
            [m.reshape(len(val), int(np.prod(m.shape[1:]))) for m in matrix],
            axis=1).astype(np.float32)}

    def score_parts(self, state: np.ndarray, parts: ItemParts, rows: np.ndarray) -> np.ndarray:
        query = self.layout.view(state, "query", -1)
        cross = np.einsum("bcm,bm->bc", parts["matrix"][rows], query)
        return self.layout.view(state, "part", 1) + parts["const"][rows] + cross

    def score_items(self, state: np.ndarray, parts: ItemParts) -> np.ndarray:
        query = self.layout.view(state, "query", -1)
        return self.layout.view(state, "part", 1) + parts["const"] + query @ parts["matrix"].T


class FeaturePairScorer(ReferenceScorer):
    """GML-FM with its weight (and Manhattan / Chebyshev without): the cross term is a gain
    g_l per item-side feature l, Σ_j x_j w_jl D(t_j, t_l), gathered per item."""

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        scoring = bundle.scoring
        self.distance, self.weighted = scoring["distance"], scoring["weighted"]
        self.width = scoring["user_width"]
        self.h = bundle.table("h") if self.weighted else None
        self.pair = PairValue("gmlfm", self.distance, self.h)
        self.item_v = bundle.item_table("feature_v") if self.weighted else None
        self.item_t = bundle.item_table("feature_t")
        self.item_s = bundle.item_table("feature_s") if self.layout.has("a") else None

    def user_state(self, idx: np.ndarray, val: np.ndarray, pairs: np.ndarray | None = None
                   ) -> np.ndarray:
        x, t = val.astype(np.float32), self.user.t[idx]
        pairs = self.own_pairs(idx, x) if pairs is None else pairs
        parts = {"part": (self.user.bias[idx] * x).sum(1) + pairs, "x": x, "t": t}
        if self.weighted:
            v = self.user.v[idx]
            parts["hv"] = v * self.h
            if self.layout.has("a"):
                xv = x[..., None] * v
                parts |= {"a": self.h * xv.sum(1),
                          "b": self.h * (np.square(t).sum(-1)[..., None] * xv).sum(1)}
        return self.layout.pack(parts)

    def row_parts(self, idx: np.ndarray, val: np.ndarray) -> dict[str, np.ndarray]:
        return {"const": self.item_const(idx, val), "idx": idx, "val": val}

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

    def cross(self, state: np.ndarray, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """Σ_w val_w g_{idx_w} of item rows: idx, val (B, C, W_i) per user -> (B, C), or
        (A, W_i) for every user -> (B, A). Gains only of the features the rows hold."""
        used = np.zeros(len(self.item_t), bool)
        used[idx.ravel()] = True
        features = np.flatnonzero(used)
        column = np.zeros(len(self.item_t), np.int64)
        column[features] = np.arange(len(features))
        g = np.concatenate([np.zeros((len(state), 0), np.float32)] + [
            self.gains(state, features[s:s + ITEM_CHUNK])
            for s in range(0, len(features), ITEM_CHUNK)], axis=1)  # (B, M)
        where = column[idx]
        if idx.ndim == 2:
            return (g[:, where] * val).sum(-1)
        gathered = np.take_along_axis(g, where.reshape(len(g), -1), 1).reshape(where.shape)
        return (gathered * val).sum(-1)

    def score_parts(self, state: np.ndarray, parts: ItemParts, rows: np.ndarray) -> np.ndarray:
        cross = self.cross(state, parts["idx"][rows], parts["val"][rows])
        return self.layout.view(state, "part", 1) + parts["const"][rows] + cross

    def score_items(self, state: np.ndarray, parts: ItemParts) -> np.ndarray:
        cross = self.cross(state, np.asarray(parts["idx"]), parts["val"])
        return self.layout.view(state, "part", 1) + parts["const"] + cross


class NFMScorer(ReferenceScorer):
    """NFM: the additive (S, Q) of user and item, then the MLP on every candidate."""

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        self.k = bundle.scoring["dim"]
        self.layers = dense_layers(bundle)

    def user_state(self, idx: np.ndarray, val: np.ndarray, pairs: np.ndarray | None = None
                   ) -> np.ndarray:
        x, v = val.astype(np.float32), self.user.v[idx]
        return self.layout.pack({"part": (self.user.bias[idx] * x).sum(1),
                                 "s": (x[..., None] * v).sum(1),
                                 "q": (np.square(x)[..., None] * np.square(v)).sum(1)})

    def row_parts(self, idx: np.ndarray, val: np.ndarray) -> dict[str, np.ndarray]:
        v = self.item_side.v[idx]  # the item's own pairs go through the MLP, with the user's
        return {"const": self.item_const(idx, val), "s": (val[..., None] * v).sum(1),
                "q": (np.square(val)[..., None] * np.square(v)).sum(1)}

    def score_parts(self, state: np.ndarray, parts: ItemParts, rows: np.ndarray) -> np.ndarray:
        s = self.layout.view(state, "s", 1, self.k) + parts["s"][rows]  # (B, C, k)
        q = self.layout.view(state, "q", 1, self.k) + parts["q"][rows]
        deep = mlp(0.5 * (np.square(s) - q), self.layers)[..., 0]
        return self.layout.view(state, "part", 1) + parts["const"][rows] + deep


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

    def row_parts(self, idx: np.ndarray, val: np.ndarray) -> dict[str, np.ndarray]:
        return {"idx": idx, "val": val}

    def score_parts(self, state: np.ndarray, parts: ItemParts, rows: np.ndarray) -> np.ndarray:
        idx = self.layout.view(state, "idx", self.width).astype(np.int64)
        return self.model(idx, self.layout.view(state, "val", self.width),
                          parts["idx"][rows], parts["val"][rows])


FAMILIES = {fmt.LINEAR: LinearScorer, fmt.FEATURE_PAIRS: FeaturePairScorer,
            fmt.NFM: NFMScorer, fmt.WHOLE: WholeScorer}


def reference_scorer(bundle: Bundle) -> ReferenceScorer:
    """The numpy scorer for a bundle's family."""
    family = bundle.scoring.get("family")
    if family not in FAMILIES:
        raise BundleError(bundle.path / fmt.MANIFEST, f"unknown scoring family {family!r}")
    return FAMILIES[family](bundle)
