"""What every model in the registry shares: a global bias, per-feature biases and embeddings.

Models take padded feature rows, idx and val of shape (B, W), and return scores (B,); padding
has val 0. They never see a schema or a dataset, only tensors and sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Self

import torch
from torch import nn

from training.options import Bounds, Options, option


@dataclass(frozen=True)
class EmbeddingOptions(Options):
    """What every model takes: the embedding size and the scale of the initialisation."""

    dim: int = option(64, "embedding size k (the papers' 64 for MovieLens)", Bounds(1))
    init_std: float = option(0.01, "parameters start as N(0, s²), the papers' s = 0.01",
                             Bounds(0, above=True))


@dataclass(frozen=True)
class DropoutOptions(EmbeddingOptions):
    """Models with a vector to drop from (each model's docstring says which)."""

    dropout: float = option(0.0, "dropout rate on the pair-interaction vector (and the deep "
                            "models' towers)", Bounds(0, 1, below=True))


class AdditiveState:
    """Base of dataclass states whose every field is a sum over features, so the state of a
    user's features plus that of an item's features is the state of their union."""

    def __add__(self, other: Self) -> Self:
        return type(self)(*(getattr(self, f.name) + getattr(other, f.name)
                            for f in fields(self)))  # type: ignore[arg-type]


class FeatureModel(nn.Module):
    def __init__(self, n_features: int, dim: int, init_std: float = 0.01):
        super().__init__()
        self.w0 = nn.Parameter(torch.zeros(()))
        self.bias = nn.Embedding(n_features, 1)
        self.embedding = nn.Embedding(n_features, dim)
        for table in (self.bias, self.embedding):
            nn.init.normal_(table.weight, 0.0, init_std)  # the papers' N(0, 0.01)

        # GEM's graph convolution (models.gem.GraphEmbedding) when the model embeds through
        # one: any module mapping (idx, table) to vectors, with table(table) for every feature
        self.graph: nn.Module | None = None

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Feature vectors v_i, (B, W) -> (B, W, k): the table's rows, or with GEM the graph
        convolution whose first weight matrix is that table."""
        if self.graph is None:
            return self.embedding(idx)
        return self.graph(idx, self.embedding.weight)

    def use_graph(self, graph: nn.Module) -> None:
        self.graph = graph

    @torch.no_grad()
    def materialize_graph(self) -> None:
        """Write g for every feature into the table and drop the graph: the model becomes a
        plain one with the same outputs (eval mode), ready for export and serving."""
        if self.graph is not None:
            self.embedding.weight.copy_(self.graph.table(self.embedding.weight))
            self.graph = None

    def linear(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """Σ_i w_i x_i, (B, W) -> (B,)."""
        return (self.bias(idx).squeeze(-1) * val).sum(-1)
