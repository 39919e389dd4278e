"""The online experiment, as the routes use it: which variant answers a user, what is recorded
of each answer, impression and interaction, and the shadow variants' rankings.

Recording never fails a request it rides on: an answer or an interaction the store cannot
take is served (or saved) all the same and counted lost (gmlrec_experiment_writes_lost_total).
An impression, the one request that exists to be recorded, is a 503 then.

Shadow rankings run as tasks beside the request, after its answer is built: a worker keeps at
most MAX_SHADOWS of them pending and skips (and counts) the rest, so a slow shadow model costs
the served requests CPU, never an unbounded queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from service import metrics
from service.errors import StoreDown, UnknownRecommendation
from service.served_model import ServedModel
from service.settings import Settings
from service.stores import GuardedStore, StoreUnavailable
from service.stores.experiment import (
    Counts,
    Credit,
    ExperimentStore,
    Impression,
    Recorded,
)
from service.stores.experiment_memory import MemoryExperiments
from service.stores.experiment_redis import RedisExperiments
from service.stores.redis_store import RedisStore
from service.variants import Variant, assign

log = logging.getLogger("service.experiment")
MAX_SHADOWS = 32  # shadow rankings pending per worker


def new_recommendation_id() -> str:
    """128 random bits as hex: unguessable, so no client can credit another's answer."""
    return uuid.uuid4().hex


def experiments_of(store: GuardedStore, max_users: int) -> ExperimentStore:
    """The experiment's records beside the user store: in its Redis, or in process."""
    inner = store.store
    if isinstance(inner, RedisStore):
        return RedisExperiments(inner.client, inner.keys, inner._call)
    return MemoryExperiments(max_users)


class Experiment:
    def __init__(self, settings: Settings, store: GuardedStore):
        self.split, self.name = settings.split, settings.experiment
        self.window_s, self.cap = settings.attribution_window, settings.attribution_answers
        self.guard = store
        self.records = experiments_of(store, settings.memory_users)
        self._shadows: set[asyncio.Task] = set()

    def assign(self, user_id: str | None) -> Variant:
        """The user's variant; an anonymous request (no user id) is the control's."""
        return self.split.control if user_id is None else assign(self.split, user_id,
                                                                 self.name)

    async def answered(self, user_id: str | None, variant: Variant, recommendation_id: str,
                       item_ids: Sequence[str]) -> None:
        """Count an answer and keep it for its user (an anonymous one is counted only)."""
        metrics.VARIANT_ANSWERS.labels(variant.name).inc()
        if user_id is None:
            return
        answer = Recorded(recommendation_id, variant.name, tuple(item_ids), time.time())
        try:
            await self.guard.run(lambda: self.records.record_answer(
                self.name, user_id, answer, self.cap, self.window_s))
        except StoreUnavailable:
            metrics.EXPERIMENT_WRITES_LOST.labels("answer").inc()

    async def impression(self, user_id: str, recommendation_id: str, item_ids: Sequence[str]
                         ) -> Impression:
        try:
            found = await self.guard.run(lambda: self.records.record_impression(
                self.name, user_id, recommendation_id, item_ids))
        except StoreUnavailable:
            raise StoreDown(f"impression of {recommendation_id!r} not saved") from None
        if found is None:
            raise UnknownRecommendation(recommendation_id)
        if found.first:
            metrics.VARIANT_IMPRESSIONS.labels(found.variant).inc()
        if found.hit:
            metrics.VARIANT_HITS.labels(found.variant).inc()
        return found

    async def interacted(self, user_id: str, recommendation_id: str | None,
                         item_ids: Sequence[str]) -> list[Credit]:
        """Credit recorded interactions to the answers that showed them (the rule:
        service/stores/experiment.py)."""
        try:
            credits = await self.guard.run(lambda: self.records.attribute(
                self.name, user_id, recommendation_id, list(dict.fromkeys(item_ids)),
                time.time(), self.window_s))
        except StoreUnavailable:
            metrics.EXPERIMENT_WRITES_LOST.labels("interaction").inc()
            return []
        for credit in credits:
            metrics.VARIANT_ATTRIBUTED.labels(credit.variant).inc(credit.items)
            if credit.hit:
                metrics.VARIANT_HITS.labels(credit.variant).inc()
        return credits

    def shadow(self, models: Callable[[Variant], ServedModel | None],
               rank: Callable[[ServedModel], Awaitable[list[str]]], served: list[str]) -> None:
        """Rank the request again with each shadow variant's model, beside the request:
        record its latency and its overlap@n with the served items."""
        for variant in self.split.shadows:
            model = models(variant)
            if model is None:
                continue
            if len(self._shadows) >= MAX_SHADOWS:
                metrics.SHADOW_SKIPPED.labels(variant.name, "busy").inc()
                continue
            task = asyncio.create_task(self._shadow(variant, model, rank, served))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)

    async def _shadow(self, variant: Variant, model: ServedModel,
                      rank: Callable[[ServedModel], Awaitable[list[str]]],
                      served: list[str]) -> None:
        started = time.perf_counter()
        try:
            items = await rank(model)
        except Exception as err:  # a shadow's failure is its own: counted, never the request's
            metrics.SHADOW_SKIPPED.labels(variant.name, "failed").inc()
            log.debug("shadow ranking failed", extra={"variant": variant.name,
                                                      "problem": repr(err)})
            return
        metrics.VARIANT_SECONDS.labels(variant.name).observe(time.perf_counter() - started)
        if not served:
            return
        overlap = len(set(items[:len(served)]) & set(served)) / len(served)
        metrics.SHADOW_OVERLAP.labels(variant.name).observe(overlap)
        try:
            await self.guard.run(lambda: self.records.record_shadow(self.name, variant.name,
                                                                    overlap))
        except StoreUnavailable:
            metrics.EXPERIMENT_WRITES_LOST.labels("shadow").inc()

    async def drain(self) -> None:
        """Wait for the pending shadow rankings (at shutdown, and for tests)."""
        while self._shadows:
            await asyncio.gather(*list(self._shadows), return_exceptions=True)

    async def counts(self) -> dict[str, Counts]:
        try:
            return await self.guard.run(lambda: self.records.counts(self.name,
                                                                    self.split.names()))
        except StoreUnavailable:
            raise StoreDown("the experiment's counts cannot be read") from None
