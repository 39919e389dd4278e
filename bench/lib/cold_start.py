"""Ranking items the fit never saw: the held-out share, each case's candidates, the genre
popularity baseline, and HR@10 / NDCG@10 counted exactly over ties (bench.catalog).

A case is one (user, held-out item) interaction: the item is ranked among up to `negatives`
other held-out items the user never interacted with (all of them where fewer remain). Scores
that tie are ranked in a uniformly random order, and the metrics are their expectation over
that order, computed exactly: a random ranking is then every score equal, and a baseline
that gives many items one score (genre popularity: the items of one genre set tie) is
neither helped nor hurt by the order ties happen to be listed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CUTOFF = 10  # HR@10, NDCG@10


def held_out_items(item_ids: Sequence[str], share: float, seed: int) -> list[str]:
    """A seeded random `share` of the items (at least one), in catalog order."""
    count = max(1, round(share * len(item_ids)))
    chosen = np.random.default_rng(seed).choice(len(item_ids), count, replace=False)
    return [item_ids[k] for k in sorted(chosen.tolist())]


@dataclass(frozen=True)
class Cases:
    """Every (user, held-out item) interaction and its candidates, as indices into `held`."""

    held: list[str]  # the held-out item ids
    users: list[str]  # one per case
    positives: np.ndarray  # (C,) the case's item, an index into held
    negatives: list[np.ndarray]  # per case, the other candidates' indices into held
    wanted: int  # negatives asked for per case

    @property
    def short(self) -> int:
        """Cases with fewer negatives than asked for (every one the user left was taken)."""
        return sum(len(n) < self.wanted for n in self.negatives)


def cases(pairs: Sequence[tuple[str, str]], held: list[str], negatives: int,
          rng: np.random.Generator) -> Cases:
    """The cases of the (user id, item id) interactions `pairs` (those with a held item; a
    pair given twice counts once), in user order, each with `negatives` distinct held items
    its user never interacted with, drawn by `rng`."""
    index = {item: k for k, item in enumerate(held)}
    touched: dict[str, set[int]] = {}
    for user, item in pairs:
        if item in index:
            touched.setdefault(user, set()).add(index[item])
    users, positives, others = [], [], []
    for user in sorted(touched, key=_natural):
        mine = sorted(touched[user])
        free = np.setdiff1d(np.arange(len(held)), mine)
        for k in mine:
            users.append(user)
            positives.append(k)
            take = min(negatives, len(free))
            others.append(np.sort(rng.choice(free, take, replace=False)))
    return Cases(held, users, np.asarray(positives, np.int64), others, negatives)


def _natural(user: str) -> tuple[int, str]:
    return (int(user), "") if user.isdigit() else (1 << 62, user)


def genre_popularity(genres: Sequence[Sequence[str]], counts: Sequence[int],
                     items: Sequence[Sequence[str]]) -> np.ndarray:
    """Each of `items` (its genres) scored by the mean, over its genres, of each genre's share
    of the training interactions; `genres[k]` are training item k's genres and counts[k] its
    interactions (an interaction counts once for each genre of its item). An item without a
    known genre scores 0."""
    total = float(sum(counts))
    share: dict[str, float] = {}
    for held, count in zip(genres, counts, strict=True):
        for genre in held:
            share[genre] = share.get(genre, 0.0) + count / total
    return np.array([float(np.mean([share.get(g, 0.0) for g in item])) if item else 0.0
                     for item in items])


def rank_correlation(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's ρ: the correlation of the two sequences' ranks, ties given their mean
    rank; 0 where either is constant."""
    x, y = (_mean_ranks(np.asarray(v, np.float64)) for v in (a, b))
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _mean_ranks(x: np.ndarray) -> np.ndarray:
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # each distinct value's first rank (from 0)
    return (first + (counts - 1) / 2)[inverse]


@dataclass(frozen=True)
class Genre:
    """A genre's place in the training interactions, and that of the items of it alone."""

    name: str
    share: float  # of the interactions (an interaction counts for each genre of its item)
    items: int  # items of the genre
    alone: int  # items of this genre and no other
    alone_per_item: float  # interactions per item of those
    overall: float  # interactions per item, every item


def top_genre(genres: Sequence[Sequence[str]], counts: Sequence[int]) -> Genre:
    """The genre of the largest share of the interactions. Its items alone are those that
    genre_popularity scores highest (a mean over an item's genres is largest for the one
    top genre)."""
    totals: dict[str, list[float]] = {}
    for held, count in zip(genres, counts, strict=True):
        for genre in held:
            total = totals.setdefault(genre, [0.0, 0.0])
            total[0] += count
            total[1] += 1
    name, (interactions, items) = max(totals.items(), key=lambda kv: kv[1][0])
    alone = [count for held, count in zip(genres, counts) if list(held) == [name]]
    return Genre(name, interactions / sum(counts), int(items), len(alone),
                 float(np.mean(alone)) if alone else 0.0, sum(counts) / len(counts))


@dataclass(frozen=True)
class Hits:
    """HR@10 and NDCG@10 over a set of cases."""

    hr: float
    ndcg: float


def expected_hits(found: Cases, scores: Mapping[str, np.ndarray]) -> Hits:
    """HR@10 and NDCG@10 of the cases, each user's candidates ranked by scores[user] (one
    score per held item), ties in a uniformly random order: a case whose item g candidates
    beat and e tie is at rank g + t, t uniform in 0..e, and counts its expected hit and
    discounted gain."""
    hr = ndcg = 0.0
    for user, positive, negative in zip(found.users, found.positives.tolist(), found.negatives):
        mine = scores[user]
        ahead = int((mine[negative] > mine[positive]).sum())
        tied = int((mine[negative] == mine[positive]).sum())
        ranks = np.arange(ahead, min(ahead + tied, CUTOFF - 1) + 1)
        hr += len(ranks) / (tied + 1)
        ndcg += float((1.0 / np.log2(ranks + 2)).sum()) / (tied + 1)
    count = max(len(found.users), 1)
    return Hits(hr / count, ndcg / count)
