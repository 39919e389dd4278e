"""The user stores: the same behaviour in process and in Redis; keys that keep a user in
one cluster slot; the guard that turns a failing store into a short cool-down."""

from __future__ import annotations

import asyncio
import time
import uuid

import anyio
import pytest
import redis
from redis.cluster import key_slot

from service.stores import CheckedState, GuardedStore, Keys, MemoryStore, StoreUnavailable
from service.stores.redis_store import RedisStore, connect
from tests.service.api.conftest import REDIS_URL, redis_is_up
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio
TRICKY = ["7", "a}b", "a", "{user:a}", "a}:profile", "x%7By", "x{y", "é", "😀", "a:b", ""]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_users_keys_share_one_cluster_slot():
    keys = Keys("gmlrec")
    for user in TRICKY:
        slots = {key_slot(k.encode()) for k in (keys.profile(user), keys.history(user),
                                               keys.state(user, "m:v1"),
                                               keys.state(user, "m:v2"))}
        assert len(slots) == 1, user


def test_ids_cannot_spell_each_others_keys():
    keys = Keys("gmlrec")
    every = [k for u in TRICKY for k in (keys.profile(u), keys.history(u), keys.state(u, "m:v"))]
    assert len(set(every)) == len(every)
    assert keys.user("a}b") == "gmlrec:{user:a%7Db}"


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    prefix = f"gmlrec-test-{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        yield MemoryStore(prefix)
        return
    if not redis_is_up():
        pytest.skip("no Redis")
    store = RedisStore(connect(REDIS_URL, 1.0, 1.0, 8), prefix)
    yield store
    cleanup = redis.Redis.from_url(REDIS_URL)
    for key in cleanup.scan_iter(f"{prefix}:*"):
        cleanup.delete(key)
    await store.close()


async def ttl(store, key: str) -> float:
    return await store.client.ttl(key) if isinstance(store, RedisStore) else store.ttl(key)


async def test_profiles_and_interactions_last_states_expire(store):
    await store.write_profile("u", b'{"a":"1"}', ("m:v1", b"state-1"), ttl_s=60)
    await store.add_interactions("u", ["i1", "i2"], cap=10)
    await store.add_interactions("u", ["i2", "i3"], cap=10)
    got = await store.read("u", "m:v1", seen=True, history=True)
    assert (got.profile, got.seen, got.state) == (b'{"a":"1"}', {"i1", "i2", "i3"}, b"state-1")
    assert got.history == ("i1", "i2", "i2", "i3")  # in order, as recorded
    assert (await store.read("u", "m:v2")).state is None  # another version reads nothing
    assert (await store.read("u", "m:v1")).seen == frozenset()  # not asked for
    assert (await store.read("u", "m:v1")).history == ()
    assert await ttl(store, store.keys.profile("u")) == -1
    assert await ttl(store, store.keys.history("u")) == -1
    assert 0 < await ttl(store, store.keys.state("u", "m:v1")) <= 60
    await store.write_state("u", "m:v1", b"state-2", ttl_s=30)
    assert 0 < await ttl(store, store.keys.state("u", "m:v1")) <= 30  # reset on every write
    assert (await store.read("u", "m:v1")).state == b"state-2"
    nobody = await store.read("nobody", "m:v1", seen=True)
    assert (nobody.profile, nobody.seen, nobody.state) == (None, frozenset(), None)


async def test_in_process_states_expire_on_time():
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    await store.write_state("u", "m:v", b"s", ttl_s=10)
    now[0] = 9.9
    assert (await store.read("u", "m:v")).state == b"s"
    now[0] = 10.0
    assert (await store.read("u", "m:v")).state is None
    assert store.ttl(store.keys.state("u", "m:v")) == -2


async def test_a_dead_redis_fails_fast_as_store_unavailable():
    store = RedisStore(connect(f"redis://127.0.0.1:{free_port()}/0", 0.2, 0.2, 4))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="redis"):
        await store.read("u", "m:v")
    assert time.monotonic() - started < 2


class Flaky:
    """A store whose every call fails until `healthy` is set, counting calls."""

    def __init__(self):
        self.healthy, self.calls = False, 0

    async def ping(self) -> None:
        self.calls += 1
        await asyncio.sleep(0.01)
        if not self.healthy:
            raise StoreUnavailable("down")


