"""bench.catalog: its smoke run end to end, the data less the held-out items, the cold-start
metrics over ties, and the verdicts its sections give (never a timing)."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

from bench import catalog
from bench.lib import training_api
from bench.lib.cold_start import (
    Cases,
    Genre,
    Hits,
    cases,
    expected_hits,
    genre_popularity,
    held_out_items,
    rank_correlation,
    top_genre,
)
from bench.lib.held_out import item_values, without_items
from bench.lib.http_load import LoadResult
from bench.scale_out import Memory
from tests.service.api.tiny_movies import write_tiny_movies


def test_the_smoke_run_writes_both_sections_and_every_answer_is_brute_forces(tmp_path):
    results = tmp_path / "RESULTS.md"
    movies = write_tiny_movies(tmp_path / "ml-1m")
    catalog.main(["--smoke", "--data", f"movielens-1m:{movies}", "--results", str(results)])
    text = results.read_text()
    serving = text[text.index("<!-- catalog-serving:start -->"):
                   text.index("<!-- catalog-serving:end -->")]
    rows = [line for line in serving.splitlines() if re.match(r"\| (0|20|200) \|", line)]
    assert len(rows) == 3
    assert all(line.endswith(("| 5 of 5 | — |", "| 5 of 5 | 5 of 5 |")) for line in rows), rows
    assert "| 0 | — | — |" in rows[0]
    cold = text[text.index("<!-- catalog-cold-start:start -->"):
                text.index("<!-- catalog-cold-start:end -->")]
    assert "| model, items added by PUT /items |" in cold and "| random |" in cold
    held = len(held_out_items([str(k) for k in range(144)], catalog.SHARE, 0))
    assert re.search(rf"\n\| 0 \| {held} \| \d+ \| \d+ \| \d+ \| 0 \|", cold), cold


def test_a_dataset_less_some_items_keeps_no_trace_of_them():
    data = training_api.dataset("synthetic:users=30,items=40,interactions=400,categories=3")
    gone = [i for k, i in enumerate(data.item_ids) if item_values(data, k)["category"] == "2"]
    less = without_items(data, gone)
    assert set(less.item_ids) == set(data.item_ids) - set(gone)
    assert less.schema.field("item_id").vocab == less.item_ids
    assert less.schema.field("category").vocab == ("0", "1")  # only held-out items had "2"
    assert less.schema.n_features == data.schema.n_features - len(gone) - 1
    old = {item: k for k, item in enumerate(data.item_ids)}
    assert all(item_values(less, k) == item_values(data, old[item])
               for k, item in enumerate(less.item_ids))
    assert len(less.users) == int(np.isin(data.items, [old[i] for i in gone],
                                          invert=True).sum())
    assert {less.item_ids[i] for i in less.items.tolist()} <= set(less.item_ids)
    np.testing.assert_array_equal(less.user_table.idx, data.user_table.idx)
    assert less.fingerprint != data.fingerprint


def test_items_are_left_out_before_the_history_field_not_after():
    from training.data.history import with_history_field

    data = training_api.dataset("synthetic:users=10,items=20,interactions=100,categories=2")
    with pytest.raises(ValueError, match="before the history field"):
        without_items(with_history_field(data, 5, "mean"), [data.item_ids[0]])


def test_each_case_ranks_its_item_among_held_items_its_user_never_touched():
    held = [f"h{k}" for k in range(8)]
    pairs = [("2", "h1"), ("2", "h3"), ("1", "h0"), ("1", "h0"), ("1", "x"), ("3", "h5")]
    found = cases(pairs, held, 5, np.random.default_rng(0))
    assert found.users == ["1", "2", "2", "3"]  # a repeated pair once; items not held: none
    assert found.positives.tolist() == [0, 1, 3, 5]
    for user, negative in zip(found.users, found.negatives):
        mine = {held.index(i) for u, i in pairs if u == user and i in held}
        assert len(negative) == 5 and not set(negative.tolist()) & mine
    short = cases([("1", f"h{k}") for k in range(5)], held, 5, np.random.default_rng(0))
    assert short.short == 5 and all(len(n) == 3 for n in short.negatives)  # all that remain
    assert held_out_items([str(k) for k in range(30)], 0.1, 1) == \
        held_out_items([str(k) for k in range(30)], 0.1, 1) != \
        held_out_items([str(k) for k in range(30)], 0.1, 2)


def test_hits_count_ties_by_their_expectation():
    found = Cases([f"h{k}" for k in range(100)], ["u"], np.array([0]),
                  [np.arange(1, 100)], 99)
    flat = expected_hits(found, {"u": np.zeros(100)})
    assert flat.hr == pytest.approx(0.1)  # a random ranking: 10 of 100 places
    assert flat.ndcg == pytest.approx(sum(1 / np.log2(r + 2) for r in range(10)) / 100)
    top = np.zeros(100)
    top[0] = 1.0
    assert expected_hits(found, {"u": top}) == Hits(1.0, 1.0)
    bottom = -top
    assert expected_hits(found, {"u": bottom}) == Hits(0.0, 0.0)
    tied = np.zeros(100)
    tied[:12] = 1.0  # the item ties with 11 others ahead of the rest: ranks 0..11
    assert expected_hits(found, {"u": tied}).hr == pytest.approx(10 / 12)


def test_genre_popularity_is_the_mean_share_of_an_items_genres():
    scores = genre_popularity([["Drama"], ["Drama", "War"], ["Comedy"]], [6, 2, 2],
                              [["War", "Drama"], ["Comedy"], [], ["Horror"]])
    np.testing.assert_allclose(scores, [(0.2 + 0.8) / 2, 0.2, 0.0, 0.0])


def test_an_answer_equals_brute_force_only_with_its_scores_and_untied_ids():
    by_id = {"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0, "e": 0.5}
    best = ["a", "b", "c", "d"]
    assert catalog.same_answer([("a", 3.0), ("b", 2.0), ("c", 2.0), ("d", 1.0)], by_id, best)
    assert catalog.same_answer([("a", 3.0), ("c", 2.0), ("b", 2.0), ("d", 1.0)], by_id, best)
    assert not catalog.same_answer([("a", 3.0), ("b", 2.0), ("c", 2.0), ("e", 1.0)], by_id,
                                   best)  # e's own score is 0.5
    assert not catalog.same_answer([("a", 3.0), ("b", 2.0), ("c", 2.0)], by_id, best)
    assert not catalog.same_answer([("b", 2.0), ("a", 3.0), ("c", 2.0), ("d", 1.0)], by_id,
                                   best)


def _served(added: int, p50: float) -> catalog.Served:
    latency = LoadResult(1, np.full(10, p50), 0, 10 * p50 / 1e3)
    return catalog.Served(added, None if not added else latency, 50.0, latency,
                          Memory(300, 200, 100, 250, 200), 5, 5, 0, (19_000,) * 5)


def test_the_serving_target_says_met_or_by_how_much_it_missed():
    assert catalog.target_line([_served(0, 20.0), _served(1000, 23.0)]).endswith(
        "23.0 ms against 20.0 ms with none, 1.15× (≤ 1.2×): met.")
    assert "1.50× (≤ 1.2×): missed by 0.30×" in catalog.target_line(
        [_served(0, 20.0), _served(1000, 30.0)])
    args = argparse.Namespace(items=100_000, added=[1000], requests=600, put_concurrency=8)
    text = catalog.serving_report([_served(0, 20.0), _served(1000, 23.0)], [1.0, 2.0],
                                  [1.5, 2.5], args, {"avx2", "fpu"}, 3.0)
    assert "| 1,000 | 43 | 23.0 → 23.0 | 50 | 23.0 | 23.0 | 1.15 |" in text
    assert "Why a PUT slows" not in text
    assert "CPU flags avx2." in text and "first added item ranked 19,000" in text
    assert catalog.NOT_IN_TOP in text
    growing = catalog.Served(1000, LoadResult(8, np.linspace(1.0, 10.0, 100), 0, 1.0),
                             50.0, LoadResult(1, np.full(10, 23.0), 0, 0.23),
                             Memory(300, 200, 100, 250, 200), 5, 5, 0, (19_000,) * 5)
    text = catalog.serving_report([_served(0, 20.0), growing], [1.0, 2.0], [1.5, 2.5], args,
                                  set(), 3.0)
    assert "| 1,000 | 100 | 1.4 → 9.6 |" in text and "CPU flags unread" in text
    assert "Why a PUT slows as the overlay grows (1,000 added)" in text


def test_genre_facts_rank_correlation_and_the_top_genre():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 2], [5, 6, 7]) == pytest.approx(0.8660254)  # mean ranks
    assert rank_correlation([1, 1, 1], [5, 6, 7]) == 0.0
    top = top_genre([["Drama"], ["Drama"], ["Drama", "War"], ["War"]], [1, 3, 2, 8])
    assert top == Genre("War", 10 / 14, 2, 1, 8.0, 3.5)
    assert top_genre([["Drama", "War"]], [4]).alone == 0


def _seeded(seed: int, model: float, popular: float) -> catalog.Seeded:
    found = Cases(["h0"], ["u"], np.array([0]), [np.arange(0)], 99)
    return catalog.Seeded(seed, 168, found, Hits(model, model / 2), Hits(popular, popular / 2),
                          Hits(0.1, 0.05), 0, -0.25, Genre("Drama", 0.4, 700, 350, 35.0, 59.5),
                          0.66, 120.0, False, 1.0)


def test_the_cold_start_verdicts_say_why_when_popularity_wins_or_trails_random():
    fine = catalog.verdicts([_seeded(s, 0.4, 0.3) for s in range(3)])
    assert fine[0].endswith("3 of 3 seeds: met.") and fine[1].endswith("3 of 3 seeds.")
    assert len(fine) == 2  # popularity above random: nothing to explain
    mixed = catalog.verdicts([_seeded(0, 0.4, 0.3), _seeded(1, 0.05, 0.5)])
    assert mixed[0].endswith("1 of 2 seeds: NOT met.")
    assert mixed[1].endswith("1 of 2 seeds. " + catalog.WHY_NOT_POPULARITY)
    below = catalog.verdicts([_seeded(0, 0.2, 0.06), _seeded(1, 0.2, 0.3)])
    assert below[2].startswith("- Genre popularity ranks below random on 1 of 2 seeds")
    assert "Drama (40% of the fit's interactions, seed 0), is the genre of 700 items, and " \
           "the items the baseline puts first, those of Drama alone, are 350 items with " \
           "35.0 interactions each against 59.5 for the average item" in below[2]
    assert below[2].endswith("(Spearman ρ -0.25, -0.25 by seed).")
