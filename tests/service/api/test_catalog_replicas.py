"""Three `python -m service` replicas over one Redis take catalog writes through any of them:
a thousand items added and a hundred retired while reads run, and every replica serves the
same catalog, every acknowledged write in it, within a second of the last one."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from service.stores import Keys
from tests.service.api.conftest import REDIS_URL, redis_is_up
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio
ADDED, RETIRED, AT_ONCE = 1000, 100, 16
REPLICAS = 3
ROOT = Path(__file__).parents[3]


def ready(base: str, process: subprocess.Popen) -> bool:
    assert process.poll() is None, f"the replica at {base} exited"
    try:
        return httpx.get(f"{base}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def replicas(models_dir: Path, prefix: str, logs: Path) -> Iterator[list[str]]:
    """Base URLs of single-worker `python -m service` replicas sharing the test Redis."""
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    processes, bases = [], []
    try:
        for replica in range(REPLICAS):
            port = free_port()
            env = {**os.environ, "GMLREC_MODELS_DIR": str(models_dir),
                   "GMLREC_PORT": str(port), "GMLREC_REDIS_URL": REDIS_URL,
                   "GMLREC_REDIS_PREFIX": prefix, "GMLREC_REDIS_TIMEOUT_S": "2",
                   "GMLREC_ORT_THREADS": "1", "GMLREC_LOG_LEVEL": "warning"}
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            with open(logs / f"replica-{replica}.log", "w") as log:
                processes.append(subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT,
                                                  env=env, stdout=log,
                                                  stderr=subprocess.STDOUT))
            bases.append(f"http://127.0.0.1:{port}")
        for base, process in zip(bases, processes):
            wait_until(functools.partial(ready, base, process), 120,
                       f"the replica at {base} ready", 0.1)
        yield bases
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


def catalog_version(metrics_text: str) -> float | None:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "gmlrec_catalog_version":
            return family.samples[0].value
    return None


async def listing(http: httpx.AsyncClient, base: str) -> list[tuple[str, str]]:
    """The whole catalog one replica serves, page by page."""
    listed, params = [], {"limit": 1000}
    while True:
        page = (await http.get(f"{base}/items", params=params)).json()
        listed += [(i["item_id"], i["source"]) for i in page["items"]]
        if page["next_cursor"] is None:
            return listed
        params["cursor"] = page["next_cursor"]


async def test_three_replicas_serve_every_acknowledged_change_within_a_second(
        gmlfm, redis_prefix, tmp_path):
    prefix = f"{redis_prefix}-catalog"
    with replicas(gmlfm.models_dir, prefix, tmp_path) as bases:
        async with httpx.AsyncClient(timeout=30) as http:
            bundle = [i for i, _ in await listing(http, bases[0])]
            targets = itertools.cycle(bases)
            # the retired: half added ones (acknowledged before: at most AT_ONCE writes are in
            # flight), half the bundle's
            writes = [("PUT", f"new-{n}") for n in range(ADDED)] + \
                [("DELETE", f"new-{n}") for n in range(0, 900, 900 // (RETIRED // 2))] + \
                [("DELETE", item_id) for item_id in bundle[:RETIRED // 2]]
            assert len(writes) == ADDED + RETIRED
            pending = iter(writes)
            reading = True

            async def writer() -> None:
                for method, item_id in pending:
                    body = {"features": {"category": str(len(item_id) % 5)},
                            "display": {"title": item_id}} if method == "PUT" else None
                    answer = await http.request(method, f"{next(targets)}/items/{item_id}",
                                                json=body)
                    assert answer.status_code in (200, 204), answer.text

            async def reader() -> None:
                while reading:
                    answer = await http.get(f"{next(targets)}/items/{bundle[-1]}")
                    assert answer.status_code == 200

            readers = [asyncio.create_task(reader()) for _ in range(2)]
            await asyncio.gather(*(writer() for _ in range(AT_ONCE)))
            acknowledged = time.monotonic()
            reading = False
            await asyncio.gather(*readers)

            stored = int(redis.Redis.from_url(REDIS_URL).get(Keys(prefix).catalog("version")))
            assert stored == len(writes)
            while True:  # every replica's feed reads the log's last entries by itself
                versions = [catalog_version((await http.get(f"{b}/metrics")).text)
                            for b in bases]
                if versions == [stored] * len(bases):
                    break
                assert time.monotonic() - acknowledged < 1.0, versions
                await asyncio.sleep(0.02)
            retired = {item_id for method, item_id in writes if method == "DELETE"}
            expected = [(i, "bundle") for i in bundle if i not in retired]
            served = [await listing(http, base) for base in bases]
            assert all(s == served[0] for s in served)
            assert served[0][:len(expected)] == expected
            assert sorted(i for i, _ in served[0][len(expected):]) == sorted(
                f"new-{n}" for n in range(ADDED) if f"new-{n}" not in retired)
