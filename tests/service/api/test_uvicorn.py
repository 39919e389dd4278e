"""`python -m service` as a real process: two uvicorn workers under gunicorn on one Redis,
each listening on a socket of its own, JSON logs with request ids, metrics summed over the
workers, read-your-writes across workers, a killed worker replaced, and a graceful stop on
SIGTERM."""

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
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.service.api.conftest import REDIS_URL, redis_is_up
from tests.service.api.test_reload import place
from tests.support.ports import free_port
from tests.support.processes import workers_of

ROOT = Path(__file__).parents[3]
WORKERS = 2
ESTABLISHED, LISTEN = "01", "0A"  # TCP states as /proc/net/tcp writes them
STARTED = '"msg": "Application startup complete."'  # uvicorn's, before it listens


@contextlib.contextmanager
def workers_server(models_dir: Path, prefix: str, log: Path):
    """`python -m service` with WORKERS workers on Redis, once every worker listens; stopped
    (SIGTERM) after, if a test has not stopped it itself."""
    if not redis_is_up():
        pytest.skip("no Redis")
    port = free_port()
    env = {**os.environ, "GMLREC_MODELS_DIR": str(models_dir), "GMLREC_PORT": str(port),
           "GMLREC_WORKERS": str(WORKERS), "GMLREC_REDIS_URL": REDIS_URL,
           "GMLREC_REDIS_PREFIX": prefix, "GMLREC_RELOAD_INTERVAL_S": "0"}
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


@pytest.fixture(scope="module")
def server(gmlfm, redis_prefix, tmp_path_factory):
    """One server for the tests that leave it running."""
    log = tmp_path_factory.mktemp("uvicorn") / "stdout.log"
    with workers_server(gmlfm.models_dir, f"{redis_prefix}-uv", log) as running:
        yield running


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


def wait_until_every_worker_listens(port: int, process: subprocess.Popen) -> list[int]:
    """/ready answers once one worker is up; the others may still be loading, and gunicorn
    starts a replacement for a worker that died. Returns the workers' pids."""
    deadline = time.monotonic() + 60
    while True:
        pids = workers_of(process.pid)
        held = sockets_held(port, pids, LISTEN)
        if len(pids) == WORKERS and all(held.values()):
            return pids
        assert process.poll() is None, "python -m service exited"
        assert time.monotonic() < deadline, f"not every worker started listening: {held}"
        time.sleep(0.1)


def test_answers_and_request_ids(server):
    base, _, log = server
    r = httpx.post(f"{base}/score", json={"user_id": "7", "item_ids": ["1", "2"]},
                   headers={"X-Request-ID": "uvicorn-test-1"})
    assert r.status_code == 200 and len(r.json()["scores"]) == 2
    assert r.headers["x-request-id"] == "uvicorn-test-1"
    access = logged(log, lambda x: x.get("request_id") == "uvicorn-test-1")
    assert access["route"] == "/score" and access["status"] == 200


def logged(log: Path, wanted: Callable[[dict], bool], within_s: float = 10) -> dict:
    """The first JSON log line `wanted` accepts, as soon as a worker has written it (a
    worker logs after it answers, so the line may come a moment after the answer)."""
    deadline = time.monotonic() + within_s
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        found = [x for x in lines if wanted(x)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no such line in {log} within {within_s} s"
        time.sleep(0.02)


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
    """How many TCP sockets in `state` on the server's port each process holds."""
    return {pid: len(inodes) for pid, inodes in sockets_held(port, pids, state).items()}


def sockets_held(port: int, pids: list[int], state: str) -> dict[int, set[str]]:
    """The inodes of the TCP sockets in `state` on `port` that each process holds, from
    /proc/net/tcp and tcp6 (which sockets are on the port) and each process's file
    descriptors, links named socket:[inode] (which process holds which socket). A socket
    that several processes share, inherited over a fork, has one inode in all of them."""
    local = f":{port:04X}"
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):  # a kernel without IPv6
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(local) and fields[3] == state:
                    inodes.add(fields[9])
    held = {}
    for pid in pids:
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed while we looked
                links.append(os.readlink(fd))
        held[pid] = {link[8:-1] for link in links
                     if link.startswith("socket:[") and link[8:-1] in inodes}
    return held


def assert_a_listening_socket_each(held: dict[int, set[str]]) -> None:
    """Every process holds exactly one listening socket, and no two hold the same one."""
    assert all(len(inodes) == 1 for inodes in held.values()), held
    assert len(set().union(*held.values())) == len(held), f"a socket is shared: {held}"


