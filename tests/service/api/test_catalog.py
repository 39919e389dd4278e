"""The living catalog's routes: PUT /items/{id} adds an item (or replaces an added one, or
brings a retired one back), DELETE retires one, GET says where an item comes from and that a
retired one is gone, GET /items pages through the catalog; with every store, across two apps
sharing one, and while the store is down."""

from __future__ import annotations

import json
import shutil

import pytest

from bundle import format as fmt
from tests.service.api.conftest import serving, settings_for
from tests.support.servers import NoRedisServer, RedisServer
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio
NEW = {"features": {"category": ["1"]}, "display": {"title": "Added today", "year": "2026"}}


async def test_an_item_is_added_retired_and_brought_back(client):
    put = await client.put("/items/new-1", json=NEW)
    assert put.status_code == 200, put.text
    version = put.json()["model_version"]
    assert put.json() == {"model_version": version, "item_id": "new-1",
                          "features": {"category": ["1"]}, "source": "added", "ignored": {},
                          "title": "Added today", "year": "2026"}
    got = await client.get("/items/new-1")  # this worker at once: no poll to wait for
    assert got.json() == {k: v for k, v in put.json().items() if k != "ignored"}
    assert (await client.delete("/items/new-1")).status_code == 204
    gone = await client.get("/items/new-1")
    assert gone.status_code == 404
    assert gone.json() == {"detail": "item 'new-1' is retired: PUT /items/{item_id} brings it "
                                     "back", "item_ids": ["new-1"], "source": "added",
                           "retired": True}
    assert (await client.delete("/items/new-1")).status_code == 204  # again: still retired
    again = await client.put("/items/new-1", json={"features": {"category": "2"}})
    assert again.json()["features"] == {"category": "2"} and "title" not in again.json()
    assert (await client.get("/items/new-1")).json()["features"] == {"category": "2"}


async def test_a_bundle_item_is_retired_and_brought_back_and_keeps_its_own_features(client):
    before = await client.get("/items/3")
    assert before.status_code == 200 and before.json()["source"] == "bundle"
    assert (await client.delete("/items/3")).status_code == 204
    gone = await client.get("/items/3")
    assert gone.status_code == 404 and gone.json()["source"] == "bundle"
    assert gone.json()["retired"] is True
    put = await client.put("/items/3", json={"features": {"category": "4"}})
    assert put.json()["source"] == "bundle"  # the bundle's vectors score it while it holds it
    assert (await client.get("/items/3")).json() == before.json()


async def test_unknown_ids_are_404s_and_unknown_values_are_ignored(client):
    assert (await client.delete("/items/never")).json() == {
        "detail": "unknown item id(s): 'never'", "item_ids": ["never"]}
    assert (await client.delete("/items/never")).status_code == 404
    assert (await client.get("/items/never")).status_code == 404
    put = await client.put("/items/odd", json={"features": {"category": ["no-such", "1"]}})
    assert put.status_code == 422  # one column: one value; a list of two is too many
    put = await client.put("/items/odd", json={"features": {"category": "no-such"}})
    assert put.status_code == 200 and put.json()["ignored"] == {"category": ["no-such"]}
    assert (await client.put("/items/bare", json={"features": {}})).status_code == 200


@pytest.mark.parametrize(("body", "loc"), [
    ({"features": {"genre": "Drama"}}, ["body", "features", "genre"]),  # no such field
    ({"features": {"segment": "1"}}, ["body", "features", "segment"]),  # a user field
    ({"features": {"item_id": "5"}}, ["body", "features", "item_id"]),  # the path names it
    ({"features": {"category": ["1", "2"]}}, ["body", "features", "category"]),  # 1 column
    ({"features": {"category": ["1", "1"]}}, ["body", "features", "category"]),  # as schema
    ({"features": {"category": {"a": 1}}}, ["body", "features", "category"]),
    ({"features": {"category": "1"}, "display": {"source": "x"}}, ["body", "display", "source"]),
    ({"features": {"category": "1"}, "display": {"title": 5}}, ["body", "display", "title"]),
    ({"features": {"category": "1"}, "display": {"title": "x" * 4097}},
     ["body", "display", "title"]),
    ({"features": {"category": "1"}, "price": 5}, ["body", "price"]),
    ({"display": {"title": "x"}}, ["body", "features"]),
])
async def test_bad_bodies_are_422s_at_their_place_and_change_nothing(gmlfm, body, loc):
    async with serving(settings_for(gmlfm.models_dir)) as client:
        put = await client.put("/items/bad", json=body)
        assert put.status_code == 422, put.text
        assert put.json()["detail"][0]["loc"][:len(loc)] == loc, put.json()
        assert (await client.get("/items/bad")).status_code == 404
        assert client.app.state.overlay.current.version == 0


async def test_the_bound_on_added_items_is_a_409_naming_it(gmlfm):
    async with serving(settings_for(gmlfm.models_dir, catalog_max_added=2)) as client:
        for item_id in ("a", "b", "a"):
            assert (await client.put(f"/items/{item_id}", json=NEW)).status_code == 200
        full = await client.put("/items/c", json=NEW)
        assert full.status_code == 409 and "GMLREC_CATALOG_MAX_ADDED" in full.json()["detail"]
        assert (await client.get("/items/c")).status_code == 404


