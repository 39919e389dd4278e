"""Fixtures of the HTTP tests: small trained bundles, both stores, an app per test.

Bundles come from the real pipeline (`python -m training fit` then `export`, in process) on a
small synthetic dataset, once per session. Every test that takes `client` runs three times:
with the in-process store, with the Redis at 127.0.0.1:6379 under a key prefix of its own,
deleted afterwards (never FLUSHALL: the Redis is shared), and with a Redis Cluster of three
masters and three replicas that the session starts and stops.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from service.app import create_app
from service.settings import Settings
from tests.support.servers import NoRedisServer, RedisClusterServers
from training.cli import main as training_cli

SYNTHETIC = "synthetic:users=60,items=200,interactions=2000,categories=5,segments=3"
REDIS_URL = "redis://127.0.0.1:6379/0"
STORES = ("memory", "redis", "cluster")


@dataclass(frozen=True)
class Trained:
    run: Path  # the run folder fit wrote
    bundle: Path  # its exported version folder, models/<name>/<version>

    @property
    def models_dir(self) -> Path:
        return self.bundle.parents[1]

    @property
    def version(self) -> str:
        return self.bundle.name


def fit_and_export(root: Path, model: str, seed: int = 0, *options: str,
                   data: str = SYNTHETIC, name: str = "rec",
                   export_options: tuple[str, ...] = ()) -> Trained:
    run, models = root / f"run-{model}-{seed}", root / "models"
    assert training_cli(["fit", "--data", data, "--task", "topn", "--model", model,
                         "--epochs", "1", "--dim", "8", "--seed", str(seed), "--quiet",
                         "--out", str(run), *options]) == 0
    before = set((models / name).glob("*")) if (models / name).is_dir() else set()
    assert training_cli(["export", "--run", str(run), "--models-dir", str(models),
                         "--name", name, *export_options]) == 0
    (bundle,) = set((models / name).glob("*")) - before
    return Trained(run, bundle)


HISTORY_N = 5  # the window of the `with_history` model


@pytest.fixture(scope="session")
def with_history(tmp_path_factory) -> Trained:
    """GML-FM-dnn with a history field of the last HISTORY_N interactions, its pair term in
    the row form, which the two-phase graph serves (at k = 8 and this width export would
    pick the matrix form; tests/export covers both)."""
    return fit_and_export(tmp_path_factory.mktemp("history"), "gmlfm", 0, "--distance", "dnn",
                          "--layers", "1", "--history", str(HISTORY_N),
                          export_options=("--pair-form", "rows"))


@pytest.fixture(scope="session")
def gmlfm(tmp_path_factory) -> Trained:
    """GML-FM with a one-layer DNN distance and the transformation weight: the model the
    service exists for (its state is the largest of the split families)."""
    return fit_and_export(tmp_path_factory.mktemp("gmlfm"), "gmlfm", 0, "--distance", "dnn",
                          "--layers", "1")


@pytest.fixture(scope="session")
def gmlfm_next(tmp_path_factory) -> Trained:
    """Another version of the same model (another seed), in a folder of its own, for
    reload tests to move into place."""
    return fit_and_export(tmp_path_factory.mktemp("gmlfm-next"), "gmlfm", 1, "--distance",
                          "dnn", "--layers", "1")


def redis_is_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A Redis Cluster of three masters and three replicas, started on first use, for the
    whole session."""
    try:
        servers = RedisClusterServers(tmp_path_factory.mktemp("cluster"), 3, 1).start()
    except NoRedisServer as err:
        pytest.skip(str(err))
    yield servers
    servers.stop()


@pytest.fixture(params=STORES)
def store(request, redis_prefix) -> dict[str, str]:
    """Settings of one store: the in-process one, Redis under a prefix of this test, or a
    Redis Cluster of three masters and three replicas."""
    if request.param == "memory":
        return {"redis_prefix": f"{redis_prefix}-mem"}
    if request.param == "cluster":
        return {"redis_url": request.getfixturevalue("redis_cluster").url,
                "redis_prefix": f"{redis_prefix}-{uuid.uuid4().hex[:8]}", "redis_timeout_s": 2.0}
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    # a loaded machine can stall this process past the service's default 0.25 s timeout,
    # which the service rightly takes for a Redis fault; these tests are about answers, so
    # they allow 2 s (test_faults.py keeps timeouts short on purpose)
    return {"redis_url": REDIS_URL, "redis_prefix": f"{redis_prefix}-{uuid.uuid4().hex[:8]}",
            "redis_timeout_s": 2.0}


def settings_for(models_dir: Path, **overrides) -> Settings:
    """Settings for a test app: no folder polling unless asked, small limits stay default."""
    return Settings(**{"models_dir": models_dir, "reload_interval_s": 0, **overrides})


@contextlib.asynccontextmanager
async def serving(settings: Settings):
    """An app with its lifespan run, and an httpx client talking to it in process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            client.app = app  # tests reach the host and store through it
            yield client


async def user_who_did(client: httpx.AsyncClient, user: str, segment: str,
                       *batches: list[str]) -> None:
    """PUT a profile for `user`, then record each batch of item ids as one interactions
    call; every write must be taken."""
    r = await client.put(f"/users/{user}", json={"features": {"segment": segment}})
    assert r.status_code == 200, r.text
    for batch in batches:
        r = await client.post(f"/users/{user}/interactions", json={"item_ids": batch})
        assert r.status_code == 200, r.text


@pytest.fixture
async def client(gmlfm, store):
    async with serving(settings_for(gmlfm.models_dir, **store)) as client:
        yield client


@pytest.fixture
def models_copy(gmlfm, tmp_path) -> Path:
    """A models folder of this test's own, holding the gmlfm bundle: tests may add to it."""
    target = tmp_path / "models"
    shutil.copytree(gmlfm.models_dir, target)
    return target


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
