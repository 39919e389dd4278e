"""Metrics on hand-made rankings, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from training.loop.metrics import hit_ratio, mae, ndcg, positive_ranks, ranking_report, rmse


def test_ranks_without_ties():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]])
    pessimistic, optimistic = positive_ranks(scores)
    assert list(pessimistic) == [1, 3] and list(optimistic) == [1, 3]


def test_ties_count_against_the_positive_pessimistically():
    scores = np.array([[0.5, 0.5, 0.5, 0.1], [0.0] * 4])
    pessimistic, optimistic = positive_ranks(scores)
    assert list(pessimistic) == [3, 4]
    assert list(optimistic) == [1, 1]


def test_nan_scores_rank_last():
    pessimistic, _ = positive_ranks(np.array([[np.nan, 0.1, 0.2]]))
    assert pessimistic[0] == 3


def test_valid_mask_leaves_candidates_out():
    scores = np.array([[0.5, 0.9, 0.7, 0.1]])
    mask = np.array([[True, False, True, True]])
    assert positive_ranks(scores, mask)[0][0] == 2
    assert mask[0, 0]  # the caller's mask is not modified


def test_hit_ratio_and_ndcg_at_k():
    ranks = np.array([1, 2, 10, 11])
    assert hit_ratio(ranks, 10) == 0.75
    expected = (1 + 1 / np.log2(3) + 1 / np.log2(11) + 0) / 4
    assert ndcg(ranks, 10) == pytest.approx(expected)


def test_report_of_a_model_that_ties_everything():
    report = ranking_report(np.zeros((5, 100)))
    assert report["hr@10"] == 0.0 and report["ndcg@10"] == 0.0
    assert report["hr@10_optimistic"] == 1.0 and report["ndcg@10_optimistic"] == 1.0


def test_rating_metrics_clamp_predictions():
    pred, labels = np.array([3.0, -0.5]), np.array([1.0, -1.0])
    assert rmse(pred, labels) == pytest.approx(np.sqrt(0.125))
    assert mae(pred, labels) == pytest.approx(0.25)


def test_early_stopping_headline_is_signed_and_survives_nan():
    from training.loop.evaluation import headline
    from training.loop.trainer import patience_exhausted

    assert headline("rating", {"rmse": 0.5}) == ("rmse", -0.5)
    assert headline("rating", {"rmse": float("nan")})[1] == float("-inf")
    assert headline("topn", {"ndcg@10": 0.3}) == ("ndcg@10", 0.3)
    assert not patience_exhausted([0.1, 0.2, 0.15], 2)
    assert patience_exhausted([0.1, 0.3, 0.2, 0.25], 2)
