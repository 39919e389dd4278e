"""The compose file's own commands, run directly on this machine (no Docker engine runs here).

Each service's command and environment are read from docker-compose.yml and its Dockerfile,
not restated here, so a change to either is what this test runs. Translated, and nothing else:
each named volume is a temporary folder (the `models` volume is shared by `train` and `api` as
in compose); the secrets are the files docs/operations.md's one command makes, and
/run/secrets/<name> is that file; the host name `redis` is a redis-server of this test's own
that requires the secret password (given on its stdin, as compose's Redis reads it from a
file); the API listens on a free loopback port; `${VAR:-default}` takes its default. The one
addition: `GMLREC_TRAIN_CONFIG` points the train job at a small synthetic fit, since the
default model takes minutes (the README's quick start and the fresh-clone check run the
default).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.processes import wait_until_ready
from tests.support.servers import free_port

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
SMALL_FIT = """\
data = "synthetic:users=60,items=200,interactions=2000,categories=5,segments=3"
task = "topn"
model = "gmlfm"
distance = "dnn"
layers = 1
embedding = "gcn"
dim = 8
epochs = 2
"""


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def dockerfile_command_and_env(path: Path) -> tuple[list[str], dict[str, str], list[str]]:
    """CMD, ENV and the HEALTHCHECK command of a Dockerfile (exec forms, as ours use)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())  # join continued lines
    command, health, env = [], [], {}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "CMD":
            command = json.loads(rest)
        elif word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif word == "HEALTHCHECK":
            health = json.loads(rest[rest.index("CMD") + 3:])
    return command, env, health


def with_defaults(value: str) -> str:
    """Compose's `${VAR:-default}` with VAR unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


class ComposeService:
    """One service of the compose file as a process here: its argv and environment."""

    def __init__(self, name: str, volumes: dict[str, Path], redis_prefix: str,
                 redis_port: int = 6379):
        service = compose_services()[name]
        command, env, self.health = dockerfile_command_and_env(
            ROOT / service["build"]["dockerfile"])
        env.update({k: with_defaults(str(v)) for k, v in service.get("environment", {}).items()})
        mounts = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounts[target] = str(volumes.setdefault(source, volumes["root"] / source))
            Path(mounts[target]).mkdir(exist_ok=True)

        for secret in service.get("secrets", []):
            mounts[f"/run/secrets/{secret}"] = str(volumes["root"] / "secrets" / secret)

        def here(value: str) -> str:
            for target, folder in mounts.items():
                value = folder if value == target else value
                if value.startswith(target + "/"):  # a path inside a volume
                    value = folder + value[len(target):]
            return value.replace("//redis:6379", f"//127.0.0.1:{redis_port}")

        self.argv = [sys.executable if arg == "python" else here(arg)
                     for arg in service.get("command", command)]
        self.env = {**os.environ, **{k: here(v) for k, v in env.items()}}
        self.env["PYTHONPATH"] = str(ROOT)  # this checkout's code, as the image copies it
        if "GMLREC_REDIS_URL" in self.env:
            self.env["GMLREC_REDIS_PREFIX"] = redis_prefix
        if self.env.get("GMLREC_HOST") == "0.0.0.0":
            self.env.update(GMLREC_HOST="127.0.0.1", GMLREC_PORT=str(free_port()))


def documented_secrets_command() -> str:
    """The one command of docs/operations.md's Deploy section that makes the secrets."""
    lines = [line for line in (ROOT / "docs/operations.md").read_text().splitlines()
             if line.startswith("mkdir -p -m 700 secrets")]
    assert len(lines) == 1, "docs/operations.md shows one command making the secrets"
    return lines[0]


