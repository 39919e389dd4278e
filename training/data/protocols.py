"""The papers' evaluation protocols (docs/protocol.md), deterministic for a seed and vectorized.

rating: every interaction is a +1 instance with `negatives` sampled never-interacted items at
        -1; all instances split at random 70 / 20 / 10 into train / validation / test.
topn:   per user, the latest interaction is the test positive and the one before it the
        validation positive; the rest train, each with `negatives` sampled -1 items. Each held-out
        positive is ranked against `candidates` distinct never-interacted items.
With the history field (training.data.history) every instance also carries its interaction's
window of earlier interactions: top-n windows hold every earlier interaction (a training
positive's only training ones, since the held-out two are each user's latest); rating windows
hold earlier *training* interactions only, so no held-out item ever enters one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from training.data.history import HistorySpec, attach_windows, chronological
from training.data.instances import InstanceSet, Interactions, LibfmData, RankingGroups
from training.data.sampling import pair_keys, sample_unseen
from training.errors import DataError

Task = Literal["rating", "topn"]


@dataclass(frozen=True)
class Catalog:
    """What full-catalog ranking needs: each test user's positive and the items known to the
    model for that user (training and validation positives), which are left out of the ranking."""

    data: Interactions
    test_users: np.ndarray  # (G,)
    test_items: np.ndarray  # (G,)
    known_keys: np.ndarray  # sorted pair keys of train + validation positives
    test_contexts: np.ndarray | None = None  # (G,) each positive's context row, if any
    test_windows: np.ndarray | None = None  # (G,) each positive's history window row, if any


@dataclass(frozen=True)
class Split:
    task: Task
    train: InstanceSet
    valid: InstanceSet | RankingGroups | None
    test: InstanceSet | RankingGroups
    catalog: Catalog | None = None
    notes: tuple[str, ...] = ()
    sampler: NegativeSampler | None = None  # interaction data: fresh, leak-free negatives
    history: HistorySpec | None = None  # instances carry history windows (--history N)


def unique_interactions(data: Interactions
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(users, items, times, contexts) with repeated (user, item) pairs reduced to their latest
    interaction, so a re-watched item can never sit in both train and test; contexts is None
    for data without context."""
    order = np.lexsort((data.times, data.items, data.users))
    u, i = data.users[order], data.items[order]
    last = np.ones(len(u), bool)
    last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    keep = order[last]
    return data.users[keep], data.items[keep], data.times[keep], _take(data.contexts, keep)


def _take(contexts: np.ndarray | None, selector: np.ndarray) -> np.ndarray | None:
    return None if contexts is None else contexts[selector]