async def test_a_bundle_exported_before_added_items_refuses_them_naming_re_export(gmlfm,
                                                                                 tmp_path):
    models = tmp_path / "models"
    shutil.copytree(gmlfm.models_dir, models)
    manifest_file = models / gmlfm.bundle.relative_to(gmlfm.models_dir) / fmt.MANIFEST
    manifest = json.loads(manifest_file.read_text())
    del manifest[fmt.ITEM_ID_FIELD]
    manifest_file.write_text(json.dumps(manifest))
    async with serving(settings_for(models)) as client:
        refused = await client.put("/items/new", json=NEW)
        assert refused.status_code == 409 and "re-export" in refused.json()["detail"]
        assert (await client.delete("/items/1")).status_code == 204  # retiring still works


async def test_pages_list_the_bundle_then_the_added_items_without_the_retired(client):
    bundle_ids = [str(i) for i in client.app.state.model_host.current.catalog.ids.tolist()]
    for item_id in ("z-added", "y-added", "3"):  # "3" is the bundle's: listed there, once
        assert (await client.put(f"/items/{item_id}", json=NEW)).status_code == 200
    for item_id in ("5", "y-added"):
        assert (await client.delete(f"/items/{item_id}")).status_code == 204
    listed, cursor, pages = [], None, 0
    while True:
        page = await client.get("/items", params={"limit": 7} | ({"cursor": cursor}
                                                                 if cursor else {}))
        assert page.status_code == 200, page.text
        listed += [(i["item_id"], i["source"]) for i in page.json()["items"]]
        cursor, pages = page.json()["next_cursor"], pages + 1
        if cursor is None:
            break
    assert listed == [(i, "bundle") for i in bundle_ids if i != "5"] + [("z-added", "added")]
    assert pages >= len(listed) // 7
    past = await client.get("/items", params={"cursor": "a999"})
    assert past.json()["items"] == [] and past.json()["next_cursor"] is None
    for bad in ("c1", "b", "b-1", "a1x"):
        wrong = await client.get("/items", params={"cursor": bad})
        assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["query",
                                                                                 "cursor"]


@pytest.mark.parametrize("store", ["redis", "cluster"], indirect=True)
async def test_two_apps_on_one_store_see_each_others_changes_within_a_second(gmlfm, store):
    settings = settings_for(gmlfm.models_dir, **store)
    async with serving(settings) as one, serving(settings) as other:
        assert (await one.put("/items/shared", json=NEW)).status_code == 200
        await wait_until_async(lambda: "shared" in other.app.state.overlay.current.added, 1.0,
                               "the other app serving the PUT")
        assert (await other.get("/items/shared")).json()["source"] == "added"
        assert (await other.delete("/items/shared")).status_code == 204
        await wait_until_async(lambda: one.app.state.overlay.current.is_retired("shared"), 1.0,
                               "the first app serving the DELETE")
        assert (await one.get("/items/shared")).status_code == 404


async def test_with_the_store_down_writes_are_503s_and_reads_serve_the_last_overlay(gmlfm,
                                                                                   redis_prefix):
    try:
        server = RedisServer().start()
    except NoRedisServer as err:
        pytest.skip(str(err))
    try:
        settings = settings_for(gmlfm.models_dir, redis_url=server.url,
                                redis_prefix=f"{redis_prefix}-down", redis_timeout_s=0.5)
        async with serving(settings) as client:
            assert (await client.put("/items/kept", json=NEW)).status_code == 200
            assert (await client.delete("/items/4")).status_code == 204
            server.stop()
            for method, url, body in (("PUT", "/items/lost", NEW), ("DELETE", "/items/5", None)):
                refused = await client.request(method, url, json=body)
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "1"
                assert "not" in refused.json()["detail"]
            kept = await client.get("/items/kept")
            assert kept.status_code == 200 and kept.json()["title"] == "Added today"
            assert (await client.get("/items/4")).status_code == 404
            assert (await client.get("/items/lost")).status_code == 404
            listed = (await client.get("/items", params={"cursor": "a0"})).json()["items"]
            assert [i["item_id"] for i in listed] == ["kept"]
    finally:
        server.stop()


async def test_the_published_schema_fits_put_items_to_the_served_models_item_fields(gmlfm):
    async with serving(settings_for(gmlfm.models_dir)) as client:
        body = (await client.get("/openapi.json")).json()["components"]["schemas"]["ItemRequest"]
    features = body["properties"]["features"]
    assert features["propertyNames"]["enum"] == ["category"]  # not item_id: the path's
    assert features["additionalProperties"] is False
    category = features["properties"]["category"]["anyOf"]
    assert [form.get("maxItems") for form in category if form.get("type") == "array"] == [1]
    assert body["examples"] == [{"features": {"category": "c1"},
                                 "display": {"title": "A film added today"}}]
