"""Three API replicas (`python -m service` processes, as `docker compose up --scale api=3`
runs them) over one Redis and one models folder: they answer identically, a write through one
is read by the next request on another, and a new model version placed in the shared folder
is taken up by every replica under load with no failed request and no answer mixing
versions."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.service.api.conftest import REDIS_URL, redis_is_up
from tests.service.api.test_reload import REQUEST, answers_of, place
from tests.service.api.test_uvicorn import wait_until_ready
from tests.support.servers import free_port

ROOT = Path(__file__).parents[3]
REPLICAS = 3
pytestmark = pytest.mark.anyio


@pytest.fixture
def replicas(models_copy, redis_prefix, tmp_path):
    """Base URLs of three single-worker replicas polling the shared models folder."""
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL} (.ci/run starts one)")
    processes, bases = [], []
    try:
        for replica in range(REPLICAS):
            port = free_port()
            env = {**os.environ, "GMLREC_MODELS_DIR": str(models_copy),
                   "GMLREC_PORT": str(port), "GMLREC_REDIS_URL": REDIS_URL,
                   "GMLREC_REDIS_PREFIX": f"{redis_prefix}-replicas",
                   "GMLREC_REDIS_TIMEOUT_S": "2", "GMLREC_RELOAD_INTERVAL_S": "0.2",
                   "GMLREC_ORT_THREADS": "1", "GMLREC_LOG_LEVEL": "warning"}
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            with open(tmp_path / f"replica-{replica}.log", "w") as log:
                processes.append(subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT,
                                                  env=env, stdout=log,
                                                  stderr=subprocess.STDOUT))
            bases.append(f"http://127.0.0.1:{port}")
        for base, process in zip(bases, processes):
            wait_until_ready(base, process)
        yield bases
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


async def test_replicas_answer_alike_and_read_each_others_writes(replicas):
    async with httpx.AsyncClient(timeout=10) as http:
        tops = [(await http.get(f"{base}/recommend/7")).json() for base in replicas]
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
        await asyncio.sleep(0.5)
        place(gmlfm_next.bundle, models_copy)
        deadline = time.monotonic() + 60
        while True:  # every replica's watcher finds the new version on its own
            versions = {(await http.get(f"{b}/model")).json()["model_version"] for b in replicas}
            if versions == {gmlfm_next.version}:
                break
            assert time.monotonic() < deadline, f"replicas still on {versions}"
            await asyncio.sleep(0.1)
        switched = len(seen)
        await asyncio.sleep(0.5)
        running = False
        await asyncio.gather(*tasks)

    assert {status for status, _, _ in seen} == {200}
    assert {version for _, version, _ in seen} == {gmlfm.version, gmlfm_next.version}
    assert gmlfm.version not in {version for _, version, _ in seen[switched + 6:]}
    for _, version, answer in seen:  # each answer is wholly the version it names
        assert answer in (expected[version]["score"], expected[version]["top"])


async def test_200_concurrent_interactions_on_one_user_over_three_replicas_lose_none(replicas):
    """Every write answered 200 is in the user's history, once, whichever replica took it;
    the history holds all 200 in the order each writer sent its own."""
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
