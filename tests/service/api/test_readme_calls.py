"""The calls the documents show with their answers (the README's tour, docs/contract.md's
every endpoint), run in order against a real server: every answer shown has the keys of the
real answer, with its status class, and a Prometheus example greps metrics the service
exports.

The answers shown come from the MovieLens bundle the quick start makes; this test serves
the suite's small synthetic bundle, so ids are swapped for that bundle's own, and MovieLens'
profile fields and display attributes are left out (the synthetic model has none of them)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import httpx
import pytest

from tests.service.api.conftest import settings_for
from tests.service.api.live import live_server

ROOT = Path(__file__).resolve().parents[3]
# document -> (where its console block of calls starts, the fewest calls it shows)
SHOWN = {"README.md": (r"## A short tour of the API\n", 7),
         "docs/contract.md": (r"Every endpoint, answered by ", 14)}
MOVIELENS_FIELDS = {"gender", "age", "occupation"}
MOVIELENS_DISPLAY = {"title", "year", "genres"}  # what its catalog shows beside an item


def calls(document: str) -> list[tuple[list[str], list[str]]]:
    """The document's console block of calls as (curl argv, the lines it printed)."""
    text = (ROOT / document).read_text()
    console = re.search(SHOWN[document][0] + r".*?```console\n(.*?)```", text, re.S)[1]
    found = []
    for chunk in re.split(r"^\$ ", console, flags=re.M)[1:]:
        command, *output = chunk.strip("\n").split("\n")
        found.append((shlex.split(command), output))
    return found


def without_movielens_fields(body: object) -> object:
    if isinstance(body, dict):
        return {k: without_movielens_fields(v) for k, v in body.items()
                if k not in MOVIELENS_FIELDS}
    return body


@pytest.mark.parametrize("document", sorted(SHOWN))
def test_the_calls_answer_as_shown(gmlfm, document):
    shown_calls = calls(document)
    assert len(shown_calls) >= SHOWN[document][1]
    with live_server(settings_for(gmlfm.models_dir)) as base, httpx.Client() as client:
        user = client.get(f"{base}/users?limit=1").json()["user_ids"][0]
        item, other = [i["item_id"] for i in
                       client.get(f"{base}/recommend/{user}?n=2").json()["items"]]
        ids = {"196": user, "1": user, "242": item, "302": other, "50": item}
        for argv, shown in shown_calls:
            url = next(a for a in argv if a.startswith("localhost:8000"))
            url = re.sub(r"(?<=/)(\d+)(?=[/?]|$)", lambda m: ids.get(m[1], m[1]), url)
            body = json.loads(argv[argv.index("-d") + 1]) if "-d" in argv else None
            if body is not None:
                body = json.loads(re.sub(r'"(\d+)"', lambda m: json.dumps(ids.get(m[1], m[1])),
                                         json.dumps(without_movielens_fields(body))))
            method = argv[argv.index("-X") + 1] if "-X" in argv else "GET"
            real = client.request(method, base + url.removeprefix("localhost:8000"), json=body)
            if "grep" in argv:  # the Prometheus example: each of its patterns finds metrics
                patterns = argv[argv.index("-E") + 1].split("|")
                for pattern in patterns:
                    assert re.search(pattern, real.text, re.M), f"no metric matches {pattern}"
                found = {line.rsplit(" ", 1)[0] for line in real.text.splitlines()
                         if any(re.search(p, line) for p in patterns)}
                assert {line.rsplit(" ", 1)[0] for line in shown} <= found, found
                continue
            answer = json.loads(shown[0])
            assert set(answer) - MOVIELENS_DISPLAY == set(real.json()), (url, real.text)
            shows_an_error = set(answer) <= {"detail", "item_ids", "user_ids"}
            assert (real.status_code >= 400) == shows_an_error, (url, real.text)
