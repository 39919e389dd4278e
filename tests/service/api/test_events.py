"""The event log through the API: every acknowledged interactions batch is in the log with its
time, model version and recommendation id; both stores' logs export to the same files for the
same traffic; `at` is checked; the log and the state never disagree; and acknowledged events
survive a kill -9 of a Redis that runs AOF with appendfsync always."""

from __future__ import annotations

import csv
import time
import uuid

import pytest
import redis

from events import redis_log
from events.export import export_events
from events.file_log import segments
from events.retention import Retention
from service.schemas import MAX_AT
from tests.service.api.conftest import REDIS_URL, redis_is_up, serving, settings_for
from tests.support.servers import NoRedisServer, RedisServer

pytestmark = pytest.mark.anyio
BASE_AT = 1_733_500_000.0


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


async def traffic(client) -> int:
    """Profiles, added items (one retired later), and interactions with their own times,
    recommendation ids and repeated ids; the events acknowledged."""
    for user, segment in (("alice", "1"), ("bob,2", "2")):
        r = await client.put(f"/users/{user}", json={"features": {"segment": segment}})
        assert r.status_code == 200, r.text
    for item, category in (("new-1", "1"), ("new-2", "2"), ("new-3", "3")):
        r = await client.put(f"/items/{item}", json={"features": {"category": category}})
        assert r.status_code == 200, r.text
    batches = [("alice", ["1", "2", "new-1"], 0.25, "rec-1"), ("bob,2", ["3"], 1.5, None),
               ("alice", ["2", "4", "2"], 7.125, None), ("7", ["new-2", "5"], 7.125, "r,7"),
               ("bob,2", ["new-1"], 9.0, "rec-9")]
    events = 0
    for user, items, dt, rec in batches:
        body = {"item_ids": items, "at": BASE_AT + dt}
        if rec is not None:
            body["recommendation_id"] = rec
        r = await client.post(f"/users/{user}/interactions", json=body)
        assert r.status_code == 200, r.text
        events += r.json()["recorded"]
    assert (await client.delete("/items/new-2")).status_code in (200, 204)
    r = await client.put("/users/alice", json={"features": {"segment": "3"}})  # the last wins
    assert r.status_code == 200
    return events


async def test_both_stores_export_the_same_files_and_twice_the_same(gmlfm, redis_prefix,
                                                                     tmp_path):
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    log = tmp_path / "log"
    async with serving(settings_for(gmlfm.models_dir, events_dir=log)) as client:
        acknowledged = await traffic(client)
    prefix = f"{redis_prefix}-{uuid.uuid4().hex[:8]}"
    async with serving(settings_for(gmlfm.models_dir, redis_url=REDIS_URL, redis_prefix=prefix,
                                    redis_timeout_s=2.0)) as client:
        assert await traffic(client) == acknowledged
    from_dir = export_events(str(log), tmp_path / "dir", retention=Retention())
    from_redis = export_events(REDIS_URL, tmp_path / "redis", prefix=prefix,
                               retention=Retention())
    export_events(REDIS_URL, tmp_path / "again", prefix=prefix, retention=Retention())
    assert files(tmp_path / "dir") == files(tmp_path / "redis") == files(tmp_path / "again")
    assert from_dir.events == from_redis.events == acknowledged == 9
    assert (from_dir.users, from_dir.items) == (2, 2)  # "7" has no stored profile
    rows = list(csv.DictReader((tmp_path / "dir" / "interactions.csv").read_text().splitlines()))
    assert rows[0] == {"user_id": "alice", "item_id": "1", "at": repr(BASE_AT + 0.25),
                       "model_version": gmlfm.version, "recommendation_id": "rec-1"}
    users = (tmp_path / "dir" / "users.jsonl").read_text().splitlines()
    assert users[0] == '{"features":{"segment":"3"},"user_id":"alice"}'
    items = (tmp_path / "dir" / "items.jsonl").read_text().splitlines()
    assert items == ['{"features":{"category":"1"},"item_id":"new-1","retired":false}',
                     '{"features":{"category":"2"},"item_id":"new-2","retired":true}']


