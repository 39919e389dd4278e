"""Factorization machine (Rendle 2010) in its O(r k) form, with its additive user/item state.

    ŷ(x) = w0 + Σ_i w_i x_i + ½ Σ_f ((Σ_i x_i v_if)² − Σ_i x_i² v_if²)

The pair term depends on x only through S = Σ x v and Q = Σ x² |v|², both sums over features,
so a user's part and an item's part add (docs/math.md, FM): serving caches the user's (lin, S, Q).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.models.base import AdditiveState, DropoutOptions, FeatureModel

FMOptions = DropoutOptions


@dataclass
class FMState(AdditiveState):
    """Additive summary of a set of active features: lin (B,), s (B, k), q (B,)."""

    lin: torch.Tensor
    s: torch.Tensor
    q: torch.Tensor


class FM(FeatureModel):
    """Dropout acts on the k-dim pair-interaction vector, as in NFM's FM baseline."""

    def __init__(self, n_features: int, dim: int, dropout: float = 0.0, init_std: float = 0.01):
        super().__init__(n_features, dim, init_std)
        self.dropout = nn.Dropout(dropout)

    def forward(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """idx, val (B, W) -> scores (B,)."""
        xv = self.embed(idx) * val.unsqueeze(-1)  # (B, W, k)
        pair = 0.5 * (xv.sum(1).square() - xv.square().sum(1))  # (B, k)
        return self.w0 + self.linear(idx, val) + self.dropout(pair).sum(-1)

    def state(self, idx: torch.Tensor, val: torch.Tensor) -> FMState:
        xv = self.embed(idx) * val.unsqueeze(-1)
        return FMState(self.linear(idx, val), xv.sum(1), xv.square().sum((1, 2)))

    def score_state(self, state: FMState) -> torch.Tensor:
        """Score of the union of features summarised by `state` (eval mode: no dropout)."""
        return self.w0 + state.lin + 0.5 * (state.s.square().sum(-1) - state.q)

    def combine(self, user: FMState, item: FMState) -> torch.Tensor:
        return self.score_state(user + item)
