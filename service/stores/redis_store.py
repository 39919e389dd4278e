"""The Redis store (redis.asyncio, one pooled client per worker).

Every call is one round trip: a user's keys share a hash tag, so a read, or a profile with
its state, goes in one pipeline to one node, on a single Redis or a Redis Cluster alike. No
MULTI is needed: a state carries the tag of the profile it came from (state_blob), so a
reader that meets the new profile with the old state recomputes rather than trusting it.
Timeouts are short and nothing is retried here: a failure becomes StoreUnavailable at once
and the caller decides (StoreGuard stops calling for a cool-down instead of retrying). On a
cluster, a failure also marks the slot map stale: the next call asks the cluster who serves
which slots before it runs (reload_slot_map), so once a replica has taken over a dead
master's slots the store talks to it (redis-py refreshes the map itself for single commands,
not for pipelines).
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Awaitable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import redis
from redis import asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from events.record import Stamp
from service.stores.base import CheckedState, StoredUser, StoreUnavailable
from service.stores.keys import Keys
from service.stores.redis_catalog import RedisCatalog

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# One user's interactions appended to its history, trimmed to its cap, in one step: Redis
# runs a script whole, so concurrent writers, on any replica, interleave only between scripts
# and lose nothing. With a state (a history model's, moved by these items: bundle/
# incremental.py) the script first checks that the state held still begins with the tag the
# writer moved it from ('' for none) and writes nothing, returning 0, if not; otherwise the
# state too. With an event, the batch is appended to the user's event stream (events/
# redis_log.py) as the script's first write, so a refused XADD (out of memory) leaves nothing
# written and an acknowledged batch is in the log. The keys share the user's hash tag, so the
# script runs on the one node of a cluster that holds them. KEYS: history, the state key (if
# ARGV[3] is '1'), the event stream (if ARGV[4] is '1'); ARGV: cap, the history's TTL (0:
# none), the two flags, then with a state its expected tag, blob and TTL, then with an event
# its field count and fields, then the items.
ADD_INTERACTIONS = """
local first, stream = 5, 2
if ARGV[3] == '1' then
  local current = redis.call('GET', KEYS[2])
  if string.sub(current or '', 1, string.len(ARGV[5])) ~= ARGV[5]
      or (ARGV[5] == '' and current) then
    return 0
  end
  first, stream = 8, 3
end
if ARGV[4] == '1' then
  local n = tonumber(ARGV[first])
  redis.call('XADD', KEYS[stream], '*', unpack(ARGV, first + 1, first + 2 * n))
  first = first + 1 + 2 * n
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[2], ARGV[6], 'EX', tonumber(ARGV[7]))
end
for i = first, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
if tonumber(ARGV[2]) > 0 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""
# What a call meets when Redis fails (a timeout, a connection refused or reset, a cluster that
# is down): redis-py's own errors, and the OS's and asyncio's under them. On a cluster, also a
# torn connection (torn_connection) and a slot map that cannot be read (reload_slot_map).
FAILURES = (RedisError, OSError, asyncio.TimeoutError)
REDIS_PY = Path(redis.__file__).parent


async def reload_slot_map(client: RedisCluster) -> None:
    """Make a cluster client ask the cluster again which node serves which slot, through its
    documented calls: aclose() closes its connections and forgets the map, initialize()
    reads it from the nodes. redis-py does this itself after a failed single command, and
    before a retry of a failed pipeline; the store retries nothing, so without it every
    pipeline would go on calling a master that died after a replica took over its slots.
    RedisClusterException (not a RedisError): no node answered, or some slot has no node."""
    await client.aclose()
    await client.initialize()


def torn_connection(err: BaseException) -> bool:
    """Whether `err` is redis-py 6.x meeting a connection that another task closed under it:
    an AttributeError on None ("'NoneType' object has no attribute 'writelines'") raised in
    redis-py's own code. A cluster client closes every connection of its nodes, in use or
    not, when it closes: reload_slot_map does, and redis-py 6.x does after a failed single
    command; redis-py 8 raises ConnectionError there instead. Any other AttributeError is a
    bug, and a 500."""
    if not isinstance(err, AttributeError) or err.obj is not None:
        return False
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and Path(frames[-1].filename).is_relative_to(REDIS_PY)


def connect(url: str, timeout_s: float, pool_timeout_s: float, max_connections: int,
            password: str | None = None) -> aioredis.Redis | RedisCluster:
    """A client for `url`; `redis+cluster://host:port` asks for Redis Cluster. `password`,
    where given, is used instead of one in the URL."""
    scheme, sep, rest = url.partition("://")
    options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
               "retry": Retry(NoBackoff(), 0), "health_check_interval": 0}
    if password is not None:
        options["password"] = password
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}{sep}{rest}",
                                     max_connections=max_connections, **options)
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections,
                                                    timeout=pool_timeout_s, **options)
    return aioredis.Redis(connection_pool=pool)


