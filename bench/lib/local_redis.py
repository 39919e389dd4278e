"""A redis-server of one's own, on a free port, that a test or benchmark may stop, slow down
(DEBUG SLEEP) and restart; a shared Redis is never touched."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


class NoRedisServer(RuntimeError):
    """This machine has no redis-server binary."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# a cluster node also listens on its port + 10000 (the cluster bus), so its port stays below this
CLUSTER_MAX_PORT = 55535


def distinct_ports(n: int) -> list[int]:
    """n free ports, each one a cluster node can use (the bus port above it is free too)."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports and port <= CLUSTER_MAX_PORT and _free(port + 10000):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
    def __init__(self, port: int | None = None):
        if shutil.which("redis-server") is None:
            raise NoRedisServer("redis-server is not installed")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.gettempdir()) / f"gmlrec-redis-{self.port}.log"

    def start(self) -> RedisServer:
        # DEBUG SLEEP plays a slow Redis
        self.process = launch(["--enable-debug-command", "local"], self.port, self.log)
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
        self.folder, self.ports = folder, distinct_ports(nodes)
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"
        self.processes: list[subprocess.Popen] = []

    def start(self) -> RedisClusterServers:
        for port in self.ports:
            node = self.folder / str(port)
            node.mkdir(parents=True)
            self.processes.append(launch(["--cluster-enabled", "yes", "--cluster-config-file",
                                          str(node / "nodes.conf")], port, node / "redis.log"))
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=120)
        client = redis.Redis(port=self.ports[0], socket_timeout=5)
        deadline = time.monotonic() + 120  # generous: a loaded machine is slow to gossip
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
