"""The catalog a request ranks is the bundle's items and the overlay's added items, less the
retired ones: for every served family, GET and POST /recommend (with each filter, with and
without exclude_seen) answer the brute-force ranking of that union, and /score scores added
items as brute force does. Brute force here: the numpy reference's scores of every bundle
item, AddedItems.score of every added item the bundle does not hold, sorted by score, ties by
union position (bundle positions first, then added items in the overlay's order).

The overlay holds copies of catalog items' features under new ids, items with values the
model lacks, items whose ids the bundle holds (scored by the bundle's vectors, whatever
their record says), retired bundle items, retired added items, and an item naming a field
the model does not have (dropped). A second overlay version adds, changes and retires one
item each, and is answered from a view built from the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from bundle import AddedItems
from bundle import format as fmt
from service.overlay import AddedItem, Overlay
from tests.service.api.conftest import Trained, fit_and_export, serving, settings_for
from tests.service.api.reference import assert_same_ranking
from tests.service.api.tiny_movies import write_tiny_movies

pytestmark = pytest.mark.anyio
RELATIVE = 1e-5  # onnxruntime's float32 against the numpy reference, of the score scale
DNN = ("gmlfm", "--distance", "dnn", "--layers", "1")
# name -> fit options, export options; "history" fits the tiny movie catalog (multi-hot genres,
# titles) with a history field of the last 5 interactions
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fm": (("fm",), ()), "transfm": (("transfm",), ()), "nfm": (("nfm",), ()),
    "deepfm": (("deepfm",), ()),
    "gmlfm-dnn-rows": (DNN, ("--pair-form", "rows")),
    "gmlfm-dnn-matrix": (DNN, ("--pair-form", "matrix")),
    "gmlfm-no-weight": (("gmlfm", "--no-weight"), ()),
    "gem": ((*DNN, "--embedding", "gcn"), ()),
    "history": ((*DNN, "--history", "5"), ()),
}
NEW_VALUE = "a value the model lacks"
NOT_A_FIELD = "colour"  # a field no model here has: an added item's value in it is dropped


class Held:
    """What the overlay's store puts on app.state.overlay: the newest overlay, `.current`."""

    def __init__(self, overlay: Overlay):
        self.current = overlay


@pytest.fixture(scope="module", params=FAMILIES)
def trained(request, tmp_path_factory) -> Trained:
    (model, *options), export_options = FAMILIES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    data = {}
    if request.param == "history":
        data = {"data": f"movielens-1m:{write_tiny_movies(root / 'ml-1m')}"}
    return fit_and_export(root, model, 0, *options, export_options=export_options, **data)


def overlay(version: int, added: list[AddedItem], retired: set[str]) -> Overlay:
    return Overlay(version, MappingProxyType({i.item_id: i for i in added}), frozenset(retired))


def first_overlay(model) -> Overlay:
    """Added items of every kind (the module doc), and retired bundle and added items."""
    catalog, field = model.bundle.catalog, item_field(model)
    ids = [str(i) for i in catalog.ids.tolist()]
    rng = np.random.default_rng(0)
    picked = rng.choice(len(ids), 24, replace=False).tolist()
    values = [str(v) for v in field.vocab]
    added = []
    for k, p in enumerate(picked[:12]):  # a catalog item's features, under a new id
        features = {f: v for f, v in catalog.details(p)["features"].items()
                    if f != field_of_ids(model)}
        added.append(AddedItem(f"copy-{k}", features, {"title": f"Copy {k}", "year": "2031"}))
    for k in range(6):  # values the model lacks, alone or beside known ones
        value: Any = NEW_VALUE if k % 2 else [NEW_VALUE, values[k]] \
            if field.kind == "multihot" else NEW_VALUE
        added.append(AddedItem(f"new-{k}", {field.name: value}, {"title": f"New {k}"}))
    for p in picked[12:15]:  # ids the bundle holds: the bundle's vectors score them
        added.append(AddedItem(ids[p], {field.name: one(field, values[-1])}))
    for k in range(3):
        added.append(AddedItem(f"gone-{k}", {field.name: one(field, values[k])}))
    added.append(AddedItem("odd-0", {field.name: one(field, values[0]), NOT_A_FIELD: "red"}))
    retired = {ids[p] for p in picked[15:20]} | {f"gone-{k}" for k in range(3)} | {ids[picked[14]]}
    return overlay(1, added, retired)


def second_overlay(model, before: Overlay) -> Overlay:
    """One item added, one changed (new features under its id), one more retired."""
    field = item_field(model)
    values = [str(v) for v in field.vocab]
    added = [*before.added.values(), AddedItem("late-0", {field.name: one(field, values[1])})]
    added = [AddedItem(i.item_id, {field.name: one(field, values[2])}, i.display)
             if i.item_id == "copy-3" else i for i in added]
    return overlay(2, added, set(before.retired) | {"copy-5"})


