"""A redis-server of one's own, on a free port, that a benchmark or a test may stop, slow down
(DEBUG SLEEP) and restart; a shared Redis is never touched.

Tests take it through tests/support/servers.py, which adds a Redis Cluster; benchmarks import
it from here to measure serving against a real Redis (bench may import tests/support, never the
reverse).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.support.ports import free_port


class NoRedisServer(RuntimeError):
    """This machine has no redis-server binary."""


def launch(args: list[str], port: int, log: Path) -> subprocess.Popen:
    """Start a redis-server and wait until it answers; its output goes to `log`, whose end
    the error shows if it exits or stays silent (a loaded machine gets 30 s)."""
    with open(log, "ab") as out:
        process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", *args],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    client = redis.Redis(port=port, socket_timeout=0.5)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                tail = log.read_text(errors="replace")[-500:]
                raise RuntimeError(f"redis-server on {port} did not start: {tail}") from None
            time.sleep(0.02)


class RedisServer:
    def __init__(self, port: int | None = None, args: tuple[str, ...] = ()):
        """`args`: more redis-server options, after (so over) the defaults: e.g. AOF in a
        folder, which a restart on the same folder reads back."""
        if shutil.which("redis-server") is None:
            raise NoRedisServer("redis-server is not installed")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.args = args
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.gettempdir()) / f"gmlrec-redis-{self.port}.log"

    def start(self) -> RedisServer:
        # DEBUG SLEEP plays a slow Redis
        self.process = launch(["--enable-debug-command", "local", *self.args], self.port,
                              self.log)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)
