"""GuardedStore: after a store failure, stop calling it for a cool-down instead of retrying.

Without it every request would wait out a socket timeout while Redis is down, and all of
them would hammer it the moment it came back. With it one request pays the timeout, the
rest skip the store at once (StoreUnavailable, no wait) until the cool-down ends; then one
call is let through as the probe (the others keep skipping), and its success closes the
guard. /ready reads `degraded`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from events.record import Stamp
from service.stores.base import CheckedState, Store, StoredUser, StoreUnavailable
from service.stores.catalog import CatalogChange, CatalogSnapshot

T = TypeVar("T")
log = logging.getLogger("service.store")


class GuardedStore:
    """The Store interface over another store, guarded as the module doc says."""

    def __init__(self, store: Store, cooldown_s: float,
                 on_failure: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic):
        self.store, self.cooldown_s = store, cooldown_s
        self._on_failure, self._clock = on_failure, clock
        self._open_until: float | None = None  # None: closed (the store is trusted)
        self._probing = False
        self.last_error: str | None = None

    @property
    def degraded(self) -> bool:
        return self._open_until is not None

    async def read(self, user_id: str, model: str, seen: bool = False, history: bool = False
                   ) -> StoredUser:
        return await self._call(lambda: self.store.read(user_id, model, seen, history))

    async def write_profile(self, user_id: str, profile: bytes,
                            state: tuple[str, bytes] | None, ttl_s: int) -> None:
        await self._call(lambda: self.store.write_profile(user_id, profile, state, ttl_s))

    async def write_state(self, user_id: str, model: str, blob: bytes, ttl_s: int) -> None:
        await self._call(lambda: self.store.write_state(user_id, model, blob, ttl_s))

    async def add_interactions(self, user_id: str, item_ids: Sequence[str], cap: int,
                               state: CheckedState | None = None, stamp: Stamp | None = None
                               ) -> bool:
        return await self._call(lambda: self.store.add_interactions(user_id, item_ids, cap,
                                                                    state, stamp))

    async def reload_generation(self, bump: bool = False) -> int:
        return await self._call(lambda: self.store.reload_generation(bump))

    async def put_item(self, item_id: str, record: bytes, max_added: int) -> int:
        return await self._call(lambda: self.store.put_item(item_id, record, max_added))

    async def retire_item(self, item_id: str, in_bundle: bool) -> int | None:
        return await self._call(lambda: self.store.retire_item(item_id, in_bundle))

    async def catalog_snapshot(self) -> CatalogSnapshot:
        return await self._call(self.store.catalog_snapshot)

    async def catalog_changes(self, epoch: str, since: int) -> list[CatalogChange] | None:
        return await self._call(lambda: self.store.catalog_changes(epoch, since))

    async def ping(self) -> None:
        await self._call(self.store.ping)

    async def close(self) -> None:
        await self.store.close()

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation` unless the guard is open; a failure opens (or re-opens) it."""
        open_until = self._open_until
        probe = open_until is not None
        if open_until is not None and (self._probing or self._clock() < open_until):
            raise StoreUnavailable(f"store skipped after a failure: {self.last_error}")
        self._probing = probe
        try:
            result = await operation()
        except StoreUnavailable as err:
            if self._open_until is None:
                log.warning("store failed; serving from the bundle alone", extra={
                    "problem": str(err), "cooldown_s": self.cooldown_s})
            self._open_until = self._clock() + self.cooldown_s
            self.last_error = str(err)
            self._on_failure()
            raise
        finally:
            if probe:
                self._probing = False
        if self._open_until is not None:
            log.warning("store answers again")
        self._open_until, self.last_error = None, None
        return result