def one(field, value: str) -> Any:
    return [value] if field.kind == "multihot" else value


def field_of_ids(model) -> str:
    return model.bundle.manifest[fmt.ITEM_ID_FIELD]


def item_field(model):
    """The item field beside the items' ids (synthetic data's category, the movies' genre)."""
    return next(f for f in model.bundle.fields.on_table_side(fmt.ITEM_SIDE)
                if f.name != field_of_ids(model))


@dataclass(frozen=True)
class Union:
    """What brute force ranks: every bundle item, then the added items the bundle lacks."""

    ids: list[str]
    values: list[list[str]]  # each item's values in the filtered field, as given
    retired: set[str]
    held: list[str]  # added ids the bundle holds: scored as its items
    scores: Callable[[np.ndarray], np.ndarray]  # a state (D,) -> scores of `ids`


def union_of(model, current: Overlay) -> Union:
    catalog, field = model.bundle.catalog, item_field(model)
    ids = [str(i) for i in catalog.ids.tolist()]
    values = [as_list(catalog.details(p)["features"].get(field.name, []))
              for p in range(len(ids))]
    added = [i for i in current.added.values()
             if i.item_id not in current.retired and i.item_id not in set(ids)]
    encoder = AddedItems(model.bundle)
    parts = encoder.parts([encoder.encode({f: v for f, v in i.features.items()
                                           if f != NOT_A_FIELD}, i.item_id) for i in added])
    reference = model.scorer.reference

    def scores(state: np.ndarray) -> np.ndarray:
        return np.concatenate([reference.catalog_scores(state[None])[0],
                               encoder.score(state[None], parts)[0]]).astype(np.float64)
    return Union(ids + [i.item_id for i in added],
                 values + [as_list(i.features.get(field.name, [])) for i in added],
                 set(current.retired), [i for i in current.added if i in set(ids)], scores)


