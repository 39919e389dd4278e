"""Who may call what (service/access.py): every route declares one policy, and each is held
to it with no key, an unknown key, a key one scope too weak and the right key; keys never
reach the logs; without keys only loopback is served."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from pydantic import SecretStr

from service.access import OPEN, needs
from service.app import create_app
from service.keys import KeyRing, KeysError, Scope
from service.route_audit import undeclared
from tests.service.api.conftest import serving, settings_for
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).parents[3]
APP = "service.app:app"
KEYS = {Scope.READ: "read-key-0123456789abcdef", Scope.CATALOG: "catalog-key-0123456789abcdef",
        Scope.WRITE: "write-key-0123456789abcdef", Scope.ADMIN: "admin-key-0123456789abcdef"}
API_KEYS = ",".join(f"{scope.value}:{key}" for scope, key in KEYS.items())

ANSWERED = (200, 204)  # DELETE /items/{item_id} answers 204
# a route whose valid request names something the server must have issued first (an answer's
# recommendation_id): with a fixed one, a caller let through meets this status instead
LET_THROUGH = {("POST", "/users/{user_id}/impressions"): 404}
# docs/contract.md's Access, route by route: the scope each needs (None: anyone) and a request
# that the right key gets answered
POLICY = {
    ("POST", "/score"): (Scope.READ, {"json": {"user_id": "0", "item_ids": ["1"]}}),
    ("GET", "/recommend/{user_id}"): (Scope.READ, {"url": "/recommend/0"}),
    ("POST", "/recommend"): (Scope.READ, {"json": {"user": {"segment": "1"}}}),
    ("GET", "/items/{item_id}"): (Scope.READ, {"url": "/items/1"}),
    ("GET", "/items/{item_id}/similar"): (Scope.READ, {"url": "/items/1/similar"}),
    ("POST", "/items/{item_id}/similar"): (Scope.READ, {"url": "/items/1/similar",
                                                        "json": {"n": 3}}),
    ("GET", "/items"): (Scope.READ, {}),
    ("PUT", "/items/{item_id}"): (Scope.CATALOG, {"url": "/items/new",
                                                  "json": {"features": {"category": "1"}}}),
    ("DELETE", "/items/{item_id}"): (Scope.CATALOG, {"url": "/items/2"}),
    ("GET", "/model"): (Scope.READ, {}),
    ("GET", "/users"): (Scope.ADMIN, {}),
    ("GET", "/users/{user_id}"): (Scope.WRITE, {"url": "/users/0"}),
    ("PUT", "/users/{user_id}"): (Scope.WRITE, {"url": "/users/new",
                                                "json": {"features": {"segment": "1"}}}),
    ("POST", "/users/{user_id}/interactions"): (Scope.WRITE, {"url": "/users/0/interactions",
                                                              "json": {"item_ids": ["1"]}}),
    ("POST", "/users/{user_id}/impressions"): (Scope.WRITE, {
        "url": "/users/0/impressions",
        "json": {"recommendation_id": "0" * 32, "item_ids": ["1"]}}),
    ("GET", "/metrics"): (Scope.ADMIN, {}),
    ("GET", "/admin/experiment"): (Scope.ADMIN, {}),
    ("POST", "/admin/reload"): (Scope.ADMIN, {}),
    ("GET", "/health"): (None, {}),
    ("GET", "/ready"): (None, {}),
    ("GET", "/"): (None, {}),
}


def served_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every API route the app serves, from its OpenAPI schema and the
    explorer page (not in the schema)."""
    schema = app.openapi()["paths"]
    return {(m.upper(), p) for p, ops in schema.items() for m in ops} | {("GET", "/")}


def test_every_route_declares_one_policy_and_the_table_covers_them_all(gmlfm):
    app = create_app(settings_for(gmlfm.models_dir))  # create_app refuses undeclared routes
    assert served_routes(app) == set(POLICY)
    stray = APIRouter()

    @stray.get("/forgotten")
    async def forgotten() -> dict:
        return {}

    both = APIRouter(dependencies=[OPEN])

    @both.get("/twice", dependencies=[needs(Scope.ADMIN)])
    async def twice() -> dict:
        return {}

    app.include_router(stray)
    app.include_router(both)
    assert undeclared(app, [*app.state.routers, stray, both]) == ["GET /forgotten",
                                                                  "GET /twice"]


def request_for(method: str, path: str, key: str | None) -> dict:
    _, options = POLICY[(method, path)]
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return {"method": method, "url": options.get("url", path), "headers": headers,
            **({"json": options["json"]} if "json" in options else {})}