@contextlib.contextmanager
def redis_with_password(password: str) -> Iterator[int]:
    """A redis-server of this test's own requiring `password`, read from its stdin (never
    argv); its port."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    config = (f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\n'
              f"requirepass {password}\n")
    process = subprocess.Popen(["redis-server", "-"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    process.stdin.write(config)
    process.stdin.close()
    client = redis.Redis(port=port, password=password, socket_timeout=1)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait(10)


def test_train_job_then_api_on_redis_answer_a_recommendation(tmp_path, redis_prefix):
    subprocess.run(documented_secrets_command(), shell=True, cwd=tmp_path, check=True)
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    secret = {p.name: p.read_text().strip() for p in (tmp_path / "secrets").iterdir()}
    password, admin_key = secret["redis_password"], secret["admin_key"]
    # two admin keys: the operator's and Prometheus' (revoked apart); Grafana's own password
    assert secret["api_keys"].splitlines() == [f"admin:{admin_key}",
                                                f"admin:{secret['prometheus_key']}"]
    assert len({password, admin_key, secret["prometheus_key"], secret["grafana_password"]}) == 4
    assert min(len(password), len(admin_key), len(secret["prometheus_key"])) >= 43
    with redis_with_password(password) as port:
        run_compose_commands(tmp_path, redis_prefix, port, password, admin_key,
                             secret["prometheus_key"])


def train_small_model(tmp_path: Path, volumes: dict[str, Path], redis_prefix: str
                      ) -> tuple[ComposeService, Path]:
    """The compose file's one-shot `train` service, on a small fit: the service and the
    bundle it printed."""
    (tmp_path / "small-fit.toml").write_text(SMALL_FIT)
    train = ComposeService("train", volumes, redis_prefix)
    train.env["GMLREC_TRAIN_CONFIG"] = str(tmp_path / "small-fit.toml")
    done = subprocess.run(train.argv, env=train.env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return train, Path(done.stdout.strip())


def run_compose_commands(tmp_path: Path, redis_prefix: str, redis_port: int, password: str,
                         admin_key: str, prometheus_key: str) -> None:
    volumes: dict[str, Path] = {"root": tmp_path}
    train, bundle = train_small_model(tmp_path, volumes, redis_prefix)
    assert bundle.parents[1] == volumes["models"] and (bundle / "manifest.json").is_file()

    again = subprocess.run(train.argv, env=train.env, capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)  # every later `docker compose up`
    assert again.returncode == 0 and "exists; serving it" in again.stderr
    assert [p.name for p in bundle.parent.iterdir()] == [bundle.name]  # nothing retrained

    api = ComposeService("api", volumes, redis_prefix, redis_port)
    with open(tmp_path / "api.log", "w") as log:  # a file: an unread pipe could fill up
        process = subprocess.Popen(api.argv, env=api.env, cwd=tmp_path, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{api.env['GMLREC_PORT']}"
        wait_until_ready(base, process)
        ready = httpx.get(f"{base}/ready").json()
        assert ready == {"status": "ready", "model_version": bundle.name, "store": "redis",
                         "detail": None}
        health = subprocess.run(api.health, env=api.env, timeout=10)  # the image's HEALTHCHECK
        assert health.returncode == 0
        assert httpx.get(f"{base}/users").status_code == 401  # keys hold
        key = {"authorization": f"Bearer {admin_key}"}
        user = httpx.get(f"{base}/users", params={"limit": 1}, headers=key
                         ).json()["user_ids"][0]
        answer = httpx.get(f"{base}/recommend/{user}", timeout=10, headers=key)
        assert answer.status_code == 200
        items = answer.json()["items"]
        assert len(items) == 10 and len({item["item_id"] for item in items}) == 10
        assert httpx.put(f"{base}/users/{user}", json={"features": {}}, headers=key
                         ).status_code == 200
        scraped = httpx.get(f"{base}/metrics",  # as the monitoring profile's Prometheus does
                            headers={"authorization": f"Bearer {prometheus_key}"})
        assert scraped.status_code == 200 and "gmlrec_http_requests_total" in scraped.text
        with pytest.raises(redis.AuthenticationError):  # Redis holds to its password
            redis.Redis(port=redis_port).ping()
        assert any(k.startswith(redis_prefix.encode()) for k in
                   redis.Redis(port=redis_port, password=password).scan_iter(f"{redis_prefix}*"))
        logged = (tmp_path / "api.log").read_text()
        assert password not in logged and admin_key not in logged and prometheus_key not in logged
    finally:
        process.terminate()
        process.wait(30)


def test_one_retrain_cycle_against_redis(tmp_path, redis_prefix):
    """The compose file's `retrain` service, its command with `--cycles 1`: the events in a
    real Redis (written as the service's log writes them), one cycle, its record on stdout."""
    from events.record import Stamp
    from events.redis_log import stream_key

    subprocess.run(documented_secrets_command(), shell=True, cwd=tmp_path, check=True)
    password = (tmp_path / "secrets/redis_password").read_text().strip()
    volumes: dict[str, Path] = {"root": tmp_path}
    _, served = train_small_model(tmp_path, volumes, redis_prefix)
    with redis_with_password(password) as port:
        client = redis.Redis(port=port, password=password)
        now = time.time()
        for user in range(60):  # two new interactions of each user, a second apart
            for k in range(2):
                client.xadd(stream_key(redis_prefix, str(user)),
                            Stamp(now + user * 2 + k, served.name).fields([str(user * 3 + k)]))
        retrain = ComposeService("retrain", volumes, redis_prefix, port)
        assert retrain.argv[-1] == "--every" and "GMLREC_RETRAIN_EVERY" in retrain.env
        retrain.env["GMLREC_REDIS_PREFIX"] = redis_prefix
        cycle = subprocess.run([*retrain.argv, "--cycles", "1"], env=retrain.env,
                               capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert cycle.returncode == 0, cycle.stderr
    lines = cycle.stdout.strip().splitlines()
    assert len(lines) == 1, cycle.stdout
    record = json.loads(lines[0])
    assert record["round"] == 1 and record["events"]["events"] == 120
    assert record["verdict"] in ("published", "refused"), record
    assert record["served"]["version"] == served.name
    assert (volumes["runs"] / "retrain" / record["cycle"] / "verdict.json").is_file()
    assert password not in cycle.stdout + cycle.stderr
