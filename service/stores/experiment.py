"""The experiment's records: the answers each user got, and the counts of each variant.

One interface, an in-process and a Redis implementation (experiment_memory.py,
experiment_redis.py), held to the same planted cases (tests/service/test_experiment_store.py).

What is kept, per experiment (GMLREC_EXPERIMENT names it):

- per user, its last `cap` answers (GMLREC_ATTRIBUTION_ANSWERS), newest first, each with its
  recommendation id, variant, items and time, and two marks: impressed, interacted; the list
  expires GMLREC_ATTRIBUTION_WINDOW after the user's last answer, and an answer older than
  the window is credited with nothing even while its list lasts;
- per variant, counts: answers, impressions (answers first reported shown), hits (answers
  both impressed and credited with at least one interaction, counted once each), attributed
  (interacted items credited), and for a shadow variant its rankings and the sum of their
  overlaps with the served answers; and the distinct users answered, approximately
  (HyperLogLog in Redis, a set capped at GMLREC_MEMORY_USERS per variant in process).

The attribution rule (docs/contract.md): an interacted item is credited to one answer: the
one its recommendation_id names if the interaction gives one, else the most recent answer
to that user that holds the item; either way an answer younger than the window that holds
the item. Items no such answer holds are credited to nobody.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Recorded:
    """An answer as kept: what /recommend returned to a user."""

    recommendation_id: str
    variant: str
    items: tuple[str, ...]
    at: float  # seconds since the epoch, the serving replica's clock


@dataclass(frozen=True)
class Impression:
    """What an impression found: the answer's variant, whether this was its first impression,
    whether that made it a hit (it was interacted with before), and how many of the ids
    reported shown are items of the answer."""

    variant: str
    first: bool
    hit: bool
    shown: int


@dataclass(frozen=True)
class Credit:
    """Interacted items credited to one answer of a variant; `hit`: this made the answer a
    hit (impressed before, never credited before)."""

    variant: str
    items: int
    hit: bool


@dataclass(frozen=True)
class Counts:
    """One variant's counts (see the module doc)."""

    users: int = 0
    answers: int = 0
    impressions: int = 0
    hits: int = 0
    attributed: int = 0
    shadow_answers: int = 0
    overlap_sum: float = 0.0

    @staticmethod
    def of(users: int, counted: Mapping[str, float], suffix: str = "") -> Counts:
        """The counts a store read, each under its field's name and `suffix` (0 if absent)."""
        def get(name: str) -> float:
            return counted.get(name + suffix, 0)
        return Counts(users, int(get("answers")), int(get("impressions")), int(get("hits")),
                      int(get("attributed")), int(get("shadow_answers")),
                      float(get("overlap_sum")))


IMPRESSED, INTERACTED = 1, 2  # an answer's marks, as both stores keep them (bits)


class ExperimentStore(Protocol):
    async def record_answer(self, experiment: str, user_id: str, answer: Recorded, cap: int,
                            ttl_s: int) -> None:
        """Keep the answer first in the user's list (its last `cap`), restart the list's
        TTL, count the answer and its user for its variant."""

    async def record_impression(self, experiment: str, user_id: str, recommendation_id: str,
                                item_ids: Sequence[str]) -> Impression | None:
        """Mark the user's answer impressed; None if the user has no such answer kept."""

    async def attribute(self, experiment: str, user_id: str, recommendation_id: str | None,
                        item_ids: Sequence[str], now: float, window_s: int) -> list[Credit]:
        """Credit interacted items to answers by the rule of the module doc, count them."""

    async def record_shadow(self, experiment: str, variant: str, overlap: float) -> None:
        """Count one ranking of a shadow variant and its overlap with the served answer."""

    async def counts(self, experiment: str, variants: Sequence[str]) -> dict[str, Counts]:
        """Each variant's counts, shared by every worker and replica of the store."""


def credited(answers: Sequence[tuple[Recorded, int]], recommendation_id: str | None,
             item_ids: Sequence[str], since: float) -> dict[int, int]:
    """The rule, by definition: answer index (newest first) -> items credited to it."""
    credit: dict[int, int] = {}
    for item in item_ids:
        for index, (answer, _) in enumerate(answers):
            if answer.at < since or recommendation_id not in (None, answer.recommendation_id):
                continue
            if item in answer.items:
                credit[index] = credit.get(index, 0) + 1
                break
    return credit