async def test_at_is_the_clients_unless_later_than_the_servers_clock(gmlfm, tmp_path):
    """The log's time is the body's `at`; absent, or later than the server's clock (a client
    clock ahead), it is the server's; a time in milliseconds, or not a number, is a 422."""
    log = tmp_path / "log"
    async with serving(settings_for(gmlfm.models_dir, events_dir=log)) as client:
        post = client.post
        times = []
        for body in ({"item_ids": ["1"]}, {"item_ids": ["2"], "at": time.time() + 3600}):
            before = time.time()
            assert (await post("/users/1/interactions", json=body)).status_code == 200
            times.append((before, time.time()))
        for bad in (time.time() * 1000, 1e300, -1, "soon", True):
            r = await post("/users/1/interactions", json={"item_ids": ["3"], "at": bad})
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["detail"][0]["loc"][:2] == ["body", "at"]
        r = await post("/users/1/interactions", json={"item_ids": ["4"], "at": 5})  # an int
        assert r.status_code == 200
        schema = (await client.get("/openapi.json")).json()
        at = schema["components"]["schemas"]["InteractionsRequest"]["properties"]["at"]
        assert at["anyOf"][0] == {"type": "number", "minimum": 0, "maximum": MAX_AT}
    exported = export_events(str(log), tmp_path / "out", retention=Retention())
    rows = list(csv.DictReader((tmp_path / "out" / "interactions.csv").read_text().splitlines()))
    assert exported.events == 3 and [r["item_id"] for r in rows] == ["4", "1", "2"]
    assert rows[0]["at"] == "5.0"
    for row, (before, after) in zip(rows[1:], times):
        assert before <= float(row["at"]) <= after