@pytest.mark.parametrize("route", sorted(POLICY), ids=" ".join)
async def test_each_route_holds_to_its_scope(gmlfm, route):
    scope, _ = POLICY[route]
    settings = settings_for(gmlfm.models_dir, api_keys=SecretStr(API_KEYS))
    async with serving(settings) as client:
        if scope is None:
            assert (await client.request(**request_for(*route, None))).status_code == 200
            return
        missing = await client.request(**request_for(*route, None))
        assert missing.status_code == 401, missing.text
        assert missing.headers["www-authenticate"].startswith("Bearer")
        unknown = await client.request(**request_for(*route, "not-a-key-0123456789abcdef"))
        assert unknown.status_code == 401 and "unknown" in unknown.json()["detail"]
        for held in Scope:  # each scope the one that covers it, or a 403 naming both
            answered = await client.request(**request_for(*route, KEYS[held]))
            if held.covers(scope):
                assert answered.status_code in (*ANSWERED, LET_THROUGH.get(route)), \
                    (held, answered.text)
            else:
                assert answered.status_code == 403, (held, answered.text)
                assert f"scope is {held.value}; this route needs {scope.value}" in \
                    answered.json()["detail"]


def test_scopes_cover_as_documented():
    """read < write < admin, and catalog beside write: read and its own, nothing more."""
    covered = {held: {s for s in Scope if held.covers(s)} for held in Scope}
    assert covered == {Scope.READ: {Scope.READ}, Scope.CATALOG: {Scope.READ, Scope.CATALOG},
                       Scope.WRITE: {Scope.READ, Scope.WRITE}, Scope.ADMIN: set(Scope)}


async def test_without_keys_every_route_is_open_as_in_the_quick_start(gmlfm):
    async with serving(settings_for(gmlfm.models_dir)) as client:
        for route in sorted(POLICY):
            answered = await client.request(**request_for(*route, None))
            assert answered.status_code in (*ANSWERED, LET_THROUGH.get(route)), route


async def test_keys_never_reach_the_logs(gmlfm, caplog):
    settings = settings_for(gmlfm.models_dir, api_keys=SecretStr(API_KEYS), log_level="debug")
    caplog.set_level(logging.DEBUG)
    async with serving(settings) as client:
        for key in [*KEYS.values(), "not-a-key-0123456789abcdef"]:
            for route in sorted(POLICY):
                await client.request(**request_for(*route, key))
    assert caplog.records  # the requests were logged
    logged = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    for key in [*KEYS.values(), "not-a-key-0123456789abcdef"]:
        assert key not in logged


def test_keys_are_read_and_malformed_ones_refused_without_echoing_them(tmp_path):
    file = tmp_path / "keys"
    file.write_text("# ops team\nadmin:from-the-file-0123456789\n\n")
    ring = settings_for(tmp_path, api_keys=SecretStr("read:inline-0123456789abc"),
                        api_keys_file=file).keys
    assert ring.scope_of("from-the-file-0123456789") == Scope.ADMIN
    assert ring.scope_of("inline-0123456789abc") == Scope.READ
    assert ring.scope_of("inline-0123456789ab") is None
    for bad in ("root:secret-0123456789abcdef", "secret-0123456789abcdef", "read:short"):
        with pytest.raises(KeysError) as err:
            KeyRing.parse(bad, "GMLREC_API_KEYS")
        assert "secret" not in str(err.value) and "short" not in str(err.value)