def test_every_worker_listens_on_a_socket_of_its_own(server):
    """Each worker binds its own SO_REUSEPORT socket, which is what spreads connections:
    one socket per worker in /proc/net/tcp, a distinct inode in each worker, and none in
    the master (whose socket every worker would otherwise inherit and share)."""
    base, process, _ = server
    port = int(base.rsplit(":", 1)[1])
    pids = wait_until_every_worker_listens(port, process)
    assert len(pids) == WORKERS and process.pid not in pids
    held = sockets_held(port, pids, LISTEN)
    assert_a_listening_socket_each(held)
    assert sockets_held(port, [process.pid], LISTEN) == {process.pid: set()}


def test_the_check_sees_a_shared_socket():
    """The check is not vacuous: a listening socket inherited over a fork, held by parent
    and child alike, as every worker held uvicorn's one socket, fails it."""
    port = free_port()
    script = ("import os, socket, time\n"
              f"s = socket.create_server(('127.0.0.1', {port}))\n"
              "child = os.fork()\n"
              "if child:\n"
              "    print(child, flush=True)\n"
              "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        held = sockets_held(port, [parent.pid, child], LISTEN)
        assert held[parent.pid] == held[child] and len(held[child]) == 1
        with pytest.raises(AssertionError, match="a socket is shared"):
            assert_a_listening_socket_each(held)
    finally:
        os.killpg(parent.pid, signal.SIGTERM)
        parent.wait(10)
        parent.stdout.close()


def test_a_killed_worker_is_replaced(server):
    """gunicorn starts a new worker, with a socket of its own, for one that died; the new
    worker listens only once its app has started, so no connection waits for the load."""
    base, process, log = server
    port = int(base.rsplit(":", 1)[1])
    before = wait_until_every_worker_listens(port, process)
    started = log.read_text().count(STARTED)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # until the new worker listens
        new = [pid for pid in workers_of(process.pid) if pid not in before]
        with contextlib.suppress(FileNotFoundError):  # it exited while we looked
            if new and sockets_held(port, new, LISTEN)[new[0]]:
                break
        assert time.monotonic() < deadline, "no new worker listened"
        time.sleep(0.01)
    assert log.read_text().count(STARTED) > started, "it listened before its app started"
    after = wait_until_every_worker_listens(port, process)
    assert before[0] not in after and before[1] in after
    assert_a_listening_socket_each(sockets_held(port, after, LISTEN))
    wait_until_ready(base, process)
    for _ in range(10):  # new connections each: whichever worker takes them answers
        assert httpx.get(f"{base}/items/3").status_code == 200


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


def test_sigterm_lets_requests_in_flight_finish(gmlfm, redis_prefix, tmp_path):
    """Every request the server started (its access line is in the log) reaches the client
    whole; the others were still in the kernel's accept queue when the listener closed,
    and fail at the transport, never halfway. (A server of its own: this test stops it.)"""
    with workers_server(gmlfm.models_dir, f"{redis_prefix}-uv-stop",
                        tmp_path / "stdout.log") as (base, process, log):
        stopped_under_load(base, process, log)


def stopped_under_load(base: str, process: subprocess.Popen, log: Path) -> None:

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
        workers = workers_of(process.pid)
        process.send_signal(signal.SIGTERM)
        outcomes = {rid: f.result() for rid, f in futures.items()}
    assert process.wait(30) == 0
    assert len(workers) == WORKERS and not any(Path(f"/proc/{w}").exists() for w in workers)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    started = {x["request_id"]: x["status"] for x in lines
               if str(x.get("request_id", "")).startswith("stop-")}
    assert started and set(started.values()) == {200}
    assert all(outcomes[rid] == 200 for rid in started)
    assert "Application shutdown complete." in {x["msg"] for x in lines}



def test_admin_reload_on_one_worker_brings_every_worker_to_the_new_version(
        gmlfm, gmlfm_next, models_copy, redis_prefix, tmp_path):
    """Folder polling off: one POST /admin/reload, taken by one worker, and every worker
    serves the new version within a few seconds (they follow the store's reload count)."""
    with workers_server(models_copy, f"{redis_prefix}-admin", tmp_path / "log") as running:
        base, process, _ = running
        pids = wait_until_every_worker_listens(int(base.rsplit(":", 1)[1]), process)
        place(gmlfm_next.bundle, models_copy)
        answer = httpx.post(f"{base}/admin/reload").json()
        assert answer["model_version"] == gmlfm_next.version and answer["others_told"]
        deadline = time.monotonic() + 15
        while True:
            served = re.findall(r'gmlrec_model_info\{name="rec",pid="(\d+)",version="([^"]+)"'
                                r'\} 1\.0', httpx.get(f"{base}/metrics").text)
            if {int(pid) for pid, v in served if v == gmlfm_next.version} >= set(pids):
                break
            assert time.monotonic() < deadline, f"not every worker reloaded: {served}"
            time.sleep(0.2)
        versions = {httpx.get(f"{base}/model").json()["model_version"] for _ in range(20)}
        assert versions == {gmlfm_next.version}  # new connections: both workers answer
