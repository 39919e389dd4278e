"""Both models judged alike: the newest events neither was fitted on, scored through each
bundle's torch-free numpy scorer, as the service would score them.

The cases are the users whose latest interaction is an event newer than what the served model
was fitted on, and who have an earlier one: the top-n protocol holds each user's latest
interaction out of the candidate's fit (a user's only interaction is not held out, so such a
user is no case), and the served model never saw an event newer than its own. Each case ranks
the positive among `negatives` items the user never interacted with, drawn with a fixed seed,
and among the whole catalog less the user's earlier items.

Each bundle builds the user as the service does: a user it knows from its stored row, a new
one from the profile the events recorded (fields it lacks left out); the history columns hold
the user's earlier interactions (the last N the bundle knows); an item its catalog lacks is
scored from its recorded features through AddedItems, as an item added through the API is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bundle import AddedItems, load_bundle, reference_scorer
from bundle.history import HistoryField
from training.data.events import EventLog
from training.data.history import chronological
from training.data.instances import Interactions
from training.data.protocols import unique_interactions

K = 10
USERS_PER_CALL = 256


@dataclass(frozen=True)
class Cases:
    """Per case: the user, its earlier items (oldest first), its positive, its sampled
    negatives; and the items every model ranks (the candidate's catalog)."""

    users: list[str]
    earlier: list[list[str]]
    positives: list[str]
    negatives: np.ndarray  # (G, negatives) item ids
    universe: np.ndarray  # (N,) item ids
    profiles: dict[str, dict[str, Any]]
    added: dict[str, dict[str, Any]]
    # what each case's history window is built over, if not its earlier items (a model
    # without the state updates since its fit: bench/loop.py)
    windows: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.users)


def newest_cases(data: Interactions, events: EventLog, after: float | None, negatives: int,
                 seed: int) -> Cases:
    """The cases of `data` (base plus events) whose positive is an event later than `after`
    (Unix seconds; None: any event), at whole seconds as the fit saw them."""
    users, items, times, _ = unique_interactions(data)
    order = chronological(users, times)
    users, items, times = users[order], items[order], times[order]
    cut = -math.inf if after is None else math.floor(after)
    fresh = {(u, i) for u, i, at in zip(events.users, events.items, events.at.tolist())
             if math.floor(at) > cut}
    ends = np.flatnonzero(np.r_[users[1:] != users[:-1], True])
    starts = np.r_[0, ends[:-1] + 1]
    rng = np.random.default_rng(seed)
    picked: list[tuple[str, list[str], str]] = []
    chosen_negatives = []
    ids = np.asarray(data.item_ids)
    for start, end in zip(starts.tolist(), ends.tolist()):
        user, positive = data.user_ids[users[end]], data.item_ids[items[end]]
        if end == start or (user, positive) not in fresh:
            continue
        seen = np.zeros(data.n_items, bool)
        seen[items[start:end + 1]] = True
        pool = np.flatnonzero(~seen)
        if len(pool) < negatives:
            continue
        chosen_negatives.append(ids[rng.choice(pool, negatives, replace=False)])
        picked.append((user, [data.item_ids[i] for i in items[start:end]], positive))
    return Cases([p[0] for p in picked], [p[1] for p in picked], [p[2] for p in picked],
                 np.array(chosen_negatives, dtype=str).reshape(len(picked), negatives), ids,
                 events.profiles, events.added)


@dataclass(frozen=True)
class Judged:
    """One model's per-case results: HR@10 and NDCG@10 among the sampled negatives, and
    recall@10 over the whole catalog less the user's earlier items."""

    hit: np.ndarray  # (G,) 0/1
    ndcg: np.ndarray  # (G,)
    recall: np.ndarray  # (G,) 0/1

    def summary(self) -> dict[str, float]:
        return {f"hr@{K}": _mean(self.hit), f"ndcg@{K}": _mean(self.ndcg),
                f"recall@{K}": _mean(self.recall), "cases": len(self.hit)}


def _mean(values: np.ndarray) -> float:
    return round(float(values.mean()), 6) if len(values) else float("nan")


def judge(bundle_dir: Path, cases: Cases) -> Judged:
    """Score every case's positive, negatives and the whole universe with one bundle."""
    bundle = load_bundle(bundle_dir)
    scorer = reference_scorer(bundle)
    history = HistoryField.of(bundle)
    column = {str(i): k for k, i in enumerate(bundle.catalog.ids.tolist())}
    outside = [str(i) for i in cases.universe if str(i) not in column]
    column |= {i: len(bundle.catalog) + k for k, i in enumerate(outside)}
    parts = None
    if outside:
        added = AddedItems(bundle, scorer)
        parts = added.parts([added.encode(_item_features(bundle, cases.added.get(i, {})), i)
                             for i in outside])
    ranked = np.array([column[str(i)] for i in cases.universe], np.int64)
    user_fields = {f.name for f in bundle.fields.on_table_side("user")}
    hits, gains, recalls = [], [], []
    for lo in range(0, len(cases), USERS_PER_CALL):
        rows = [_user_row(bundle, history, user_fields, cases, g)
                for g in range(lo, min(lo + USERS_PER_CALL, len(cases)))]
        state = scorer.user_state(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]))
        scores = scorer.catalog_scores(state)
        if parts is not None:
            scores = np.concatenate([scores, scorer.score_items(state, parts)], axis=1)
        for b, g in enumerate(range(lo, lo + len(rows))):
            own = scores[b]
            positive = own[column[cases.positives[g]]]
            negative = own[[column[i] for i in cases.negatives[g]]]
            rank = int((negative >= positive).sum())  # ties count against the positive
            hits.append(float(rank < K))
            gains.append(1.0 / math.log2(rank + 2) if rank < K else 0.0)
            rivals = np.zeros(len(own), bool)  # the universe less the earlier items
            rivals[ranked] = True
            rivals[[column[i] for i in cases.earlier[g] if i in column]] = False
            rivals[column[cases.positives[g]]] = False
            recalls.append(float((own[rivals] >= positive).sum() < K))
    return Judged(np.array(hits), np.array(gains), np.array(recalls))


def _item_features(bundle: Any, features: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in bundle.fields.on_table_side("item")}
    return {k: v for k, v in features.items() if k in names
            and k != bundle.manifest.get("item_id_field")}


def _user_row(bundle: Any, history: HistoryField | None, user_fields: set[str], cases: Cases,
              g: int) -> tuple[np.ndarray, np.ndarray]:
    """The user's row as the service builds it, its window over the earlier items."""
    user = cases.users[g]
    position = bundle.users.position(user)
    if position is not None:
        idx, val = (np.array(a) for a in bundle.users.row(position))
    else:
        profile = {k: v for k, v in cases.profiles.get(user, {}).items() if k in user_fields}
        encoded = bundle.encoder.encode(profile)
        idx, val = encoded.idx, encoded.val
    if history is not None:
        over = cases.earlier[g] if cases.windows is None else cases.windows[g]
        idx, val = history.apply(idx, val, history.window(over))
    return idx, val
