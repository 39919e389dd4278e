"""The in-process store: what runs when GMLREC_REDIS_URL is unset (one worker, tests, demos).

It keeps the Redis store's semantics (keys, TTLs, one user's writes applied together), so the
suite runs the same HTTP tests against both. It is per process: with several workers each has
its own, which is why `python -m service` refuses several workers without Redis.

It is bounded: it holds at most `max_users` users (GMLREC_MEMORY_USERS), and writing one more
drops the least recently used user whole (profile, history and states), as a cache would; a
dropped user of the training data is served from the bundle again, one only PUT had created
is a 404. Redis, where users must last, is bounded by its own memory policy instead.

With a FileLog (GMLREC_EVENTS_DIR), interactions batches, profile PUTs and catalog changes
are appended to it before the change is applied, with no await between: an append that
fails (StoreUnavailable) applies nothing, and one acknowledged is in the log. The log
outlives the process; the users held here do not.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Sequence

from events.file_log import FileLog
from events.record import Stamp, interactions_line, profile_line
from service.stores.base import CheckedState, StoredUser
from service.stores.keys import Keys
from service.stores.memory_catalog import MemoryCatalog

SWEEP_EVERY = 4096  # expiring writes between sweeps of expired keys
NO_TTL = 0


class MemoryStore(MemoryCatalog):
    """Users here, the catalog overlay in MemoryCatalog (which no user eviction touches)."""

    def __init__(self, prefix: str = "gmlrec", clock=time.monotonic, max_users: int = 100_000,
                 profile_ttl_s: int = NO_TTL, events: FileLog | None = None):
        super().__init__(events=events)
        self.keys = Keys(prefix)
        self.max_users, self.profile_ttl_s = max_users, profile_ttl_s
        self._clock = clock
        self._values: dict[str, bytes] = {}
        self._lists: dict[str, list[str]] = {}
        self._expires: dict[str, float] = {}
        self._users: OrderedDict[str, set[str]] = OrderedDict()  # user -> its keys, LRU first
        self._writes = 0
        self._reloads = 0

    @property
    def users(self) -> int:
        """Users held now (at most max_users)."""
        return len(self._users)

    async def read(self, user_id: str, model: str, seen: bool = False, history: bool = False
                   ) -> StoredUser:
        self._touch(user_id)
        recorded = self._live_list(self.keys.history(user_id)) if seen or history else []
        return StoredUser(self._live(self.keys.profile(user_id)),
                          frozenset(recorded) if seen else frozenset(),
                          self._live(self.keys.state(user_id, model)),
                          tuple(recorded) if history else ())

    async def write_profile(self, user_id: str, profile: bytes,
                            state: tuple[str, bytes] | None, ttl_s: int) -> None:
        if self.events is not None:
            self._append_event(profile_line(user_id, json.loads(profile), time.time()))
        self._set(user_id, self.keys.profile(user_id), profile, self.profile_ttl_s)
        if state is not None:
            self._set(user_id, self.keys.state(user_id, state[0]), state[1], ttl_s)

    async def write_state(self, user_id: str, model: str, blob: bytes, ttl_s: int) -> None:
        self._set(user_id, self.keys.state(user_id, model), blob, ttl_s)

    async def add_interactions(self, user_id: str, item_ids: Sequence[str], cap: int,
                               state: CheckedState | None = None, stamp: Stamp | None = None
                               ) -> bool:
        # no await in here: one event loop runs it whole, as Redis runs its script
        if state is not None:
            key = self.keys.state(user_id, state.model)
            current = self._live(key)
            if (current is not None) if not state.expect else \
                    (current is None or not current.startswith(state.expect)):
                return False
        if stamp is not None:  # first: a log that fails leaves the state where it was
            self._append_event(interactions_line(user_id, list(item_ids), stamp))
        if state is not None:
            self._set(user_id, key, state.blob, state.ttl_s)
        key = self.keys.history(user_id)
        history = self._live_list(key) + list(item_ids)
        self._lists[key] = history[-cap:]
        self._own(user_id, key, self.profile_ttl_s)
        return True

    async def reload_generation(self, bump: bool = False) -> int:
        self._reloads += bump
        return self._reloads

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        if self.events is not None:
            self.events.close()

    def ttl(self, key: str) -> float:
        """Seconds left on a key; as Redis' TTL, -1 for a key without one, -2 for none."""
        present = self._live(key) is not None or bool(self._live_list(key))
        if not present:
            return -2
        return self._expires[key] - self._clock() if key in self._expires else -1

    def _set(self, user_id: str, key: str, blob: bytes, ttl_s: int) -> None:
        self._values[key] = blob
        self._own(user_id, key, ttl_s)

    def _own(self, user_id: str, key: str, ttl_s: int) -> None:
        """`key` now belongs to `user_id`, the most recently used user, expiring in ttl_s
        (NO_TTL: never); the least recently used user goes if there are too many."""
        self._users.setdefault(user_id, set()).add(key)
        self._users.move_to_end(user_id)
        if ttl_s != NO_TTL:
            self._expires[key] = self._clock() + ttl_s
        else:
            self._expires.pop(key, None)
        while len(self._users) > self.max_users:
            _, keys = self._users.popitem(last=False)
            for dropped in keys:
                self._drop(dropped)
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:  # keys of users never read again still expire
            now = self._clock()
            for stale in [k for k, t in self._expires.items() if t <= now]:
                self._drop(stale)

    def _touch(self, user_id: str) -> None:
        if user_id in self._users:
            self._users.move_to_end(user_id)

    def _drop(self, key: str) -> None:
        self._values.pop(key, None)
        self._lists.pop(key, None)
        self._expires.pop(key, None)

    def _expired(self, key: str) -> bool:
        expires = self._expires.get(key)
        if expires is not None and expires <= self._clock():
            self._drop(key)
            return True
        return False

    def _live(self, key: str) -> bytes | None:
        return None if self._expired(key) else self._values.get(key)

    def _live_list(self, key: str) -> list[str]:
        return [] if self._expired(key) else self._lists.get(key, [])
