"""Schemathesis against /openapi.json: generated requests, valid and not, find no 5xx, and
every answer is one the schema documents (status, content type, headers, body).

Run through schemathesis' own command line (`st run`), as an API user would run it, not
through its pytest plugin: the plugin reaches into pytest's internals and broke on pytest 9.2
(`'Function' object has no attribute '_nodeid'`), while the command line depends on no pytest
at all.

Every check runs, "schema-valid data is accepted" among them: the schema a server publishes
while a model serves names that model's feature fields (service/model_schema.py), so a
well-formed body naming a field the model lacks is outside the schema, not a surprise 422.

Every phase runs, stateful included (sequences of calls over the links schemathesis infers
between operations, e.g. a user id from GET /users into GET /users/{user_id}). Bounded and
deterministic: a fixed number of examples per operation and a fixed seed, one worker.
Runs against a real server (uvicorn in a thread) with either store, open (no keys:
the schema then declares no security) and with API keys, the run sending an admin key (the
schema declares the bearer scheme, and the `ignored_auth` check, among all, finds every
route that needs a key refusing a request without one or with a wrong one).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.service.api.conftest import REDIS_URL, redis_is_up, settings_for
from tests.service.api.live import live_server

EXAMPLES = 30  # per operation
PHASES = "examples,coverage,fuzzing,stateful"
SEED = 20261203


def schemathesis_cli() -> list[str]:
    """The `st` executable installed beside this interpreter (the venv's own)."""
    beside = Path(sys.executable).with_name("st")
    found = str(beside) if beside.exists() else shutil.which("st")
    if found is None:
        pytest.fail("schemathesis' `st` command is not installed (it is in the dev extra)")
    return [found]


ADMIN_KEY = "admin-key-for-schemathesis-0123456789"


@pytest.mark.parametrize(("store", "keys"), [("memory", False), ("redis", False),
                                             ("memory", True)])
def test_generated_requests_get_documented_answers_and_no_5xx(store, keys, gmlfm, redis_prefix,
                                                             tmp_path):
    options: dict = {"redis_prefix": f"{redis_prefix}-st"}
    auth: list[str] = []
    if keys:
        options["api_keys"] = SecretStr(f"admin:{ADMIN_KEY}")
        auth = ["--header", f"Authorization: Bearer {ADMIN_KEY}"]
    if store == "redis":
        if not redis_is_up():
            pytest.skip(f"no Redis at {REDIS_URL} (.ci/run starts one)")
        options |= {"redis_url": REDIS_URL, "redis_timeout_s": 2.0}  # see conftest.store
    with live_server(settings_for(gmlfm.models_dir, **options)) as base:
        run = subprocess.run(
            [*schemathesis_cli(), "run", f"{base}/openapi.json", "--checks", "all",
             "--phases", PHASES,
             "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
             "--no-color", *auth],
            # st keeps a cache of each run (.schemathesis/) in its working directory: this
            # test's own, so a checkout stays as clean as it was
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary  # st exits 1 on any failed check
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert cases and int(cases[1]) == int(cases[2]) > 0, summary
    scenarios = re.search(r"Scenarios:\s+(\d+)", run.stdout)  # the stateful phase ran, over
    assert scenarios and int(scenarios[1]) > 0, summary      # links it inferred
