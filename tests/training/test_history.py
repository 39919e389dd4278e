"""The history field (--history N): every instance's window against a literal reference (plain
Python loops over the raw interactions, ties in time included), no leak of a later or a
held-out item into any window, and a split that history only adds a block to."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.factories import tiny_interactions
from training.data.history import FIELD, with_history_field
from training.data.instances import InstanceSet, Interactions, RankingGroups
from training.data.protocols import Split, rating_split, topn_split
from training.errors import DataError


def tied_interactions(seed: int = 0, n_users: int = 12, per_user: int = 10) -> Interactions:
    """Tiny data whose times tie often (4 distinct values) and whose pairs sometimes repeat."""
    data = tiny_interactions(n_users=n_users, n_items=130, per_user=per_user, seed=seed)
    rng = np.random.default_rng(seed)
    again = rng.choice(len(data.users), 15, replace=False)  # re-interactions, later or not
    users = np.concatenate([data.users, data.users[again]])
    items = np.concatenate([data.items, data.items[again]])
    times = rng.integers(0, 4, len(users)).astype(np.int64)
    return dataclasses.replace(data, users=users, items=items, times=times)


def reference_windows(data: Interactions, size: int, weight: str,
                      eligible: set[tuple[int, int]] | None = None
                      ) -> list[tuple[tuple[int, int], list[int], float]]:
    """Per interaction in (user, time, item) order: its (user, item), the items of its window
    (oldest first) and their value. Repeated pairs count once, at their latest time; `eligible`
    (pairs) limits what may enter a window."""
    latest: dict[tuple[int, int], int] = {}
    for u, i, t in zip(data.users.tolist(), data.items.tolist(), data.times.tolist()):
        latest[(u, i)] = max(latest.get((u, i), t), t)
    ordered = sorted(latest, key=lambda pair: (pair[0], latest[pair], pair[1]))
    out = []
    for u, i in ordered:
        earlier = []
        for (v, j), t in latest.items():
            if v == u and (t, j) < (latest[(u, i)], i) and (eligible is None or (v, j) in eligible):
                earlier.append((t, j))
        window = [j for _, j in sorted(earlier)][-size:] if size else []
        m = len(window)
        value = 0.0 if m == 0 else (1 / m ** 0.5 if weight == "sqrt" else 1 / m)
        out.append(((u, i), window, value))
    return out


def windows_of(instances: InstanceSet, data: Interactions) -> list[tuple[int, list[int], list]]:
    """Per instance: its window row, and the window's items and values (padding dropped)."""
    table, rows = instances.tables[-1], instances.rows[-1]
    offset = data.schema.field(FIELD).offset
    out = []
    for row in rows.tolist():
        idx, val = table.idx[row], table.val[row]
        out.append((row, (idx[val != 0] - offset).tolist(), val[val != 0].tolist()))
    return out


def held_out_sets(split: Split) -> list[InstanceSet]:
    return [s.instances if isinstance(s, RankingGroups) else s
            for s in (split.train, split.valid, split.test)]


def check_against_reference(split: Split, data: Interactions, expected) -> int:
    """Every instance's window is its interaction's: the row it points at is that of an
    interaction of its user (of its very pair for a positive), holding the reference window."""
    checked = 0
    for instances in held_out_sets(split):
        users, items = instances.rows[0].tolist(), instances.rows[1].tolist()
        for n, (row, window, values) in enumerate(windows_of(instances, data)):
            (u, i), want, value = expected[row]
            assert users[n] == u and (instances.labels[n] < 0 or items[n] == i)
            assert window == want, (u, i, window, want)
            assert values == pytest.approx([value] * len(want), rel=1e-6)
            checked += 1
    return checked


@pytest.mark.parametrize("weight", ["sqrt", "mean"])
@pytest.mark.parametrize("size", [1, 3, 50])
def test_topn_windows_equal_the_literal_reference(size, weight):
    data = with_history_field(tied_interactions(), size, weight)
    split = topn_split(data, seed=0)
    expected = reference_windows(data, size, weight)
    assert check_against_reference(split, data, expected) == sum(map(len, held_out_sets(split)))
    catalog = split.catalog
    test = split.test.instances
    assert (catalog.test_windows == test.rows[-1][::split.test.group_size]).all()
    last = {}  # each user's last two interactions in the reference order: test, validation
    for (u, i), _, _ in expected:
        last[u] = [*last.get(u, []), i][-2:]
    for held, back in ((split.test, -1), (split.valid, -2)):
        firsts = held.instances.subset(np.arange(0, len(held.instances), held.group_size))
        assert all(last[u][back] == i for u, i in zip(*map(np.ndarray.tolist, firsts.rows[:2])))


