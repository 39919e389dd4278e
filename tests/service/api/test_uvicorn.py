"""`python -m service` as a real process: two workers under uvicorn's supervisor on one Redis,
JSON logs with request ids, metrics summed over the workers, read-your-writes across workers,
no connection answered by a worker still loading its model (at start, and while a killed
worker's replacement loads), a port in use refused, and a graceful stop on SIGTERM."""

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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.service.api.conftest import REDIS_URL, redis_is_up, settings_for
from tests.service.api.live import live_server
from tests.service.api.test_reload import place
from tests.support.ports import free_port
from tests.support.processes import workers_of
from tests.support.waiting import wait_until

ROOT = Path(__file__).parents[3]
WORKERS = 2
# uvicorn's, in each worker once its lifespan (the model's load) is done, just before it
# takes connections from the listening socket
STARTED = "Application startup complete."
BEGUN = re.compile(r"Started server process \[(\d+)\]")  # uvicorn's, as a worker begins


def launch(models_dir: Path, prefix: str, log: Path, port: int) -> subprocess.Popen:
    """`python -m service` with WORKERS workers on Redis, its JSON lines into `log`."""
    if not redis_is_up():
        pytest.skip("no Redis")
    env = {**os.environ, "GMLREC_MODELS_DIR": str(models_dir), "GMLREC_PORT": str(port),
           "GMLREC_WORKERS": str(WORKERS), "GMLREC_REDIS_URL": REDIS_URL,
           "GMLREC_REDIS_PREFIX": prefix, "GMLREC_RELOAD_INTERVAL_S": "0"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.contextmanager
def workers_server(models_dir: Path, prefix: str, log: Path):
    """`python -m service` once every worker serves; stopped (SIGTERM) after, if a test has
    not stopped it itself."""
    port = free_port()
    process = launch(models_dir, prefix, log, port)
    try:
        wait_until_every_worker_serves(process, log)
        yield f"http://127.0.0.1:{port}", process, log
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
    hangs (killing the supervisor alone would leave its workers running)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def lines_of(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def wait_until_every_worker_serves(process: subprocess.Popen, log: Path,
                                   started: int = WORKERS) -> list[int]:
    """Until WORKERS workers run and `started` worker startups have completed in all (a
    replacement's included); the workers' pids."""
    def serving() -> list[int] | None:
        assert process.poll() is None, f"python -m service exited: {log.read_text()[-2000:]}"
        pids = workers_of(process.pid)
        done = sum(x["msg"] == STARTED for x in lines_of(log))
        return pids if len(pids) == WORKERS and done >= started else None

    return wait_until(serving, 60, f"{WORKERS} workers serving", every_s=0.05)


def test_answers_and_request_ids(server):
    base, _, log = server
    r = httpx.post(f"{base}/score", json={"user_id": "7", "item_ids": ["1", "2"]},
                   headers={"X-Request-ID": "uvicorn-test-1"})
    assert r.status_code == 200 and len(r.json()["scores"]) == 2
    assert r.headers["x-request-id"] == "uvicorn-test-1"
    access = logged(log, lambda x: x.get("request_id") == "uvicorn-test-1")
    assert access["route"] == "/score" and access["status"] == 200


def test_every_line_is_json_from_each_workers_first(server):
    """uvicorn's own lines of each worker, from before its app configures logging, are JSON
    lines like the rest (the log_config that `python -m service` hands uvicorn)."""
    _, process, log = server
    begun = {int(m.group(1)) for x in lines_of(log) if (m := BEGUN.fullmatch(x["msg"]))}
    assert set(workers_of(process.pid)) <= begun


def logged(log: Path, wanted: Callable[[dict], bool], within_s: float = 10) -> dict:
    """The first JSON log line `wanted` accepts, as soon as a worker has written it (a
    worker logs after it answers, so the line may come a moment after the answer)."""
    def found() -> list[dict]:
        return [x for x in lines_of(log) if wanted(x)]

    return wait_until(found, within_s, f"such a line in {log}")[0]


def test_metrics_add_up_over_the_workers(server):
    base, _, _ = server
    n = 40
    for _ in range(n):  # a new connection each time
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


@dataclass(frozen=True)
class Answer:
    at: float  # time.time() when it came
    outcome: int | str  # the status, or the name of the transport error
    body: str = ""


class Hammer:
    """Threads that GET /recommend/7 over a new connection each, one after another, until
    stopped, keeping every outcome with the time it came."""

    def __init__(self, base: str, threads: int = 4):
        self.base, self.answers = base, []
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                r = httpx.get(f"{self.base}/recommend/7", params={"n": 10}, timeout=10)
                self.answers.append(Answer(time.time(), r.status_code, r.text[:200]))
            except httpx.TransportError as err:
                self.answers.append(Answer(time.time(), type(err).__name__))
                time.sleep(0.02)  # nothing listens yet: no busy loop

    def served(self) -> list[Answer]:
        return [a for a in self.answers if isinstance(a.outcome, int)]

    def __enter__(self) -> Hammer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(30)


def assert_only_models_answer(answers: list[Answer]) -> None:
    """Every answer a 200: none a 503 "no model loaded" (or anything else) from a worker
    that took a connection before its model was there."""
    wrong = [(a.outcome, a.body) for a in answers if a.outcome != 200]
    assert not wrong, f"{len(wrong)} of {len(answers)} not 200, first {wrong[:3]}"


def test_from_the_first_connection_taken_every_answer_has_a_model(gmlfm, redis_prefix,
                                                                   tmp_path):
    """New connections from the launch on, while both workers start: each is refused (the
    supervisor's socket listens only once a worker has loaded its model and serves) or
    answered 200; never a 503 "no model loaded", which a worker that took connections while
    it loaded would give (it loads in a thread, its event loop free to answer)."""
    port, log = free_port(), tmp_path / "stdout.log"
    process = launch(gmlfm.models_dir, f"{redis_prefix}-uv-start", log, port)
    try:
        with Hammer(f"http://127.0.0.1:{port}") as hammer:
            wait_until_every_worker_serves(process, log)
            wait_until(lambda: len(hammer.served()) >= 20, 30, "20 answers")
    finally:
        stop(process)
    answers = hammer.answers
    assert_only_models_answer(hammer.served())
    first = answers.index(hammer.served()[0])
    assert {a.outcome for a in answers[:first]} == {"ConnectError"}  # refused: none listened
    assert all(isinstance(a.outcome, int) for a in answers[first:]), answers[first:][:5]
    loaded = min(timestamp(x) for x in lines_of(log) if x["msg"] == STARTED)
    assert hammer.served()[0].at > loaded  # nothing answered before a worker had loaded


def test_the_check_sees_a_worker_without_its_model(tmp_path):
    """The check is not vacuous: a worker that serves with no model (an empty models
    folder here, as a worker that took connections before its load finished) fails it."""
    (tmp_path / "models").mkdir()
    with live_server(settings_for(tmp_path / "models")) as base, Hammer(base, 1) as hammer:
        wait_until(lambda: len(hammer.served()) >= 3, 30, "3 answers")
    with pytest.raises(AssertionError, match="not 200, first .*503.*no model loaded"):
        assert_only_models_answer(hammer.served())


def test_a_killed_worker_is_replaced_and_takes_no_connection_before_its_model(server):
    """uvicorn's supervisor starts a new worker for one that died. From the death until the
    new worker has loaded its model (its process start and imports, then its lifespan: tens
    of ms for this test's bundle), the other worker answers every new connection with a
    200; the new one takes none before its model is there (no 503), then serves."""
    base, process, log = server
    before = wait_until_every_worker_serves(process, log)
    started = sum(x["msg"] == STARTED for x in lines_of(log))
    os.kill(before[0], signal.SIGKILL)
    with Hammer(base) as hammer:
        after = wait_until_every_worker_serves(process, log, started + 1)
        wait_until(lambda: len(hammer.served()) >= 40, 30, "40 answers")
    new = next(pid for pid in after if pid not in before)
    assert before[0] not in after and before[1] in after
    assert_only_models_answer(hammer.answers)
    lines = lines_of(log)
    died = next(x for x in lines if x["msg"] == f"Child process [{before[0]}] died")
    loaded = [x for x in lines if x["msg"] == STARTED][started]  # the new worker's
    window = (timestamp(died), timestamp(loaded))
    during = [a for a in hammer.answers if window[0] < a.at < window[1]]
    assert during, f"no answer came while the new worker started, {window}"
    text = httpx.get(f"{base}/metrics").text
    assert str(new) in re.findall(r'gmlrec_model_info\{name="rec",pid="(\d+)"', text)


def timestamp(line: dict) -> float:
    return datetime.fromisoformat(line["ts"].replace("Z", "+00:00")).timestamp()


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
    """A non-zero exit (uvicorn's: 1 up to 0.36, 3 since) and one JSON error line."""
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    errors = [json.loads(line) for line in done.stdout.splitlines() if '"error"' in line]
    assert len(errors) == 1 and "address already in use" in errors[0]["msg"].lower()


def test_a_port_in_use_is_one_log_line_and_a_failed_exit(gmlfm):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        assert_refused(start_on_taken_port(taken.getsockname()[1], gmlfm.models_dir))


def test_a_second_service_cannot_share_the_port_of_one_with_workers(server, gmlfm):
    """The supervisor's socket has no SO_REUSEPORT: a second service is refused, rather than
    silently splitting the traffic with the first."""
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
        wait_until(lambda: len(answered) >= 10, 30, "10 answers")  # stop it mid-load
        workers = workers_of(process.pid)
        process.send_signal(signal.SIGTERM)
        outcomes = {rid: f.result() for rid, f in futures.items()}
    assert process.wait(30) == 0
    assert len(workers) == WORKERS and not any(Path(f"/proc/{w}").exists() for w in workers)
    lines = lines_of(log)
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
        base, process, log = running
        pids = wait_until_every_worker_serves(process, log)
        place(gmlfm_next.bundle, models_copy)
        answer = httpx.post(f"{base}/admin/reload").json()
        assert answer["model_version"] == gmlfm_next.version and answer["others_told"]

        def all_reloaded() -> bool:
            served = re.findall(r'gmlrec_model_info\{name="rec",pid="(\d+)",version="([^"]+)"'
                                r'\} 1\.0', httpx.get(f"{base}/metrics").text)
            return {int(pid) for pid, v in served if v == gmlfm_next.version} >= set(pids)

        wait_until(all_reloaded, 15, "every worker serving the new version", every_s=0.2)
        versions = {httpx.get(f"{base}/model").json()["model_version"] for _ in range(20)}
        assert versions == {gmlfm_next.version}  # new connections: both workers answer
