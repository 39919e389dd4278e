"""/health, /ready, /model, /items, /metrics and /docs."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.anyio


def sample(text: str, name: str, **labels: str) -> float:
    """One sample of the Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_health_ready_and_the_model(client, gmlfm):
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = (await client.get("/ready")).json()
    assert ready["status"] == "ready" and ready["model_version"] == gmlfm.version
    model = (await client.get("/model")).json()
    assert model["model_version"] == gmlfm.version and model["kind"] == "gmlfm"
    assert model["items"] == 200 and model["users"] == 60
    assert model["user_fields"] == ["user_id", "segment"]
    assert "hr@10" in model["metrics"]["test"]


async def test_items_show_their_features(client):
    r = await client.get("/items/42")
    assert r.status_code == 200
    body = r.json()
    assert body["item_id"] == "42" and set(body["features"]) == {"item_id", "category"}


async def test_docs_and_openapi(client):
    assert (await client.get("/docs")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/score", "/recommend/{user_id}", "/recommend", "/users/{user_id}",
            "/users/{user_id}/interactions", "/items/{item_id}", "/health", "/ready",
            "/metrics", "/admin/reload", "/model"} <= set(paths)


async def test_metrics_count_cache_hits_misses_and_latency(client):
    before = (await client.get("/metrics")).text
    await client.put("/users/m1", json={"features": {"segment": "0"}})  # writes the state
    await client.get("/recommend/m1")  # hit
    await client.get("/recommend/33")  # a bundle user: miss, then
    await client.get("/recommend/33")  # hit
    await client.post("/recommend", json={"user": {"segment": "1"}})  # bypass
    after = (await client.get("/metrics")).text

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("gmlrec_state_cache_total", result="hit") == 2
    assert delta("gmlrec_state_cache_total", result="miss") == 1
    assert delta("gmlrec_state_cache_total", result="bypass") == 1
    assert delta("gmlrec_http_requests_total", method="GET", route="/recommend/{user_id}",
                 status="200") == 3
    assert delta("gmlrec_http_request_duration_seconds_count", method="GET",
                 route="/recommend/{user_id}") == 3
    assert delta("gmlrec_scoring_seconds_count", op="top_n") == 4
    version = client.app.state.model_host.current.version
    assert sample(after, "gmlrec_model_info", version=version) == 1