class RedisStore(RedisCatalog):
    """Users here, the catalog overlay in RedisCatalog: one client, one failure path."""

    def __init__(self, client: aioredis.Redis | RedisCluster, prefix: str = "gmlrec",
                 profile_ttl_s: int = 0, events: bool = True):
        self.client, self.keys = client, Keys(prefix)
        self.events = events  # append interactions to the users' event streams
        self.profile_ttl_s = profile_ttl_s  # 0: profiles and histories last
        self._slot_map_stale = False
        # one reload at a time: the requests a failover fails all find the map stale at
        # once, and each reload closes every connection, those the one before just opened
        # included (redis 6.0 also rebuilds its node dicts while another reload iterates
        # them: "dictionary changed size during iteration", a 500)
        self._refreshing = asyncio.Lock()

    async def read(self, user_id: str, model: str, seen: bool = False, history: bool = False
                   ) -> StoredUser:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.profile(user_id))
        pipe.get(self.keys.state(user_id, model))
        if seen or history:
            pipe.lrange(self.keys.history(user_id), 0, -1)
        profile, state, *rest = await self._run(pipe)
        recorded = tuple(i.decode() for i in rest[0]) if rest else ()
        return StoredUser(profile, frozenset(recorded) if seen else frozenset(), state,
                          recorded if history else ())

    async def write_profile(self, user_id: str, profile: bytes,
                            state: tuple[str, bytes] | None, ttl_s: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.keys.profile(user_id), profile, ex=self.profile_ttl_s or None)
        if state is not None:
            pipe.set(self.keys.state(user_id, state[0]), state[1], ex=ttl_s)
        await self._run(pipe)

    async def write_state(self, user_id: str, model: str, blob: bytes, ttl_s: int) -> None:
        await self._call(self.client.set(self.keys.state(user_id, model), blob, ex=ttl_s))

    async def add_interactions(self, user_id: str, item_ids: Sequence[str], cap: int,
                               state: CheckedState | None = None, stamp: Stamp | None = None
                               ) -> bool:
        keys: list[str] = [self.keys.history(user_id)]
        logged = stamp is not None and self.events
        args: list[str | bytes | int] = [cap, self.profile_ttl_s, int(state is not None),
                                         int(bool(logged))]
        if state is not None:
            keys.append(self.keys.state(user_id, state.model))
            args += [state.expect, state.blob, state.ttl_s]
        if logged:
            assert stamp is not None
            keys.append(self.keys.events(user_id))
            fields = stamp.fields(list(item_ids))
            args += [len(fields), *(x for pair in fields.items() for x in pair)]
        command = self.client.eval(ADD_INTERACTIONS, len(keys), *keys, *args, *item_ids)
        return bool(await self._call(command))

    async def reload_generation(self, bump: bool = False) -> int:
        key = self.keys.reload()
        command = self.client.incr(key) if bump else self.client.get(key)
        return int(await self._call(command) or 0)

    async def ping(self) -> None:
        await self._call(self.client.ping())

    async def close(self) -> None:
        with contextlib.suppress(*FAILURES):  # a dead connection at shutdown is not news
            await self.client.aclose()

    async def _run(self, pipe: Any) -> list:
        return await self._call(pipe.execute())

    async def _call(self, command: Awaitable[Any]) -> Any:
        try:
            if self._slot_map_stale:
                await self._reload_slot_map()
            return await command
        except Exception as err:
            if isinstance(command, Coroutine):
                command.close()  # never awaited if the reload failed; a no-op otherwise
            cluster = isinstance(self.client, RedisCluster)
            if isinstance(err, StoreUnavailable) or not (  # the first: the map is unreadable
                    isinstance(err, FAILURES) or cluster and torn_connection(err)):
                raise
            self._slot_map_stale = cluster
            raise StoreUnavailable(f"redis: {type(err).__name__}: {err}") from None

    async def _reload_slot_map(self) -> None:
        """reload_slot_map once, however many calls found the map stale at once."""
        assert isinstance(self.client, RedisCluster)  # only a cluster's map goes stale
        async with self._refreshing:
            if self._slot_map_stale:  # not reloaded while this one waited
                try:
                    await reload_slot_map(self.client)
                except RedisClusterException as err:
                    raise StoreUnavailable(f"redis: {type(err).__name__}: {err}") from None
                self._slot_map_stale = False
