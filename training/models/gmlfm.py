"""GML-FM: an FM whose pair term is a learned distance times a learned transformation weight.

    ŷ(x) = w0 + Σ_i w_i x_i + Σ_{i<j} w_ij D(t_i, t_j) x_i x_j,   t = T(v),  w_ij = hᵀ(v_i ⊙ v_j)

Exact forms of the pair term (docs/math.md, GML-FM), all equal to the definition:
- `pairwise`  the (W × W) distance matrix per instance, O(W² k); every distance.
- `gram`      the W × W distance (cosine: Gram) matrix of each instance built from t tᵀ in one
              batched matmul, its quadratic form in x v, a hand-written backward; O(W² k).
- `additive`  per-feature sums into a state, O(W k k'); what serving caches per user.
Without the weight the squared-distance term is additive in O(W k'), the cheapest of all.
`form="auto"` picks the cheapest exact form for the instance width W.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from training.errors import ConfigError
from training.models.base import AdditiveState, DropoutOptions, FeatureModel
from training.models.gram import gram_square, squared_distance_pairs
from training.models.transforms import DeepTransform, Identity, Mahalanobis
from training.options import Bounds, option

Distance = Literal["euclidean", "mahalanobis", "dnn", "manhattan", "chebyshev", "cosine"]
Form = Literal["auto", "pairwise", "gram", "additive"]
DISTANCES: tuple[str, ...] = get_args(Distance)
ADDITIVE = ("euclidean", "mahalanobis", "dnn", "cosine")  # Minkowski p = 1, ∞ have no sum form


@dataclass(frozen=True)
class GMLFMOptions(DropoutOptions):
    distance: Distance = option("dnn", "GML-FM metric on the transformed vectors")
    layers: int = option(1, "GML-FM DNN transform depth (tanh; 0 = Euclidean)", Bounds(0, 8))
    weight: bool = option(True, "GML-FM's transformation weight hᵀ(v_i ⊙ v_j) on each pair")
    form: Form = option("auto", "exact form of the pair term: auto picks the cheapest for the "
                        "instance width")
    transform_init: Literal["identity", "paper"] = option(
        "identity", "GML-FM's transform starts at the identity (every metric Euclidean) or at "
        "the paper's N(0, s²)")

    def __post_init__(self) -> None:
        if self.form in ("gram", "additive") and self.distance not in ADDITIVE:
            raise ConfigError(f"--form {self.form}: the {self.distance} distance has only the "
                              "pairwise form")
        deep = self.distance not in ("euclidean", "mahalanobis") and self.layers >= 2
        if self.dropout > 0 and not self.weight and not deep:
            raise ConfigError("--dropout: gmlfm without its weight has no dropout below 2 DNN "
                              "layers (it drops the weighted pair vector, or between DNN "
                              "layers); leave it at 0")


@dataclass
class GMLState(AdditiveState):
    """Additive summary of a set of features (B = batch). Unused parts are empty tensors."""

    lin: torch.Tensor   # (B,)       Σ x w
    s1: torch.Tensor    # (B, k)     Σ x v
    s2: torch.Tensor    # (B, k)     Σ x s v,   s = |t|²
    b: torch.Tensor     # (B, k, k') Σ x v tᵀ   (cosine: Σ x v uᵀ, u = t / |t|)
    x: torch.Tensor     # (B,)       Σ x
    xs: torch.Tensor    # (B,)       Σ x s
    t: torch.Tensor     # (B, k')    Σ x t      (cosine: Σ x u)
    diag: torch.Tensor  # cosine's self pairs: (B, k) Σ x² v ⊙ v with weight, (B,) Σ x² without


@dataclass
class PairState:
    """Manhattan and Chebyshev distances have no additive summary: a feature set keeps its own
    score and its vectors, and a user's set meets an item's through their W_u × W_i cross
    pairs, O(W_u W_i k) per candidate instead of the whole union's O((W_u + W_i)² k)."""

    within: torch.Tensor  # (B,)        Σ w x + the set's own pair terms
    x: torch.Tensor       # (B, W)
    v: torch.Tensor       # (B, W, k)
    t: torch.Tensor       # (B, W, k')


