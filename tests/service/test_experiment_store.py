"""The experiment's records, in process and in Redis: planted cases of the attribution rule
(service/stores/experiment.py), impressions and hits counted once, windows and caps; and
both stores against the rule's plain definition on random histories."""

from __future__ import annotations

import random
import uuid

import pytest
import redis
from redis.cluster import key_slot

from service.stores import Keys
from service.stores.experiment import Counts, Recorded, credited
from service.stores.experiment_memory import MemoryExperiments
from service.stores.experiment_redis import RedisExperiments
from service.stores.redis_store import RedisStore, connect
from tests.service.api.conftest import REDIS_URL, redis_is_up

pytestmark = pytest.mark.anyio
EXP, DAY = "exp-1", 86_400
NOW = 1_800_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
async def records(request):
    if request.param == "memory":
        yield MemoryExperiments(1000)
        return
    if not redis_is_up():
        pytest.skip("no Redis")
    prefix = f"gmlrec-test-{uuid.uuid4().hex[:12]}"
    store = RedisStore(connect(REDIS_URL, 1.0, 1.0, 8), prefix)
    yield RedisExperiments(store.client, store.keys, store._call)
    cleanup = redis.Redis.from_url(REDIS_URL)
    for key in cleanup.scan_iter(f"{prefix}:*"):
        cleanup.delete(key)
    await store.close()


def answer(rid: str, variant: str, items: str, at: float = NOW) -> Recorded:
    return Recorded(rid, variant, tuple(items.split()), at)


async def counts(records, variant: str) -> Counts:
    return (await records.counts(EXP, [variant]))[variant]


async def test_an_interaction_naming_its_answer_counts_for_that_answers_variant(records):
    await records.record_answer(EXP, "u1", answer("r1", "a", "i1 i2 i3"), 50, DAY)
    await records.record_answer(EXP, "u1", answer("r2", "b", "i1 i9"), 50, DAY)
    credits = await records.attribute(EXP, "u1", "r1", ["i1", "i7"], NOW + 5, DAY)
    # r2 is more recent and holds i1 too, but the interaction names r1; i7 is in neither
    assert [(c.variant, c.items) for c in credits] == [("a", 1)]
    assert (await counts(records, "a")).attributed == 1
    assert (await counts(records, "b")).attributed == 0


async def test_without_an_id_the_most_recent_answer_holding_the_item_wins(records):
    await records.record_answer(EXP, "u1", answer("r1", "a", "i1 i2", NOW), 50, DAY)
    await records.record_answer(EXP, "u1", answer("r2", "b", "i2 i3", NOW + 1), 50, DAY)
    credits = await records.attribute(EXP, "u1", None, ["i1", "i2", "i3", "i4"], NOW + 2, DAY)
    assert sorted((c.variant, c.items) for c in credits) == [("a", 1), ("b", 2)]


async def test_an_answer_older_than_the_window_is_credited_with_nothing(records):
    await records.record_answer(EXP, "u1", answer("r1", "a", "i1", NOW - 2 * DAY), 50, DAY)
    await records.record_answer(EXP, "u1", answer("r2", "b", "i2", NOW), 50, DAY)
    assert await records.attribute(EXP, "u1", None, ["i1"], NOW, DAY) == []
    assert await records.attribute(EXP, "u1", "r1", ["i1"], NOW, DAY) == []
    assert [c.variant for c in await records.attribute(EXP, "u1", None, ["i2"], NOW, DAY)] \
        == ["b"]


async def test_another_users_answer_is_neither_impressed_nor_credited(records):
    await records.record_answer(EXP, "u1", answer("r1", "a", "i1"), 50, DAY)
    assert await records.record_impression(EXP, "u2", "r1", ["i1"]) is None
    assert await records.attribute(EXP, "u2", "r1", ["i1"], NOW, DAY) == []
    assert await records.attribute(EXP, "u2", None, ["i1"], NOW, DAY) == []
    assert await counts(records, "a") == Counts(users=1, answers=1)


