"""The Redis event log: one stream per user, read from every master, trimmed after an export.

    <prefix>:{user:<id>}:events   stream, one entry per acknowledged interactions batch:
                                  fields items (JSON list), at, model, rec (if given)
    <prefix>:events:exported      the last export's watermark: milliseconds of Redis time;
                                  every entry whose id is below it was exported

A user's stream shares the user's hash tag, so on a Redis Cluster the service's script that
moves the user's history and state appends to it on the same node in the same step, and the
log is spread over the cluster as the users are: no stream is a hot spot. An export scans each
master for the streams, after reading that master's clock; the watermark is the lowest clock
read, so an entry below it was appended before its master was scanned and so was read.

The service writes (service/stores/redis_store.py); this module only reads and trims. The key
layout of the user's other keys (the profile) and of the catalog overlay repeats
service/stores/keys.py's, which a test holds equal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import redis
from redis.cluster import RedisCluster

from events.dataset import AddedItem, Collected
from events.record import from_fields
from events.retention import Retention

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
SAFE = "-._~!$&'()*+,;=@/[]^`|"  # as service/stores/keys.py: printable ASCII kept in a key
SCAN_PAGE = 1_000
ENTRIES_PAGE = 1_000
STREAM = "events"


def user_key(prefix: str, user_id: str) -> str:
    return f"{prefix}:{{user:{quote(user_id, safe=SAFE)}}}"


def stream_key(prefix: str, user_id: str) -> str:
    """The user's event stream (beside its profile and history: one hash tag)."""
    return f"{user_key(prefix, user_id)}:{STREAM}"


def user_of(prefix: str, key: str) -> str:
    """The user id a stream key names."""
    head, tail = f"{prefix}:{{user:", f"}}:{STREAM}"
    if not (key.startswith(head) and key.endswith(tail)):
        raise ValueError(f"not an event stream key: {key!r}")
    return unquote(key[len(head):-len(tail)])


def catalog_key(prefix: str, part: str) -> str:
    """A key of the catalog overlay: `items` (id -> "<first version> <record JSON>") or
    `retired` (a set of ids)."""
    return f"{prefix}:{{catalog}}:{part}"


def watermark_key(prefix: str) -> str:
    return f"{prefix}:events:exported"


def connect(url: str, password: str | None, timeout_s: float = 10.0
            ) -> redis.Redis | RedisCluster:
    """A blocking client (the export is a command line, not a server); `redis+cluster://`
    asks for Redis Cluster. `password`, where given, replaces one in the URL."""
    scheme, sep, rest = url.partition("://")
    options: dict = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if password is not None:
        options["password"] = password
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}{sep}{rest}", **options)
    return redis.Redis.from_url(url, **options)


def masters(client: redis.Redis | RedisCluster) -> list[redis.Redis]:
    """A client per master: the one Redis, or each primary of a cluster."""
    if isinstance(client, RedisCluster):
        return [node.redis_connection or client.get_redis_connection(node)
                for node in client.get_primaries()]
    return [client]


def clock_ms(node: redis.Redis) -> int:
    seconds, micros = node.time()
    return int(seconds) * 1000 + int(micros) // 1000


def stream_keys(node: redis.Redis, prefix: str) -> Iterator[str]:
    """Every event stream one master holds (SCAN: each key present throughout is met)."""
    seen: set[str] = set()  # SCAN may return a key twice
    for key in node.scan_iter(match=f"{prefix}:{{user:*}}:{STREAM}", count=SCAN_PAGE,
                              _type="stream"):
        text = key.decode()
        if text not in seen:
            seen.add(text)
            yield text


def read_stream(node: redis.Redis, prefix: str, key: str, collected: Collected) -> None:
    """Every entry of one stream, in pages."""
    user_id, start = user_of(prefix, key), "-"
    while True:
        entries: Any = node.xrange(key, start, "+", count=ENTRIES_PAGE)
        for _, fields in entries:
            collected.events.extend(from_fields(user_id, fields))
        if len(entries) < ENTRIES_PAGE:
            return
        start = "(" + entries[-1][0].decode()


