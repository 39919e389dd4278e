"""What a client needs to find its way without reading the bundle: GET /model's fields,
GET /users, GET /users/{id}, the Server-Timing header, and the explorer page's files."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.anyio


async def test_model_lists_every_field_with_its_values(client):
    bundle = client.app.state.model_host.current.bundle
    body = (await client.get("/model", params={"values": 3})).json()
    assert body["id_field"] == "user_id"
    assert [(f["name"], f["side"], f["kind"]) for f in body["fields"]] == [
        ("user_id", "user", "categorical"), ("segment", "user", "categorical"),
        ("item_id", "item", "categorical"), ("category", "item", "categorical")]
    ids = {"user_id", "item_id"}  # fields of ids: their values are not listed
    for field, info in zip(body["fields"], bundle.fields):
        assert field["size"] == len(info.vocab)
        assert field["values"] == ([] if field["name"] in ids else list(info.vocab[:3]))
    whole = (await client.get("/model", params={"values": 1000})).json()["fields"]
    assert all(len(f["values"]) == (0 if f["name"] in ids else f["size"]) for f in whole)
    assert all(f["values"] == [] for f in
               (await client.get("/model", params={"values": 0})).json()["fields"])


async def test_model_refuses_a_value_count_out_of_range(client):
    for values in ("-1", "1001", "many"):
        r = await client.get("/model", params={"values": values})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "values"]


async def test_users_lists_training_users_first_or_by_prefix(client):
    bundle_ids = [str(u) for u in client.app.state.model_host.current.bundle.users.ids.tolist()]
    body = (await client.get("/users")).json()
    assert body["total"] == 60 and body["user_ids"] == bundle_ids[:20]
    assert (await client.get("/users", params={"limit": 5})).json()["user_ids"] == \
        bundle_ids[:5]
    ones = (await client.get("/users", params={"prefix": "1", "limit": 100})).json()
    assert ones["user_ids"] == sorted(u for u in bundle_ids if u.startswith("1"))
    assert len(ones["user_ids"]) == 11  # 1 and 10..19 of 0..59
    few = (await client.get("/users", params={"prefix": "1", "limit": 3})).json()
    assert few["user_ids"] == ["1", "10", "11"]
    assert (await client.get("/users", params={"prefix": "x"})).json()["user_ids"] == []


async def test_users_refuses_a_limit_out_of_range(client):
    for limit in ("0", "1001"):
        r = await client.get("/users", params={"limit": limit})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_a_profile_reads_from_training_then_from_what_put_stored(client):
    model = client.app.state.model_host.current
    r = await client.get("/users/12")
    assert r.status_code == 200
    assert r.json()["source"] == "training"
    assert r.json()["features"] == model.training.profile(model.training.position("12"))
    assert r.json()["model_version"] == model.version
    await client.put("/users/12", json={"features": {"segment": "1"}})
    stored = (await client.get("/users/12")).json()
    assert stored["source"] == "stored" and stored["features"] == {"segment": "1"}
    await client.put("/users/newcomer", json={"features": {"segment": 2}})
    assert (await client.get("/users/newcomer")).json()["features"] == {"segment": "2"}


async def test_an_unknown_users_profile_is_a_404_naming_it(client):
    r = await client.get("/users/nobody-here")
    assert r.status_code == 404 and "nobody-here" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/recommend/7", "/users/nobody-here", "/health"])
async def test_answers_carry_the_server_time(client, path):
    r = await client.get(path)
    timing = re.fullmatch(r"app;dur=(\d+\.\d{3})", r.headers["server-timing"])
    assert timing and float(timing.group(1)) >= 0
    assert r.headers["x-request-id"]


async def test_the_explorer_page_and_its_files(client):
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset, kind in (("/explorer/app.js", "javascript"), ("/explorer/style.css", "css")):
        assert f'"{asset}"' in page.text
        r = await client.get(asset)
        assert r.status_code == 200 and kind in r.headers["content-type"]
    assert (await client.get("/explorer/missing.js")).status_code == 404
    openapi = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in openapi and {"/users", "/users/{user_id}", "/model"} <= set(openapi)
    assert (await client.get("/docs")).status_code == 200


async def test_a_wrong_method_names_every_method_of_the_path(client):
    r = await client.delete("/users/12")
    assert r.status_code == 405 and r.headers["allow"] == "GET, PUT"
    r = await client.get("/users/12/interactions")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
