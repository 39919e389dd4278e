"""GEM's feature co-occurrence graph, built from training instances only.

Nodes are features; two features are joined when they occur (with a non-zero value) in one
positive training instance. Type "a" joins every pair of node-field features, type "b" only a
user-side feature with an item-side one. The result is the symmetric-normalised adjacency with
self loops, D̃^-½ (A + I) D̃^-½, in CSR form: GEM propagates the whole table through it every
forward, and sampling re-weighs its entries by the undirected edge each belongs to.

Which fields are nodes follows the GEM paper: the user and item ids always, other fields only
when they have so many values that each value links to a small share of the graph. A field of a
few values (a weekend flag, a gender) joined to everything becomes a hub whose vector averages
over most of the graph, and blurs the vectors it is joined to.

The history field (--history) is never a node field unless named, and stays out of the link
shares then, so the other fields' shares and the default choice are what they are without it.
Its values are item ids in a second role; as nodes they join every item a user met to that
user, to every later item and to each other. Measured on MovieLens-100k top-n (GML-FM-dnn +
GEM, lr 0.003, seed 0): each history value links to 23% of the graph at N = 10 and 49% at
N = 50, a hub by the rule above (and it lifts item_id's own share past 10%); the graph grows
from 98,114 user-item edges to 833,814 (1,658,190 at N = 50, built in 64 s), and since GEM
convolves the whole graph every forward an epoch took 79 s instead of 34. With --history 10
as a node field the test HR@10 / NDCG@10 were 0.6723 / 0.4045 against 0.6501 / 0.3826 as a
plain field: one seed, a gap of 1.4 standard errors, at 2.3 times the cost and with a graph
that grows with N. So the default keeps the rule; name `history` in --graph-fields to try it.
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

CHUNK_PAIRS = 8_000_000  # (instance, column pair) cells at a time: bounds the temporaries,
# which grow with W² (a history window of 50 columns makes W² thirty times larger)


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


# A field joins the default node fields only if one of its values links, on average, to at most
# this share of the graph's other nodes. Measured on the training graphs of MovieLens-100k (with
# context) and the synthetic context data: id fields 2-9 %, a planted 300-value context field
# 6-7 %, every field of 21 values or fewer 20-93 % (gender 77 %, weekday 60 %). Such hub values
# each average over much of the graph, so they lose their identity (the GEM paper's `isweekend`,
# linked to half of all nodes); bench/RESULTS.md, section gem-context, measures the choices.
MAX_LINK_SHARE = 0.1


@dataclass(frozen=True)
class NodeFields:
    """GEM's node fields and why: each field's link share, and a warning per chosen hub."""

    positions: list[int]
    shares: dict[str, float]  # field name -> mean share of other nodes one value links to
    warnings: list[str]


def node_fields(train: InstanceSet, schema: FeatureSchema, names: Sequence[str] | None,
                apart: Sequence[int] = ()) -> NodeFields:
    """The named fields, or by default the user and item id fields (the largest field of each
    side) and every other field whose values link to at most MAX_LINK_SHARE of the graph;
    either way a warning for each chosen field whose values link to more. Fields `apart` (the
    history field) are never chosen by default, nor measured unless named."""
    known = [f.name for f in schema.fields]
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise ConfigError(f"--graph-fields: unknown field(s) {', '.join(unknown)}; "
                          f"fields are {', '.join(known)}")
    measured = [pos for pos in range(len(known))
                if pos not in apart or known[pos] in (names or ())]
    shares = link_shares(train, schema, measured)
    if names:
        chosen = [known.index(n) for n in names]
    else:
        chosen = [pos for pos in measured
                  if pos in id_fields(schema, apart) or shares[pos] <= MAX_LINK_SHARE]
    warnings = [f"GEM node field {known[pos]}: each of its values links on average to "
                f"{shares[pos]:.0%} of the graph's other nodes (more than "
                f"{MAX_LINK_SHARE:.0%}); such hubs blur the embeddings around them, "
                "consider leaving it out of --graph-fields" for pos in chosen
                if shares[pos] > MAX_LINK_SHARE]
    return NodeFields(chosen, {known[pos]: round(float(shares[pos]), 4) for pos in measured},
                      warnings)


def id_fields(schema: FeatureSchema, apart: Sequence[int] = ()) -> set[int]:
    """The user and the item id field: the field of each side with the most values (fields
    `apart` aside: the history field has as many values as the items)."""
    ids = set()
    for side in ("user", "item"):
        on_side = [pos for pos, f in enumerate(schema.fields)
                   if f.side == side and pos not in apart]
        if on_side:  # the first of the largest, should two tie
            ids.add(max(on_side, key=lambda pos: schema.fields[pos].size))
    return ids


def link_shares(train: InstanceSet, schema: FeatureSchema,
                fields: Sequence[int] | None = None) -> np.ndarray:
    """Per field, the mean over its values of the share of the graph's nodes outside the field
    that the value is joined to, in the type-a graph of `fields` (default: every field; the
    others' shares are NaN; values that never occur in a positive instance are left out)."""
    n = schema.n_features
    fields = range(len(schema.fields)) if fields is None else fields
    edges = _edges(train, schema, fields, "a")
    degree = np.bincount(np.concatenate([edges // n, edges % n]), minlength=n)
    present = degree > 0
    shares = np.full(len(schema.fields), np.nan)
    for pos in fields:
        f = schema.fields[pos]
        shares[pos] = 0.0
        own = slice(f.offset, f.offset + f.size)
        outside = present.sum() - present[own].sum()
        if present[own].any() and outside:
            shares[pos] = degree[own][present[own]].mean() / outside
    return shares


def build_adjacency(train: InstanceSet, schema: FeatureSchema, fields: Sequence[int],
                    graph: str) -> Adjacency:
    """The normalised co-occurrence graph of the positive training instances."""
    return _normalise(_edges(train, schema, fields, graph), schema.n_features)


def _edges(train: InstanceSet, schema: FeatureSchema, fields: Sequence[int],
           graph: str) -> np.ndarray:
    """The graph's undirected edges i < j as sorted keys i * n + j."""
    positives = np.flatnonzero(train.labels > 0)
    slot_field = train.slot_field
    side = np.array([schema.fields[f].side for f in slot_field])
    if graph == "b" and not ({"user", "item"} <= set(side[np.isin(slot_field, fields)])):
        raise ConfigError("--graph b joins user features to item features; this data's node "
                          "fields do not have both sides")
    allowed = _allowed_column_pairs(slot_field, side, fields, graph)  # (W, W) bool
    rows = max(1, CHUNK_PAIRS // max(1, int(allowed.sum())))
    keys = [_edge_keys(train, positives[s:s + rows], allowed, schema.n_features)
            for s in range(0, len(positives), rows)]
    return np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)


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