async def test_the_guard_skips_a_failing_store_then_probes_it_once():
    now, failures = [0.0], []
    flaky = Flaky()
    guard = GuardedStore(flaky, cooldown_s=1.0, on_failure=lambda: failures.append(1),
                         clock=lambda: now[0])
    with pytest.raises(StoreUnavailable):
        await guard.ping()
    assert guard.degraded and flaky.calls == 1 and failures == [1]
    for _ in range(5):  # within the cool-down: skipped, the store is not called
        with pytest.raises(StoreUnavailable, match="skipped"):
            await guard.ping()
    assert flaky.calls == 1
    now[0] = 1.5
    flaky.healthy = True
    results = await asyncio.gather(*(guard.ping() for _ in range(10)), return_exceptions=True)
    assert flaky.calls == 2  # one probe; the nine others were skipped meanwhile
    assert sum(r is None for r in results) == 1 and not guard.degraded
    await guard.ping()
    assert flaky.calls == 3 and len(failures) == 1


async def test_the_history_and_the_items_seen_keep_the_last_cap_only(store):
    for start in range(0, 12, 3):
        await store.add_interactions("h", [f"i{k}" for k in range(start, start + 3)], cap=5)
    got = await store.read("h", "m:v1", seen=True, history=True)
    assert got.history == ("i7", "i8", "i9", "i10", "i11")
    assert got.seen == {f"i{k}" for k in range(7, 12)}


async def test_concurrent_writers_to_one_user_lose_nothing(store):
    """Many writers at once, each with its own items: every item lands once, in the order
    each writer gave it, and the items seen are all of them."""
    writers = [[f"w{w}-{k}" for k in range(5)] for w in range(40)]
    async with anyio.create_task_group() as group:
        for items in writers:
            group.start_soon(store.add_interactions, "busy", items, 1000)
    got = await store.read("busy", "m:v1", seen=True, history=True)
    assert sorted(got.history) == sorted(i for items in writers for i in items)
    for items in writers:
        assert [i for i in got.history if i.startswith(items[0][:-1])] == items
    assert got.seen == set(got.history)



async def test_interactions_with_a_state_land_only_if_the_state_is_the_one_read(store):
    """A history model's write (CheckedState): items and state together, only if the state
    held still begins with what the writer read (b"": none); otherwise nothing at all."""
    first = CheckedState("m:v1", b"tag-1|state", b"", ttl_s=60)
    assert await store.add_interactions("c", ["i1"], 10, first)
    assert not await store.add_interactions("c", ["i2"], 10, first)  # one is held now
    stale = CheckedState("m:v1", b"tag-2|state", b"tag-0", ttl_s=60)
    assert not await store.add_interactions("c", ["i3"], 10, stale)
    got = await store.read("c", "m:v1", seen=True, history=True)
    assert (got.history, got.seen, got.state) == (("i1",), {"i1"}, b"tag-1|state")
    moved = CheckedState("m:v1", b"tag-2|state", b"tag-1", ttl_s=30)
    assert await store.add_interactions("c", ["i4", "i5"], 10, moved)
    got = await store.read("c", "m:v1", seen=True, history=True)
    assert (got.history, got.state) == (("i1", "i4", "i5"), b"tag-2|state")
    assert 0 < await ttl(store, store.keys.state("c", "m:v1")) <= 30
    assert (await store.read("c", "m:v2")).state is None  # another version's state untouched


async def test_the_in_process_store_drops_its_least_recently_used_users():
    store = MemoryStore(max_users=3)
    for user in ("a", "b", "c"):
        await store.write_profile(user, b"{}", ("m:v1", b"state"), ttl_s=60)
        await store.add_interactions(user, ["i1"], cap=10)
    await store.read("a", "m:v1")  # a is used again: b is now the oldest
    await store.write_profile("d", b"{}", None, ttl_s=60)
    assert store.users == 3
    gone = await store.read("b", "m:v1", history=True)
    assert (gone.profile, gone.state, gone.history) == (None, None, ())
    for kept in ("a", "c", "d"):
        assert (await store.read(kept, "m:v1")).profile == b"{}"
    for user in range(100_000):  # a flood of new users never holds more than the cap
        await store.write_profile(f"flood-{user}", b"{}", ("m:v1", b"state"), ttl_s=60)
        assert store.users <= 3
    assert [(await store.read(f"flood-{u}", "m:v1")).profile for u in (99_997, 99_999, 0)] \
        == [b"{}", b"{}", None]


async def test_profiles_and_histories_expire_when_a_ttl_is_set(store):
    store.profile_ttl_s = 30
    await store.write_profile("t", b"{}", None, ttl_s=60)
    await store.add_interactions("t", ["i1"], cap=10)
    for key in (store.keys.profile("t"), store.keys.history("t")):
        assert 0 < await ttl(store, key) <= 30
