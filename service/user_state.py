"""User state: where a request's user state comes from, and where profile and interaction
writes go.

A user's profile is the one in the store (written by PUT) or else the bundle's (a user of the
training data). Its state is read from the store in the same round trip as the profile and
used if it was computed from that very profile (state_blob's tag); otherwise it is computed
and written back with a fresh TTL. Requests with their own features (overrides, context, an
anonymous user) compute their state and cache nothing.

A model with a history field adds the user's window (its training interactions, then those
recorded since, the last N distinct) to the tag, and its state moves with every interaction
(bundle/incremental.py, docs/math.md, History): a write reads the user's state and history, moves
the state by the new items (O((|P| + m)·k), against O((|P| + m)²·k) for a recompute), and
writes the items and the moved state in one atomic step that holds only if no other writer
came first (CheckedState); one that did makes this one start again from what it wrote. So the
next read, on any replica, finds a state that already includes the write. The full build
runs once per user and model version, after a PUT, or where a writer kept losing races.

A user id with neither a stored profile nor a training one is answered, where
GMLREC_UNKNOWN_USERS is `cold` (the default), from an empty profile (source `unknown`): the
model's item-side terms alone, the same state for every such id, computed and never cached
(a crawler's ids would fill the store). `reject` makes it a 404. Writes about a user
(interactions) and GET /users/{id} need a profile either way.

A user's seen items are union positions of the request's catalog (service/union_catalog.py):
an added item recorded as seen is left out like a bundle item; a retired one is in no answer.

When the store fails, reads carry on from the bundle alone (counted, flagged `degraded`):
a training user is scored from its bundle profile and training interactions. A user known
only to the store cannot be (nor can an unknown one: the store might hold its profile), and
writes cannot be kept; those are 503s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bundle import EncodedUser
from bundle.history import latest_first_once
from bundle.incremental import PairSums
from events.record import Stamp
from service import metrics, state_blob
from service.errors import StoreDown, UnknownItems, UnknownUser
from service.profiles import FeatureMap
from service.schemas import UserSource
from service.served_model import ServedModel
from service.stores import CheckedState, StoredUser, StoreUnavailable, UserStore
from service.union_catalog import UnionCatalog

NO_ITEMS = np.zeros(0, np.int64)
# Tries of a history write against racing writers before it leaves the state to the next
# read: each try is a read, a move and a conditional write (~1 ms), and a lost one waits a
# random moment (up to 1 ms per try so far) so that racing writers fall out of step.
MOVE_ATTEMPTS = 32


@dataclass(frozen=True)
class ResolvedUser:
    state: np.ndarray  # (D,) float32
    ignored: dict[str, list[str]]  # values of the request's own features the model ignores
    seen: np.ndarray  # union positions the user has interacted with (if asked for), sorted
    degraded: bool  # answered without the store
    source: UserSource  # where its profile came from
    row: EncodedUser | None = None  # its feature row, where asked for (explain=true)


class Users:
    def __init__(self, store: UserStore, ttl_s: int, history_cap: int,
                 cold_unknown: bool = True):
        """`cold_unknown`: answer a user id without a profile from an empty one
        (GMLREC_UNKNOWN_USERS=cold) rather than a 404."""
        self.store, self.ttl_s, self.history_cap = store, ttl_s, history_cap
        self.cold_unknown = cold_unknown

    async def resolve(self, model: ServedModel, user_id: str, overrides: FeatureMap | None = None,
                      context: FeatureMap | None = None, seen_in: UnionCatalog | None = None,
                      with_row: bool = False) -> ResolvedUser:
        """The state of a user by its id (store, bundle, or an empty profile where unknown
        users are answered), with the request's overrides and context on top of its profile;
        with `seen_in`, its seen items as positions of that catalog; with `with_row`, the
        feature row the state stands for (its window included)."""
        history = model.profiles.history is not None
        record, degraded = await self._read(model, user_id, seen_in is not None, history)
        profile, stored, source = self._profile(model, user_id, record, degraded,
                                                self.cold_unknown)
        position = model.training.position(user_id)
        seen_positions = self._seen(model, seen_in, position, record.seen) \
            if seen_in is not None else NO_ITEMS
        window = model.training.window(position, record.history)
        if overrides or context:
            row = model.profiles.encode(user_id, profile, overrides, context, window)
            metrics.STATE_CACHE.labels("bypass").inc()
            return ResolvedUser(model.states([row])[0], row.ignored, seen_positions, degraded,
                                source, row)
        explained = model.profiles.encode(user_id, profile, window=window) if with_row \
            else None
        tag = state_blob.profile_tag(stored, window)
        cached = state_blob.unpack(record.state, tag, model.state_size, model.sums_size)
        if cached is not None:
            metrics.STATE_CACHE.labels("hit").inc()
            return ResolvedUser(cached[0], {}, seen_positions, degraded, source, explained)
        state, sums = self._build(model, user_id, profile, window)
        kept = not degraded and source != "unknown"
        metrics.STATE_CACHE.labels("miss" if kept else "bypass").inc()
        if kept:
            await self._write_state(model, user_id, state_blob.pack(tag, state, sums))
        return ResolvedUser(state, {}, seen_positions, degraded, source, explained)

    @staticmethod
    def _build(model: ServedModel, user_id: str, profile: dict[str, Any],
               window: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """A user's state from its profile (and window), and a history model's pair sums."""
        row = model.profiles.encode(user_id, profile)  # its history columns empty
        if model.incremental is None:
            return model.states([row])[0], None
        state, sums = model.incremental.build(row.idx, row.val, window)
        return state, sums.as_array()

    async def profile(self, model: ServedModel, user_id: str
                      ) -> tuple[dict[str, Any], str, list[str]]:
        """A known user's profile, where it comes from (`stored` or `training`), and the
        interactions recorded for it, oldest first."""
        record, degraded = await self._read(model, user_id, False, history=True)
        profile, _, source = self._profile(model, user_id, record, degraded)
        return profile, source, list(record.history)

    @staticmethod
    def _profile(model: ServedModel, user_id: str, record: StoredUser, degraded: bool,
                 cold_unknown: bool = False) -> tuple[dict[str, Any], bytes, UserSource]:
        """The profile the store holds, else the bundle's; with its canonical text (what a
        cached state is tagged with) and its source. Neither: an empty one where
        `cold_unknown`, else a 404 (a 503 either way while the store, which might hold it,
        is down)."""
        if record.profile is not None:
            return json.loads(record.profile), record.profile, "stored"
        position = model.training.position(user_id)
        if position is not None:
            profile = model.training.profile(position)
            return profile, state_blob.canonical_profile(profile), "training"
        if degraded:
            raise StoreDown(f"user {user_id!r} is not in the model's training data")
        if cold_unknown:
            return {}, state_blob.canonical_profile({}), "unknown"
        raise UnknownUser(user_id)

    @staticmethod
    def anonymous(model: ServedModel, user: FeatureMap, context: FeatureMap | None
                  ) -> ResolvedUser:
        """A user the service has never seen: features from the request only."""
        row = model.profiles.encode(None, {}, user, context)
        metrics.STATE_CACHE.labels("bypass").inc()
        return ResolvedUser(model.states([row])[0], row.ignored, NO_ITEMS, False, "anonymous",
                            row)

    async def put_profile(self, model: ServedModel, user_id: str, features: FeatureMap
                          ) -> dict[str, list[str]]:
        """Create or replace a profile, with its state for the served model in the same
        round trip (read-your-writes); returns the values the model will ignore."""
        ignored = model.profiles.check(features, "features")
        profile = state_blob.canonical_profile(features)
        cached = None  # a history model's state needs the history: the next read makes it
        if model.profiles.history is None:
            state = model.states([model.profiles.encode(user_id, dict(features))])[0]
            cached = (model.key, state_blob.pack(state_blob.profile_tag(profile), state))
        try:
            await self.store.write_profile(user_id, profile, cached, self.ttl_s)
        except StoreUnavailable:
            raise StoreDown(f"profile of {user_id!r} not saved") from None
        return ignored

    async def record(self, model: ServedModel, catalog: UnionCatalog, user_id: str,
                     item_ids: Sequence[str], stamp: Stamp) -> None:
        """Add interactions of a known user, oldest first (an id given twice counts once, at
        its last place), and move a history model's state with them, the batch going to the
        event log with `stamp` in the same step; items `catalog` does not serve (unknown or
        retired) are a 404 naming them. An added item is recorded,
        and moves no state: the history field's vocabulary lacks it (docs/math.md, Added
        items), as HistoryField.window and IncrementalState.update both skip it."""
        _, unknown = catalog.positions(item_ids)
        if unknown:
            raise UnknownItems(unknown)
        items = latest_first_once(item_ids)
        try:
            for attempt in range(MOVE_ATTEMPTS if model.incremental else 1):
                if attempt:
                    await asyncio.sleep(random.uniform(0, 0.001 * attempt))
                record = await self.store.read(user_id, model.key,
                                               history=model.incremental is not None)
                profile, stored, _ = self._profile(model, user_id, record, False)
                if model.incremental is None:
                    await self.store.add_interactions(user_id, items, self.history_cap,
                                                      stamp=stamp)
                    return
                moved, how = self._moved(model, user_id, profile, stored, record, items)
                if await self.store.add_interactions(user_id, items, self.history_cap, moved,
                                                     stamp):
                    metrics.HISTORY_WRITES.labels(how).inc()
                    return
            # other writers kept coming first: keep the items, let the next read build
            await self.store.add_interactions(user_id, items, self.history_cap, stamp=stamp)
            metrics.HISTORY_WRITES.labels("raced").inc()
        except StoreUnavailable:
            raise StoreDown(f"interactions of {user_id!r} not saved") from None

    def _moved(self, model: ServedModel, user_id: str, profile: dict[str, Any], stored: bytes,
               record: StoredUser, items: list[str]) -> tuple[CheckedState, str]:
        """The state of a history model's user after these items, to write with them if the
        state read is still the one held: moved from the cached state (`moved`), or built
        whole where none fits (`rebuilt`)."""
        assert model.incremental is not None
        position = model.training.position(user_id)
        before = model.training.window(position, record.history)
        after = model.training.window(position, [*record.history, *items][-self.history_cap:])
        row = model.profiles.encode(user_id, profile)
        cached = state_blob.unpack(record.state, state_blob.profile_tag(stored, before),
                                   model.state_size, model.sums_size)
        how = "rebuilt"
        if cached is not None:
            window, state, sums = model.incremental.update(
                row.idx, row.val, before, PairSums.of(cached[1]), items)
            how = "moved" if window == after else how  # a cap below N: build instead
        if how == "rebuilt":
            state, sums = model.incremental.build(row.idx, row.val, after)
        blob = state_blob.pack(state_blob.profile_tag(stored, after), state, sums.as_array())
        return CheckedState(model.key, blob, state_blob.tag_of(record.state), self.ttl_s), how

    async def _read(self, model: ServedModel, user_id: str, seen: bool, history: bool = False
                    ) -> tuple[StoredUser, bool]:
        try:
            return await self.store.read(user_id, model.key, seen, history), False
        except StoreUnavailable:
            metrics.STORE_FALLBACKS.inc()
            return StoredUser(None, frozenset(), None), True

    async def _write_state(self, model: ServedModel, user_id: str, blob: bytes) -> None:
        with contextlib.suppress(StoreUnavailable):  # counted by the guard; the answer
            await self.store.write_state(user_id, model.key, blob, self.ttl_s)  # stands

    @staticmethod
    def _seen(model: ServedModel, catalog: UnionCatalog, position: int | None,
              stored: frozenset[str]) -> np.ndarray:
        """Training interactions from the bundle plus those recorded since, as union
        positions (ids the catalog no longer serves are skipped)."""
        trained = model.training.seen(position) if position is not None else NO_ITEMS
        return catalog.seen(trained, stored)

