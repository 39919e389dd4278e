"""A `redis+cluster://` URL: the store on the session's Redis Cluster (three masters, three
replicas), each user's keys in one slot, one pipeline per call; the API on top of it; and a
master killed under load on a cluster of this test's own."""

from __future__ import annotations

import asyncio
import collections
import itertools
import random

import httpx
import pytest

from service.stores import StoreUnavailable
from service.stores.redis_store import RedisStore, connect, torn_connection
from tests.service.api.conftest import serving, settings_for
from tests.support.servers import NoRedisServer, RedisClusterServers
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_store_on_a_cluster(redis_cluster):
    store = RedisStore(connect(redis_cluster.url, 1.0, 1.0, 8), "gmlrec")
    try:
        for user in ("7", "a}b", "é", "😀"):  # spread over the slots of all three nodes
            await store.write_profile(user, b'{"segment":"1"}', ("m:v", b"state"), 60)
            await store.add_interactions(user, ["1", "2"], cap=10)
            got = await store.read(user, "m:v", seen=True, history=True)
            assert (got.profile, got.seen, got.state) == (b'{"segment":"1"}', {"1", "2"},
                                                         b"state")
            assert got.history == ("1", "2")
        await store.ping()
    finally:
        await store.close()


async def test_calls_whose_connections_close_under_them_are_the_store_failing(redis_cluster):
    """What reload_slot_map does while other calls are in flight: the client closes every
    connection, theirs included. Each of those calls answers or fails as the store failing
    (StoreUnavailable; on redis-py 6.x some meet a torn connection's AttributeError); none
    raises anything else, which would be a 500."""
    store = RedisStore(connect(redis_cluster.url, 1.0, 1.0, 64), "gmlrec")

    async def read(user: int) -> str:
        try:
            await store.read(str(user), "m:v")
            return "answered"
        except StoreUnavailable as err:
            return "torn" if "AttributeError" in str(err) else "failed"

    outcomes: collections.Counter[str] = collections.Counter()
    try:
        for round_ in range(100):
            calls = [asyncio.create_task(read(user)) for user in range(20)]
            for _ in range(round_ % 7):  # close at different points of the calls
                await asyncio.sleep(0)
            await store.client.aclose()
            outcomes.update(await asyncio.gather(*calls))
    finally:
        await store.close()
    assert outcomes["answered"] and outcomes["failed"] + outcomes["torn"], outcomes


def test_only_an_attribute_of_none_in_redis_py_is_a_torn_connection():
    """A bug of ours (here: this test's code) is not taken for the store failing."""
    def bug() -> None:
        value = None
        value.writelines([])  # type: ignore[union-attr]

    with pytest.raises(AttributeError) as raised:
        bug()
    assert raised.value.obj is None and not torn_connection(raised.value)
    assert not torn_connection(ValueError("writelines"))


async def test_a_cluster_with_every_node_gone_is_the_store_failing(tmp_path):
    """A call meets the dead nodes, and the next one's reload of the slot map finds no node
    to ask (RedisClusterException, not a RedisError): both StoreUnavailable, never a 500."""
    try:
        cluster = RedisClusterServers(tmp_path / "cluster", 3, 0).start()
    except NoRedisServer as err:
        pytest.skip(str(err))
    store = RedisStore(connect(cluster.url, 0.5, 0.5, 8), "gmlrec")
    try:
        await store.write_profile("7", b"{}", None, 60)
        cluster.stop()
        for _ in range(2):  # the call that fails, then the one that reloads the map
            with pytest.raises(StoreUnavailable):
                await store.read("7", "m:v")
    finally:
        cluster.stop()
        await store.close()


