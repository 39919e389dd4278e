"""The store: users (profiles, interactions, cached states) and the catalog overlay.

    base.py            the UserStore and Store interfaces, StoredUser, CheckedState,
                       StoreUnavailable
    catalog.py         the CatalogStore interface: added records, retired ids, change log
    keys.py            key names (a per-user hash tag, the catalog's own)
    memory.py          in-process store (GMLREC_REDIS_URL unset)
    memory_catalog.py  its catalog
    redis_store.py     Redis / Redis Cluster store
    redis_catalog.py   its catalog, changed by scripts
    guard.py           GuardedStore: a failure opens a cool-down instead of a retry storm
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from events.file_log import FileLog
from service.settings import Settings
from service.stores.base import CheckedState, Store, StoredUser, StoreUnavailable, UserStore
from service.stores.catalog import CatalogChange, CatalogFull, CatalogSnapshot
from service.stores.guard import GuardedStore
from service.stores.keys import Keys
from service.stores.memory import MemoryStore
from service.stores.redis_store import RedisStore, connect

__all__ = ["CatalogChange", "CatalogFull", "CatalogSnapshot", "CheckedState", "GuardedStore",
           "Keys", "MemoryStore", "Store", "StoreUnavailable", "StoredUser", "UserStore",
           "open_store"]


def redis_password(file: Path | None) -> str | None:
    """The password in GMLREC_REDIS_PASSWORD_FILE (its first line), if one is set."""
    if file is None:
        return None
    try:
        return file.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, UnicodeDecodeError, IndexError) as err:
        raise StoreConfigError(f"GMLREC_REDIS_PASSWORD_FILE: cannot read a password from "
                               f"{file}: {type(err).__name__}") from None


class StoreConfigError(ValueError):
    """GMLREC_REDIS_PASSWORD_FILE cannot be read; the message holds no secret."""


def open_store(settings: Settings, on_failure: Callable[[], None]) -> GuardedStore:
    """The store the settings name, guarded; `on_failure` counts each failed call."""
    if settings.redis_url:
        client = connect(settings.redis_url, settings.redis_timeout_s,
                         settings.redis_pool_timeout_s, settings.redis_max_connections,
                         redis_password(settings.redis_password_file))
        store: Store = RedisStore(client, settings.redis_prefix, settings.profile_ttl_s,
                                  settings.events_log)
    else:
        store = MemoryStore(settings.redis_prefix, max_users=settings.memory_users,
                            profile_ttl_s=settings.profile_ttl_s,
                            events=FileLog(settings.events_dir) if settings.events_log
                            else None)
    return GuardedStore(store, settings.redis_cooldown_s, on_failure)
