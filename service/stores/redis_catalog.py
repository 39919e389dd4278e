"""The Redis store's catalog: the overlay's keys (service/stores/keys.py), changed by scripts.

A change is one Lua script over the catalog's keys, which share the hash tag `{catalog}` and
so one node of a cluster: it takes the next version, appends the change to the log (a
stream capped near LOG_CAP entries, entry id "<version>-0") and applies it, all or nothing
for every reader on every replica. A put of a new id beyond `max_added` writes nothing.

Reads take several round trips, each within the store's timeout however large the catalog:
a snapshot scans the records and the retired ids in pages, then the caller replays the log
from the snapshot's version, which makes it whole whatever changed during the scan.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from service.stores.catalog import (
    CHANGES_PER_READ,
    LOG_CAP,
    CatalogChange,
    CatalogFull,
    CatalogSnapshot,
)
from service.stores.keys import Keys

SCAN_PAGE = 1_000  # records or ids per HSCAN / SSCAN round trip
# KEYS of both scripts: items, retired, version, epoch, log. The first change of a catalog
# stamps its epoch with the server's clock.
NEXT_VERSION = """
if redis.call('EXISTS', KEYS[4]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[4], now[1] .. '.' .. now[2])
end
local version = redis.call('INCR', KEYS[3])
local entry = string.format('%d-0', version)
"""
# ARGV: id, record, max_added, log cap. A record is stored after the version that first added
# its id (its place in the order of the added items), kept by every later put. Returns the
# version, or -1 (nothing written) for a new id beyond max_added.
PUT_ITEM = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return -1
end
""" + NEXT_VERSION + """
local value = (held and string.match(held, '^%d+') or string.format('%d', version))
  .. ' ' .. ARGV[2]
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], entry, 'id', ARGV[1], 'record', value)
redis.call('HSET', KEYS[1], ARGV[1], value)
redis.call('SREM', KEYS[2], ARGV[1])
return version
"""
# ARGV: id, "1" if the bundle holds it, log cap. Returns the version (the one held, changing
# nothing, for an id retired already), or -1 (nothing written) for an id neither added nor
# in the bundle.
RETIRE_ITEM = """
if ARGV[2] ~= '1' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return -1
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return tonumber(redis.call('GET', KEYS[3]) or '0')
end
""" + NEXT_VERSION + """
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], entry, 'id', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
return version
"""
PARTS = ("items", "retired", "version", "epoch", "log")


class RedisCatalog:
    """The CatalogStore interface over Redis, for RedisStore (which supplies `_call`)."""

    client: aioredis.Redis | RedisCluster
    keys: Keys
    log_cap = LOG_CAP  # about as many log entries are kept (XADD MAXLEN ~)

    async def _call(self, command: Awaitable[Any]) -> Any:
        """Run a command, a failure becoming StoreUnavailable (RedisStore's)."""
        raise NotImplementedError

    async def put_item(self, item_id: str, record: bytes, max_added: int) -> int:
        version = int(await self._call(self.client.eval(
            PUT_ITEM, len(PARTS), *self._catalog_keys(), item_id, record, max_added, self.log_cap)))
        if version < 0:
            raise CatalogFull(item_id)
        return version

    async def retire_item(self, item_id: str, in_bundle: bool) -> int | None:
        version = int(await self._call(self.client.eval(
            RETIRE_ITEM, len(PARTS), *self._catalog_keys(), item_id, "1" if in_bundle else "0",
            self.log_cap)))
        return None if version < 0 else version

    async def catalog_snapshot(self) -> CatalogSnapshot:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.catalog("epoch"))
        pipe.get(self.keys.catalog("version"))
        epoch, version = await self._call(pipe.execute())
        version = int(version or 0)
        added: list[tuple[int, str, bytes]] = []
        cursor = 0
        while True:  # records of ids first added after `version` come with the replay
            cursor, page = await self._call(self.client.hscan(
                self.keys.catalog("items"), cursor, count=SCAN_PAGE))
            for item_id, value in page.items():
                first, _, record = value.partition(b" ")
                if int(first) <= version:
                    added.append((int(first), item_id.decode(), record))
            if cursor == 0:
                break
        retired: set[str] = set()
        cursor = 0
        while True:
            cursor, members = await self._call(self.client.sscan(
                self.keys.catalog("retired"), cursor, count=SCAN_PAGE))
            retired.update(m.decode() for m in members)
            if cursor == 0:
                break
        added.sort()
        return CatalogSnapshot(_text(epoch), version,
                               tuple((item_id, record) for _, item_id, record in added),
                               frozenset(retired))

    async def catalog_changes(self, epoch: str, since: int) -> list[CatalogChange] | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.catalog("epoch"))
        pipe.xrange(self.keys.catalog("log"), min=f"{since + 1}-0", count=CHANGES_PER_READ)
        held, entries = await self._call(pipe.execute())
        if _text(held) != epoch:
            return None
        changes = [_change(entry_id, fields) for entry_id, fields in entries]
        # the newest change is always in the log: entries after `since` that do not start
        # right after it were trimmed
        if changes and changes[0].version != since + 1:
            return None
        return changes

    def _catalog_keys(self) -> list[str]:
        return [self.keys.catalog(part) for part in PARTS]


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


def _change(entry_id: bytes, fields: dict[bytes, bytes]) -> CatalogChange:
    stored = fields.get(b"record")
    record = stored.partition(b" ")[2] if stored is not None else None
    return CatalogChange(int(entry_id.split(b"-")[0]), fields[b"id"].decode(), record)
