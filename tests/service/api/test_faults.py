"""Redis stopped, slow or restarted under load: every read is answered (200), from the bundle
while the store is away; /ready says degraded, then ready again by itself."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import numpy as np
import pytest

from service import metrics
from tests.service.api.conftest import serving, settings_for
from tests.support.servers import NoRedisServer, RedisServer
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio
ANSWERS = 40  # requests answered under load at each stage


def own_server() -> RedisServer:
    try:
        return RedisServer()
    except NoRedisServer as err:
        pytest.skip(str(err))


@pytest.fixture
def own_redis():
    server = own_server().start()
    yield server
    server.stop()


def fault_settings(models_dir, server: RedisServer):
    return settings_for(models_dir, redis_url=server.url, redis_cooldown_s=0.2,
                        redis_timeout_s=0.2)


class Load:
    """Known users' /recommend and /score, and cold /recommend, from 8 tasks until stopped;
    every status is kept."""

    def __init__(self, client):
        self.client, self.statuses, self.running = client, [], True

    async def one(self, k: int) -> None:
        user = str(k % 60)
        if k % 3 == 0:
            r = await self.client.get(f"/recommend/{user}", params={"n": 5})
        elif k % 3 == 1:
            r = await self.client.post("/score", json={"user_id": user, "item_ids": ["1", "9"]})
        else:
            r = await self.client.post("/recommend", json={"user": {"segment": "1"}, "n": 3})
        self.statuses.append(r.status_code)

    async def run(self, worker: int) -> None:
        k = worker
        while self.running:
            await asyncio.sleep(0)  # a request that never waits on I/O would never yield
            await self.one(k)
            k += 8

    def failed(self) -> list[int]:
        return [s for s in self.statuses if s != 200]

    async def answered(self, n: int, when: str, within_s: float = 30) -> None:
        """Until `n` more requests have been answered (the load running meanwhile)."""
        goal = len(self.statuses) + n
        await wait_until_async(lambda: len(self.statuses) >= goal, within_s,
                               f"{n} requests answered {when}")


async def ready_status(client) -> str:
    r = await client.get("/ready")
    assert r.status_code == 200
    return r.json()["status"]


async def wait_for(client, status: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while await ready_status(client) != status:
        assert time.monotonic() < deadline, f"/ready never said {status}"
        await asyncio.sleep(0.05)


async def test_redis_stopped_mid_load_and_restarted(gmlfm, own_redis):
    async with serving(fault_settings(gmlfm.models_dir, own_redis)) as client:
        await client.put("/users/7", json={"features": {"segment": "1"}})
        fallbacks = metrics.STORE_FALLBACKS._value.get()
        errors = metrics.STORE_ERRORS._value.get()
        load = Load(client)
        tasks = [asyncio.create_task(load.run(w)) for w in range(8)]
        await load.answered(ANSWERS, "before the stop")
        assert await ready_status(client) == "ready"
        own_redis.stop()
        await wait_for(client, "degraded", 5)
        await load.answered(ANSWERS, "while Redis was down")  # requests went on
        own_redis.start()
        await wait_for(client, "ready", 5)
        await load.answered(ANSWERS, "on the store come back")
        # the pool's connections from before the restart fail once each, each failure a
        # cool-down of its own: under load that can outlast the first "ready"
        deadline = time.monotonic() + 10
        while "x-degraded" in (await client.get("/recommend/7")).headers:
            assert time.monotonic() < deadline, "answers still degraded 10 s after Redis came back"
            await asyncio.sleep(0.05)
        load.running = False
        await asyncio.gather(*tasks)
        assert load.failed() == [] and len(load.statuses) > 100
        assert metrics.STORE_FALLBACKS._value.get() > fallbacks
        assert metrics.STORE_ERRORS._value.get() > errors
        r = await client.put("/users/7", json={"features": {"segment": "2"}})
        assert r.status_code == 200  # writes work again: the store recovered by itself


async def test_a_slow_redis_is_skipped_not_waited_for(gmlfm, own_redis):
    async with serving(fault_settings(gmlfm.models_dir, own_redis)) as client:
        load = Load(client)
        tasks = [asyncio.create_task(load.run(w)) for w in range(8)]
        await load.answered(ANSWERS, "before Redis slows down")
        sleeper = threading.Thread(target=lambda: own_redis.client().execute_command(
            "DEBUG", "SLEEP", "2.5"))
        sleeper.start()  # Redis answers nothing for 2.5 s
        await wait_for(client, "degraded", 1.5)  # a timeout (0.25 s) after the sleep began
        started = time.monotonic()
        await load.answered(20, "while Redis slept", within_s=1)
        assert sleeper.is_alive(), "Redis woke before 20 were answered: they waited on it"
        sleeper.join()
        await wait_for(client, "ready", 5)
        load.running = False
        await asyncio.gather(*tasks)
        assert load.failed() == [] and time.monotonic() - started < 10


async def test_writes_and_store_only_users_are_503s_while_redis_is_down(gmlfm, own_redis):
    async with serving(fault_settings(gmlfm.models_dir, own_redis)) as client:
        assert (await client.put("/users/only-in-redis",
                                 json={"features": {"segment": "1"}})).status_code == 200
        own_redis.stop()
        r = await client.put("/users/7", json={"features": {"segment": "1"}})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "store" in r.json()["detail"]
        r = await client.post("/users/7/interactions", json={"item_ids": ["1"]})
        assert r.status_code == 503
        r = await client.get("/recommend/only-in-redis")
        assert r.status_code == 503 and "only-in-redis" in r.json()["detail"]
        r = await client.get("/recommend/7")
        assert r.status_code == 200 and "x-degraded" in r.headers  # from the bundle alone
        assert (await client.get("/health")).json() == {"status": "ok"}


async def test_a_history_models_writes_wait_out_a_frozen_redis_and_none_is_lost(with_history,
                                                                             own_redis):
    """Redis frozen (SIGSTOP: it keeps its data): an interaction write is a 503 with
    Retry-After and is not kept; reads come from the bundle. Thawed: what was acknowledged
    before is there, and the next write moves the state from it."""
    async with serving(fault_settings(with_history.models_dir, own_redis)) as client:
        model = client.app.state.model_host.current
        first, refused, last = (str(i) for i in model.catalog.ids[:3].tolist())
        assert (await client.post("/users/7/interactions", json={"item_ids": [first]})
                ).status_code == 200
        own_redis.process.send_signal(signal.SIGSTOP)
        try:
            r = await client.post("/users/7/interactions", json={"item_ids": [refused]})
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            r = await client.get("/recommend/7")
            assert r.status_code == 200 and "x-degraded" in r.headers
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
        await wait_for(client, "ready", 5)
        assert (await client.post("/users/7/interactions", json={"item_ids": [last]})
                ).status_code == 200
        assert (await client.get("/users/7")).json()["history"] == [first, last]
        stored = await client.app.state.store.read("7", model.key, history=True)
        window = model.training.window(model.training.position("7"), stored.history)
        assert window[-2:] == [first, last]
        row = model.profiles.encode("7", model.training.profile(model.training.position("7")),
                                    window=window)
        want = model.scorer.reference.user_state(row.idx[None], row.val[None])[0]
        r = await client.post("/score", json={"user_id": "7", "item_ids": [first, last]})
        got = [i["score"] for i in r.json()["scores"]]
        np.testing.assert_allclose(got, model.score(want, model.catalog.positions(
            [first, last])[0]), rtol=1e-5)


async def test_redis_down_at_startup(gmlfm):
    server = own_server()  # not started: nothing listens on its port yet
    async with serving(fault_settings(gmlfm.models_dir, server)) as client:
        assert (await client.get("/recommend/7")).status_code == 200
        assert await ready_status(client) == "degraded"
        server.start()
        try:
            await wait_for(client, "ready", 5)
        finally:
            server.stop()
