"""Every error status a route documents in /openapi.json is one it answers, in the body shape
published for it; and it answers no error it does not document.

Against real apps (lifespan run, the trained bundle loaded), open and with API keys, each
documented error of each route is provoked: unknown users and items (404), bodies over the
limit, with and without Content-Length (413), bad input of every kind (422), no key or a
weak one (401, 403), no model loaded and a store that does not answer (503), a reload
that finds no bundle to serve and an item beyond the catalog's bound (409), a caller on
another machine while the server has no keys (403). Each answer's status must be documented
for its route, its body must validate against the schema published for that status
(references resolved in the whole document), and the headers documented as always sent must
be there. Then every documented error must have been met: a route documents no status it
cannot answer. Valid requests to every route of the app without a model and of the app
without a store must get documented statuses too, so a route leaving out a status it answers
there fails.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bundle import format as fmt
from service.app import create_app
from service.keys import Scope
from tests.service.api.conftest import serving, settings_for
from tests.service.api.schema_check import body_problems
from tests.service.api.test_access import API_KEYS, KEYS, POLICY
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio
LIMIT = 1024  # GMLREC_MAX_BODY_BYTES of these apps (the lowest it takes): cheap 413s
# GMLREC_CATALOG_MAX_ADDED of these apps: every PUT /items/{item_id} the store takes is a 409
NO_ROOM = 0
ITEM = {"features": {"category": "1"}, "display": {"title": "t"}}
JSON = {"content-type": "application/json"}
BIG = b'{"pad": "' + b"x" * LIMIT + b'"}'
TOO_LARGE = [{"content": BIG}, {"stream": BIG}]  # with Content-Length, and read in chunks

# what provokes each error of each route in an app serving the model, a request per way
# the route can fail with that status
PROVOKED: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {
    ("POST", "/score"): {
        404: [{"json": {"user_id": "nobody", "item_ids": ["1"]}},
              {"json": {"user_id": "0", "item_ids": ["1", "no-such-item"]}}],
        413: TOO_LARGE,
        422: [{"json": {"user_id": "0"}},
              {"json": {"user_id": "0", "item_ids": ["1"], "details": 0}},
              {"json": {"user": {"no_such_field": "1"}, "item_ids": ["1"]}},
              {"content": b"\xff not UTF-8"}]},
    ("GET", "/recommend/{user_id}"): {
        404: [{"url": "/recommend/nobody"}],
        422: [{"url": "/recommend/0", "params": {"n": 0}}, {"url": "/recommend/%01"}]},
    ("POST", "/recommend"): {
        404: [{"json": {"user_id": "nobody"}}],
        413: TOO_LARGE,
        422: [{"json": {"user_id": "0", "n": 0}}, {"json": {}},
              {"json": {"user_id": "0", "filter": {"include": {"segment": ["1"]}}}}]},
    ("GET", "/users"): {422: [{"params": {"limit": 0}}]},
    ("GET", "/users/{user_id}"): {
        404: [{"url": "/users/nobody"}],
        422: [{"url": "/users/%7F"}]},
    ("PUT", "/users/{user_id}"): {
        413: [{"url": "/users/u1", **spec} for spec in TOO_LARGE],
        422: [{"url": "/users/u1", "json": {"features": {"no_such_field": "1"}}},
              {"url": "/users/u1", "json": {"features": {}, "extra": 1}}]},
    ("POST", "/users/{user_id}/interactions"): {
        404: [{"url": "/users/nobody/interactions", "json": {"item_ids": ["1"]}},
              {"url": "/users/0/interactions", "json": {"item_ids": ["no-such-item"]}}],
        413: [{"url": "/users/0/interactions", **spec} for spec in TOO_LARGE],
        422: [{"url": "/users/0/interactions", "json": {"item_ids": []}}]},
    ("POST", "/users/{user_id}/impressions"): {
        404: [{"url": "/users/0/impressions",
               "json": {"recommendation_id": "0" * 32, "item_ids": ["1"]}}],
        413: [{"url": "/users/0/impressions", **spec} for spec in TOO_LARGE],
        422: [{"url": "/users/0/impressions",
               "json": {"recommendation_id": "x", "item_ids": ["1"]}},
              {"url": "/users/0/impressions", "json": {"recommendation_id": "0" * 32}}]},
    ("GET", "/items/{item_id}"): {
        404: [{"url": "/items/no-such-item"}],
        422: [{"url": "/items/" + "x" * 257}]},
    ("GET", "/items"): {422: [{"params": {"limit": 0}}, {"params": {"cursor": "x1"}}]},
    ("PUT", "/items/{item_id}"): {
        409: [{"url": "/items/i1", "json": ITEM}],
        413: [{"url": "/items/i1", **spec} for spec in TOO_LARGE],
        422: [{"url": "/items/i1", "json": {"features": {"no_such_field": "1"}}},
              {"url": "/items/i1", "json": {"features": {}, "display": {"source": "x"}}},
              {"url": "/items/%01", "json": ITEM}]},
    ("DELETE", "/items/{item_id}"): {
        404: [{"url": "/items/no-such-item"}],
        422: [{"url": "/items/" + "x" * 257}]},
    ("GET", "/items/{item_id}/similar"): {
        404: [{"url": "/items/no-such-item/similar"}],
        422: [{"url": "/items/1/similar", "params": {"n": 0}}]},
    ("POST", "/items/{item_id}/similar"): {
        404: [{"url": "/items/no-such-item/similar", "json": {}}],
        413: [{"url": "/items/1/similar", **spec} for spec in TOO_LARGE],
        422: [{"url": "/items/1/similar", "json": {"n": 0}},
              {"url": "/items/1/similar", "json": {"filter": {"include": {"segment": ["1"]}}}}]},
    ("GET", "/model"): {422: [{"params": {"values": -1}}]},
}
# what a bundle exported before added items refuses: item-to-item similarity (409)
NO_SIMILARITY: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/items/{item_id}/similar"): {"url": "/items/1/similar"},
    ("POST", "/items/{item_id}/similar"): {"url": "/items/1/similar", "json": {}},
    ("GET", "/recommend/{user_id}"): {"url": "/recommend/0", "params": {"diversity": 0.5}},
    ("POST", "/recommend"): {"json": {"user_id": "0", "diversity": 0.5}},
}
# valid requests for users only the store could hold, and catalog writes: 503s while it does
# not answer
STORE_ONLY: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/score"): {"json": {"user_id": "nobody", "item_ids": ["1"]}},
    ("GET", "/recommend/{user_id}"): {"url": "/recommend/nobody"},
    ("POST", "/recommend"): {"json": {"user_id": "nobody"}},
    ("GET", "/users/{user_id}"): {"url": "/users/nobody"},
    ("PUT", "/items/{item_id}"): {"url": "/items/i1", "json": ITEM},
    ("DELETE", "/items/{item_id}"): {"url": "/items/1"},
    ("POST", "/users/{user_id}/impressions"): {
        "url": "/users/0/impressions", "json": {"recommendation_id": "0" * 32, "item_ids": ["1"]}},
    ("GET", "/admin/experiment"): {},
}


class Contract:
    """Checks answers against the schema of the app that gave them, and keeps every
    (method, path, status) of the errors met."""

    def __init__(self) -> None:
        self.met: set[tuple[str, str, str]] = set()

    def check(self, schema: dict, method: str, path: str, answer: httpx.Response) -> None:
        status = str(answer.status_code)
        documented = schema["paths"][path][method.lower()]["responses"]
        assert status in documented, \
            f"{method} {path} answered {status}, which it does not document: {answer.text}"
        if answer.status_code < 400:
            return
        self.met.add((method, path, status))
        published = documented[status]
        problems = body_problems(schema, published["content"]["application/json"]["schema"],
                                 answer.json())
        assert not problems, f"{method} {path} {status}: {answer.text}\n" + "\n".join(problems)
        for name, header in published.get("headers", {}).items():
            assert not header.get("required") or name in answer.headers, (method, path, name)


def documented_errors(schema: dict) -> set[tuple[str, str, str]]:
    return {(method.upper(), path, status) for path, operations in schema["paths"].items()
            for method, operation in operations.items()
            for status in operation["responses"] if int(status) >= 400}


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256):
        yield data[start:start + 256]


async def send(client: httpx.AsyncClient, method: str, path: str, spec: dict[str, Any],
               key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body: dict[str, Any] = {}
    if "json" in spec:
        body["json"] = spec["json"]
    elif "content" in spec or "stream" in spec:
        headers |= JSON
        body["content"] = spec["content"] if "content" in spec else chunks(spec["stream"])
    return await client.request(method, spec.get("url", path), params=spec.get("params"),
                                headers=headers, **body)


async def published(client: httpx.AsyncClient) -> dict:
    return (await client.get("/openapi.json")).json()


def valid(method: str, path: str) -> dict[str, Any]:
    """The request of test_access.POLICY that a serving app answers 200."""
    return POLICY[(method, path)][1]


@pytest.mark.parametrize("keys", [False, True], ids=["open", "keys"])
async def test_every_documented_error_is_answered_in_its_published_shape(gmlfm, tmp_path,
                                                                         keys):
    # unknown users are 404s where GMLREC_UNKNOWN_USERS=reject (the default answers them)
    extra: dict[str, Any] = {"max_body_bytes": LIMIT, "catalog_max_added": NO_ROOM,
                             "unknown_users": "reject"}
    if keys:
        extra["api_keys"] = SecretStr(API_KEYS)
    admin = KEYS[Scope.ADMIN] if keys else None
    contract, schemas = Contract(), []
    routes = [route for route in POLICY if route[1] != "/"]  # the explorer page: no schema

    async with serving(settings_for(gmlfm.models_dir, **extra)) as client:
        schemas.append(schema := await published(client))
        for (method, path), statuses in PROVOKED.items():
            for status, specs in statuses.items():
                for spec in specs:
                    answer = await send(client, method, path, spec, admin)
                    assert answer.status_code == status, (method, path, spec, answer.text)
                    contract.check(schema, method, path, answer)
        if not keys:  # the loopback rule: a request that reached another address
            remote = httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app),
                                       base_url="http://10.0.0.1")
            async with remote:
                for method, path in routes:
                    answer = await send(remote, method, path, valid(method, path), None)
                    assert answer.status_code == 403, (method, path, answer.text)
                    contract.check(schema, method, path, answer)
        for method, path in routes if keys else ():
            scope = POLICY[(method, path)][0]
            weaker = [KEYS[held] for held in Scope if scope is not None
                      and not held.covers(scope)]
            for key in [None, "not-a-key-0123456789abcdef", *weaker]:
                answer = await send(client, method, path, valid(method, path), key)
                contract.check(schema, method, path, answer)

    empty = tmp_path / "empty"  # no bundle: 503 wherever the model is needed, and a 409
    empty.mkdir()              # for the reload that finds none
    async with serving(settings_for(empty, **extra)) as client:
        schemas.append(schema := await published(client))
        for method, path in routes:
            answer = await send(client, method, path, valid(method, path), admin)
            contract.check(schema, method, path, answer)

    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"  # a store that does not answer
    async with serving(settings_for(gmlfm.models_dir, redis_url=nothing_listens,
                                    redis_timeout_s=0.2, redis_cooldown_s=0.2,
                                    **extra)) as client:
        schemas.append(schema := await published(client))
        for method, path in routes:
            answer = await send(client, method, path, valid(method, path), admin)
            contract.check(schema, method, path, answer)
        for (method, path), spec in STORE_ONLY.items():
            answer = await send(client, method, path, spec, admin)
            assert answer.status_code == 503, (method, path, answer.text)
            contract.check(schema, method, path, answer)

    old = tmp_path / "old" / gmlfm.bundle.parent.name / gmlfm.bundle.name
    shutil.copytree(gmlfm.bundle, old)  # as exported before added items: no id field
    manifest = json.loads((old / fmt.MANIFEST).read_text())
    del manifest[fmt.ITEM_ID_FIELD]
    (old / fmt.MANIFEST).write_text(json.dumps(manifest))
    async with serving(settings_for(old.parents[1], **extra)) as client:
        schemas.append(schema := await published(client))
        for (method, path), spec in NO_SIMILARITY.items():
            answer = await send(client, method, path, spec, admin)
            assert answer.status_code == 409, (method, path, answer.text)
            contract.check(schema, method, path, answer)

    documented = set.union(*map(documented_errors, schemas))
    never = documented - contract.met
    assert not never, f"documented, never answered: {sorted(never)}"
    assert all(documented_errors(s) == documented for s in schemas)


@pytest.mark.parametrize("keys", [False, True], ids=["open", "keys"])
def test_every_route_documents_its_errors_with_a_body_and_an_example(gmlfm, keys):
    """Walks the schema: an operation with parameters or a body documents 422, one with a
    body 413, one behind a key 401; every error has a JSON body schema and an example that
    the schema admits (but /ready's 503, which is its 200 answer saying not_ready)."""
    extra = {"api_keys": SecretStr(API_KEYS)} if keys else {}
    schema = create_app(settings_for(gmlfm.models_dir, **extra)).openapi()
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # FastAPI's 422: not
    for path, operations in schema["paths"].items():                  # the body sent
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in errors, (method, path)
            assert ("413" in errors) == ("requestBody" in operation), (method, path)
            assert ("401" in errors) == ("security" in operation), (method, path)
            for status, response in errors.items():
                media = response["content"]["application/json"]
                if (method, path, status) == ("get", "/ready", "503"):
                    continue  # ReadyAnswer, with model_version null: FastAPI would publish
                    # an example without it (it drops every null), which no answer matches
                assert body_problems(schema, media["schema"], media["example"]) == [], \
                    (method, path, status)
