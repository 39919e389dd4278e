"""Servers a test starts for itself: free ports, a throwaway redis-server, a Redis Cluster.

Tests import these from here. The port finder and the single redis-server live in
tests/support/ports.py and local_redis.py, which bench imports too (its benchmarks start the
same processes); the cluster, and the failover it plays, are the tests' alone.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.support.local_redis import NoRedisServer, RedisServer, launch
from tests.support.ports import free_port
from tests.support.waiting import wait_until

__all__ = ["NoRedisServer", "RedisClusterServers", "RedisServer", "distinct_ports", "free_port"]

# a cluster node also listens on its port + 10000 (the cluster bus), so its port stays below this
CLUSTER_MAX_PORT = 55535
REPLICA = "slave"  # the role INFO replication reports for a replica


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


class RedisClusterServers:
    """A Redis Cluster of `masters` redis-servers, each with `replicas` replicas, all slots
    assigned, in a folder of its own; `url` is the redis+cluster:// URL the service takes.
    Nodes time out after `node_timeout_ms`, so a killed master's replica takes over within a
    few seconds."""

    def __init__(self, folder: Path, masters: int = 3, replicas: int = 0,
                 node_timeout_ms: int = 1000):
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise NoRedisServer("redis-server or redis-cli is not installed")
        self.folder, self.replicas = folder, replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports = distinct_ports(masters * (1 + replicas))
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self) -> RedisClusterServers:
        for port in self.ports:
            node = self.folder / str(port)
            node.mkdir(parents=True)
            self.processes[port] = launch(
                ["--cluster-enabled", "yes", "--cluster-config-file", str(node / "nodes.conf"),
                 "--cluster-node-timeout", str(self.node_timeout_ms)], port, node / "redis.log")
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas",
                        str(self.replicas), "--cluster-yes"], check=True, capture_output=True,
                       timeout=120)
        replicas = len(self.ports) - len(self.ports) // (1 + self.replicas)
        self.wait_until(lambda: self.healthy(self.ports[0], replicas),
                        "cluster_state:ok, replicas synced")
        return self

    def nodes(self, via: int) -> list[dict]:
        """CLUSTER NODES as seen by the node on port `via`: port, role, flags, slot count."""
        text = self.client(via).execute_command("CLUSTER", "NODES")
        text = text.decode() if isinstance(text, bytes) else text
        found = []
        for line in text.splitlines():
            fields = line.split()
            flags = set(fields[2].split(","))
            slots = sum(int(r.split("-")[-1]) - int(r.split("-")[0]) + 1
                        for r in fields[8:] if not r.startswith("["))
            found.append({"port": int(fields[1].split(":")[1].split("@")[0]), "flags": flags,
                          "master": "master" in flags, "slots": slots})
        return found

    def healthy(self, via: int, replicas: int | None = None) -> bool:
        """Every slot served by a live master, and every live replica (`replicas` of them,
        where given) in sync with its master. A replica is one by its own INFO, not by `via`'s
        view: just after `cluster create` that view still lists the replicas as masters
        without slots while their first sync waits out the 5 s diskless-sync delay, and a
        master killed before that sync takes its writes along and leaves a replica that will
        not take over."""
        try:
            client = self.client(via)
            if b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                return False
            live = [n for n in self.nodes(via) if not n["flags"] & {"fail", "fail?"}]
            if sum(n["slots"] for n in live if n["master"]) != 16384:
                return False
            infos = [self.client(port).info("replication") for port in self.processes]
            synced = [i.get("master_link_status") == "up" for i in infos if i["role"] == REPLICA]
            return all(synced) and replicas in (None, len(synced))
        except redis.RedisError:
            return False

    def failed_over(self, via: int, dead: int) -> bool:
        """The node on `via` sees the `dead` master's slots served by another live master (a
        healthy view alone also holds before the death has been noticed)."""
        try:
            dead_slots = next(n["slots"] for n in self.nodes(via) if n["port"] == dead)
        except (redis.RedisError, StopIteration):
            return False
        return dead_slots == 0 and self.healthy(via)

    def master_of(self, key: str) -> int:
        """The port of the master that holds `key`'s slot."""
        client = self.client(self.ports[0])
        slot = client.execute_command("CLUSTER", "KEYSLOT", key)
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise RuntimeError(f"no node serves slot {slot}")

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.kill()
        process.wait(10)

    def wait_until(self, condition, what: str, timeout_s: float = 120) -> float:
        """Seconds until `condition()` held (generous: a loaded machine is slow to gossip);
        RuntimeError with each node's view if it never did."""
        start = time.monotonic()
        try:
            wait_until(condition, timeout_s, f"the cluster reaching {what}")
        except AssertionError as err:
            raise RuntimeError(f"{err}: {self.describe()}") from None
        return time.monotonic() - start

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

    def describe(self) -> str:
        """Each live node's view of the cluster and the end of its log (where a replica says
        why it does not take over), for an error message."""
        views = []
        for port in self.processes:
            try:
                view = str(self.nodes(port))
            except redis.RedisError as err:
                view = str(err)
            log = (self.folder / str(port) / "redis.log").read_text(errors="replace")
            views.append(f"{port}: {view}; log ends: {log.splitlines()[-4:]}")
        return "; ".join(views)

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait(10)
        self.processes = {}
