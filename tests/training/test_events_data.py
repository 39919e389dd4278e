"""Base data plus an events folder (training/data/events.py): new users and items keep their
features, ids extend the vocabularies, and the timeline continues across the seam."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import tiny_interactions
from tests.support.event_folders import write_event_folder
from training.data.events import before, read_events, with_events
from training.data.history import with_history_field
from training.data.protocols import topn_split
from training.errors import ConfigError, DataError


def decoded(data, table, row):
    """(field, value, weight) of a row, by name: independent of feature offsets."""
    out = set()
    for i, v in zip(table.idx[row], table.val[row]):
        if v:
            f = next(f for f in data.schema.fields if f.offset <= i < f.offset + f.size)
            out.add((f.name, f.vocab[i - f.offset], round(float(v), 4)))
    return out


@pytest.fixture
def merged(tmp_path):
    base = tiny_interactions(n_users=10, n_items=120, per_user=4)
    end = int(base.times.max())
    events = write_event_folder(tmp_path / "ev", [
        ("3", "5", end + 10.5), ("new-a", "7", end + 11), ("new-a", "n1", end + 12),
        ("new-a", "ghost", end + 13), ("3", "n1", end + 14), ("new-b", "2", end + 15),
        ("new-b", "3", end + 16)],
        users={"new-a": {"group": "b"}, "new-b": {"group": "zzz"}, "only-put": {"group": "c"}},
        items={"n1": {"genre": ["x", "w", "nope"]}})
    return base, with_events(base, read_events(events))


def test_new_ids_extend_the_vocabularies_and_base_rows_keep_their_meaning(merged):
    base, data = merged
    assert data.user_ids == (*base.user_ids, "new-a", "new-b", "only-put")
    assert data.item_ids == (*base.item_ids, "n1", "ghost")
    assert data.schema.field("user_id").vocab == data.user_ids
    assert data.schema.field("item_id").vocab == data.item_ids
    for u in range(base.n_users):
        assert decoded(data, data.user_table, u) == decoded(base, base.user_table, u)
    for i in range(base.n_items):
        assert decoded(data, data.item_table, i) == decoded(base, base.item_table, i)
    assert data.fingerprint != base.fingerprint


def test_new_users_bring_profiles_and_new_items_features(merged):
    base, data = merged
    assert decoded(data, data.user_table, base.n_users) == {("user_id", "new-a", 1),
                                                            ("group", "b", 1)}
    # an unknown value is left out, as the service's encoder leaves it out
    assert decoded(data, data.user_table, base.n_users + 1) == {("user_id", "new-b", 1)}
    assert decoded(data, data.item_table, base.n_items) == {
        ("item_id", "n1", 1), ("genre", "x", 0.5), ("genre", "w", 0.5)}
    assert decoded(data, data.item_table, base.n_items + 1) == {("item_id", "ghost", 1)}


def test_interactions_keep_time_order_and_windows_continue_across_the_seam(merged):
    base, data = merged
    assert len(data.users) == len(base.users) + 7
    assert (data.times[len(base.users):] > base.times.max()).all()
    split = topn_split(with_history_field(data, 3, "mean"), seed=0)
    catalog = split.catalog
    tests = dict(zip((data.user_ids[u] for u in catalog.test_users),
                     (data.item_ids[i] for i in catalog.test_items)))
    assert tests["3"] == "n1" and tests["new-a"] == "ghost" and tests["new-b"] == "3"
    # user 3's test window: its event before, then its latest base interactions
    window = catalog.data.window_table
    row = catalog.test_windows[list(catalog.test_users).index(3)]
    offset = catalog.data.schema.field("history").offset
    seen = [data.item_ids[i - offset] for i, v in zip(window.idx[row], window.val[row]) if v]
    ordered = base.items[base.users == 3][np.argsort(base.times[base.users == 3])]
    assert seen == [base.item_ids[i] for i in ordered[-2:]] + ["5"]


def test_data_until_keeps_earlier_interactions_and_every_user(tmp_path):
    base = tiny_interactions(n_users=10, n_items=20, per_user=4)
    cut = int(np.median(base.times))
    early = before(base, cut)
    assert (early.times < cut).all() and len(early.times) == (base.times < cut).sum()
    assert early.n_users == base.n_users and early.fingerprint != base.fingerprint
    with pytest.raises(ConfigError, match="no interaction before"):
        before(base, int(base.times.min()))


def test_bad_event_folders_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        read_events(tmp_path / "none")
    folder = write_event_folder(tmp_path / "ev", [("1", "2", 5.0), ("1", "3", 4.0)])
    (folder / "interactions.csv").write_text(
        "user_id,item_id,at,model_version,recommendation_id\n1,2,5,v,\n1,3,4,v,\n")
    with pytest.raises(DataError, match="time order"):
        read_events(folder)
    (folder / "interactions.csv").write_text("user,item\n")
    with pytest.raises(DataError, match="header"):
        read_events(folder)


def test_a_fit_on_base_plus_events_serves_the_new_users_and_items(tmp_path):
    """--events through fit and export: the bundle knows the new ids, the new user's
    profile and the new item's features, and records the events it was fitted on."""
    from bundle import load_bundle
    from training.config import resolve
    from training.export import export_run
    from training.pipeline import fit_and_save

    spec = "synthetic:users=40,items=150,interactions=800,categories=4,segments=2"
    events = write_event_folder(
        tmp_path / "ev", [("new-u", "3", 2e9), ("new-u", "fresh", 2e9 + 1),
                          ("new-u", "4", 2e9 + 2), ("7", "fresh", 2e9 + 3)],
        users={"new-u": {"segment": "1"}}, items={"fresh": {"category": "2"}})
    config = resolve({}, {"data": spec, "events": str(events), "model": "fm", "dim": 4,
                          "epochs": 1, "history": 3, "out": str(tmp_path / "run")})
    metrics = fit_and_save(config, progress=False)
    assert metrics["events"]["events"] == 4 and metrics["events"]["last_at"] == 2e9 + 3
    bundle = load_bundle(export_run(tmp_path / "run", tmp_path / "models", "m"))
    assert bundle.manifest["data"]["events"]["digest"] == metrics["events"]["digest"]
    position = bundle.users.position("new-u")
    assert position is not None
    assert bundle.users.profile(position)["segment"] == "1"
    fresh = bundle.catalog.positions(["fresh"])[0][0]
    assert bundle.catalog.details(int(fresh))["features"]["category"] == "2"