@pytest.mark.parametrize("weight", ["sqrt", "mean"])
def test_rating_windows_hold_earlier_training_interactions_only(weight):
    data = with_history_field(tied_interactions(seed=1), 4, weight)
    split = rating_split(data, seed=2)
    train = split.train
    positive = train.labels > 0
    eligible = set(zip(train.rows[0][positive].tolist(), train.rows[1][positive].tolist()))
    expected = reference_windows(data, 4, weight, eligible)
    assert check_against_reference(split, data, expected) == sum(map(len, held_out_sets(split)))
    held = {(u, i) for s in (split.valid, split.test)
            for u, i, y in zip(s.rows[0].tolist(), s.rows[1].tolist(), s.labels) if y > 0}
    for instances in held_out_sets(split):  # no validation or test item in any window
        for u, (_, window, _) in zip(instances.rows[0].tolist(), windows_of(instances, data)):
            assert not {(u, j) for j in window} & held


def planted() -> Interactions:
    """User 0 meets items 10, 11, ... 17 at times 1..8, then 90 (validation) at 50 and 91
    (test) at 60; item 13's time ties with 12's, and 15 is met again at time 100 (so its latest
    time comes last: the test positive)."""
    data = tiny_interactions(n_users=5, n_items=130, per_user=6)
    mine = np.array([10, 11, 12, 13, 14, 15, 16, 17, 90, 91, 15])
    times = np.array([1, 2, 3, 3, 5, 6, 7, 8, 50, 60, 100])
    others = data.users != 0
    return dataclasses.replace(
        data, users=np.concatenate([np.zeros(len(mine), np.int64), data.users[others]]),
        items=np.concatenate([mine, data.items[others]]),
        times=np.concatenate([times, data.times[others] + 1000]))


def test_no_later_or_held_out_item_enters_a_training_window_and_the_test_window_is_exact():
    data = with_history_field(planted(), 4, "sqrt")
    split = topn_split(data, seed=0)
    group = split.test.group_size
    test_pos = np.flatnonzero(split.test.instances.rows[0][::group] == 0)[0] * group
    valid_pos = np.flatnonzero(split.valid.instances.rows[0][::group] == 0)[0] * group
    assert split.test.instances.rows[1][test_pos] == 15  # met again last: the test positive
    assert split.valid.instances.rows[1][valid_pos] == 91
    train = split.train
    time_of = {10: 1, 11: 2, 12: 3, 13: 3, 14: 5, 16: 7, 17: 8, 90: 50}
    for n, (_, window, _) in enumerate(windows_of(train, data)):
        if train.rows[0][n] != 0:
            continue
        assert not {15, 91} & set(window)  # held out: never in a training window
        positive = n if train.labels[n] > 0 else (n - (train.labels > 0).sum()) // 2
        mine = train.rows[1][positive]
        assert all((time_of[j], j) < (time_of[mine], mine) for j in window)  # nothing later
    _, valid_window, _ = windows_of(split.valid.instances.subset(np.array([valid_pos])), data)[0]
    _, test_window, values = windows_of(split.test.instances.subset(np.array([test_pos])), data)[0]
    assert valid_window == [14, 16, 17, 90]  # the last 4 before 91: 15 is met again later
    assert test_window == [16, 17, 90, 91]  # exactly the last 4 before the test item, in order
    assert values == pytest.approx([0.5] * 4)


def test_history_only_adds_a_block_to_the_split():
    plain = tied_interactions(seed=3)
    for make in (topn_split, rating_split):
        without, with_ = make(plain, seed=4), make(with_history_field(plain, 3, "sqrt"), seed=4)
        for a, b in zip(held_out_sets(without), held_out_sets(with_)):
            assert len(b.rows) == len(a.rows) + 1 and (a.labels == b.labels).all()
            assert all((x == y).all() for x, y in zip(a.rows, b.rows))
            assert b.tables[-1].width == 3 and set(b.tables[-1].slot_field) == {4}
        assert without.history is None and with_.history is not None


def test_negatives_resampled_each_epoch_keep_their_positive_window():
    data = with_history_field(tied_interactions(seed=4), 3, "mean")
    split = topn_split(data, seed=0)
    sampler = split.sampler
    drawn = sampler.draw(np.random.default_rng(7))
    p = len(sampler.users)
    assert (drawn.rows[-1][p:] == np.repeat(drawn.rows[-1][:p], sampler.negatives)).all()
    assert (drawn.rows[-1][:p] == split.train.rows[-1][:p]).all()


def test_the_field_is_appended_with_its_own_vocabulary_over_the_items():
    data = tied_interactions()
    added = with_history_field(data, 5, "sqrt")
    assert added.schema.fields[:-1] == data.schema.fields  # no other feature moves
    field = added.schema.fields[-1]
    assert (field.name, field.side, field.kind, field.vocab) == (FIELD, "user", "multihot",
                                                                 data.item_ids)
    assert field.offset == data.schema.n_features
    with pytest.raises(DataError, match="already has a field named 'history'"):
        with_history_field(added, 5, "sqrt")
