"""Translation-based factorization machine (Pasricha & McAuley, RecSys 2018).

    ŷ(x) = w0 + Σ_i w_i x_i + Σ_{i<j} x_i x_j |a_i − v_j|²,   a_i = v_i + v'_i

v' is a second per-feature table of translation vectors; i < j is column order, so the pair
term is not symmetric and the model depends on which columns come first (users before items).
Expanding the square, each pair needs only x_i, |a_i|², a_i from the earlier column and x_j,
|v_j|², v_j from the later one, so two exact forms exist:
  `pairwise`: the (W × W) distance matrix, masked to i < j,             O(W² k)
  `prefix`:   exclusive prefix sums over columns of x, x|a|², x a,       O(W k)
and the same sums give an ordered user/item split (see TransFMState).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from training.models.base import EmbeddingOptions, FeatureModel
from training.options import option

Form = Literal["auto", "pairwise", "prefix"]


@dataclass(frozen=True)
class TransFMOptions(EmbeddingOptions):
    """No dropout: the pair term is a sum of distances, with no vector to drop from."""

    form: Form = option("auto", "exact form of the pair term: auto picks the cheapest for the "
                        "instance width")


@dataclass
class TransFMState:
    """Summary of an ordered set of columns (B = batch).

    `a + b` is the state of a's columns followed by b's: sums add and the pair term gains
    cross(a, b) = Σ_{i∈a, j∈b} x_i x_j |a_i − v_j|². It is associative but NOT commutative.
    """

    lin: torch.Tensor   # (B,)    Σ x w
    pair: torch.Tensor  # (B,)    Σ_{i<j} x_i x_j |a_i − v_j|² within the set
    x: torch.Tensor     # (B,)    Σ x
    xaa: torch.Tensor   # (B,)    Σ x |a|²   (a = v + v': the set as the earlier side)
    xa: torch.Tensor    # (B, k)  Σ x a
    xvv: torch.Tensor   # (B,)    Σ x |v|²   (the set as the later side)
    xv: torch.Tensor    # (B, k)  Σ x v

    def __add__(self, later: TransFMState) -> TransFMState:
        cross = (self.xaa * later.x + self.x * later.xvv
                 - 2 * (self.xa * later.xv).sum(-1))  # (B,)
        return TransFMState(self.lin + later.lin, self.pair + later.pair + cross,
                            self.x + later.x, self.xaa + later.xaa, self.xa + later.xa,
                            self.xvv + later.xvv, self.xv + later.xv)


class TransFM(FeatureModel):
    def __init__(self, n_features: int, dim: int, init_std: float = 0.01, form: Form = "auto"):
        super().__init__(n_features, dim, init_std)
        self.form = form
        self.translation = nn.Embedding(n_features, dim)
        nn.init.normal_(self.translation.weight, 0.0, init_std)

    def forward(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """idx, val (B, W) -> scores (B,)."""
        return self.w0 + self.linear(idx, val) + self._pair(*self._vectors(idx), val)

    def _pairwise_is_cheaper(self, width: int) -> bool:
        """Measured on CPU (B = 256, k = 8 and 64): with backward, prefix is as fast or faster
        from W = 3 on; forward only, pairwise leads by < 15% up to W = 4. Training decides."""
        if self.form != "auto":
            return self.form == "pairwise"
        return width <= 2

    def _vectors(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.embed(idx)  # (B, W, k)
        return v, v + self.translation(idx)  # a = v + v'

    def _pair(self, v: torch.Tensor, a: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        cheaper = self._pairwise_is_cheaper(val.shape[1])
        return _pairwise(v, a, val) if cheaper else _prefix(v, a, val)

    def pairwise(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        return _pairwise(*self._vectors(idx), val)

    def prefix(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        return _prefix(*self._vectors(idx), val)

    def state(self, idx: torch.Tensor, val: torch.Tensor) -> TransFMState:
        v, a = self._vectors(idx)
        x = val.unsqueeze(-1)  # (B, W, 1)
        return TransFMState(self.linear(idx, val), self._pair(v, a, val), val.sum(1),
                            (x * a.square()).sum((1, 2)), (x * a).sum(1),
                            (x * v.square()).sum((1, 2)), (x * v).sum(1))

    def score_state(self, state: TransFMState) -> torch.Tensor:
        return self.w0 + state.lin + state.pair

    def combine(self, user: TransFMState, item: TransFMState) -> torch.Tensor:
        """Score of user columns followed by item columns. Order matters: the model sees
        `user + item`, which is the row [user cols, item cols], not [item cols, user cols]."""
        return self.score_state(user + item)


def _pairwise(v: torch.Tensor, a: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """O(W² k): the (W × W) distance matrix, masked to i < j."""
    aa, vv = a.square().sum(-1), v.square().sum(-1)  # (B, W)
    dist = aa.unsqueeze(2) + vv.unsqueeze(1) - 2 * torch.bmm(a, v.transpose(1, 2))  # (B, W, W)
    width = val.shape[1]
    upper = torch.triu(torch.ones(width, width, dtype=torch.bool, device=val.device), 1)
    xx = val.unsqueeze(2) * val.unsqueeze(1) * upper  # (B, W, W): x_i x_j for i < j
    return (xx * dist).sum((1, 2))


def _prefix(v: torch.Tensor, a: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """Σ_j x_j (Σ_{i<j} x_i |a_i|² + |v_j|² Σ_{i<j} x_i − 2 v_j · Σ_{i<j} x_i a_i)."""
    x = val.unsqueeze(-1)  # (B, W, 1)
    before_x = _exclusive_cumsum(x)  # (B, W, 1)
    before_xaa = _exclusive_cumsum(x * a.square().sum(-1, keepdim=True))  # (B, W, 1)
    before_xa = _exclusive_cumsum(x * a)  # (B, W, k)
    per_col = before_xaa + before_x * v.square().sum(-1, keepdim=True) \
        - 2 * (before_xa * v).sum(-1, keepdim=True)  # (B, W, 1)
    return (x * per_col).sum((1, 2))


def _exclusive_cumsum(t: torch.Tensor) -> torch.Tensor:
    """Σ over earlier columns only (dim 1): row j holds t_0 + … + t_{j−1}, row 0 holds 0."""
    shifted = torch.cumsum(t[:, :-1], 1)
    return torch.cat([torch.zeros_like(t[:, :1]), shifted], 1)
