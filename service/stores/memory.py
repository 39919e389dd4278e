"""The in-process store: what runs when GMLREC_REDIS_URL is unset (one worker, tests, demos).

It keeps the Redis store's semantics (keys, TTLs, one user's writes applied together), so the
suite runs the same HTTP tests against both. It is per process: with several workers each has
its own, which is why `python -m service` refuses several workers without Redis.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from service.stores.base import CheckedState, StoredUser
from service.stores.keys import Keys

SWEEP_EVERY = 4096  # state writes between sweeps of expired states


class MemoryStore:
    def __init__(self, prefix: str = "gmlrec", clock=time.monotonic):
        self.keys = Keys(prefix)
        self._clock = clock
        self._values: dict[str, bytes] = {}
        self._sets: dict[str, set[str]] = {}
        self._lists: dict[str, list[str]] = {}
        self._expires: dict[str, float] = {}
        self._writes = 0

    async def read(self, user_id: str, model: str, seen: bool = False, history: bool = False
                   ) -> StoredUser:
        items = self._sets.get(self.keys.seen(user_id), set()) if seen else set()
        recorded = self._lists.get(self.keys.history(user_id), []) if history else []
        return StoredUser(self._values.get(self.keys.profile(user_id)), frozenset(items),
                          self._live(self.keys.state(user_id, model)), tuple(recorded))

    async def write_profile(self, user_id: str, profile: bytes,
                            state: tuple[str, bytes] | None, ttl_s: int) -> None:
        self._values[self.keys.profile(user_id)] = profile
        if state is not None:
            self._set_expiring(self.keys.state(user_id, state[0]), state[1], ttl_s)

    async def write_state(self, user_id: str, model: str, blob: bytes, ttl_s: int) -> None:
        self._set_expiring(self.keys.state(user_id, model), blob, ttl_s)

    async def add_interactions(self, user_id: str, item_ids: Sequence[str], cap: int,
                               state: CheckedState | None = None) -> bool:
        # no await in here: one event loop runs it whole, as Redis runs its script
        if state is not None:
            key = self.keys.state(user_id, state.model)
            current = self._live(key)
            if (current is not None) if not state.expect else \
                    (current is None or not current.startswith(state.expect)):
                return False
            self._set_expiring(key, state.blob, state.ttl_s)
        history = self._lists.setdefault(self.keys.history(user_id), [])
        history.extend(item_ids)
        del history[:-cap]
        self._sets.setdefault(self.keys.seen(user_id), set()).update(item_ids)
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def ttl(self, key: str) -> float:
        """Seconds left on a key; as Redis' TTL, -1 for a key without one, -2 for none."""
        if key in self._expires and self._live(key) is not None:
            return self._expires[key] - self._clock()
        return -1 if key in self._values or key in self._sets or key in self._lists else -2

    def _set_expiring(self, key: str, blob: bytes, ttl_s: int) -> None:
        self._values[key] = blob
        self._expires[key] = self._clock() + ttl_s
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:  # states of users never read again still expire
            now = self._clock()
            for stale in [k for k, t in self._expires.items() if t <= now]:
                del self._values[stale], self._expires[stale]

    def _live(self, key: str) -> bytes | None:
        expires = self._expires.get(key)
        if expires is not None and expires <= self._clock():
            self._values.pop(key, None)
            del self._expires[key]
        return self._values.get(key)
