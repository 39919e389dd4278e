"""GEM: feature vectors from a graph convolution over the co-occurrence graph.

    g = act(Â W1)            one layer, H0 one-hot: W1 *is* the model's embedding table
    g = act(Â act(Â W1) W2)  and so on for more layers (each adds a k × k matrix)

`sampling` is the share of neighbour edges used: training keeps each undirected edge with that
probability (self loops always), evaluation weighs each by it, its expectation, and either way
the graph is normalised after sampling, so 0 leaves every feature its own vector (the base
model) and 1 is the whole graph. Dropout acts on g. After training, `table()` materialises g
for every feature, so export and serving see an ordinary embedding table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from training.data.graph import Adjacency
from training.options import Bounds, Options, option

ACTIVATIONS = {"none": nn.Identity, "tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass(frozen=True)
class GemOptions(Options):
    """GEM is an embedding choice open to every model; its other options need `gcn`."""

    embedding: Literal["plain", "gcn"] = option(
        "plain", "plain lookup, or gcn (GEM: graph-convolved embeddings)")
    graph: Literal["a", "b"] = option(
        "a", "GEM graph: a joins every co-occurring pair of node fields, b only user-item")
    graph_fields: str = option(
        "", "GEM node fields, comma-separated (empty: the user and item ids, and every field "
        "whose values each link to at most 10% of the graph)")
    gcn_layers: int = option(1, "GCN layers (each beyond the first adds a k x k matrix)",
                             Bounds(1, 4))
    gcn_dropout: float = option(0.0, "dropout on the GCN output", Bounds(0, 1, below=True))
    sampling: float = option(
        1.0, "share of neighbour edges used (0: none, the base model; 1: all)", Bounds(0, 1))
    gcn_activation: Literal["none", "tanh", "relu"] = option(
        "none", "activation after each GCN layer")

    @property
    def node_fields(self) -> list[str]:
        return [name.strip() for name in self.graph_fields.split(",") if name.strip()]


class _Propagate(torch.autograd.Function):
    """Â H for a symmetric Â: the backward is Â again, so no per-step transpose of Â."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        ctx.matrix = matrix
        return matrix @ hidden

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.matrix @ grad, None


class GraphEmbedding(nn.Module):
    def __init__(self, adjacency: Adjacency, dim: int, layers: int = 1, dropout: float = 0.0,
                 sampling: float = 1.0, activation: str = "none"):
        super().__init__()
        self.adjacency = adjacency
        self.deeper = nn.ParameterList(
            nn.Parameter(torch.eye(dim) + 0.01 * torch.randn(dim, dim)) for _ in range(layers - 1))
        self.sampling = sampling
        self.act = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self._rows = torch.repeat_interleave(torch.arange(adjacency.n_nodes),
                                             adjacency.crow.diff())  # row of each entry
        self._full = adjacency.to_sparse(self._weights(training=False))

    def forward(self, idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """g for the features idx (any shape) from W1 = table (n, k): (..., k)."""
        return nn.functional.embedding(idx, self.dropout(self.propagate(table)))

    def propagate(self, table: torch.Tensor) -> torch.Tensor:
        """g for every node, (n, k): the full graph in eval mode, sampled edges in training."""
        matrix = self._full if not self.training or self.sampling in (0.0, 1.0) else \
            self.adjacency.to_sparse(self._weights(training=True))
        hidden = self.act(_Propagate.apply(table, matrix))
        for layer in self.deeper:
            hidden = self.act(_Propagate.apply(hidden @ layer, matrix))
        return hidden

    def _weights(self, training: bool) -> torch.Tensor:
        """Â's values with neighbour edges kept (training) or weighed (eval) by `sampling`,
        then D̃^-½ Ã D̃^-½ with the degrees of that graph."""
        a = self.adjacency
        loop = a.edge >= a.n_edges
        if training:
            keep = (torch.rand(a.n_edges + a.n_nodes) < self.sampling).float()[a.edge]
        else:
            keep = torch.full_like(a.weight, self.sampling)
        kept = torch.where(loop, torch.ones_like(a.weight), keep)
        degree = torch.zeros(a.n_nodes).index_add_(0, self._rows, kept)
        return kept * (degree[self._rows] * degree[a.col]).rsqrt()

    @torch.no_grad()
    def table(self, table: torch.Tensor) -> torch.Tensor:
        """g for every feature in eval mode: what export and serving use."""
        was_training = self.training
        self.eval()
        full = self.propagate(table)
        self.train(was_training)
        return full
