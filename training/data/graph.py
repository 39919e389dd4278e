"""GEM's feature co-occurrence graph, built from training instances only.

Nodes are features; two features are joined when they occur (with a non-zero value) in one
positive training instance. Type "a" joins every pair of node-field features, type "b" only a
user-side feature with an item-side one. The result is the symmetric-normalised adjacency with
self loops, D̃^-½ (A + I) D̃^-½, in CSR form: GEM propagates the whole table through it every
forward, and sampling re-weighs its entries by the undirected edge each belongs to.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from training.data.instances import InstanceSet
from training.data.schema import FeatureSchema
from training.errors import ConfigError

CHUNK_ROWS = 200_000  # instances turned into pairs at a time: bounds the (rows, W, W) temporary


@dataclass(frozen=True)
class Adjacency:
    """Â = D̃^-½ (A + I) D̃^-½ as CSR: row i's neighbours are col[crow[i]:crow[i+1]]."""

    crow: torch.Tensor  # (n + 1,) int64
    col: torch.Tensor  # (nnz,) int64
    weight: torch.Tensor  # (nnz,) float32
    edge: torch.Tensor  # (nnz,) int64: undirected edge id, shared by (i, j) and (j, i)
    n_edges: int  # undirected edges without self loops; ids n_edges.. are the self loops

    @property
    def n_nodes(self) -> int:
        return len(self.crow) - 1

    def degree(self) -> np.ndarray:
        """Neighbours per node, the self loop included."""
        return np.diff(self.crow.numpy())

    def to_sparse(self, weight: torch.Tensor | None = None) -> torch.Tensor:
        """As a torch CSR matrix, optionally with other values in the same pattern."""
        with warnings.catch_warnings():  # "sparse CSR support is in beta": we rely on mm only
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.crow, self.col,
                                           self.weight if weight is None else weight,
                                           (self.n_nodes, self.n_nodes))


def node_fields(schema: FeatureSchema, names: Sequence[str] | None, min_values: int) -> list[int]:
    """Positions of the fields that become nodes: the named ones, or every field with at least
    `min_values` values (the GEM paper drops near-constant fields such as a weekend flag)."""
    if names:
        known = [f.name for f in schema.fields]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"--graph-fields: unknown field(s) {', '.join(unknown)}; "
                              f"fields are {', '.join(known)}")
        return [known.index(n) for n in names]
    return [pos for pos, f in enumerate(schema.fields) if f.size >= min_values]


def build_adjacency(train: InstanceSet, schema: FeatureSchema, fields: Sequence[int],
                    graph: str) -> Adjacency:
    """The normalised co-occurrence graph of the positive training instances."""
    positives = np.flatnonzero(train.labels > 0)
    slot_field = train.slot_field
    side = np.array([schema.fields[f].side for f in slot_field])
    if graph == "b" and not ({"user", "item"} <= set(side[np.isin(slot_field, fields)])):
        raise ConfigError("--graph b joins user features to item features; this data's node "
                          "fields do not have both sides")
    allowed = _allowed_column_pairs(slot_field, side, fields, graph)  # (W, W) bool
    keys = [_edge_keys(train, positives[s:s + CHUNK_ROWS], allowed, schema.n_features)
            for s in range(0, len(positives), CHUNK_ROWS)]
    edges = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    return _normalise(edges, schema.n_features)


def _allowed_column_pairs(slot_field: np.ndarray, side: np.ndarray, fields: Sequence[int],
                          graph: str) -> np.ndarray:
    is_node = np.isin(slot_field, fields)
    allowed = is_node[:, None] & is_node[None, :]
    if graph == "b":
        allowed &= ((side[:, None] == "user") & (side[None, :] == "item")) | \
                   ((side[:, None] == "item") & (side[None, :] == "user"))
    return np.triu(allowed, 1)


def _edge_keys(train: InstanceSet, rows: np.ndarray, allowed: np.ndarray,
               n: int) -> np.ndarray:
    """Unique undirected edges i < j (as i * n + j) among the given instances."""
    idx, val = train.gather(rows)  # (R, W)
    a, b = np.nonzero(allowed)
    i, j = idx[:, a], idx[:, b]  # (R, pairs)
    present = (val[:, a] != 0) & (val[:, b] != 0) & (i != j)
    lo, hi = np.minimum(i, j)[present], np.maximum(i, j)[present]
    return np.unique(lo * n + hi)


def _normalise(edges: np.ndarray, n: int) -> Adjacency:
    lo, hi = edges // n, edges % n
    loops = np.arange(n)
    src = np.concatenate([lo, hi, loops])
    dst = np.concatenate([hi, lo, loops])
    edge = np.concatenate([np.arange(len(lo)), np.arange(len(lo)), len(lo) + loops])
    order = np.lexsort((dst, src))
    src, dst, edge = src[order], dst[order], edge[order]
    degree = np.bincount(src, minlength=n).astype(np.float64)
    weight = (1.0 / np.sqrt(degree[src] * degree[dst])).astype(np.float32)
    crow = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    return Adjacency(torch.from_numpy(crow.astype(np.int64)), torch.from_numpy(dst),
                     torch.from_numpy(weight), torch.from_numpy(edge), len(lo))
