"""Tiny datasets built in memory, for tests that need data but not a reader."""

from __future__ import annotations

import numpy as np

from training.data.instances import Interactions
from training.data.schema import (
    FeatureSchema,
    Field,
    categorical_columns,
    concat_tables,
    multihot_columns,
)


def tiny_interactions(n_users: int = 30, n_items: int = 150, per_user: int = 8,
                      seed: int = 0) -> Interactions:
    """Users with `per_user` distinct items each, a user field, an item id and a genre set."""
    rng = np.random.default_rng(seed)
    schema = FeatureSchema.build([
        Field("user_id", "user", "categorical", tuple(map(str, range(n_users)))),
        Field("group", "user", "categorical", ("a", "b", "c")),
        Field("item_id", "item", "categorical", tuple(map(str, range(n_items)))),
        Field("genre", "item", "multihot", ("x", "y", "z", "w")),
    ])
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    times = rng.permutation(len(users)).astype(np.int64)
    f = schema.fields
    user_table = concat_tables([categorical_columns(f[0], 0, np.arange(n_users)),
                                categorical_columns(f[1], 1, np.arange(n_users) % 3)])
    genres = [list(rng.choice(4, rng.integers(1, 4), replace=False)) for _ in range(n_items)]
    item_table = concat_tables([categorical_columns(f[2], 2, np.arange(n_items)),
                                multihot_columns(f[3], 3, genres)])
    return Interactions("tiny", schema, users, items, times, user_table, item_table,
                        tuple(map(str, range(n_users))), tuple(map(str, range(n_items))), "tiny")
