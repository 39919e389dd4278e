"""The store's interfaces: its users (UserStore), and users with the catalog overlay (Store).

Each has an in-process and a Redis implementation. The store knows keys and bytes, nothing
of models: profiles are JSON written by the caller, states are opaque blobs. Every method
that fails for a reason outside the request (Redis down, slow, refusing) raises
StoreUnavailable and nothing else, so the caller has one thing to catch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from events.record import Stamp
from service.stores.catalog import CatalogStore


class StoreUnavailable(Exception):
    """The store could not answer in time; the message says why."""


@dataclass(frozen=True)
class StoredUser:
    """What one round trip returns for a user."""

    profile: bytes | None  # the JSON last written by write_profile, None if never
    seen: frozenset[str]  # the history's item ids, as a set (empty unless asked for)
    state: bytes | None  # the blob under the given state key, None if absent or expired
    history: tuple[str, ...] = ()  # the recorded item ids, oldest first (empty unless asked)


@dataclass(frozen=True)
class CheckedState:
    """A state blob to write with interactions only if the state held still starts with
    `expect` (b"": only if none is held), the beginning of the one it was moved from: a
    writer that raced another finds the check failed, writes nothing, and tries again from
    what that one wrote."""

    model: str  # "name:version"
    blob: bytes
    expect: bytes
    ttl_s: int


class UserStore(Protocol):
    async def read(self, user_id: str, model: str, seen: bool = False, history: bool = False
                   ) -> StoredUser:
        """Profile, the state blob of `model` ("name:version"), and if asked the items seen
        and the ordered history (one list: the last `cap` interactions)."""

    async def write_profile(self, user_id: str, profile: bytes,
                            state: tuple[str, bytes] | None, ttl_s: int) -> None:
        """Replace the profile and, in the same round trip, the state of one model
        (`(model, blob)`), so the next reader finds both."""

    async def write_state(self, user_id: str, model: str, blob: bytes, ttl_s: int) -> None:
        """Cache a state blob; its TTL restarts with every write."""

    async def add_interactions(self, user_id: str, item_ids: Sequence[str], cap: int,
                               state: CheckedState | None = None, stamp: Stamp | None = None
                               ) -> bool:
        """Append item ids, oldest first, to the user's history, keep its last `cap`, write
        `state` if given, and append the batch with `stamp` to the event log where the store
        keeps one, all at once: concurrent writers to one user lose nothing and no reader
        sees one without the others (a log that cannot be written leaves nothing written).
        With `state`, all of it only if the state's check holds; False (nothing written) if
        not."""

    async def reload_generation(self, bump: bool = False) -> int:
        """How many times POST /admin/reload was called on any worker or replica sharing
        this store (one more first if `bump`): a worker that sees it change reloads."""

    async def ping(self) -> None:
        """Return if the store answers, raise StoreUnavailable if not."""

    async def close(self) -> None:
        """Release connections."""


class Store(UserStore, CatalogStore, Protocol):
    """What the service keeps: its users, and the catalog overlay beside them (in the same
    Redis, under the same prefix)."""