async def test_the_api_on_a_cluster(redis_cluster, gmlfm):
    async with serving(settings_for(gmlfm.models_dir, redis_url=redis_cluster.url)) as client:
        assert (await client.get("/ready")).json()["status"] == "ready"
        r = await client.put("/users/c1", json={"features": {"segment": "2"}})
        assert r.status_code == 200
        cold = await client.post("/score", json={"user": {"segment": "2"}, "item_ids": ["4"]})
        warm = await client.post("/score", json={"user_id": "c1", "item_ids": ["4"]})
        assert warm.json()["scores"] == cold.json()["scores"]
        assert (await client.get("/recommend/7")).status_code == 200


@pytest.fixture
def cluster_with_replicas(tmp_path):
    """Three masters, three replicas: this test's own, since it kills one."""
    try:
        servers = RedisClusterServers(tmp_path / "cluster", 3, 1).start()
    except NoRedisServer as err:
        pytest.skip(str(err))
    yield servers
    servers.stop()


async def test_a_master_killed_under_load_loses_no_request_and_no_profile(
        cluster_with_replicas, gmlfm):
    """Reads and writes go on while a master dies and its replica takes over. Reads of
    training users never fail (served from the bundle meanwhile); a write or a read of a
    Redis-only user in the failover window is a 503 with Retry-After, which the client
    honours, so every request ends in a 200; every acknowledged profile is there after."""
    cluster = cluster_with_replicas
    settings = settings_for(gmlfm.models_dir, redis_url=cluster.url, redis_timeout_s=0.5,
                            redis_cooldown_s=0.5)
    written: dict[str, str] = {}
    statuses: list[int] = []
    running = True

    async with serving(settings) as client:
        async def call(method: str, url: str, **body) -> httpx.Response:
            """One request as a well-behaved client makes it: a 503 is retried after its
            Retry-After, for up to 30 s."""
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                r = await client.request(method, url, **body)
                statuses.append(r.status_code)
                if r.status_code != 503 or asyncio.get_running_loop().time() > deadline:
                    return r
                await asyncio.sleep(float(r.headers["retry-after"]) / 4)

        async def writer(worker: int) -> None:
            for i in itertools.count():
                await asyncio.sleep(0)
                if not running:
                    return
                user, segment = f"fo-{worker}-{i}", str(i % 3)
                r = await call("PUT", f"/users/{user}", json={"features": {"segment": segment}})
                assert r.status_code == 200, r.text
                written[user] = segment

        async def reader(worker: int) -> None:
            while running:
                await asyncio.sleep(0)  # a degraded read never waits: let the others run
                user = random.choice([*written] or ["7"]) if worker % 2 else "7"
                r = await call("POST", "/score", json={"user_id": user, "item_ids": ["4", "9"]})
                assert r.status_code == 200, r.text

        for i in range(30):  # profiles on every master before the failure
            await call("PUT", f"/users/before-{i}", json={"features": {"segment": "1"}})
            written[f"before-{i}"] = "1"
        tasks = [asyncio.create_task(writer(w)) for w in range(3)] + \
            [asyncio.create_task(reader(w)) for w in range(3)]
        begun = len(statuses)
        await wait_until_async(lambda: len(statuses) >= begun + 30, 30, "30 answers under load")
        victim = cluster.master_of("gmlrec:{user:before-0}:profile")
        cluster.kill(victim)
        survivor = next(p for p in cluster.ports if p in cluster.processes)
        took_over = await asyncio.to_thread(cluster.wait_until, lambda: cluster.failed_over(
            survivor, victim), "a replica serving the dead master's slots")
        healed = len(statuses)
        await wait_until_async(lambda: len(statuses) >= healed + 30, 30,
                               "30 answers on the healed cluster")
        running = False
        await asyncio.gather(*tasks)

        assert took_over > 0 and set(statuses) <= {200, 503}
        missing = []
        for user, segment in written.items():
            r = await client.get(f"/users/{user}")
            if r.status_code != 200 or r.json()["features"] != {"segment": segment}:
                missing.append(user)
        assert not missing, f"{len(missing)} of {len(written)} profiles lost: {missing[:5]}"
        assert any(cluster.master_of(f"gmlrec:{{user:{u}}}:profile") != victim
                   for u in written)
