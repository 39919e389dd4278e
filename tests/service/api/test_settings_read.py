"""Every setting tells the truth, checked by behaviour: each `Settings` field is read while the
service starts and answers (or by `python -m service` itself), and the request limits that
are settings hold in validation and in the published schema alike. (That every variable
docs/configuration.md names is one the code reads: tests/test_readme.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from service.settings import Settings
from tests.service.api.conftest import REDIS_URL, redis_is_up, serving, settings_for

ROOT = Path(__file__).resolve().parents[3]
MAIN = (ROOT / "service/__main__.py").read_text()


class RecordingSettings(Settings):
    """Settings that note which of their fields anything reads."""

    read: ClassVar[set[str]] = set()

    def __getattribute__(self, name: str):
        if name in type(self).model_fields:
            RecordingSettings.read.add(name)
        return super().__getattribute__(name)


async def exercise(settings: Settings) -> None:
    """Start the app, call each kind of route once, and stop it."""
    async with serving(settings) as client:
        user = (await client.get("/users?limit=1")).json()["user_ids"][0]
        item = (await client.get(f"/recommend/{user}?n=1")).json()["items"][0]["item_id"]
        for call in (client.post("/score", json={"user_id": user, "item_ids": [item]}),
                     client.post("/recommend", json={"user_id": user, "n": 2}),
                     client.put("/users/reader", json={"features": {}}),
                     client.post("/users/reader/interactions", json={"item_ids": [item]}),
                     client.put("/items/read", json={"features": {}}),
                     client.get("/ready"), client.get("/model"), client.get("/metrics")):
            assert (await call).status_code == 200


@pytest.mark.anyio
async def test_every_setting_is_read_by_the_service_or_its_launcher(gmlfm, redis_prefix):
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL} (.ci/run starts one)")
    RecordingSettings.read.clear()
    RecordingSettings(models_dir=gmlfm.models_dir)  # checked as `python -m service` reads them
    await exercise(RecordingSettings(models_dir=gmlfm.models_dir, reload_interval_s=0.5,
                                     redis_prefix=f"{redis_prefix}-read"))
    await exercise(RecordingSettings(models_dir=gmlfm.models_dir, reload_interval_s=0,
                                     redis_url=REDIS_URL, redis_prefix=f"{redis_prefix}-read"))
    unread = set(Settings.model_fields) - RecordingSettings.read
    # what the app never reads, `python -m service` must: the server's own options
    unread_by_launcher = {name for name in unread if f"settings.{name}" not in MAIN}
    assert not unread_by_launcher, f"settings nothing reads: {sorted(unread_by_launcher)}"
    assert unread <= {"port", "workers", "graceful_timeout_s"}, sorted(unread)


@pytest.mark.anyio
async def test_max_n_and_max_score_items_hold_in_requests_and_in_the_schema(gmlfm):
    async with serving(settings_for(gmlfm.models_dir, max_n=5, max_score_items=3)) as client:
        schema = (await client.get("/openapi.json")).json()
        bodies = schema["components"]["schemas"]
        assert bodies["RecommendRequest"]["properties"]["n"]["maximum"] == 5
        assert bodies["ScoreRequest"]["properties"]["item_ids"]["maxItems"] == 3
        assert bodies["InteractionsRequest"]["properties"]["item_ids"]["maxItems"] == 3
        query = schema["paths"]["/recommend/{user_id}"]["get"]["parameters"]
        assert next(p for p in query if p["name"] == "n")["schema"]["maximum"] == 5

        user = (await client.get("/users?limit=1")).json()["user_ids"][0]
        ok, over = await client.get(f"/recommend/{user}?n=5"), \
            await client.get(f"/recommend/{user}?n=6")
        assert ok.status_code == 200 and len(ok.json()["items"]) == 5
        assert over.status_code == 422 and over.json()["detail"][0]["loc"] == ["query", "n"]
        assert "GMLREC_MAX_N" in over.json()["detail"][0]["msg"]  # the limit is named
        over = await client.post("/recommend", json={"user_id": user, "n": 6})
        assert over.status_code == 422 and over.json()["detail"][0]["loc"] == ["body", "n"]
        assert "GMLREC_MAX_N" in over.json()["detail"][0]["msg"]
        items = [i["item_id"] for i in ok.json()["items"]]
        assert (await client.post("/score", json={"user_id": user, "item_ids": items[:3]})
                ).status_code == 200
        for path in ("/score", f"/users/{user}/interactions"):
            body = {"item_ids": items[:4]} | ({"user_id": user} if path == "/score" else {})
            over = await client.post(path, json=body)
            assert over.status_code == 422, path
            assert over.json()["detail"][0]["loc"] == ["body", "item_ids"], over.text
            assert "GMLREC_MAX_SCORE_ITEMS" in over.json()["detail"][0]["msg"]


@pytest.mark.anyio
async def test_apps_with_other_limits_publish_their_own(gmlfm):
    async with serving(settings_for(gmlfm.models_dir)) as default:
        schema = (await default.get("/openapi.json")).json()["components"]["schemas"]
        assert schema["RecommendRequest"]["properties"]["n"]["maximum"] == 1000
