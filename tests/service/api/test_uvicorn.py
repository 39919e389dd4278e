"""`python -m service` as a real process: two uvicorn workers on one Redis, JSON logs with
request ids, metrics summed over the workers, read-your-writes across workers, and a
graceful stop on SIGTERM."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.lib.local_redis import free_port
from bench.scale_out import workers_of
from tests.service.api.conftest import REDIS_URL, redis_is_up

ROOT = Path(__file__).parents[3]
WORKERS = 2
ESTABLISHED, LISTEN = "01", "0A"  # TCP states as /proc/net/tcp writes them


@pytest.fixture(scope="module")
def server(gmlfm, redis_prefix, tmp_path_factory):
    if not redis_is_up():
        pytest.skip("no Redis")
    port = free_port()
    log = tmp_path_factory.mktemp("uvicorn") / "stdout.log"
    env = {**os.environ, "GMLREC_MODELS_DIR": str(gmlfm.models_dir), "GMLREC_PORT": str(port),
           "GMLREC_WORKERS": str(WORKERS), "GMLREC_REDIS_URL": REDIS_URL,
           "GMLREC_REDIS_PREFIX": f"{redis_prefix}-uv", "GMLREC_RELOAD_INTERVAL_S": "0"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process)
        wait_until_every_worker_listens(port, process)
        yield base, process, log
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, which stops the workers too; SIGKILL to the whole session only if that
    hangs (killing the supervisor alone would leave its workers listening)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_until_ready(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "python -m service exited"
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "python -m service never became ready"
        time.sleep(0.1)


def wait_until_every_worker_listens(port: int, process: subprocess.Popen) -> None:
    """/ready answers once one worker is up; each worker opens its own socket only after its
    startup, so the others may still be loading."""
    deadline = time.monotonic() + 60
    while sum(connections_held(port, workers_of(process.pid), LISTEN).values()) < WORKERS:
        assert time.monotonic() < deadline, "not every worker started listening"
        time.sleep(0.1)


def test_answers_and_request_ids(server):
    base, _, log = server
    r = httpx.post(f"{base}/score", json={"user_id": "7", "item_ids": ["1", "2"]},
                   headers={"X-Request-ID": "uvicorn-test-1"})
    assert r.status_code == 200 and len(r.json()["scores"]) == 2
    assert r.headers["x-request-id"] == "uvicorn-test-1"
    time.sleep(0.2)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    access = [x for x in lines if x.get("request_id") == "uvicorn-test-1"]
    assert access and access[-1]["route"] == "/score" and access[-1]["status"] == 200


def test_metrics_add_up_over_the_workers(server):
    base, _, _ = server
    n = 40
    for _ in range(n):  # a new connection each time: both workers take some
        httpx.get(f"{base}/items/3")
    text = httpx.get(f"{base}/metrics").text
    count = re.search(r'gmlrec_http_requests_total\{method="GET",route="/items/\{item_id\}",'
                      r'status="200"\} (\S+)', text)
    assert count and float(count.group(1)) == n
    pids = set(re.findall(r'gmlrec_model_info\{name="rec",pid="(\d+)"', text))
    assert len(pids) == WORKERS


def test_read_your_writes_across_workers(server):
    base, _, _ = server
    items = {"item_ids": ["1", "50", "150"]}
    for k in range(20):
        profile = {"user_id": str(k), "segment": str(k % 3)}
        want = httpx.post(f"{base}/score", json={"user": profile, **items}).json()["scores"]
        assert httpx.put(f"{base}/users/across", json={"features": profile}).status_code == 200
        got = httpx.post(f"{base}/score", json={"user_id": "across", **items}).json()["scores"]
        assert got == want


def test_a_burst_of_keepalive_connections_spreads_over_the_workers(server):
    """Connections opened at once, as a proxy's upstream pool or a load test opens them, are
    served by every worker, not all by the first one to wake (section scale-out)."""
    base, process, _ = server
    port = int(base.rsplit(":", 1)[1])
    request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
    try:
        for conn in connections:
            conn.sendall(request)
        for conn in connections:
            assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        held = connections_held(port, workers_of(process.pid))
        assert len(held) == WORKERS and sum(held.values()) == 16, held
        assert min(held.values()) >= 1, f"one worker took every connection: {held}"
    finally:
        for conn in connections:
            conn.close()


def connections_held(port: int, pids: list[int], state: str = ESTABLISHED) -> dict[int, int]:
    """How many TCP sockets in `state` on the server's port each process holds, from
    /proc/net/tcp (which socket is on the port) and each process's file descriptors (which
    process holds that socket)."""
    local = f":{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(local) and fields[3] == state:
            inodes.add(fields[9])
    held = {}
    for pid in pids:
        sockets = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed while we looked
                sockets.append(os.readlink(fd))
        held[pid] = sum(link[8:-1] in inodes for link in sockets if link.startswith("socket:["))
    return held


def start_on_taken_port(port: int, models_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GMLREC_MODELS_DIR": str(models_dir), "GMLREC_PORT": str(port),
           "GMLREC_WORKERS": str(WORKERS), "GMLREC_REDIS_URL": REDIS_URL}
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop(process)
        pytest.fail("python -m service started on a port already taken")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def assert_refused(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 3
    assert "Traceback" not in done.stdout + done.stderr
    errors = [json.loads(line) for line in done.stdout.splitlines() if '"error"' in line]
    assert len(errors) == 1 and "cannot listen on 127.0.0.1" in errors[0]["msg"]


def test_a_port_in_use_is_one_log_line_and_exit_3(gmlfm):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        assert_refused(start_on_taken_port(taken.getsockname()[1], gmlfm.models_dir))


def test_a_second_service_cannot_share_the_port_of_one_with_workers(server, gmlfm):
    """SO_REUSEPORT would let it, silently splitting the traffic between two services."""
    base, _, _ = server
    assert_refused(start_on_taken_port(int(base.rsplit(":", 1)[1]), gmlfm.models_dir))


def test_sigterm_lets_requests_in_flight_finish(server):
    """Every request the server started (its access line is in the log) reaches the client
    whole; the others were still in the kernel's accept queue when the listener closed,
    and fail at the transport, never halfway."""
    base, process, log = server

    answered = []

    def call(k: int) -> int | str:
        try:
            status = httpx.get(f"{base}/recommend/7", params={"n": 100}, timeout=10,
                               headers={"X-Request-ID": f"stop-{k}"}).status_code
        except httpx.TransportError as err:
            return type(err).__name__
        answered.append(status)
        return status

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = {f"stop-{k}": pool.submit(call, k) for k in range(200)}
        deadline = time.monotonic() + 30
        while len(answered) < 10 and time.monotonic() < deadline:  # stop it mid-load
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        outcomes = {rid: f.result() for rid, f in futures.items()}
    assert process.wait(30) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    started = {x["request_id"]: x["status"] for x in lines
               if str(x.get("request_id", "")).startswith("stop-")}
    assert started and set(started.values()) == {200}
    assert all(outcomes[rid] == 200 for rid in started)
    assert "Application shutdown complete." in {x["msg"] for x in lines}

