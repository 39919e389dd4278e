"""A redis-server of one's own, on a free port, that a test or benchmark may stop, slow down
(DEBUG SLEEP) and restart; a shared Redis is never touched."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


class NoRedisServer(RuntimeError):
    """This machine has no redis-server binary."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(client: redis.Redis, port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {port} did not start") from None
            time.sleep(0.02)


class RedisServer:
    def __init__(self, port: int | None = None):
        if shutil.which("redis-server") is None:
            raise NoRedisServer("redis-server is not installed")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(  # DEBUG SLEEP plays a slow Redis
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--enable-debug-command", "local"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_ping(redis.Redis(port=self.port, socket_timeout=0.2), self.port)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


class RedisClusterServers:
    """`nodes` redis-servers in cluster mode, all slots assigned (no replicas), in a folder
    of their own; `url` is the redis+cluster:// URL the service takes."""

    def __init__(self, folder: Path, nodes: int = 3):
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise NoRedisServer("redis-server or redis-cli is not installed")
        self.folder, self.ports = folder, [free_port() for _ in range(nodes)]
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"
        self.processes: list[subprocess.Popen] = []

    def start(self) -> RedisClusterServers:
        for port in self.ports:
            node = self.folder / str(port)
            node.mkdir(parents=True)
            self.processes.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(node / "nodes.conf")], cwd=node,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            wait_for_ping(redis.Redis(port=port, socket_timeout=0.2), port)
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=30)
        client = redis.Redis(port=self.ports[0], socket_timeout=1)
        deadline = time.monotonic() + 20
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster never reached cluster_state:ok")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(10)
        self.processes = []