def run_server(env: dict[str, str], seconds: float, uvicorn: list[str] | None = None,
               then: Callable[[int], None] | None = None) -> tuple[int | None, str, bool]:
    """`python -m service` with these settings, or with `uvicorn` options `uvicorn
    service.app:app <options>`: (exit status or None if still running after `seconds`,
    stderr so far, whether /ready answered). `then(port)` runs once /ready has answered."""
    port = free_port()
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("GMLREC_")},
            "GMLREC_PORT": str(port), "GMLREC_RELOAD_INTERVAL_S": "0", **env}
    command = [sys.executable, "-m", "service"] if uvicorn is None else \
        [sys.executable, "-m", "uvicorn", APP, "--port", str(port), *uvicorn]
    process = subprocess.Popen(command, cwd=ROOT, env=full, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    answered, deadline = False, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and process.poll() is None and not answered:
            try:
                answered = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code \
                    in (200, 503)
            except httpx.HTTPError:
                time.sleep(0.1)
        if answered and then is not None:
            then(port)
    finally:
        status = process.poll()
        if status is None:
            process.terminate()
        _, stderr = process.communicate(timeout=30)
    return status, stderr, answered


def test_an_open_address_without_keys_is_refused_and_loopback_is_not(gmlfm):
    models = {"GMLREC_MODELS_DIR": str(gmlfm.models_dir)}
    status, stderr, _ = run_server({**models, "GMLREC_HOST": "0.0.0.0"}, 30)
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert "GMLREC_AUTH=none" in stderr and "keys new" in stderr
    for ok in ({"GMLREC_HOST": "127.0.0.1"}, {"GMLREC_HOST": "0.0.0.0", "GMLREC_AUTH": "none"},
               {"GMLREC_HOST": "0.0.0.0", "GMLREC_API_KEYS": f"admin:{KEYS[Scope.ADMIN]}"}):
        status, stderr, answered = run_server({**models, **ok}, 60)
        assert status is None and answered, (ok, stderr)
    status, stderr, _ = run_server({**models, "GMLREC_AUTH": "none",
                                    "GMLREC_API_KEYS": f"admin:{KEYS[Scope.ADMIN]}"}, 30)
    assert status == 2 and "drop one or the other" in stderr
    assert KEYS[Scope.ADMIN] not in stderr


def test_uvicorn_refuses_the_settings_python_m_service_refuses(gmlfm, tmp_path):
    """`uvicorn service.app:app` reads the settings as it imports the app: the same one line
    naming the variable, the same exit status, nothing served."""
    models = {"GMLREC_MODELS_DIR": str(gmlfm.models_dir)}
    for env, message in [({"GMLREC_HOST": "0.0.0.0"}, "GMLREC_HOST=0.0.0.0 without API keys"),
                         ({"GMLREC_API_KEYS_FILE": str(tmp_path / "none")},
                          "GMLREC_API_KEYS_FILE: cannot read"),
                         ({"GMLREC_WORKERS": "2"}, "GMLREC_REDIS_URL")]:
        status, stderr, answered = run_server({**models, **env}, 30, uvicorn=[])
        assert status == 2 and not answered, (env, stderr)
        assert stderr.startswith("service.app: ") and message in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1, stderr


async def test_a_keyless_app_refuses_requests_that_reached_another_address(gmlfm):
    """The loopback rule per request, which `uvicorn service.app:app --host 0.0.0.0` (an
    address the settings never see) cannot skip. In process: httpx's ASGITransport makes the
    URL's host the server address, as uvicorn makes the socket's, and sends nothing (a test
    here sends traffic to loopback only, so a real server is not asked on another address):
    any route is a 403 from 10.0.0.1, and is answered
    from loopback, with keys, or with GMLREC_AUTH=none."""
    cases = [({}, "http://10.0.0.1", 403), ({}, "http://127.0.0.1", 200),
             ({}, "http://localhost", 200), ({}, "http://[::1]", 200),
             ({"auth": "none"}, "http://10.0.0.1", 200),
             ({"api_keys": SecretStr(API_KEYS)}, "http://10.0.0.1", 200)]
    for options, base, expected in cases:
        async with serving(settings_for(gmlfm.models_dir, **options)) as client:
            remote = httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app),
                                       base_url=base)
            async with remote:
                for route in sorted(POLICY):
                    answer = await remote.request(**request_for(*route, KEYS[Scope.ADMIN]
                                                                if "api_keys" in options
                                                                else None))
                    assert answer.status_code == expected or expected == 200 and \
                        answer.status_code in (*ANSWERED, LET_THROUGH.get(route)), \
                        (options, base, route, answer.text)
            schema = (await client.get("/openapi.json")).json()["paths"]
            refusing = {path for path, ops in schema.items() for op in ops.values()
                        if "403" in op["responses"]}
            if expected == 403:  # the schema says so of every route
                assert refusing == set(schema)
            elif "auth" in options:
                assert not refusing


def test_keys_new_prints_a_fresh_key_line():
    lines = [subprocess.run([sys.executable, "-m", "service", "keys", "new", "--scope",
                             scope.value], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip() for scope in (Scope.WRITE, Scope.CATALOG)]
    assert lines[0] != lines[1]
    for line, made in zip(lines, (Scope.WRITE, Scope.CATALOG)):
        scope, key = line.split(":")
        assert scope == made.value and len(key) >= 43
        assert KeyRing.parse(line, "test").scope_of(key) == made


def test_the_schema_declares_the_bearer_scheme_only_where_keys_are_checked(gmlfm):
    keyed = create_app(settings_for(gmlfm.models_dir, api_keys=SecretStr(API_KEYS))).openapi()
    assert keyed["components"]["securitySchemes"]["APIKey"]["scheme"] == "bearer"
    for method, path in POLICY:
        if path == "/":
            continue
        operation = keyed["paths"][path][method.lower()]
        assert ("security" in operation) == (POLICY[(method, path)][0] is not None)
        assert ("401" in operation["responses"]) == ("security" in operation)
    open_schema = create_app(settings_for(gmlfm.models_dir)).openapi()
    assert "securitySchemes" not in open_schema.get("components", {})
    assert not any("security" in op or "401" in op["responses"]
                   for ops in open_schema["paths"].values() for op in ops.values())
