"""Three API replicas (`python -m service` processes, as `docker compose up --scale api=3`
runs them) over one Redis and one models folder: they answer identically, a write through one
is read by the next request on another, and a new model version placed in the shared folder
is taken up by every replica under load with no failed request and no answer mixing
versions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from bundle.two_phase import TWO_PHASE_FROM_ITEMS
from service import state_blob
from service.served_model import ServedModel
from service.stores import Keys
from tests.service.api.conftest import REDIS_URL, redis_is_up
from tests.service.api.test_reload import REQUEST, answers_of, place
from tests.support.replicas import running_replicas
from tests.support.waiting import wait_until_async

REPLICAS = 3
pytestmark = pytest.mark.anyio


@pytest.fixture
def replicas(models_copy, redis_prefix, tmp_path):
    """Base URLs of three single-worker replicas polling the shared models folder."""
    with running(models_copy, f"{redis_prefix}-replicas", tmp_path) as bases:
        yield bases


@pytest.fixture
def history_replicas(with_history, redis_prefix, tmp_path):
    """Three replicas serving the history model."""
    with running(with_history.models_dir, f"{redis_prefix}-history", tmp_path
                          ) as bases:
        yield bases


@contextlib.contextmanager
def running(models_dir: Path, prefix: str, logs: Path) -> Iterator[list[str]]:
    """REPLICAS replicas on the test Redis, each polling its models folder every 0.2 s."""
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL} (.ci/run starts one)")
    with running_replicas(models_dir, REDIS_URL, prefix, logs, REPLICAS,
                          {"GMLREC_RELOAD_INTERVAL_S": "0.2"}) as bases:
        yield bases


async def test_replicas_answer_alike_and_read_each_others_writes(replicas):
    async with httpx.AsyncClient(timeout=10) as http:
        tops = [(await http.get(f"{base}/recommend/7")).json() for base in replicas]
        assert len({top.pop("recommendation_id") for top in tops}) == len(tops)  # each its own
        assert all(top == tops[0] for top in tops)
        for i in range(12):  # each write on one replica, each read on the next
            writer, reader = replicas[i % REPLICAS], replicas[(i + 1) % REPLICAS]
            user, segment = f"rw-{i}", str(i % 3)
            put = await http.put(f"{writer}/users/{user}", json={"features": {"segment": segment}})
            assert put.status_code == 200
            profile = await http.get(f"{reader}/users/{user}")
            assert profile.json()["features"] == {"segment": segment}
            assert profile.json()["source"] == "stored"
            warm = await http.post(f"{reader}/score", json={"user_id": user, "item_ids": ["4"]})
            cold = await http.post(f"{reader}/score",
                                   json={"user": {"segment": segment}, "item_ids": ["4"]})
            assert warm.json()["scores"] == cold.json()["scores"]
            before = (await http.get(f"{reader}/recommend/{user}", params={"n": 1})).json()
            first = before["items"][0]["item_id"]
            seen = await http.post(f"{writer}/users/{user}/interactions",
                                   json={"item_ids": [first]})
            assert seen.status_code == 200
            after = (await http.get(f"{reader}/recommend/{user}", params={"n": 5})).json()
            assert first not in [item["item_id"] for item in after["items"]]


async def test_every_replica_takes_up_a_new_version_under_load(replicas, gmlfm, gmlfm_next,
                                                              models_copy):
    memory = {"redis_prefix": "unused"}
    expected = {gmlfm.version: await answers_of(gmlfm, memory),
                gmlfm_next.version: await answers_of(gmlfm_next, memory)}
    seen: list[tuple[int, str, object]] = []
    running = True
    targets = itertools.cycle(replicas)

    async with httpx.AsyncClient(timeout=10) as http:
        async def load(worker: int) -> None:
            while running:
                base = next(targets)
                if worker % 2:
                    r = await http.post(f"{base}/score", json=REQUEST)
                    seen.append((r.status_code, r.json()["model_version"], r.json()["scores"]))
                else:
                    r = await http.get(f"{base}/recommend/7", params={"n": 5})
                    seen.append((r.status_code, r.json()["model_version"], r.json()["items"]))

        tasks = [asyncio.create_task(load(w)) for w in range(6)]
        await wait_until_async(lambda: len(seen) >= 30, 30, "30 answers before the new version")
        place(gmlfm_next.bundle, models_copy)
        deadline = time.monotonic() + 60
        while True:  # every replica's watcher finds the new version on its own
            versions = {(await http.get(f"{b}/model")).json()["model_version"] for b in replicas}
            if versions == {gmlfm_next.version}:
                break
            assert time.monotonic() < deadline, f"replicas still on {versions}"
            await asyncio.sleep(0.1)
        switched = len(seen)
        await wait_until_async(lambda: len(seen) >= switched + 6 + 30, 30,
                               "30 answers after every replica switched")
        running = False
        await asyncio.gather(*tasks)

    assert {status for status, _, _ in seen} == {200}
    assert {version for _, version, _ in seen} == {gmlfm.version, gmlfm_next.version}
    assert gmlfm.version not in {version for _, version, _ in seen[switched + 6:]}
    for _, version, answer in seen:  # each answer is wholly the version it names
        assert answer in (expected[version]["score"], expected[version]["top"])


@pytest.mark.parametrize("model", ["gmlfm", "with_history"])
async def test_200_concurrent_interactions_on_one_user_over_three_replicas_lose_none(
        request, model, redis_prefix):
    """Every write answered 200 is in the user's history, once, whichever replica took it;
    the history holds all 200 in the order each writer sent its own. For a history model the
    state the writes leave in Redis is the one the final window gives, recomputed."""
    replicas = request.getfixturevalue("history_replicas" if model == "with_history"
                                       else "replicas")
    async with httpx.AsyncClient(timeout=10) as http:
        user = (await http.get(f"{replicas[0]}/users?limit=1")).json()["user_ids"][0]
        catalog = (await http.get(f"{replicas[0]}/recommend/{user}",
                                  params={"n": 200, "exclude_seen": "false"})).json()["items"]
        items = [i["item_id"] for i in catalog]
        assert len(items) == 200
        writers = [items[w::10] for w in range(10)]  # 10 writers, 20 one-item posts each

        async def write(replica: str, own: list[str]) -> None:
            for item in own:
                r = await http.post(f"{replica}/users/{user}/interactions",
                                    json={"item_ids": [item]})
                assert r.status_code == 200, r.text

        await asyncio.gather(*(write(replicas[w % REPLICAS], own)
                               for w, own in enumerate(writers)))
        for replica in replicas:
            history = (await http.get(f"{replica}/users/{user}")).json()["history"]
            assert sorted(history) == sorted(items)
            for own in writers:
                assert [i for i in history if i in set(own)] == own
        if model == "with_history":  # every write counted once, and the state moved
            writes = await history_writes(http, replicas)
            assert sum(writes.values()) == 200 and writes["moved"] > 0, writes
    if model == "with_history":
        assert_state_is_the_recomputed_one(request.getfixturevalue(model).bundle,
                                           f"{redis_prefix}-history", user, history)


async def history_writes(http: httpx.AsyncClient, replicas: list[str]) -> dict[str, float]:
    """gmlrec_history_writes_total by result, summed over the replicas' /metrics."""
    total: dict[str, float] = {"moved": 0.0, "rebuilt": 0.0, "raced": 0.0}
    for replica in replicas:
        for family in text_string_to_metric_families((await http.get(f"{replica}/metrics")).text):
            for sample in family.samples:
                if sample.name == "gmlrec_history_writes_total":
                    total[sample.labels["result"]] += sample.value
    return total


def assert_state_is_the_recomputed_one(bundle: Path, prefix: str, user: str,
                                       history: list[str]) -> None:
    """The state in Redis is tagged with the final window (the last write moved it there, or
    a read built it) and equals the state recomputed from the history, 1e-5 relative."""
    model = ServedModel(bundle, threads=1, two_phase_items=TWO_PHASE_FROM_ITEMS)
    position = model.training.position(user)
    window = model.training.window(position, history)
    profile = model.training.profile(position)
    blob = redis.Redis.from_url(REDIS_URL).get(Keys(prefix).state(user, model.key))
    tag = state_blob.profile_tag(state_blob.canonical_profile(profile), window)
    cached = state_blob.unpack(blob, tag, model.state_size, model.sums_size)
    assert cached is not None
    row = model.profiles.encode(user, profile, window=window)
    want = model.scorer.reference.user_state(row.idx[None], row.val[None])[0]
    np.testing.assert_allclose(cached[0], want, rtol=1e-5,
                               atol=1e-5 * max(1.0, np.abs(want).max()))
