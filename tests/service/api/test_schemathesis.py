"""Schemathesis against /openapi.json: generated requests, valid and not, find no 5xx, and
every answer is one the schema documents (status, content type, body).

One check is left out: "schema-valid data is accepted". The schema cannot know which
feature fields and values the loaded model has, so a well-formed profile naming a field
the model lacks is rightly a 422.

Bounded and deterministic: a fixed number of examples per operation, derandomized, no
example database. Runs against a real server (uvicorn in a thread) with either store.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from tests.service.api.conftest import REDIS_URL, redis_is_up, settings_for
from tests.service.api.live import live_server

EXAMPLES = 30  # per operation


@pytest.fixture(scope="module", params=["memory", "redis"])
def api_schema(request, gmlfm, redis_prefix):
    store = {"redis_prefix": f"{redis_prefix}-st"}
    if request.param == "redis":
        if not redis_is_up():
            pytest.skip(f"no Redis at {REDIS_URL} (.ci/run starts one)")
        store |= {"redis_url": REDIS_URL, "redis_timeout_s": 2.0}  # see conftest.store
    with live_server(settings_for(gmlfm.models_dir, **store)) as base:
        yield schemathesis.openapi.from_url(f"{base}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_generated_requests_get_documented_answers_and_no_5xx(case):
    # schemathesis' checks raise on an undocumented status, content type or body
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500, response.text
