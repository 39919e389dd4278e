"""The catalog overlay in the store, in process, in Redis and in a Redis Cluster: puts and
retirements round trip with their versions and order, the bound on added items holds, the
change log is capped and a reader behind it is told, and a worker's feed that follows the log
while writers write ends on the catalog a fresh read finds."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
import redis
from redis.cluster import key_slot

from service.overlay_feed import OverlayFeed
from service.stores import CatalogFull, GuardedStore, Keys, MemoryStore
from service.stores.memory_catalog import MemoryCatalog
from service.stores.redis_catalog import PARTS
from service.stores.redis_store import RedisStore, connect
from tests.service.api.conftest import REDIS_URL, redis_is_up
from tests.support.servers import NoRedisServer, RedisClusterServers

pytestmark = pytest.mark.anyio
KINDS = ("memory", "redis", "cluster")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three masters, no replicas: the catalog's keys on whichever holds its slot."""
    try:
        servers = RedisClusterServers(tmp_path_factory.mktemp("catalog-cluster"), 3, 0).start()
    except NoRedisServer as err:
        pytest.skip(str(err))
    yield servers
    servers.stop()


@pytest.fixture
def open_store(request):
    """Makes stores of one kind under a prefix of this test; cleans up after."""
    kind = request.param
    prefix = f"gmlrec-test-{uuid.uuid4().hex[:12]}"
    made: list[RedisStore] = []
    if kind == "memory":
        yield lambda: MemoryStore(prefix)
        return
    if kind == "redis" and not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    url = REDIS_URL if kind == "redis" else request.getfixturevalue("cluster").url

    def make() -> RedisStore:
        made.append(RedisStore(connect(url, 2.0, 2.0, 8), prefix))
        return made[-1]

    yield make
    if kind == "redis":
        cleanup = redis.Redis.from_url(REDIS_URL)
        for key in cleanup.scan_iter(f"{prefix}:*"):
            cleanup.delete(key)


def test_the_catalogs_keys_share_one_cluster_slot_apart_from_any_users():
    keys = Keys("gmlrec")
    slots = {key_slot(keys.catalog(part).encode()) for part in PARTS}
    assert len(slots) == 1
    assert keys.catalog("items") == "gmlrec:{catalog}:items"
    assert not any(keys.catalog(p).startswith(keys.user("catalog")) for p in PARTS)


@pytest.mark.parametrize("open_store", KINDS, indirect=True)
async def test_puts_and_retirements_round_trip_in_order_with_their_versions(open_store):
    store = open_store()
    empty = await store.catalog_snapshot()
    assert (empty.version, empty.added, empty.retired) == (0, (), frozenset())
    versions = [await store.put_item("a", b'{"n":1}', 10),
                await store.put_item("b", b'{"n":2}', 10),
                await store.put_item("a", b'{"n":3}', 10)]  # replaced: keeps its first place
    assert versions == [1, 2, 3]
    assert await store.retire_item("never-added", in_bundle=False) is None
    assert await store.retire_item("b", in_bundle=False) == 4
    assert await store.retire_item("b", in_bundle=False) == 4  # retired already: no change
    assert await store.retire_item("from-the-bundle", in_bundle=True) == 5
    snapshot = await store.catalog_snapshot()
    assert snapshot.version == 5 and snapshot.epoch
    assert snapshot.added == (("a", b'{"n":3}'), ("b", b'{"n":2}'))
    assert snapshot.retired == {"b", "from-the-bundle"}
    changes = await store.catalog_changes(snapshot.epoch, 0)
    assert [(c.version, c.item_id, c.record) for c in changes] == [
        (1, "a", b'{"n":1}'), (2, "b", b'{"n":2}'), (3, "a", b'{"n":3}'), (4, "b", None),
        (5, "from-the-bundle", None)]
    assert [c.version for c in await store.catalog_changes(snapshot.epoch, 3)] == [4, 5]
    assert await store.catalog_changes(snapshot.epoch, 5) == []
    assert await store.catalog_changes("another catalog", 5) is None
    assert await store.put_item("b", b'{"n":4}', 10) == 6  # a put brings a retired id back
    again = await store.catalog_snapshot()
    assert again.retired == {"from-the-bundle"} and again.added[1] == ("b", b'{"n":4}')


