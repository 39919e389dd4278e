"""Judge a model on a split: rating metrics, sampled ranking metrics, full-catalog ranking."""

from __future__ import annotations

import math

import numpy as np
import torch

from training.data.instances import InstanceSet, RankingGroups
from training.data.protocols import Catalog, Split
from training.data.sampling import is_known, pair_keys
from training.loop.batches import TensorInstances, predict
from training.loop.metrics import hit_ratio, ndcg, positive_ranks, ranking_report, rating_report

# Full-catalog ranking scores users x items pairs; past this many it ranks a seeded sample of
# test users instead (recorded in the metrics as full_users).
MAX_FULL_PAIRS = 50_000_000
CHUNK_PAIRS = 2_000_000


class Evaluator:
    """Holds one held-out set as tensors so per-epoch validation does no conversion work."""

    def __init__(self, held_out: InstanceSet | RankingGroups):
        self.groups = held_out if isinstance(held_out, RankingGroups) else None
        instances = held_out.instances if self.groups else held_out
        self.tensors = TensorInstances(instances)
        self.labels = instances.labels

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        scores = predict(model, self.tensors)
        if self.groups is None:
            return rating_report(scores, self.labels)
        return ranking_report(scores.reshape(self.groups.n_groups, self.groups.group_size))


def headline(task: str, report: dict[str, float]) -> tuple[str, float]:
    """The validation metric early stopping follows, signed so that larger is better; a
    diverged model (NaN) counts as the worst possible."""
    name, value = ("rmse", -report["rmse"]) if task == "rating" else ("ndcg@10",
                                                                        report["ndcg@10"])
    return name, value if math.isfinite(value) else -math.inf


@torch.no_grad()
def full_catalog_report(model: torch.nn.Module, catalog: Catalog, seed: int = 0,
                        k: int = 10) -> dict[str, float]:
    """Rank each test positive against every item its user has no known interaction with, each
    item scored in the test positive's context and history window."""
    data, users = catalog.data, catalog.test_users
    pick = np.arange(len(users))
    limit = max(1, MAX_FULL_PAIRS // data.n_items)
    if len(users) > limit:
        pick = np.sort(np.random.default_rng(seed).choice(len(users), limit, replace=False))
    chunk = max(1, CHUNK_PAIRS // data.n_items)
    ranks = [_full_ranks(model, catalog, part)
             for part in np.array_split(pick, range(chunk, len(pick), chunk))]
    pessimistic = np.concatenate(ranks)
    return {f"full_hr@{k}": hit_ratio(pessimistic, k), f"full_ndcg@{k}": ndcg(pessimistic, k),
            "full_users": int(len(users))}


def _full_ranks(model: torch.nn.Module, catalog: Catalog, part: np.ndarray) -> np.ndarray:
    """The ranks of the test positives `part` (positions in the catalog's test arrays), each
    user's items scored in the context and history window of the user's test positive."""
    n_items = catalog.data.n_items
    users, positives = catalog.test_users[part], catalog.test_items[part]
    along = [None if rows is None else np.repeat(rows[part], n_items)
             for rows in (catalog.test_contexts, catalog.test_windows)]
    all_items = np.tile(np.arange(n_items), len(users))
    pairs = catalog.data.pairs(np.repeat(users, n_items), all_items,
                               np.zeros(len(all_items), np.float32), *along)
    scores = predict(model, pairs).reshape(len(users), n_items)
    competes = ~is_known(pair_keys(users[:, None], np.arange(n_items)[None, :], n_items),
                         catalog.known_keys)
    competes[np.arange(len(users)), positives] = False
    pos_scores = scores[np.arange(len(users)), positives]
    with_pos = np.concatenate([pos_scores[:, None], scores], axis=1)
    valid = np.concatenate([np.ones((len(users), 1), bool), competes], axis=1)
    return positive_ranks(with_pos, valid)[0]


def test_report(model: torch.nn.Module, split: Split, seed: int = 0) -> dict[str, float]:
    """Every test metric of metrics.json for the split's task (docs/training.md, Metrics)."""
    report = Evaluator(split.test)(model)
    if split.task == "topn" and split.catalog is not None:
        report.update(full_catalog_report(model, split.catalog, seed))
    return report
