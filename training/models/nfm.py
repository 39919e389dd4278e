"""Neural factorization machine (He & Chua, SIGIR 2017).

    ŷ(x) = w0 + Σ_i w_i x_i + pᵀ MLP(f_BI),   f_BI = ½ ((Σ_i x_i v_i)² − Σ_i x_i² v_i²)

f_BI (bi-interaction pooling, element-wise squares) is FM's pair vector before its sum over k.
It depends on x only through S = Σ x v and Q = Σ x² v², both sums over features, so a user's
and an item's (lin, S, Q) add; the MLP is not additive, so it runs after adding the states and
ranking scores candidates in batch rather than with a dot product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.models.base import AdditiveState, DropoutOptions, FeatureModel

NFMOptions = DropoutOptions


@dataclass
class NFMState(AdditiveState):
    """Additive summary of a set of active features: lin (B,), s (B, k), q (B, k)."""

    lin: torch.Tensor
    s: torch.Tensor
    q: torch.Tensor


class NFM(FeatureModel):
    """Dropout acts on f_BI and after every hidden layer, as in the paper."""

    def __init__(self, n_features: int, dim: int, dropout: float = 0.0, init_std: float = 0.01,
                 hidden_layers: int = 1):
        super().__init__(n_features, dim, init_std)
        self.dropout = nn.Dropout(dropout)
        self.mlp = _mlp(dim, hidden_layers, dropout)

    def forward(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """idx, val (B, W) -> scores (B,)."""
        xv = self.embed(idx) * val.unsqueeze(-1)  # (B, W, k)
        bi = 0.5 * (xv.sum(1).square() - xv.square().sum(1))  # (B, k)
        return self.w0 + self.linear(idx, val) + self.mlp(self.dropout(bi)).squeeze(-1)

    def state(self, idx: torch.Tensor, val: torch.Tensor) -> NFMState:
        xv = self.embed(idx) * val.unsqueeze(-1)  # (B, W, k)
        return NFMState(self.linear(idx, val), xv.sum(1), xv.square().sum(1))

    def score_state(self, state: NFMState) -> torch.Tensor:
        """Score of the union of features summarised by `state` (eval mode: no dropout)."""
        bi = 0.5 * (state.s.square() - state.q)  # (B, k)
        return self.w0 + state.lin + self.mlp(bi).squeeze(-1)

    def combine(self, user: NFMState, item: NFMState) -> torch.Tensor:
        """Either order: the state is a plain sum. Broadcasts a (1, ·) user over B items."""
        return self.score_state(user + item)


def _mlp(dim: int, hidden_layers: int, dropout: float) -> nn.Sequential:
    """hidden_layers × (Linear(k, k), ReLU, Dropout), then p = Linear(k, 1) without bias.

    Dense weights use Glorot-normal init as the authors' code does: N(0, 0.01) through several
    layers would leave the MLP's output and gradients near zero at the start.
    """
    layers: list[nn.Module] = []
    for _ in range(hidden_layers):
        layers += [nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(dim, 1, bias=False))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)