@pytest.mark.parametrize("open_store", KINDS, indirect=True)
async def test_a_new_id_beyond_the_bound_is_refused_and_writes_nothing(open_store):
    store = open_store()
    await store.put_item("a", b"{}", 2)
    await store.put_item("b", b"{}", 2)
    with pytest.raises(CatalogFull):
        await store.put_item("c", b"{}", 2)
    assert await store.put_item("a", b'{"again":1}', 2) == 3  # no new id: taken
    snapshot = await store.catalog_snapshot()
    assert [item_id for item_id, _ in snapshot.added] == ["a", "b"] and snapshot.version == 3


@pytest.mark.parametrize("open_store", KINDS, indirect=True)
async def test_the_log_is_capped_and_a_reader_behind_it_reads_everything(open_store):
    store = open_store()
    if isinstance(store, MemoryStore):
        store = MemoryCatalog(log_cap=50)
    else:
        store.log_cap = 50  # Redis trims whole stream nodes (100 entries): it keeps 50 to 150
    for i in range(400):
        await store.put_item(f"i{i % 30}", record(i), 100)
    snapshot = await store.catalog_snapshot()
    assert await store.catalog_changes(snapshot.epoch, 0) is None  # trimmed away
    assert [c.version for c in await store.catalog_changes(snapshot.epoch, 395)] == \
        [396, 397, 398, 399, 400]
    feed = OverlayFeed(GuardedStore(store, 1.0))
    await feed.refresh()
    assert feed.current.version == 400
    assert list(feed.current.added) == [f"i{i}" for i in range(30)]
    assert feed.current.added["i9"].features == {"category": "399"}
    assert feed.current.added["i9"].display == {"title": "t399"}


@pytest.mark.parametrize("open_store", KINDS, indirect=True)
async def test_a_feed_following_writers_ends_on_what_a_fresh_read_finds(open_store):
    store = open_store()
    feed = OverlayFeed(GuardedStore(store, 1.0))
    await feed.refresh()
    rng = random.Random(7)
    writing = True

    async def writer(name: str) -> None:
        for i in range(150):
            item_id = f"{name}-{rng.randrange(40)}"
            if rng.random() < 0.25:
                await store.retire_item(item_id, in_bundle=True)
            else:
                await store.put_item(item_id, record(i), 10_000)

    async def follower() -> None:
        while writing:
            await feed.refresh()
            await asyncio.sleep(0)

    following = asyncio.create_task(follower())
    await asyncio.gather(*(writer(name) for name in "abc"))
    writing = False
    await following
    await feed.refresh()
    fresh = OverlayFeed(GuardedStore(store, 1.0))
    await fresh.refresh()
    assert feed.current == fresh.current
    assert list(feed.current.added) == list(fresh.current.added)
    assert feed.current.version == (await store.catalog_snapshot()).version > 300


def record(n: int) -> bytes:
    return f'{{"features":{{"category":"{n}"}},"display":{{"title":"t{n}"}}}}'.encode()


@pytest.mark.parametrize("open_store", ["redis"], indirect=True)
async def test_a_feed_reads_everything_again_from_a_store_emptied_since(open_store):
    """A Redis restarted without its data: the versions start again, the epoch tells."""
    store = open_store()
    for i in range(3):
        await store.put_item(f"old-{i}", record(i), 10)
    feed = OverlayFeed(GuardedStore(store, 1.0))
    await feed.refresh()
    assert list(feed.current.added) == ["old-0", "old-1", "old-2"]
    await store.client.delete(*(store.keys.catalog(part) for part in PARTS))
    for i in range(4):
        await store.put_item(f"new-{i}", record(i), 10)
    await feed.refresh()
    assert list(feed.current.added) == [f"new-{i}" for i in range(4)]
    assert feed.current.version == 4
