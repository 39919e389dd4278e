"""The experiment's records in process (GMLREC_REDIS_URL unset): service/stores/experiment.py.

Bounded as the in-process store is: answers of at most `max_users` users (the least recently
answered dropped first), each user's list capped and expiring as in Redis; distinct users
counted exactly up to `max_users` per variant, then no further (a lower bound from there).
Every method runs whole without an await, as Redis runs a script whole.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.stores.experiment import (
    IMPRESSED,
    INTERACTED,
    Counts,
    Credit,
    Impression,
    Recorded,
    credited,
)


@dataclass
class _Kept:
    answers: list[tuple[Recorded, int]]  # newest first, with their marks
    expires: float  # on the store's clock


class MemoryExperiments:
    """The ExperimentStore interface in process."""

    def __init__(self, max_users: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.max_users, self._clock = max_users, clock
        self._kept: OrderedDict[tuple[str, str], _Kept] = OrderedDict()
        self._counts: dict[tuple[str, str], dict[str, float]] = {}
        self._users: dict[tuple[str, str], set[str]] = {}

    async def record_answer(self, experiment: str, user_id: str, answer: Recorded, cap: int,
                            ttl_s: int) -> None:
        key = (experiment, user_id)
        kept = self._live(key)
        answers = [(answer, 0), *(kept.answers if kept else [])][:cap]
        self._kept[key] = _Kept(answers, self._clock() + ttl_s)
        self._kept.move_to_end(key)
        while len(self._kept) > self.max_users:
            self._kept.popitem(last=False)
        self._add(experiment, answer.variant, "answers", 1)
        users = self._users.setdefault((experiment, answer.variant), set())
        if len(users) < self.max_users:
            users.add(user_id)

    async def record_impression(self, experiment: str, user_id: str, recommendation_id: str,
                                item_ids: Sequence[str]) -> Impression | None:
        kept = self._live((experiment, user_id))
        for index, (answer, marks) in enumerate(kept.answers if kept else []):
            if answer.recommendation_id != recommendation_id:
                continue
            assert kept is not None
            first, hit = not marks & IMPRESSED, marks == INTERACTED
            kept.answers[index] = (answer, marks | IMPRESSED)
            self._add(experiment, answer.variant, "impressions", first)
            self._add(experiment, answer.variant, "hits", hit)
            return Impression(answer.variant, first, hit,
                              len(set(item_ids) & set(answer.items)))
        return None

    async def attribute(self, experiment: str, user_id: str, recommendation_id: str | None,
                        item_ids: Sequence[str], now: float, window_s: int) -> list[Credit]:
        kept = self._live((experiment, user_id))
        if kept is None:
            return []
        credits = []
        for index, items in credited(kept.answers, recommendation_id, item_ids,
                                     now - window_s).items():
            answer, marks = kept.answers[index]
            hit = marks == IMPRESSED
            kept.answers[index] = (answer, marks | INTERACTED)
            self._add(experiment, answer.variant, "attributed", items)
            self._add(experiment, answer.variant, "hits", hit)
            credits.append(Credit(answer.variant, items, hit))
        return credits

    async def record_shadow(self, experiment: str, variant: str, overlap: float) -> None:
        self._add(experiment, variant, "shadow_answers", 1)
        self._add(experiment, variant, "overlap_sum", overlap)

    async def counts(self, experiment: str, variants: Sequence[str]) -> dict[str, Counts]:
        found = {}
        for variant in variants:
            counted = self._counts.get((experiment, variant), {})
            found[variant] = Counts.of(len(self._users.get((experiment, variant), ())),
                                       counted)
        return found

    def _add(self, experiment: str, variant: str, what: str, by: float) -> None:
        if by:
            counted = self._counts.setdefault((experiment, variant), {})
            counted[what] = counted.get(what, 0) + by

    def _live(self, key: tuple[str, str]) -> _Kept | None:
        kept = self._kept.get(key)
        if kept is not None and kept.expires <= self._clock():
            del self._kept[key]
            return None
        return kept