def as_list(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def brute_force(union: Union, state: np.ndarray, n: int, blocked: set[str],
                passes: Callable[[int], bool] = lambda k: True) -> list[tuple[str, float]]:
    scores = union.scores(state)
    kept = [k for k, i in enumerate(union.ids)
            if i not in union.retired and i not in blocked and passes(k)]
    best = sorted(kept, key=lambda k: (-scores[k], k))[:n]
    return [(union.ids[k], float(scores[k])) for k in best]


def state_of(model, user_id: str | None, profile: dict | None, recorded: list[str]) -> np.ndarray:
    """A user's state recomputed from its profile and, for a history model, the window of
    its interactions that the model knows (an added item takes no place in it)."""
    position = model.training.position(user_id) if user_id is not None else None
    if profile is None:
        profile = model.training.profile(position) if position is not None else {}
    known = set(str(i) for i in model.bundle.catalog.ids.tolist())
    window = model.training.window(position, [i for i in recorded if i in known])
    row = model.profiles.encode(user_id, profile, window=window)
    return model.scorer.reference.user_state(row.idx[None], row.val[None])[0]


def seen_of(model, user_id: str, recorded: list[str]) -> set[str]:
    position = model.training.position(user_id)
    trained = model.training.seen(position) if position is not None else []
    return {str(model.bundle.catalog.ids[p]) for p in trained} | set(recorded)


def ranked(answer) -> list[tuple[str, float]]:
    assert answer.status_code == 200, answer.text
    return [(i["item_id"], i["score"]) for i in answer.json()["items"]]


def check_ties_and_retired(union: Union, got: list[tuple[str, float]]) -> None:
    """No retired item; items of exactly equal scores in union order."""
    at = {i: k for k, i in enumerate(union.ids)}
    assert not {i for i, _ in got} & union.retired
    for (a, s), (b, t) in zip(got, got[1:]):
        assert s > t or (s == t and at[a] < at[b]), (a, s, b, t)


def filters(model, union: Union) -> list[tuple[dict, Callable[[int], bool], dict]]:
    """(filter, which union positions pass it, what the answer must list as ignored)."""
    field = item_field(model).name
    values = sorted({v for vs in union.values[:len(model.bundle.catalog)] for v in vs})
    ids = union.ids
    added = ids[len(model.bundle.catalog):]
    some = ids[:4] + added[:3] + ["copy-nothing", sorted(union.retired)[0]]
    many = ids[10:120] + added[4:]
    excluded = ids[:60] + added[:2]
    return [
        ({"include": {field: [values[0]]}}, lambda k: values[0] in union.values[k], {}),
        ({"include": {field: [values[0], NEW_VALUE, "nowhere"]}},
         lambda k: bool({values[0], NEW_VALUE} & set(union.values[k])), {field: ["nowhere"]}),
        ({"exclude": {field: [values[1]]}}, lambda k: values[1] not in union.values[k], {}),
        ({"item_ids": some}, lambda k: ids[k] in some, unknown("item_ids", some, union)),
        ({"exclude_item_ids": excluded}, lambda k: ids[k] not in excluded,
         unknown("exclude_item_ids", excluded, union)),
        ({"include": {field: values[1:3]}, "item_ids": many, "exclude_item_ids": excluded},
         lambda k: bool(set(values[1:3]) & set(union.values[k])) and ids[k] in many
         and ids[k] not in excluded,
         unknown("item_ids", many, union) | unknown("exclude_item_ids", excluded, union)),
    ]


def unknown(where: str, ids: list[str], union: Union) -> dict[str, list[str]]:
    """What `ignored` lists of a filter's ids: those the union does not serve, in order."""
    missing = [i for i in ids if i not in union.ids or i in union.retired]
    return {where: missing} if missing else {}


async def check_recommend(client, model, union: Union, users: dict[str, dict | None],
                          recorded: dict[str, list[str]], every_filter: bool) -> None:
    """Every user, GET and POST, with and without exclude_seen and each filter, against
    brute force over the union."""
    for user_id, profile in users.items():
        state = state_of(model, user_id, profile, recorded.get(user_id, []))
        for exclude_seen in (True, False):
            blocked = seen_of(model, user_id, recorded.get(user_id, [])) if exclude_seen \
                else set()
            for n in (20, 1000):
                want = brute_force(union, state, n, blocked)
                got = ranked(await client.get(f"/recommend/{user_id}", params={
                    "n": n, "exclude_seen": str(exclude_seen).lower()}))
                assert_same_ranking(got, want, RELATIVE)
                check_ties_and_retired(union, got)
                posted = ranked(await client.post("/recommend", json={
                    "user_id": user_id, "n": n, "exclude_seen": exclude_seen}))
                assert posted == got
            for spec, passes, ignored in filters(model, union) if every_filter else []:
                r = await client.post("/recommend", json={
                    "user_id": user_id, "n": 20, "exclude_seen": exclude_seen, "filter": spec})
                got = ranked(r)
                assert_same_ranking(got, brute_force(union, state, 20, blocked, passes),
                                    RELATIVE)
                check_ties_and_retired(union, got)
                assert r.json()["ignored"] == ignored, spec
    anonymous = ranked(await client.post("/recommend", json={"user": {}, "n": 30}))
    assert_same_ranking(anonymous, brute_force(union, state_of(model, None, {}, []), 30, set()),
                        RELATIVE)


async def check_score(client, model, union: Union, user_id: str) -> None:
    """/score of bundle items, added items and ids the bundle holds, as brute force; a
    retired or unknown id is a 404 naming it."""
    bundle_size = len(model.bundle.catalog)
    served = [k for k, i in enumerate(union.ids) if i not in union.retired]
    held = [union.ids.index(i) for i in union.held if i not in union.retired]
    asked = served[:5] + [k for k in served if k >= bundle_size] + held
    r = await client.post("/score", json={"user_id": user_id, "details": True,
                                          "item_ids": [union.ids[k] for k in asked]})
    assert r.status_code == 200, r.text
    want = union.scores(state_of(model, user_id, None, []))[asked]
    got = r.json()["scores"]
    assert [s["item_id"] for s in got] == [union.ids[k] for k in asked]
    np.testing.assert_allclose([s["score"] for s in got], want, rtol=RELATIVE,
                               atol=RELATIVE * np.abs(want).max())
    shown = {s["item_id"]: s for s in got}
    assert shown["copy-0"]["title"] == "Copy 0" and shown["copy-0"]["year"] == "2031"
    brief = (await client.post("/score", json={"user_id": user_id, "item_ids": ["copy-0"]})
             ).json()["scores"][0]
    assert brief.get("title") == "Copy 0" and "year" not in brief
    gone = sorted(union.retired)
    r = await client.post("/score", json={"user_id": user_id,
                                          "item_ids": [union.ids[served[0]], *gone,
                                                       "never-added"]})
    assert r.status_code == 404 and r.json()["item_ids"] == [*gone, "never-added"]


async def test_recommend_and_score_rank_the_union_as_brute_force(trained):
    async with serving(settings_for(trained.models_dir)) as client:
        model = client.app.state.model_host.current
        current = first_overlay(model)
        client.app.state.overlay = held = Held(current)
        union = union_of(model, current)
        ids = union.ids
        training = [str(u) for u in model.bundle.users.ids[[0, -1]].tolist()]
        added = ids[len(model.bundle.catalog):]
        assert len(added) == 12 + 6 + 1  # copies, new values, odd-0: the rest are held or gone
        # interactions take bundle and added ids; a retired one is unknown
        recorded = {training[0]: [ids[1], added[0], ids[2], added[7]]}
        r = await client.post(f"/users/{training[0]}/interactions",
                              json={"item_ids": recorded[training[0]]})
        assert r.status_code == 200, r.text
        r = await client.post(f"/users/{training[0]}/interactions",
                              json={"item_ids": [ids[3], sorted(union.retired)[0]]})
        assert r.status_code == 404 and r.json()["item_ids"] == [sorted(union.retired)[0]]
        history = (await client.get(f"/users/{training[0]}")).json()["history"]
        assert history == recorded[training[0]]
        assert (await client.put("/users/put-one", json={"features": {}})).status_code == 200
        users = {**{u: None for u in training}, "put-one": {}, "never-seen": {}}
        await check_recommend(client, model, union, users, recorded, every_filter=True)
        await check_score(client, model, union, training[1])

        held.current = second_overlay(model, current)  # built from the first one's view
        union = union_of(model, held.current)
        assert "late-0" in union.ids and "copy-5" in union.retired
        await check_recommend(client, model, union, {training[0]: None, "never-seen": {}},
                              recorded, every_filter=False)
        await check_score(client, model, union, training[1])


async def test_added_items_are_recorded_and_left_out_as_seen_on_every_store(client):
    model = client.app.state.model_host.current
    field = item_field(model)
    news = [AddedItem(f"fresh-{k}", {field.name: one(field, str(field.vocab[k]))})
            for k in range(3)]
    client.app.state.overlay = Held(overlay(1, news, {"fresh-2"}))
    bundle_item = str(model.bundle.catalog.ids[0])
    r = await client.post("/users/7/interactions", json={"item_ids": ["fresh-0", bundle_item]})
    assert r.status_code == 200, r.text
    assert (await client.get("/users/7")).json()["history"] == ["fresh-0", bundle_item]
    r = await client.post("/users/7/interactions", json={"item_ids": ["fresh-2"]})
    assert r.status_code == 404 and r.json()["item_ids"] == ["fresh-2"]  # retired
    listed = {i for i, _ in ranked(await client.get("/recommend/7", params={"n": 1000}))}
    assert "fresh-1" in listed and not listed & {"fresh-0", "fresh-2", bundle_item}
    listed = {i for i, _ in ranked(await client.get("/recommend/7", params={
        "n": 1000, "exclude_seen": "false"}))}
    assert {"fresh-0", "fresh-1", bundle_item} <= listed and "fresh-2" not in listed


async def test_an_added_item_takes_no_place_in_a_history_window(with_history):
    """Interacting with an added item records it and moves the state by nothing, in the
    incremental update as in the recompute; the window stays the last N items the model
    knows."""
    async with serving(settings_for(with_history.models_dir)) as client:
        model = client.app.state.model_host.current
        field = item_field(model)
        client.app.state.overlay = Held(overlay(1, [AddedItem("fresh", {
            field.name: one(field, str(field.vocab[0]))})], set()))
        ids = [str(i) for i in model.bundle.catalog.ids[:8].tolist()]
        assert (await client.put("/users/reader", json={"features": {"segment": "1"}})
                ).status_code == 200
        whole = {"n": 1000, "exclude_seen": "false"}
        r = await client.post("/users/reader/interactions", json={"item_ids": ids[:5]})
        assert r.status_code == 200
        before = ranked(await client.get("/recommend/reader", params=whole))
        moved = history_writes("moved")
        r = await client.post("/users/reader/interactions", json={"item_ids": ["fresh"]})
        assert r.status_code == 200 and history_writes("moved") == moved + 1  # not rebuilt
        assert ranked(await client.get("/recommend/reader", params=whole)) == before
        # a full window: the added item between two known ones pushes nothing out
        r = await client.post("/users/reader/interactions", json={"item_ids": [ids[5]]})
        history = (await client.get("/users/reader")).json()["history"]
        assert history == [*ids[:5], "fresh", ids[5]]
        union = union_of(model, client.app.state.overlay.current)
        state = state_of(model, "reader", {"segment": "1"}, ids[1:6])  # N = 5 known items
        assert_same_ranking(ranked(await client.get("/recommend/reader", params=whole)),
                            brute_force(union, state, 1000, set()), RELATIVE)


def history_writes(result: str) -> float:
    return REGISTRY.get_sample_value("gmlrec_history_writes_total", {"result": result}) or 0.0
