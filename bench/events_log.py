"""What the event log costs a write: POST /users/{id}/interactions per second over HTTP, with
the log on and off, on Redis (AOF, appendfsync always, as compose runs it) and in process.

    python -m bench.events_log [--requests 500] [--concurrency 8] [--rounds 10]
    python -m bench.events_log --smoke --results PATH      # tiny sizes, seconds

A synthetic GML-FM-dnn bundle with a history field of 10 (bench/lib/synthetic_bundle.py:
random weights; the write path moves a history model's state, as the default model's does) is
served by two `python -m service` at once (one worker each), GMLREC_EVENTS_LOG true and false:
on a Redis of the bench's own with AOF in a temporary folder, each under its own key prefix,
then in process, each with its own file log folder. Each server first takes one write per user
(the first write of a user builds its state: not what is measured), then the two take turns,
--rounds bursts of --requests POSTs each (one item, a training user, a catalog item, an
explicit `at`) over --concurrency keep-alive connections, the order alternating, so that the
machine's other load hits both alike. Events/s is a burst's acknowledged events per second;
the ratio is on / off within a round, its median over rounds. Afterwards the log-on server's
log is exported and must hold every acknowledged event (the run fails otherwise). Then,
without HTTP: RedisStore.add_interactions with and without the event, in blocks taking turns
(the script on Redis and its round trip), the memory a stream entry takes, and a FileLog's
appends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.lib.http_load import LoadResult, encode, load
from bench.lib.results import RESULTS, write_section
from bench.lib.synthetic_bundle import export_synthetic
from bench.scale_out import serving
from bench.two_phase import cpu_flags
from bundle import load_bundle
from events.export import export_events
from events.file_log import FileLog
from events.record import Stamp, interactions_line
from events.retention import Retention
from service.stores.redis_store import RedisStore, connect
from tests.support.local_redis import RedisServer

SPEC = "synthetic:users=1000,items=2000,interactions=20000,seed=0"
HISTORY = 10
AT = 1_733_500_000.0
SMOKE = {"requests": 30, "concurrency": 2, "rounds": 2, "users": 20}


@dataclass(frozen=True)
class Run:
    store: str
    log: bool
    result: LoadResult

    @property
    def events_per_s(self) -> float:
        return self.result.requests / self.result.seconds


def drive(port: int, users: list[str], items: list[str], requests: int, concurrency: int
          ) -> LoadResult:
    bodies = [encode("POST", f"/users/{users[i % len(users)]}/interactions",
                     {"item_ids": [items[(i * 7) % len(items)]], "at": AT + i})
              for i in range(requests)]
    result = asyncio.run(load("127.0.0.1", port, lambda i: bodies[i], concurrency, requests,
                              600))
    if result.failures:
        raise RuntimeError(f"{result.failures} failed writes")
    return result


def listening(port: int, within_s: float = 60) -> None:
    """Until the port takes connections: one uvicorn worker logs that it is ready (its
    lifespan has run) just before it binds its socket."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def store_runs(bundle: Path, redis: RedisServer, store: str, args, users: list[str],
               items: list[str], scratch: Path) -> list[Run]:
    """Both servers of one store, their warm-up, then --rounds alternating bursts."""
    url = redis.url if store == "redis" else ""
    prefixes = {log: f"bench-{uuid.uuid4().hex[:8]}" for log in (True, False)}
    folders = {log: scratch / uuid.uuid4().hex[:8] for log in (True, False)}
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        ports = {}
        for log in (True, False):
            settings = {"GMLREC_EVENTS_LOG": "true" if log else "false",
                        "GMLREC_EVENTS_DIR": str(folders[log]),
                        "GMLREC_REDIS_PREFIX": prefixes[log], "GMLREC_REDIS_TIMEOUT_S": "2"}
            ports[log] = stack.enter_context(serving(bundle, url, 1, "", settings)).port
            listening(ports[log])
        acknowledged = drive(ports[True], users, items, len(users), args.concurrency).requests
        drive(ports[False], users, items, len(users), args.concurrency)
        for k in range(args.rounds):
            for log in ((True, False) if k % 2 == 0 else (False, True)):
                result = drive(ports[log], users, items, args.requests, args.concurrency)
                runs.append(Run(store, log, result))
                acknowledged += result.requests if log else 0
    source = url if store == "redis" else str(folders[True])
    summary = export_events(source, scratch / "export", prefix=prefixes[True],
                            retention=Retention())
    if summary.events != acknowledged:
        raise RuntimeError(f"{store}: {acknowledged} acknowledged, {summary.events} exported")
    return runs


@dataclass(frozen=True)
class Costs:
    """The log's cost where the service pays it, without HTTP: microseconds per call."""

    script_on_us: float  # the interactions script with its XADD
    script_off_us: float  # the same script, no event
    ratio: float  # median over blocks of on / off
    stream_bytes: float  # Redis memory per event entry (MEMORY USAGE over XLEN)
    append_us: float  # the file log: encoding one batch's line and its write()


