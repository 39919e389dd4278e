"""Invariants of the papers' protocols: no leakage, true negatives, sizes, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import tiny_interactions
from training.data.instances import Interactions, RankingGroups
from training.data.protocols import rating_split, topn_split, unique_interactions
from training.data.sampling import pair_keys, sample_unseen
from training.data.synthetic import load_synthetic
from training.errors import DataError


def _pairs(instances, data: Interactions, label: float | None = None) -> np.ndarray:
    users, items = instances.rows
    keep = np.ones(len(users), bool) if label is None else instances.labels == label
    return pair_keys(users[keep], items[keep], data.n_items)


def _interacted(data: Interactions) -> np.ndarray:
    return np.unique(pair_keys(data.users, data.items, data.n_items))


@pytest.fixture(scope="module")
def data() -> Interactions:
    return tiny_interactions(n_users=40, n_items=200, per_user=10)


def test_topn_holds_out_each_users_latest_interaction(data):
    split = topn_split(data, seed=1)
    test = split.test.instances
    test_users = test.rows[0][:: split.test.group_size]
    test_items = test.rows[1][:: split.test.group_size]
    assert sorted(test_users) == list(range(data.n_users))
    for u, i in zip(test_users, test_items):
        mine = data.users == u
        assert data.times[mine][data.items[mine] == i][0] == data.times[mine].max()


def test_topn_has_no_leak_into_training(data):
    split = topn_split(data, seed=1)
    train_pos = _pairs(split.train, data, 1.0)
    for held in (split.valid, split.test):
        first = held.instances.subset(np.arange(0, len(held.instances), held.group_size))
        assert not np.isin(_pairs(first, data), train_pos).any()
    assert len(train_pos) == len(data.users) - 2 * data.n_users


def test_topn_negatives_were_never_interacted(data):
    split = topn_split(data, seed=2)
    seen = _interacted(data)
    assert not np.isin(_pairs(split.train, data, -1.0), seen).any()
    assert (split.train.labels == -1).sum() == 2 * (split.train.labels == 1).sum()
    for held in (split.valid, split.test):
        assert not np.isin(_pairs(held.instances, data, -1.0), seen).any()


def test_topn_groups_are_positive_then_99_distinct_candidates(data):
    split = topn_split(data, seed=3)
    for held in (split.valid, split.test):
        assert isinstance(held, RankingGroups) and held.group_size == 100
        labels = held.instances.labels.reshape(-1, 100)
        assert (labels[:, 0] == 1).all() and (labels[:, 1:] == -1).all()
        items = held.instances.rows[1].reshape(-1, 100)
        assert all(len(set(row)) == 100 for row in items)
        users = held.instances.rows[0].reshape(-1, 100)
        assert (users == users[:, :1]).all()


def test_full_catalog_knows_training_and_validation_items(data):
    split = topn_split(data, seed=1)
    known = split.catalog.known_keys
    assert np.isin(_pairs(split.train, data, 1.0), known).all()
    test_keys = pair_keys(split.catalog.test_users, split.catalog.test_items, data.n_items)
    assert not np.isin(test_keys, known).any()


@pytest.mark.parametrize("make", [topn_split, rating_split])
def test_same_seed_same_split_and_other_seed_differs(data, make):
    a, b, c = make(data, seed=5), make(data, seed=5), make(data, seed=6)
    for x, y in zip(a.train.rows, b.train.rows):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.train.labels, b.train.labels)
    assert any(not np.array_equal(x, z) for x, z in zip(a.train.rows, c.train.rows))


def test_rating_split_sizes_labels_and_negatives(data):
    split = rating_split(data, seed=0)
    sizes = np.array([len(split.train), len(split.valid), len(split.test)])
    assert sizes.sum() == 3 * len(data.users)
    np.testing.assert_allclose(sizes / sizes.sum(), [0.7, 0.2, 0.1], atol=0.01)
    seen = _interacted(data)
    every_positive = np.concatenate([_pairs(s, data, 1.0) for s in
                                     (split.train, split.valid, split.test)])
    assert np.array_equal(np.sort(every_positive), seen)
    for s in (split.train, split.valid, split.test):
        assert not np.isin(_pairs(s, data, -1.0), seen).any()


def test_repeated_interaction_keeps_only_its_latest_time():
    data = tiny_interactions(n_users=3, n_items=120, per_user=4)
    again = Interactions(data.name, data.schema, np.append(data.users, 0),
                         np.append(data.items, data.items[0]), np.append(data.times, 10**9),
                         data.user_table, data.item_table, data.user_ids, data.item_ids)
    users, items, times, contexts = unique_interactions(again)
    assert contexts is None  # no context in this data
    assert len(users) == len(data.users)
    assert times[(users == 0) & (items == data.items[0])][0] == 10**9


def test_sampling_reports_users_without_enough_unseen_items():
    known = np.sort(pair_keys(np.zeros(9, int), np.arange(9), 10))
    with pytest.raises(DataError, match="fewer than 2 items"):
        sample_unseen(np.array([0]), 2, 10, known, np.random.default_rng(0), distinct=True)
    only = sample_unseen(np.zeros(50, int), 3, 10, known, np.random.default_rng(0), False)
    assert (only == 9).all()


@pytest.mark.parametrize("make", [topn_split, rating_split])
def test_fresh_negatives_know_only_training_positives(data, make):
    split = make(data, seed=0)
    train_pos = np.unique(_pairs(split.train, data, 1.0))
    assert np.array_equal(split.sampler.known, train_pos)
    fresh = split.sampler.draw(np.random.default_rng(9))
    assert not np.isin(_pairs(fresh, data, -1.0), train_pos).any()
    assert (fresh.labels == -1).sum() == 2 * (fresh.labels == 1).sum()


# --- data with context: every instance carries the context of the interaction it stands for ---

CONTEXT_SPEC = "users=40,items=200,interactions=700,categories=5,context_low=2,context_high=30"


def _context_of_interaction(data: Interactions) -> dict[tuple[int, int], int]:
    return {(u, i): c for u, i, c in zip(data.users.tolist(), data.items.tolist(),
                                         data.contexts.tolist())}


def test_context_rides_with_positives_negatives_and_candidates():
    data = load_synthetic(CONTEXT_SPEC)
    context = _context_of_interaction(data)
    split = topn_split(data, seed=0)
    users, items, contexts = split.train.rows
    positives = split.train.labels == 1
    assert all(context[u, i] == c for u, i, c in
               zip(users[positives], items[positives], contexts[positives]))
    n_pos = positives.sum()  # positive-major: positive p's negatives follow all positives
    assert (contexts[n_pos:] == np.repeat(contexts[:n_pos], 2)).all()
    for held in (split.valid, split.test):
        g = held.instances.rows[2].reshape(held.n_groups, held.group_size)
        assert (g == g[:, :1]).all()  # every candidate in its positive's context
        first = held.instances.subset(np.arange(0, len(held.instances), held.group_size))
        assert all(context[u, i] == c for u, i, c in zip(*first.rows))
    test_firsts = split.test.instances.rows[2][::split.test.group_size]
    assert (split.catalog.test_contexts == test_firsts).all()
    assert (split.sampler.instances(split.train.rows[1][n_pos:].reshape(-1, 2)).rows[2]
            == contexts).all()


def test_rating_negatives_take_a_context_of_their_users_own():
    data = load_synthetic(CONTEXT_SPEC)
    split = rating_split(data, seed=0)
    seen = {(u, c) for u, c in zip(data.users.tolist(), data.contexts.tolist())}
    for part in (split.train, split.valid, split.test):
        users, _, contexts = part.rows
        assert all((u, c) in seen for u, c in zip(users.tolist(), contexts.tolist()))
    assert len(split.sampler.contexts) == len(split.sampler.users)


def test_data_with_context_refuses_pairs_without_it():
    data = load_synthetic(CONTEXT_SPEC)
    with pytest.raises(ValueError, match="has context"):
        data.pairs(data.users[:3], data.items[:3], np.ones(3))
