"""`python -m training retrain` on a small synthetic timeline: the first 70% fit the served
model, the rest are the recorded events. A planted worse candidate is refused and nothing is
published; a planted better one is published and a running service serves it within
seconds with no 5xx during the swap; no new events: nothing fitted, nothing published."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.event_folders import write_event_folder
from tests.support.ports import free_port
from tests.support.processes import wait_until_ready
from tests.support.waiting import wait_until
from training.config import resolve
from training.data.synthetic import load_synthetic
from training.export import export_run
from training.pipeline import fit_and_save
from training.retrain.command import RetrainOptions, retrain

ROOT = Path(__file__).resolve().parents[2]
DATA = "synthetic:users=120,items=300,interactions=6000,categories=10,segments=4,seed=3"
GOOD = {"epochs": 6, "lr": 0.01}
POOR = {"epochs": 1, "lr": 0.00001}  # barely moved from its initialisation


@pytest.fixture(scope="module")
def timeline(tmp_path_factory):
    """The cut (70% of the interactions by time) and the events after it."""
    data = load_synthetic(DATA.partition(":")[2])
    cut = int(np.quantile(data.times, 0.7))
    later = data.times >= cut
    folder = write_event_folder(
        tmp_path_factory.mktemp("events") / "export",
        [(data.user_ids[u], data.item_ids[i], float(t)) for u, i, t in
         zip(data.users[later], data.items[later], data.times[later])])
    return cut, folder


def served(tmp: Path, cut: int, options: dict) -> Path:
    """A fit on the base data before the cut, exported into tmp/models; the models folder."""
    config = resolve({}, {"data": DATA, "data_until": cut, "model": "fm", "dim": 8,
                          "history": 5, "out": str(tmp / "served-run"), **options})
    fit_and_save(config, progress=False)
    export_run(tmp / "served-run", tmp / "models", "rec")
    return tmp / "models"


def versions(models: Path) -> list[str]:
    return sorted(p.name for p in (models / "rec").iterdir() if not p.name.startswith("."))


def options(models: Path, source: Path, tmp: Path, **overrides) -> RetrainOptions:
    return RetrainOptions(str(source), models, None, tmp / "work", overrides, min_cases=10)


def test_a_worse_candidate_is_refused_and_nothing_is_published(tmp_path, timeline):
    cut, events = timeline
    models = served(tmp_path, cut, GOOD)
    before = versions(models)
    record = retrain(options(models, events, tmp_path, **POOR))
    assert record["verdict"] == "refused", record
    assert record["candidate"]["hr@10"] < record["served"]["hr@10"]
    assert record["differences"]["hr@10"]["upper"] < 0 or \
        record["differences"]["ndcg@10"]["upper"] < 0
    assert versions(models) == before and record["published"] is None
    metrics = json.loads((tmp_path / "work" / record["cycle"] / "run/metrics.json").read_text())
    assert metrics["retrain"]["verdict"] == "refused"
    assert metrics["retrain"]["served"]["cases"] == record["candidate"]["cases"] >= 10
    # the same events against the same served version: not judged again
    again = retrain(options(models, events, tmp_path, **POOR))
    assert again["verdict"] == "nothing new" and versions(models) == before


def test_a_better_candidate_is_served_within_seconds_with_no_5xx(tmp_path, timeline):
    cut, events = timeline
    models = served(tmp_path, cut, POOR)
    old = versions(models)
    port = free_port()
    env = {**os.environ, "GMLREC_MODELS_DIR": str(models), "GMLREC_PORT": str(port),
           "GMLREC_RELOAD_INTERVAL_S": "0.5", "GMLREC_EVENTS_DIR": str(tmp_path / "log")}
    for name in ("GMLREC_REDIS_URL", "GMLREC_API_KEYS", "GMLREC_API_KEYS_FILE"):
        env.pop(name, None)
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "api.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:  # one request at a time, until told: bounded
        with httpx.Client(base_url=base, timeout=10) as client:
            while not stop.is_set():
                statuses.append(client.get("/recommend/5", params={"n": 5}).status_code)

    try:
        wait_until_ready(base, process)
        loader = threading.Thread(target=load)
        loader.start()
        record = retrain(options(models, events, tmp_path, **GOOD))
        assert record["verdict"] == "published", record
        new = Path(record["published"]).name
        assert versions(models) == sorted([*old, new])
        published_at = time.monotonic()
        wait_until(lambda: httpx.get(f"{base}/ready").json()["model_version"] == new, 30,
                   "the published version served", every_s=0.1)
        took = time.monotonic() - published_at
        time.sleep(0.5)
        stop.set()
        loader.join(30)
        assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))
        assert took < 30
        answer = httpx.get(f"{base}/recommend/5").json()
        assert answer["model_version"] == new
    finally:
        stop.set()
        process.terminate()
        process.wait(30)
    # nothing newer than what the published model was fitted on: nothing fitted or published
    again = retrain(options(models, events, tmp_path))
    assert again["verdict"] == "nothing new" and again["new_events"] == 0
    assert versions(models) == sorted([*old, new])


def test_a_failed_fit_leaves_the_served_model_untouched(tmp_path, timeline):
    cut, events = timeline
    models = served(tmp_path, cut, POOR)
    before = versions(models)
    record = retrain(options(models, events, tmp_path, data="movielens-1m:" +
                             str(tmp_path / "no-such-folder")))
    assert record["verdict"] == "failed" and "fit failed" in record["reason"]
    assert versions(models) == before and record["published"] is None
    assert not [p for p in (models / "rec").iterdir() if p.name.startswith(".")]