def read_redis(client: redis.Redis | RedisCluster, prefix: str,
               progress: Callable[[int], None] | None = None
               ) -> tuple[Collected, int, dict[str, list[redis.Redis]]]:
    """The events of every stream, the profiles of their users, the catalog's added items;
    the watermark (ms) to record once written; and each master's stream keys (to trim)."""
    collected = Collected()
    watermark: int | None = None
    keys: dict[str, list[redis.Redis]] = {}
    for node in masters(client):
        now = clock_ms(node)
        watermark = now if watermark is None else min(watermark, now)
        for key in stream_keys(node, prefix):
            read_stream(node, prefix, key, collected)
            keys.setdefault(key, []).append(node)
            if progress is not None:
                progress(len(collected.events))
    users = sorted({e.user_id for e in collected.events})
    for start in range(0, len(users), SCAN_PAGE):  # a pipeline of GETs a page
        page = users[start:start + SCAN_PAGE]
        pipe = client.pipeline(transaction=False)
        for user_id in page:
            pipe.get(f"{user_key(prefix, user_id)}:profile")
        for user_id, raw in zip(page, pipe.execute()):
            if raw is not None:
                collected.profiles[user_id] = json.loads(raw)
    collected.items = read_items(client, prefix)
    return collected, watermark or 0, keys


def read_items(client: redis.Redis | RedisCluster, prefix: str) -> dict[str, AddedItem]:
    """The catalog overlay's added items (record features) and whether each is retired."""
    items_key, retired_key = catalog_key(prefix, "items"), catalog_key(prefix, "retired")
    retired = {m.decode() for m in client.sscan_iter(retired_key, count=SCAN_PAGE)}
    items: dict[str, AddedItem] = {}
    for field, value in client.hscan_iter(items_key, count=SCAN_PAGE):
        item_id = field.decode()
        _, _, record = value.decode().partition(" ")  # "<first version> <record JSON>"
        items[item_id] = AddedItem(json.loads(record)["features"], item_id in retired)
    return items


def trim(nodes: dict[str, list[redis.Redis]], watermark_ms: int, retention: Retention,
         now_ms: int) -> int:
    """Trim each stream to the older of the retention's cut and the watermark; entries
    removed. Each cut is an entry id (XTRIM MINID), so entries appended meanwhile, whose ids
    are higher, are never at risk."""
    if retention.keeps_all:
        return 0
    removed = 0
    for key, held_by in nodes.items():
        for node in held_by:
            cut = (watermark_ms, 0)  # entry ids as (ms, sequence)
            if retention.age_s is not None:
                cut = min(cut, (now_ms - int(retention.age_s * 1000), 0))
            else:
                assert retention.count is not None
                newest: Any = node.xrevrange(key, "+", "-", count=retention.count)
                if len(newest) < retention.count:
                    continue
                ms, _, seq = newest[-1][0].decode().partition("-")
                cut = min(cut, (int(ms), int(seq)))  # the count's oldest entry stays
            if cut > (0, 0):
                removed += int(node.xtrim(key, minid=f"{cut[0]}-{cut[1]}", approximate=False))
    return removed


def record_watermark(client: redis.Redis | RedisCluster, prefix: str, watermark_ms: int
                     ) -> None:
    """Move the watermark up to `watermark_ms` (never down: an older export finishing late
    does not lower it)."""
    client.eval("local held = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
                "if tonumber(ARGV[1]) > held then redis.call('SET', KEYS[1], ARGV[1]) end",
                1, watermark_key(prefix), watermark_ms)


def read_password(file: Path | None) -> str | None:
    """The first line of a password file, as the service reads GMLREC_REDIS_PASSWORD_FILE."""
    if file is None:
        return None
    return file.read_text(encoding="utf-8").splitlines()[0].strip()
