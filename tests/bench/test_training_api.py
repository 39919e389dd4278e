"""The leaky negatives of bench.negatives_leak avoid the held-out items too; the product's do
not."""

from __future__ import annotations

import numpy as np

from bench.lib import training_api


def test_leaky_negatives_know_the_held_out_items_and_the_product_ones_do_not():
    data = training_api.synthetic_data("users=20,items=300,interactions=400")
    split = training_api.split_data(data, "topn")
    leaky = training_api.leaky_split(data, split)
    held_out = split.catalog.test_users * data.n_items + split.catalog.test_items
    assert not np.isin(held_out, split.sampler.known).any()
    assert np.isin(held_out, leaky.sampler.known).all()
    assert leaky.train is split.train and leaky.test is split.test