async def test_a_hit_is_an_impressed_answer_with_an_interaction_counted_once(records):
    await records.record_answer(EXP, "u1", answer("r1", "a", "i1 i2 i3"), 50, DAY)
    await records.record_answer(EXP, "u1", answer("r2", "a", "i4 i5"), 50, DAY)
    await records.record_answer(EXP, "u2", answer("r3", "a", "i1"), 50, DAY)
    first = await records.record_impression(EXP, "u1", "r1", ["i1", "i2", "zz"])
    assert (first.variant, first.first, first.hit, first.shown) == ("a", True, False, 2)
    again = await records.record_impression(EXP, "u1", "r1", ["i1"])
    assert (again.first, again.hit) == (False, False)  # counted once
    await records.attribute(EXP, "u1", None, ["i1"], NOW, DAY)
    await records.attribute(EXP, "u1", None, ["i2", "i3"], NOW, DAY)  # the same answer again
    await records.attribute(EXP, "u1", None, ["i4"], NOW, DAY)  # r2: never impressed
    # r3: interacted first, impressed after: a hit when the impression arrives
    assert [c.hit for c in await records.attribute(EXP, "u2", None, ["i1"], NOW, DAY)] \
        == [False]
    late = await records.record_impression(EXP, "u2", "r3", ["i1"])
    assert (late.first, late.hit) == (True, True)
    assert await counts(records, "a") == Counts(users=2, answers=3, impressions=2, hits=2,
                                                attributed=5)


async def test_a_users_answers_are_capped_oldest_first(records):
    for k in range(5):
        await records.record_answer(EXP, "u1", answer(f"r{k}", "a", f"i{k}"), 3, DAY)
    assert await records.record_impression(EXP, "u1", "r1", ["i1"]) is None
    assert await records.record_impression(EXP, "u1", "r2", ["i2"]) is not None
    assert (await counts(records, "a")).answers == 5


async def test_shadow_rankings_add_up_their_overlap(records):
    for overlap in (0.5, 1.0, 0.25):
        await records.record_shadow(EXP, "s", overlap)
    found = await counts(records, "s")
    assert found.shadow_answers == 3 and found.overlap_sum == pytest.approx(1.75)


async def test_each_store_follows_the_rule_as_defined_on_random_histories(records):
    rng = random.Random(7)
    for user in range(30):
        uid = f"u{user}"
        kept: list[Recorded] = []
        for k in range(rng.randint(1, 8)):
            items = " ".join(f"i{rng.randrange(12)}" for _ in range(rng.randint(1, 5)))
            recorded = answer(f"{uid}-r{k}", rng.choice("ab"), items,
                              NOW - rng.choice([0, 10, 2 * DAY]) + k)
            kept.insert(0, recorded)
            await records.record_answer(EXP, uid, recorded, 6, DAY)
        kept = kept[:6]
        named = rng.choice([None, rng.choice(kept).recommendation_id, "elsewhere"])
        interacted = list(dict.fromkeys(f"i{rng.randrange(12)}" for _ in range(4)))
        expected = credited([(a, 0) for a in kept], named, interacted, NOW + 10 - DAY)
        got = await records.attribute(EXP, uid, named, interacted, NOW + 10, DAY)
        assert sorted((c.variant, c.items) for c in got) == \
            sorted((kept[i].variant, n) for i, n in expected.items()), uid


def test_the_experiments_keys_stay_in_the_users_and_the_experiments_slots():
    keys = Keys("gmlrec")
    for user in ["7", "a}b", "{x}"]:
        assert key_slot(keys.answers(user, EXP).encode()) == key_slot(keys.profile(user).encode())
    assert key_slot(keys.experiment(EXP).encode()) == \
        key_slot(keys.experiment(EXP, "a").encode())


async def test_in_process_records_are_bounded_by_users_and_expire():
    clock = [0.0]
    records = MemoryExperiments(max_users=3, clock=lambda: clock[0])
    for user in range(5):
        await records.record_answer(EXP, f"u{user}", answer(f"r{user}", "a", "i1"), 50, 60)
    assert len(records._kept) == 3  # the least recently answered went first
    assert await records.record_impression(EXP, "u0", "r0", ["i1"]) is None
    assert await records.record_impression(EXP, "u4", "r4", ["i1"]) is not None
    found = await counts(records, "a")
    assert (found.answers, found.users) == (5, 3)  # users counted up to the cap, then no more
    clock[0] = 61.0  # the list's TTL, as Redis' EXPIRE
    assert await records.record_impression(EXP, "u3", "r3", ["i1"]) is None