def costs(redis: RedisServer, users: list[str], items: list[str], blocks: int, block: int,
          scratch: Path) -> Costs:
    """RedisStore.add_interactions with and without the event, blocks taking turns, on the
    bench's Redis (AOF always); then a FileLog's appends."""
    async def script() -> tuple[list[float], list[float], float]:
        prefixes = {log: f"bench-{uuid.uuid4().hex[:8]}" for log in (True, False)}
        stores = {log: RedisStore(connect(redis.url, 2.0, 2.0, 4), prefixes[log], events=log)
                  for log in (True, False)}
        stamp = Stamp(AT, "v1")
        per: dict[bool, list[float]] = {True: [], False: []}
        for b in range(blocks):
            for log in ((True, False) if b % 2 == 0 else (False, True)):
                started = time.perf_counter()
                for i in range(block):
                    await stores[log].add_interactions(users[i % len(users)],
                                                       [items[(b * block + i) % len(items)]],
                                                       1000, stamp=stamp)
                per[log].append(1e6 * (time.perf_counter() - started) / block)
        for store in stores.values():
            await store.close()
        client = redis.client()
        keys = list(client.scan_iter(f"{prefixes[True]}:*:events", count=1000))
        held = sum(int(client.xlen(k)) for k in keys)
        memory = sum(int(client.memory_usage(k) or 0) for k in keys)
        return per[True], per[False], memory / held

    on, off, stream_bytes = asyncio.run(script())
    log = FileLog(scratch / "append-cost")
    lines = 20 * block
    started = time.perf_counter()
    for i in range(lines):
        log.append(interactions_line(users[i % len(users)], [items[i % len(items)]],
                                     Stamp(AT + i, "v1")))
    append_us = 1e6 * (time.perf_counter() - started) / lines
    log.close()
    return Costs(statistics.median(on), statistics.median(off),
                 statistics.median(a / b for a, b in zip(on, off)), stream_bytes, append_us)


def report(runs: list[Run], cost: Costs, args, flags: set[str], minutes: float,
           load: tuple[float, float]) -> str:
    rows = ["| store | log | events/s (median of rounds) | p50 ms | p99 ms | on / off: median "
            "(range) |",
            "|---|---|---|---|---|---|"]
    for store in ("redis", "in-process"):
        on = [r for r in runs if r.store == store and r.log]
        off = [r for r in runs if r.store == store and not r.log]
        ratio = statistics.median(a.events_per_s / b.events_per_s for a, b in zip(on, off))
        spread = f"{min(a.events_per_s / b.events_per_s for a, b in zip(on, off)):.2f}–" \
                 f"{max(a.events_per_s / b.events_per_s for a, b in zip(on, off)):.2f}"
        for label, group in (("on", on), ("off", off)):
            latencies = np.concatenate([r.result.latencies_ms for r in group])
            rows.append(f"| {store} | {label} | "
                        f"{statistics.median(r.events_per_s for r in group):.0f} | "
                        f"{np.percentile(latencies, 50):.2f} | {np.percentile(latencies, 99):.2f}"
                        f" | {f'{ratio:.2f} ({spread})' if label == 'on' else ''} |")
    avx = "avx2" if "avx2" in flags else "no avx2"
    return "\n".join([
        "## Event log: what it costs a write", "",
        f"`python -m bench.events_log --requests {args.requests} --users {args.users} "
        f"--concurrency {args.concurrency} --rounds {args.rounds}` ({minutes:.1f} min; "
        f"CPU flags: {avx}; load average {load[0]:.1f} before, {load[1]:.1f} after: other "
        "work shared the machine).",
        "", "POST /users/{id}/interactions, one item each, over HTTP to two `python -m "
        "service` (one worker each, the log on and off, taking turns burst by burst) serving a "
        "synthetic GML-FM-dnn bundle with a history field of 10, so every write also moves "
        "the user's state. Redis: a redis-server of the bench's own with `appendonly yes`, "
        "`appendfsync always` (compose's policy), the log a stream per user `XADD`ed in the "
        "write's script. In process: the file log, one `write()` a batch. The log-on server's "
        "log was exported after its bursts and held every acknowledged event. The load "
        "generator shares the machine's cores with the servers and Redis.", "", *rows, "",
        "Without HTTP, where the service pays it (`RedisStore.add_interactions`, one item a "
        f"call, {args.rounds * 2} blocks of {args.requests} calls taking turns, on the same "
        "Redis; then the file log's appends):", "",
        "| what | cost |", "|---|---|",
        f"| the interactions script with its `XADD` | {cost.script_on_us:.0f} µs a call |",
        f"| the same script without it | {cost.script_off_us:.0f} µs a call |",
        f"| with / without, median of block pairs | {cost.ratio:.2f} |",
        f"| Redis memory per event entry (`MEMORY USAGE` / `XLEN`) | "
        f"{cost.stream_bytes:.0f} bytes |",
        f"| the file log: a batch's line encoded and written | {cost.append_us:.1f} µs |", ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.events_log")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--users", type=int, default=300, help="users the writes go to")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: does it run")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    started, load_before = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gmlrec-events-bench-") as tmp:
        scratch = Path(tmp)
        bundle = export_synthetic(SPEC, "gmlfm", scratch / "models", "events", dim=32,
                                  history=HISTORY).path
        loaded = load_bundle(bundle, verify=False)
        users, items = [str(u) for u in loaded.users.ids[:args.users]], \
            [str(i) for i in loaded.catalog.ids[:1000]]
        (scratch / "redis").mkdir()
        redis = RedisServer(args=("--dir", str(scratch / "redis"), "--appendonly", "yes",
                                  "--appendfsync", "always")).start()
        try:
            runs = [run for store in ("redis", "in-process")
                    for run in store_runs(bundle, redis, store, args, users, items, scratch)]
            cost = costs(redis, users, items, args.rounds * 2, args.requests, scratch)
        finally:
            redis.stop()
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpu_flags(cpuinfo.read_text()) if cpuinfo.exists() else set()
    body = report(runs, cost, args, flags, (time.monotonic() - started) / 60,
                  (load_before, os.getloadavg()[0]))
    print(body)
    write_section("events-log", body, args.results)


if __name__ == "__main__":
    main()
