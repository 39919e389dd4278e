"""User stores: profiles, interactions and cached states.

    base.py         the UserStore interface, StoredUser, CheckedState, StoreUnavailable
    keys.py         key names (a per-user hash tag)
    memory.py       in-process store (GMLREC_REDIS_URL unset)
    redis_store.py  Redis / Redis Cluster store
    guard.py        GuardedStore: a failure opens a cool-down instead of a retry storm
"""

from __future__ import annotations

from collections.abc import Callable

from service.settings import Settings
from service.stores.base import CheckedState, StoredUser, StoreUnavailable, UserStore
from service.stores.guard import GuardedStore
from service.stores.keys import Keys
from service.stores.memory import MemoryStore
from service.stores.redis_store import RedisStore, connect

__all__ = ["CheckedState", "GuardedStore", "Keys", "MemoryStore", "StoreUnavailable", "StoredUser",
           "UserStore", "open_store"]


def open_store(settings: Settings, on_failure: Callable[[], None]) -> GuardedStore:
    """The store the settings name, guarded; `on_failure` counts each failed call."""
    if settings.redis_url:
        client = connect(settings.redis_url, settings.redis_timeout_s,
                         settings.redis_pool_timeout_s, settings.redis_max_connections)
        store: UserStore = RedisStore(client, settings.redis_prefix)
    else:
        store = MemoryStore(settings.redis_prefix)
    return GuardedStore(store, settings.redis_cooldown_s, on_failure)