class GMLFM(FeatureModel):
    """Built from checked GMLFMOptions (the registry does), so it trusts its arguments."""

    def __init__(self, n_features: int, dim: int, distance: Distance = "dnn", layers: int = 1,
                 weight: bool = True, dropout: float = 0.0, init_std: float = 0.01,
                 form: Form = "auto", transform_init: str = "identity"):
        super().__init__(n_features, dim, init_std)
        self.distance, self.form = distance, form
        self.transform = _make_transform(distance, dim, layers, dropout,
                                         None if transform_init == "identity" else init_std)
        self.h = nn.Parameter(torch.empty(dim).normal_(0.0, init_std)) if weight else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """idx, val (B, W) -> scores (B,)."""
        form = {"pairwise": self.pairwise, "gram": self.gram, "additive": self.additive}
        return self.w0 + self.linear(idx, val) + form[self.cheapest_form(idx.shape[1])](idx, val)

    def cheapest_form(self, width: int) -> str:
        if self.form != "auto":
            return self.form
        if self.distance not in ADDITIVE:
            return "pairwise"
        # gram costs ~W² k per instance, additive ~W k k' (k' = k) but with heavier passes;
        # measured (bench/gmlfm_forms.py, k = 16 and 64) gram wins up to W ≈ 1.5 k
        return "gram" if self.h is not None and width <= 1.5 * self.embedding.embedding_dim \
            else "additive"

    def vectors(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v (B, W, k) and t = T(v) (B, W, k'). T runs once per distinct feature in the batch,
        not once per occurrence: a batch repeats its few gender/age/genre features many times."""
        if isinstance(self.transform, Identity):
            v = self.embed(idx)
            return v, v
        distinct, where = torch.unique(idx, return_inverse=True)
        v_distinct = self.embed(distinct)  # (U, k)
        return (nn.functional.embedding(where, v_distinct),
                nn.functional.embedding(where, self.transform(v_distinct)))

    def _weighted(self, vector: torch.Tensor) -> torch.Tensor:
        """The k-vector pair term, dropout on it as on FM's, summed."""
        return self.dropout(vector * self.h).sum(-1)

    # ---- pairwise: O(W² k), every distance -------------------------------------------------
    def pairwise(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        v, t = self.vectors(idx)
        width = idx.shape[1]
        upper = torch.triu(torch.ones(width, width, dtype=torch.bool, device=idx.device), 1)
        coef = val.unsqueeze(2) * val.unsqueeze(1) * upper * self._pair_distance(t)  # (B, W, W)
        if self.h is None:
            return coef.sum((1, 2))
        return self._weighted((v * torch.bmm(coef, v)).sum(1))  # Σ_{i<j} c_ij v_i ⊙ v_j

    def _pair_distance(self, t: torch.Tensor) -> torch.Tensor:
        if self.distance == "manhattan":
            return torch.cdist(t, t, p=1)
        if self.distance == "chebyshev":
            return (t.unsqueeze(2) - t.unsqueeze(1)).abs().amax(-1)
        if self.distance == "cosine":
            u = _unit(t)
            return torch.bmm(u, u.transpose(1, 2))
        sq = t.square().sum(-1)  # (B, W)
        return sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * torch.bmm(t, t.transpose(1, 2))

    # ---- gram: O(W² k) through the instance's W × W distance or Gram matrix -------------
    def gram(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        if self.h is None:
            return self.additive(idx, val)
        v, t = self.vectors(idx)
        xv = val.unsqueeze(-1) * v  # (B, W, k)
        if self.distance == "cosine":  # D = u·u with D_ii = 1: take the self pairs back out
            return self._weighted(0.5 * (gram_square(xv, _unit(t)) - xv.square().sum(1)))
        return self._weighted(squared_distance_pairs(xv, t))

    # ---- additive: O(W k k'), the serving split --------------------------------------------
    def state(self, idx: torch.Tensor, val: torch.Tensor) -> GMLState | PairState:
        """What serving caches for a set of features: the additive summary, or for Manhattan
        and Chebyshev the set's own score and vectors."""
        v, t = self.vectors(idx)
        if self.distance not in ADDITIVE:
            return PairState(self.linear(idx, val) + self.pairwise(idx, val), val, v, t)
        x = val.unsqueeze(-1)  # (B, W, 1)
        cosine, weighted = self.distance == "cosine", self.h is not None
        t_used = _unit(t) if cosine else t
        s = t.square().sum(-1, keepdim=True)  # (B, W, 1)
        return GMLState(
            lin=self.linear(idx, val), s1=(x * v).sum(1), s2=(x * s * v).sum(1),
            b=torch.einsum("bwk,bwc->bkc", x * v, t_used) if weighted else v.new_zeros(0, 0, 0),
            x=val.sum(1), xs=(x * s).sum((1, 2)), t=(x * t_used).sum(1),
            diag=_self_pairs(v, val, weighted) if cosine else val.new_zeros(0))

    def pair_vector(self, state: GMLState) -> torch.Tensor:
        """The pair term before h: a k-vector with the weight, a (B, 1) scalar without."""
        cosine = self.distance == "cosine"
        if self.h is None:
            if cosine:
                return (0.5 * (state.t.square().sum(-1) - state.diag)).unsqueeze(-1)
            return (state.x * state.xs - state.t.square().sum(-1)).unsqueeze(-1)
        b_sq = state.b.square().sum(-1)  # (B, k)
        if cosine:
            return 0.5 * (b_sq - state.diag)
        return state.s1 * state.s2 - b_sq

    def additive(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        vector = self.pair_vector(self.state(idx, val))
        return self._weighted(vector) if self.h is not None else vector.sum(-1)

    def score_state(self, state: GMLState) -> torch.Tensor:
        """Score of the union of features a state summarises (eval mode: no dropout)."""
        vector = self.pair_vector(state)
        return self.w0 + state.lin + (vector * self.h if self.h is not None else vector).sum(-1)

    def combine(self, user: GMLState | PairState, item: GMLState | PairState) -> torch.Tensor:
        """Score of each user-item union; a batch of one on either side broadcasts."""
        if isinstance(user, PairState) and isinstance(item, PairState):
            return self.w0 + user.within + item.within + self.cross(user, item)
        return self.score_state(user + item)

    def cross(self, user: PairState, item: PairState) -> torch.Tensor:
        """Σ_{i ∈ user, j ∈ item} w_ij D(t_i, t_j) x_i x_j (eval mode: no dropout)."""
        size = max(len(user.t), len(item.t))  # cdist needs equal batch sizes
        user_t, item_t = user.t.expand(size, -1, -1), item.t.expand(size, -1, -1)
        if self.distance == "manhattan":
            dist = torch.cdist(user_t, item_t, p=1)
        else:
            dist = (user_t.unsqueeze(2) - item_t.unsqueeze(1)).abs().amax(-1)
        coef = user.x.unsqueeze(2) * item.x.unsqueeze(1) * dist  # (B, W_u, W_i)
        if self.h is None:
            return coef.sum((1, 2))
        return ((user.v * torch.matmul(coef, item.v)).sum(1) * self.h).sum(-1)


def _self_pairs(v: torch.Tensor, val: torch.Tensor, weighted: bool) -> torch.Tensor:
    """Σ x² (v ⊙ v) (B, k) or Σ x² (B,): the i = j terms cosine's D(v, v) = 1 brings in."""
    x2 = val.square()
    return (x2.unsqueeze(-1) * v.square()).sum(1) if weighted else x2.sum(1)


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _make_transform(distance: str, dim: int, layers: int, dropout: float,
                    init_std: float | None) -> nn.Module:
    """init_std None: the transform starts at the identity; else at the paper's N(0, s²)."""
    if distance == "euclidean":
        return Identity()
    if distance == "mahalanobis":
        return Mahalanobis(dim, init_std)
    return DeepTransform(dim, layers, dropout, init_std)