async def test_a_failed_append_moves_no_state(with_history, tmp_path):
    """A file log that cannot be written: the batch is a 503 and the user's history and
    state stay where they were; once it can, the next batch is logged and recorded."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    async with serving(settings_for(with_history.models_dir, events_dir=blocker / "log",
                                    redis_cooldown_s=0)) as client:
        store = client.app.state.store.store
        before = (await client.get("/recommend/1", params={"n": 5})).json()
        r = await client.post("/users/1/interactions", json={"item_ids": ["3", "4"]})
        assert r.status_code == 503, r.text
        assert (await client.get("/users/1")).json()["history"] == []
        assert (await client.get("/recommend/1", params={"n": 5})).json() == before
        store.events.directory = tmp_path / "log"  # the disk is back
        r = await client.post("/users/1/interactions", json={"item_ids": ["5"]})
        assert r.status_code == 200
        assert (await client.get("/users/1")).json()["history"] == ["5"]
    exported = export_events(str(tmp_path / "log"), tmp_path / "out", retention=Retention())
    assert exported.events == 1


async def test_a_failed_xadd_writes_nothing_on_redis(with_history, redis_prefix):
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"{redis_prefix}-{uuid.uuid4().hex[:8]}"
    async with serving(settings_for(with_history.models_dir, redis_url=REDIS_URL,
                                    redis_prefix=prefix, redis_timeout_s=2.0,
                                    redis_cooldown_s=0)) as client:
        store = client.app.state.store.store
        plain = redis.Redis.from_url(REDIS_URL)
        plain.set(store.keys.events("1"), "not a stream")  # XADD meets WRONGTYPE
        await client.get("/recommend/1", params={"n": 5})  # a cached state to move
        states = {k: plain.get(k) for k in plain.scan_iter(f"{store.keys.user('1')}:state:*")}
        r = await client.post("/users/1/interactions", json={"item_ids": ["3", "4"]})
        assert r.status_code == 503, r.text
        assert plain.lrange(store.keys.history("1"), 0, -1) == []
        assert {k: plain.get(k) for k in states} == states
        plain.delete(store.keys.events("1"))
        r = await client.post("/users/1/interactions", json={"item_ids": ["3"]})
        assert r.status_code == 200
        assert plain.lrange(store.keys.history("1"), 0, -1) == [b"3"]
        assert plain.xlen(store.keys.events("1")) == 1


async def test_the_log_can_be_off(gmlfm, tmp_path):
    async with serving(settings_for(gmlfm.models_dir, events_dir=tmp_path / "log",
                                    events_log=False)) as client:
        r = await client.post("/users/1/interactions", json={"item_ids": ["1"]})
        assert r.status_code == 200
    assert not (tmp_path / "log").exists()


def aof_server(folder) -> RedisServer:
    try:
        return RedisServer(args=("--dir", str(folder), "--appendonly", "yes",
                                 "--appendfsync", "always"))
    except NoRedisServer as err:
        pytest.skip(str(err))


async def test_acknowledged_events_survive_kill_9_of_redis_with_aof(gmlfm, tmp_path):
    """appendfsync always: every acknowledged batch is on disk before Redis answers, so a
    kill -9 and a restart on the same folder lose none."""
    (tmp_path / "redis").mkdir()
    server = aof_server(tmp_path / "redis").start()
    acknowledged = 0
    try:
        async with serving(settings_for(gmlfm.models_dir, redis_url=server.url,
                                        redis_timeout_s=2.0)) as client:
            for k in range(200):
                r = await client.post(f"/users/{k % 60}/interactions",
                                      json={"item_ids": [str(k % 200), str((k * 7) % 200)],
                                            "at": BASE_AT + k})
                if r.status_code == 200:
                    acknowledged += r.json()["recorded"]
            server.stop()  # SIGKILL: no shutdown, no last write
        server.start()
        summary = export_events(server.url, tmp_path / "out", retention=Retention())
    finally:
        server.stop()
    assert acknowledged > 0 and summary.events == acknowledged


async def test_redis_retention_never_passes_the_watermark(gmlfm, tmp_path):
    """A count of 2 per user: the first export's watermark lets the older entries go; the
    entries written after it are all kept until the next export."""
    server = own_plain_server()
    try:
        async with serving(settings_for(gmlfm.models_dir, redis_url=server.url,
                                        redis_timeout_s=2.0)) as client:
            for k in range(5):
                await client.post("/users/1/interactions", json={"item_ids": [str(k + 1)]})
            first = export_events(server.url, tmp_path / "a", retention=Retention(count=2))
            assert first.events == 5
            client_redis = server.client()
            key = redis_log.stream_key("gmlrec", "1")
            assert client_redis.xlen(key) == 2  # trimmed: every entry was exported
            time.sleep(0.002)  # entries after the watermark's millisecond
            for k in range(5, 10):
                await client.post("/users/1/interactions", json={"item_ids": [str(k + 1)]})
            assert int(client_redis.get(redis_log.watermark_key("gmlrec"))) > 0
            # a count of 1 and an age of 1 s, 10 s on: the two exported entries go, the five
            # never exported stay
            streams = {key: [client_redis]}
            watermark = int(client_redis.get(redis_log.watermark_key("gmlrec")))
            redis_log.trim(streams, watermark, Retention(count=1), watermark + 10_000)
            assert client_redis.xlen(key) == 5
            redis_log.trim(streams, watermark, Retention(age_s=1), watermark + 10_000)
            assert client_redis.xlen(key) == 5
            second = export_events(server.url, tmp_path / "b", retention=Retention(age_s=3600))
            assert second.events == 5 and client_redis.xlen(key) == 5  # all younger than 1 h
    finally:
        server.stop()


def own_plain_server() -> RedisServer:
    try:
        return RedisServer().start()
    except NoRedisServer as err:
        pytest.skip(str(err))


async def test_a_cluster_keeps_each_users_events_on_its_slot_and_exports_them_all(
        gmlfm, redis_cluster, redis_prefix, tmp_path):
    prefix = f"{redis_prefix}-{uuid.uuid4().hex[:8]}"
    async with serving(settings_for(gmlfm.models_dir, redis_url=redis_cluster.url,
                                    redis_prefix=prefix, redis_timeout_s=2.0)) as client:
        acknowledged = await traffic(client)
    summary = export_events(redis_cluster.url, tmp_path / "out", prefix=prefix,
                            retention=Retention())
    assert summary.events == acknowledged
    log = tmp_path / "log"
    async with serving(settings_for(gmlfm.models_dir, events_dir=log)) as client:
        await traffic(client)
    export_events(str(log), tmp_path / "dir", retention=Retention())
    assert files(tmp_path / "out") == files(tmp_path / "dir")
    holders = {port for port in redis_cluster.ports for key in
               redis_cluster.client(port).scan_iter(f"{prefix}:*:events")}
    assert len(holders) > 1  # spread over the masters: no one hot stream
    assert len(segments(log)) == 1
