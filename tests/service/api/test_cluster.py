"""A `redis+cluster://` URL: the store on a three-node Redis Cluster, each user's keys in
one slot, one pipeline per call; and the API on top of it."""

from __future__ import annotations

import pytest

from bench.local_redis import NoRedisServer, RedisClusterServers
from service.stores.redis_store import RedisStore, connect
from tests.service.api.conftest import serving, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        servers = RedisClusterServers(tmp_path_factory.mktemp("cluster")).start()
    except NoRedisServer as err:
        pytest.skip(str(err))
    yield servers
    servers.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_store_on_a_cluster(cluster):
    store = RedisStore(connect(cluster.url, 1.0, 1.0, 8), "gmlrec")
    try:
        for user in ("7", "a}b", "é", "😀"):  # spread over the slots of all three nodes
            await store.write_profile(user, b'{"segment":"1"}', ("m:v", b"state"), 60)
            await store.add_seen(user, ["1", "2"])
            got = await store.read(user, "m:v", seen=True)
            assert (got.profile, got.seen, got.state) == (b'{"segment":"1"}', {"1", "2"},
                                                         b"state")
        await store.ping()
    finally:
        await store.close()


async def test_the_api_on_a_cluster(cluster, gmlfm):
    async with serving(settings_for(gmlfm.models_dir, redis_url=cluster.url)) as client:
        assert (await client.get("/ready")).json()["status"] == "ready"
        r = await client.put("/users/c1", json={"features": {"segment": "2"}})
        assert r.status_code == 200
        cold = await client.post("/score", json={"user": {"segment": "2"}, "item_ids": ["4"]})
        warm = await client.post("/score", json={"user_id": "c1", "item_ids": ["4"]})
        assert warm.json()["scores"] == cold.json()["scores"]
        assert (await client.get("/recommend/7")).status_code == 200
