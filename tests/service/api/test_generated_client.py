"""A Python client generated from the live /openapi.json (openapi-python-client, as API users
begin) calls every operation of a real server behind API keys and gets typed answers; and a
route whose answer drifts from its published schema breaks it, which the round trip reports.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, SecretStr

from service.access import needs
from service.app import create_app
from service.keys import Scope
from tests.service.api.conftest import settings_for
from tests.service.api.live import live_server

ADMIN_KEY = "admin-key-for-the-generated-client-0123"
CONFIG = ("post_hooks: []\nproject_name_override: gmlrec-client\n"
          "package_name_override: gmlrec_client\n")


def generate_client(schema: dict, folder: Path):
    """The package openapi-python-client generates from `schema`, imported (a fresh name per
    folder, so two generated clients never mix)."""
    generator = Path(sys.executable).with_name("openapi-python-client")
    if not generator.exists():
        pytest.fail("openapi-python-client is not installed (it is in the dev extra)")
    (folder / "openapi.json").write_text(json.dumps(schema))
    (folder / "config.yaml").write_text(CONFIG)
    done = subprocess.run([str(generator), "generate", "--path", "openapi.json", "--config",
                           "config.yaml", "--output-path", "client"], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(folder / "client"))
    try:
        for name in [m for m in sys.modules if m.split(".")[0] == "gmlrec_client"]:
            del sys.modules[name]
        return importlib.import_module("gmlrec_client")
    finally:
        sys.path.remove(str(folder / "client"))


def operations(package) -> set[str]:
    """Every generated operation module, as `tag.module`."""
    api = importlib.import_module(f"{package.__name__}.api")
    return {f"{tag.name}.{op.name}" for tag in pkgutil.iter_modules(api.__path__)
            for op in pkgutil.iter_modules([str(Path(api.__path__[0]) / tag.name)])}


class RoundTrip:
    """Calls through a generated client, each answer parsed into its generated type."""

    def __init__(self, package, base: str):
        self.package, self.called = package, set()
        self.client = package.AuthenticatedClient(base_url=base, token=ADMIN_KEY,
                                                  raise_on_unexpected_status=True)

    def call(self, operation: str, answer_type: str | None, status: int = 200, **arguments):
        tag, name = operation.split(".")
        module = importlib.import_module(f"{self.package.__name__}.api.{tag}.{name}")
        response = module.sync_detailed(client=self.client, **arguments)
        self.called.add(operation)
        assert response.status_code == status, (operation, response.content)
        parsed = response.parsed
        if answer_type is not None:
            wanted = getattr(importlib.import_module(f"{self.package.__name__}.models"),
                             answer_type)
            assert isinstance(parsed, wanted), (operation, type(parsed))
        return parsed


def every_operation(trip: RoundTrip) -> None:
    """Each operation once, its typed answer checked against what was asked."""
    users = trip.call("users.users_list_users", "UsersAnswer", limit=2)
    user = users.user_ids[0]
    top = trip.call("scoring.scoring_recommend_for_user", "RecommendAnswer", user_id=user, n=3)
    assert top.user_id == user and len(top.items) == 3
    item = top.items[0].item_id
    scored = trip.call("scoring.scoring_score", "ScoreAnswer",
                       body={"user_id": user, "item_ids": [item]})
    assert scored.scores[0].item_id == item
    assert abs(scored.scores[0].score - top.items[0].score) < 1e-4
    cold = trip.call("scoring.scoring_recommend", "RecommendAnswer",
                     body={"user": {"segment": "1"}, "n": 2, "diversity": 0.5})
    assert cold.user_id is None and len(cold.items) == 2
    assert isinstance(cold.intra_list_similarity, float)
    alike = trip.call("scoring.scoring_similar_items", "SimilarAnswer", item_id=item, n=3)
    assert alike.item_id == item and alike.measure.value == "pairs" and len(alike.items) == 3
    first = alike.items[0].item_id
    assert item not in [i.item_id for i in alike.items]
    models = importlib.import_module(f"{trip.package.__name__}.models")
    others = trip.call("scoring.scoring_similar_items_filtered", "SimilarAnswer", item_id=item,
                       body=models.SimilarRequest.from_dict(
                           {"n": 2, "filter": {"exclude_item_ids": [first]}}))
    assert [i.item_id for i in others.items] == [i.item_id for i in alike.items[1:]]
    profile = models.ProfileRequest(features=models.ProfileRequestFeatures.from_dict(
        {"segment": "2"}))
    put = trip.call("users.users_put_profile", "ProfileAnswer", user_id="generated",
                    body=profile)
    assert put.user_id == "generated"
    recorded = trip.call("users.users_record_interactions", "InteractionsAnswer",
                         user_id="generated",
                         body=models.InteractionsRequest(item_ids=[item]))
    assert recorded.recorded == 1
    stored = trip.call("users.users_get_profile", "UserAnswer", user_id="generated")
    assert stored.features.to_dict() == {"segment": "2"} and stored.history == [item]
    details = trip.call("catalog.catalog_get_item", "ItemAnswer", item_id=item)
    assert details.item_id == item and details.source.value == "bundle"
    new = models.ItemRequest(features=models.ItemRequestFeatures.from_dict({"category": "1"}),
                             display=models.ItemRequestDisplay.from_dict({"title": "New"}))
    added = trip.call("catalog.catalog_put_item", "ItemPutAnswer", item_id="generated-item",
                      body=new)
    assert added.source.value == "added" and added.additional_properties == {"title": "New"}
    page = trip.call("catalog.catalog_list_items", "ItemsAnswer", cursor="a0", limit=5)
    assert [listed.item_id for listed in page.items] == ["generated-item"]
    trip.call("catalog.catalog_retire_item", None, status=204, item_id="generated-item")
    described = trip.call("catalog.catalog_get_model", "ModelAnswer", values=2)
    assert described.model_version == top.model_version
    assert trip.call("operations.operations_health", "HealthAnswer").status == "ok"
    assert trip.call("operations.operations_ready", "ReadyAnswer").status.value == "ready"
    trip.call("operations.operations_metrics_text", None)
    reloaded = trip.call("operations.operations_reload", "ReloadAnswer")
    assert reloaded.model_version == top.model_version and reloaded.changed is False


def keyed(gmlfm):
    return settings_for(gmlfm.models_dir, api_keys=SecretStr(f"admin:{ADMIN_KEY}"))


def test_a_generated_client_calls_every_operation_with_typed_answers(gmlfm, tmp_path):
    with live_server(keyed(gmlfm)) as base:
        schema = httpx.get(f"{base}/openapi.json").json()
        package = generate_client(schema, tmp_path)
        trip = RoundTrip(package, base)
        every_operation(trip)
    assert trip.called == operations(package)  # none left out
    assert hasattr(package, "AuthenticatedClient")  # the schema's bearer scheme


def test_an_answer_that_drifts_from_its_schema_breaks_the_round_trip(gmlfm, tmp_path):
    """The client is generated from the real schema; the server then answers GET /model
    through a response model whose `items` was renamed `item_count`, every other field as
    the schema says."""
    package = generate_client(create_app(keyed(gmlfm)).openapi(), tmp_path)
    drifted = create_app(keyed(gmlfm))
    wrong = APIRouter(tags=["catalog"], dependencies=[needs(Scope.READ)])

    class DriftedModelAnswer(BaseModel):
        model_config = ConfigDict(protected_namespaces=())
        model_version: str
        name: str
        kind: str
        created_at: str | None
        item_count: int  # was `items`
        users: int
        user_fields: list[str]
        id_field: str | None
        fields: list[dict]
        metrics: dict

    @wrong.get("/model", response_model=DriftedModelAnswer)
    async def get_model() -> DriftedModelAnswer:
        return DriftedModelAnswer(model_version="v", name="x", kind="gmlfm", created_at=None,
                                  item_count=3, users=1, user_fields=[], id_field=None,
                                  fields=[], metrics={})

    drifted.router.routes.insert(0, wrong.routes[0])  # matched before the real route
    with live_server(keyed(gmlfm), app=drifted) as base:
        trip = RoundTrip(package, base)
        with pytest.raises(KeyError, match="items"):
            trip.call("catalog.catalog_get_model", "ModelAnswer", values=2)