def _repeat(contexts: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if contexts is None else np.repeat(contexts, n)


@dataclass(frozen=True)
class NegativeSampler:
    """Training positives and the pairs their negatives must avoid (`known`, sorted keys).

    The protocol's one draw avoids every interaction (docs/protocol.md). Fresh draws each epoch
    avoid training positives only: were held-out items never drawn, hundreds of draws would
    teach the model which items are held out (measured: +0.05 HR@10 of pure leakage).
    """

    data: Interactions
    users: np.ndarray  # (P,) training positives
    items: np.ndarray  # (P,)
    known: np.ndarray
    negatives: int
    contexts: np.ndarray | None = None  # (P,) for data with context; a negative shares it
    windows: np.ndarray | None = None  # (P,) history window rows; a negative shares it too

    def training_only(self) -> NegativeSampler:
        """The same positives, avoiding only themselves: what per-epoch draws may know."""
        keys = np.unique(pair_keys(self.users, self.items, self.data.n_items))
        return dataclasses.replace(self, known=keys)

    def draw_items(self, rng: np.random.Generator) -> np.ndarray:
        """(P, negatives) negative items, row p for positive p."""
        return sample_unseen(self.users, self.negatives, self.data.n_items, self.known, rng,
                             distinct=False)

    def draw(self, rng: np.random.Generator) -> InstanceSet:
        """Positives at +1, then each positive's fresh negatives at -1."""
        return self.instances(self.draw_items(rng))

    def instances(self, negatives: np.ndarray) -> InstanceSet:
        """Positives at +1, then the (P, negatives) items at -1 in positive-major order, each
        with its positive's user (and context)."""
        n = self.negatives
        users = np.concatenate([self.users, np.repeat(self.users, n)])
        items = np.concatenate([self.items, negatives.ravel()])
        labels = np.concatenate([np.ones(len(self.users)), -np.ones(negatives.size)])
        return self.data.pairs(users, items, labels, _with_repeats(self.contexts, n),
                               _with_repeats(self.windows, n))

    def positives_of(self, instances: InstanceSet) -> NegativeSampler:
        """The same sampler over the positives of `instances` (made by this sampler's data)."""
        positive = instances.labels > 0
        rows = [r[positive] for r in instances.rows]  # users, items, [contexts], [windows]
        contexts = rows[2] if self.data.context_table is not None else None
        windows = rows[-1] if self.data.window_table is not None else None
        return dataclasses.replace(self, users=rows[0], items=rows[1], contexts=contexts,
                                   windows=windows)


def _with_repeats(rows: np.ndarray | None, n: int) -> np.ndarray | None:
    """Each positive's row, then each again for its n negatives (positive-major order)."""
    return None if rows is None else np.concatenate([rows, np.repeat(rows, n)])


def rating_split(data: Interactions, seed: int, negatives: int = 2,
                 fractions: tuple[float, float] = (0.7, 0.2)) -> Split:
    rng = np.random.default_rng(seed)
    users, items, times, contexts = unique_interactions(data)
    known = np.sort(pair_keys(users, items, data.n_items))
    sampler = NegativeSampler(data, users, items, known, negatives, contexts)
    drawn = sampler.draw_items(rng)
    n = len(users) * (1 + negatives)
    order = rng.permutation(n)
    cut_train = int(round(fractions[0] * n))
    cut_valid = cut_train + int(round(fractions[1] * n))
    trains = order[:cut_train]
    in_train = np.zeros(len(users), bool)  # interactions whose positive instance trains
    in_train[trains[trains < len(users)]] = True  # (instance k < P is interaction k's positive)
    windowed, windows = attach_windows(data, users, items, times, in_train)
    sampler = dataclasses.replace(sampler, data=windowed, windows=windows)
    every = sampler.instances(drawn)
    train = every.subset(trains)
    sampler = sampler.positives_of(train)
    return Split("rating", train, every.subset(order[cut_train:cut_valid]),
                 every.subset(order[cut_valid:]), sampler=sampler.training_only(),
                 notes=_history_notes(data, "earlier training interactions only"),
                 history=data.history)


def _history_notes(data: Interactions, source: str) -> tuple[str, ...]:
    if data.history is None:
        return ()
    return (f"history: {data.history.describe()}; windows hold {source}",)


def topn_split(data: Interactions, seed: int, negatives: int = 2, candidates: int = 99) -> Split:
    rng = np.random.default_rng(seed)
    users, items, times, contexts = unique_interactions(data)
    order = chronological(users, times)  # by user, then time, ties by item code
    users, items, times, contexts = users[order], items[order], times[order], \
        _take(contexts, order)
    counts = np.bincount(users, minlength=data.n_users)
    if not (counts >= 2).any():
        raise DataError(f"{data.name}: no user has 2 interactions; top-n needs a held-out one")
    ends = np.cumsum(counts)  # one past each user's latest interaction
    test_pos = ends[counts >= 2] - 1
    valid_pos = ends[counts >= 3] - 2
    held_out = np.zeros(len(users), bool)
    held_out[test_pos] = held_out[valid_pos] = True
    # each window holds every earlier interaction: a training positive's are training ones
    data, windows = attach_windows(data, users, items, times, np.ones(len(users), bool))
    all_known = np.sort(pair_keys(users, items, data.n_items))
    sampler = NegativeSampler(data, users[~held_out], items[~held_out], all_known, negatives,
                              _take(contexts, ~held_out), _take(windows, ~held_out))
    train = sampler.draw(rng)
    valid, test = (_ranking_groups(data, users[pos], items[pos], _take(contexts, pos),
                                   _take(windows, pos), candidates, all_known, rng)
                   for pos in (valid_pos, test_pos))
    model_known = np.union1d(sampler.training_only().known,
                             pair_keys(users[valid_pos], items[valid_pos], data.n_items))
    catalog = Catalog(data, users[test_pos], items[test_pos], model_known,
                      _take(contexts, test_pos), _take(windows, test_pos))
    return Split("topn", train, valid, test, catalog, sampler=sampler.training_only(),
                 notes=_history_notes(data, "every earlier interaction"),
                 history=data.history)


def _ranking_groups(data: Interactions, users: np.ndarray, positives: np.ndarray,
                    contexts: np.ndarray | None, windows: np.ndarray | None, candidates: int,
                    known: np.ndarray, rng: np.random.Generator) -> RankingGroups:
    """Each positive followed by `candidates` distinct items its user never interacted with,
    all in the positive's context and history window."""
    neg = sample_unseen(users, candidates, data.n_items, known, rng, distinct=True)
    group_items = np.concatenate([positives[:, None], neg], axis=1)  # (G, 1 + C)
    labels = np.full(group_items.shape, -1.0)
    labels[:, 0] = 1.0
    instances = data.pairs(np.repeat(users, candidates + 1), group_items.ravel(), labels.ravel(),
                           _repeat(contexts, candidates + 1), _repeat(windows, candidates + 1))
    return RankingGroups(instances, candidates + 1)


def libfm_split(data: LibfmData, task: Task, group_size: int) -> Split:
    """libFM files carry their own split; for top-n the test (and validation) files are groups
    of `group_size` consecutive lines, the positive first."""
    notes = list(data.notes)
    if data.valid is None:
        notes.append("no validation file: no early stopping, the last epoch is kept")
    if task == "rating":
        return Split(task, data.train, data.valid, data.test, notes=tuple(notes))
    return Split(task, data.train,
                 _as_groups(data.valid, group_size, data.files.get("validation")),
                 _as_groups(data.test, group_size, data.files.get("test")), notes=tuple(notes))


def _as_groups(instances: InstanceSet | None, group_size: int, path: str | None
               ) -> RankingGroups | None:
    if instances is None:
        return None
    if group_size < 2 or len(instances) % group_size:
        raise DataError(f"{len(instances)} lines, not a multiple of --group-size {group_size}",
                        path)
    return RankingGroups(instances, group_size)


def make_split(data: Interactions | LibfmData, task: Task, seed: int,
               group_size: int = 100) -> Split:
    if isinstance(data, LibfmData):
        return libfm_split(data, task, group_size)
    return rating_split(data, seed) if task == "rating" else topn_split(data, seed)
