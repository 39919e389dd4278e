"""GEM: the co-occurrence graph, its normalisation, and the materialised embedding table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.factories import tiny_interactions
from training.data.graph import (
    MAX_LINK_SHARE,
    build_adjacency,
    id_fields,
    link_shares,
    node_fields,
)
from training.data.instances import InstanceSet
from training.data.protocols import rating_split, topn_split
from training.data.schema import FeatureSchema, FeatureTable, Field
from training.data.synthetic import load_synthetic
from training.errors import ConfigError
from training.models import MODELS, build_model
from training.models.gem import GraphEmbedding

# features: users u0 u1 (0, 1), gender f m (2, 3), items i0 i1 i2 (4, 5, 6)
SCHEMA = FeatureSchema.build([
    Field("user", "user", "categorical", ("u0", "u1")),
    Field("gender", "user", "categorical", ("f", "m")),
    Field("item", "item", "categorical", ("i0", "i1", "i2")),
])


def hand_made(labels: list[float]) -> InstanceSet:
    """u0 (f) saw i0 and i1; u1 (m) saw i1 and i2; as one joined table of instances."""
    rows = np.array([[0, 2, 4], [0, 2, 5], [1, 3, 5], [1, 3, 6]])
    table = FeatureTable(rows, np.ones(rows.shape, np.float32), np.array([0, 1, 2]))
    return InstanceSet((np.arange(4),), (table,), np.array(labels, np.float32))


def dense(adjacency) -> np.ndarray:
    return adjacency.to_sparse().to_dense().numpy()


def test_type_a_joins_every_pair_and_normalises_with_self_loops():
    adjacency = build_adjacency(hand_made([1, 1, 1, 1]), SCHEMA, [0, 1, 2], "a")
    a = dense(adjacency)
    assert np.allclose(a, a.T)
    linked = a > 0
    expected_edges = {(0, 2), (0, 4), (0, 5), (2, 4), (2, 5), (1, 3), (1, 5), (1, 6), (3, 5),
                      (3, 6)}
    assert {(i, j) for i, j in zip(*np.nonzero(np.triu(linked, 1)))} == expected_edges
    assert linked.diagonal().all()
    degree = linked.sum(1)  # self loop included
    assert list(degree) == [4, 4, 4, 4, 3, 5, 3]
    assert np.allclose(a[0, 4], 1 / np.sqrt(4 * 3))
    assert np.allclose(a[5, 5], 1 / 5)


def test_type_b_keeps_only_user_item_edges():
    adjacency = build_adjacency(hand_made([1, 1, 1, 1]), SCHEMA, [0, 1, 2], "b")
    linked = np.triu(dense(adjacency) > 0, 1)
    assert {(i, j) for i, j in zip(*np.nonzero(linked))} == {
        (0, 4), (0, 5), (2, 4), (2, 5), (1, 5), (1, 6), (3, 5), (3, 6)}


def test_only_positive_training_instances_and_node_fields_make_edges():
    adjacency = build_adjacency(hand_made([1, -1, 1, -1]), SCHEMA, [0, 2], "a")
    linked = np.triu(dense(adjacency) > 0, 1)
    assert {(i, j) for i, j in zip(*np.nonzero(linked))} == {(0, 4), (1, 5)}


def test_graph_is_built_from_the_training_split_only():
    data = tiny_interactions(n_users=20, n_items=150, per_user=6)
    split = topn_split(data, seed=0)
    adjacency = build_adjacency(split.train, data.schema, [0, 2], "b")
    a = dense(adjacency)
    held_out = split.test.instances
    users, items = held_out.rows[0][::100], held_out.rows[1][::100]
    item_feature = data.item_table.idx[items, 0]
    assert (a[users, item_feature] == 0).all()  # no test positive became an edge


def test_link_shares_are_each_fields_mean_degree_over_the_nodes_outside_it():
    # type-a degrees without self loops: u0 u1 f m 3 each, i0 2, i1 4, i2 2 (see above)
    shares = link_shares(hand_made([1, 1, 1, 1]), SCHEMA)
    np.testing.assert_allclose(shares, [3 / 5, 3 / 5, (2 + 4 + 2) / 3 / 4])
    only_first = link_shares(hand_made([1, -1, -1, -1]), SCHEMA)  # u0 f i0: u1 m i1 i2 absent
    np.testing.assert_allclose(only_first, [2 / 2, 2 / 2, 2 / 2])


def test_id_fields_are_the_largest_of_each_side_the_first_on_a_tie():
    assert id_fields(SCHEMA) == {0, 2}
    context_only = FeatureSchema.build([Field(f.name, "context", f.kind, f.vocab)
                                        for f in SCHEMA.fields])
    assert id_fields(context_only) == set()


CONTEXT_DATA = "users=300,items=500,interactions=6000,categories=10,context_low=2,context_high=200"


def test_default_node_fields_are_the_ids_and_fields_of_many_values():
    data = load_synthetic(CONTEXT_DATA)
    split = rating_split(data, seed=0)
    nodes = node_fields(split.train, data.schema, None)
    names = [data.schema.fields[p].name for p in nodes.positions]
    assert names == ["user_id", "item_id", "context_high"]
    assert nodes.shares["context_high"] <= MAX_LINK_SHARE < nodes.shares["category"]
    assert nodes.shares["context_low"] > 0.5  # two values: each joined to most of the graph
    assert nodes.warnings == []


def test_a_named_hub_field_is_taken_with_a_warning_and_unknown_names_are_refused():
    data = load_synthetic(CONTEXT_DATA)
    split = rating_split(data, seed=0)
    nodes = node_fields(split.train, data.schema, ["user_id", "item_id", "context_low"])
    assert nodes.positions == [0, 2, 4]
    assert len(nodes.warnings) == 1 and "node field context_low" in nodes.warnings[0]
    assert f"{nodes.shares['context_low']:.0%} of the graph" in nodes.warnings[0]
    with pytest.raises(ConfigError, match="colour"):
        node_fields(split.train, data.schema, ["colour"])


@pytest.mark.parametrize("name", ["fm", "nfm", "transfm", "gmlfm"])
def test_one_layer_adds_no_parameters_and_materialised_table_equals_the_graph_forward(name):
    data = tiny_interactions(n_users=20, n_items=150, per_user=6)
    split = topn_split(data, seed=0)
    torch.manual_seed(0)
    model = build_model(name, data.schema.n_features, split.train.slot_field,
                        MODELS[name].options.make({"dim": 8, "init_std": 0.3}))
    before = sum(p.numel() for p in model.parameters())
    adjacency = build_adjacency(split.train, data.schema, [0, 2, 3], "a")
    model.use_graph(GraphEmbedding(adjacency, 8, dropout=0.5, sampling=0.5))
    assert sum(p.numel() for p in model.parameters()) == before
    idx, val = (torch.from_numpy(a) for a in split.test.instances.gather(np.arange(300)))
    model.eval()
    with torch.no_grad():
        through_graph = model(idx, val)
        model.materialize_graph()
        assert model.graph is None
        assert torch.allclose(model(idx, val), through_graph, rtol=1e-5, atol=1e-6)


def normalised(raw: np.ndarray) -> np.ndarray:
    degree = raw.sum(1)
    return raw / np.sqrt(np.outer(degree, degree))


def test_sampling_drops_both_directions_of_an_edge_and_renormalises():
    adjacency = build_adjacency(hand_made([1, 1, 1, 1]), SCHEMA, [0, 1, 2], "a")
    full = dense(adjacency) != 0  # Ã = A + I
    gem = GraphEmbedding(adjacency, 4, sampling=0.5)
    torch.manual_seed(3)
    sampled = adjacency.to_sparse(gem._weights(training=True)).to_dense().numpy()
    kept = sampled != 0
    assert np.array_equal(kept, kept.T) and kept.diagonal().all()
    assert 0 < kept.sum() < full.sum()
    assert np.allclose(sampled, normalised(kept.astype(float)), atol=1e-6)
    weighed = np.eye(7) + 0.5 * (full & ~np.eye(7, dtype=bool))
    assert np.allclose(adjacency.to_sparse(gem._weights(training=False)).to_dense(),
                       normalised(weighed), atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_sampling_zero_leaves_each_feature_its_own_vector_and_one_the_whole_graph(training):
    adjacency = build_adjacency(hand_made([1, 1, 1, 1]), SCHEMA, [0, 1, 2], "a")
    table = torch.randn(7, 3)
    alone, whole = GraphEmbedding(adjacency, 3, sampling=0.0), GraphEmbedding(adjacency, 3)
    alone.train(training), whole.train(training)
    assert torch.allclose(alone.propagate(table), table, atol=1e-6)
    assert torch.allclose(whole.propagate(table), torch.from_numpy(dense(adjacency)) @ table,
                          atol=1e-6)


def test_gradient_of_the_symmetric_propagation_matches_dense_autograd():
    adjacency = build_adjacency(hand_made([1, 1, 1, 1]), SCHEMA, [0, 1, 2], "a")
    gem = GraphEmbedding(adjacency, 3, activation="tanh")
    table = torch.randn(7, 3, requires_grad=True)
    gem.propagate(table).square().sum().backward()
    fast = table.grad.clone()
    table.grad = None
    torch.tanh(torch.from_numpy(dense(adjacency)) @ table).square().sum().backward()
    assert torch.allclose(fast, table.grad, atol=1e-6)


def test_graph_type_b_needs_both_sides():
    schema = FeatureSchema.build([Field(f.name, "context", f.kind, f.vocab) for f in SCHEMA.fields])
    with pytest.raises(ConfigError, match="--graph b"):
        build_adjacency(hand_made([1, 1, 1, 1]), schema, [0], "b")
