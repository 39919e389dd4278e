"""The union catalog's views: a new overlay version encodes only its new and changed items and
holds what a build from nothing holds; a model version keeps few views and builds each once;
an item's fields the model cannot take are dropped; a bundle exported before added items
serves none of them, and still leaves the retired ones out."""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from bundle import AddedItems, load_bundle
from service.catalog import Catalog
from service.overlay import AddedItem, Overlay
from service.union_catalog import VIEWS_KEPT, UnionCatalog, UnionViews


class Counting(AddedItems):
    """AddedItems that counts the items it encodes."""

    encoded = 0

    def encode(self, features: Any, item_id: str | None = None):
        self.encoded += 1
        return super().encode(features, item_id)


@pytest.fixture(scope="module")
def bundle(gmlfm):
    return load_bundle(gmlfm.bundle)


def overlay(version: int, items: list[AddedItem], retired: set[str] = frozenset()) -> Overlay:
    return Overlay(version, MappingProxyType({i.item_id: i for i in items}), frozenset(retired))


def items(count: int, start: int = 0) -> list[AddedItem]:
    return [AddedItem(f"a{k}", {"category": str(k % 5)}, {"title": f"A{k}"})
            for k in range(start, start + count)]


def same_view(got: UnionCatalog, want: UnionCatalog) -> None:
    assert got.ids.tolist() == want.ids.tolist()
    np.testing.assert_array_equal(got.idx, want.idx)
    np.testing.assert_array_equal(got.val, want.val)
    assert got.parts is not None and want.parts is not None
    for name in want.parts:
        np.testing.assert_allclose(got.parts[name], want.parts[name], rtol=1e-6, atol=1e-7)


def test_a_new_version_encodes_only_what_changed(bundle):
    catalog, added = Catalog(bundle), Counting(bundle)
    first = UnionCatalog(catalog, added, overlay(1, items(30)))
    assert added.encoded == 30 and first.added_count == 30
    changed = AddedItem("a4", {"category": "1"}, {"title": "A4, moved"})
    later = [changed if i.item_id == "a4" else i for i in items(30)] + items(1, start=30)
    second_overlay = overlay(2, later, {"a7", str(catalog.ids[3])})
    second = UnionCatalog(catalog, added, second_overlay, first)
    assert added.encoded == 30 + 2  # a4 changed, a30 new; a7 retired, the rest reused
    same_view(second, UnionCatalog(catalog, AddedItems(bundle), second_overlay))
    assert second.ids.tolist() == [i.item_id for i in later if i.item_id != "a7"]
    assert second.retired.tolist() == [3]
    assert second.display(second.bundle_size + 4) == {"title": "A4, moved"}
    # a record that only shows differently keeps its row
    shown = [AddedItem(i.item_id, i.features, {"title": "renamed"}) for i in later]
    third = UnionCatalog(catalog, added, overlay(3, shown), second)
    assert added.encoded == 32 + 1  # a7, back from retirement: encoded again
    assert third.display(third.bundle_size) == {"title": "renamed"}


@pytest.mark.anyio
async def test_a_model_version_keeps_its_last_views_and_builds_each_once(bundle):
    added = Counting(bundle)
    views = UnionViews(Catalog(bundle), added)
    first = overlay(1, items(10))
    built = await asyncio.gather(*(views.of(first) for _ in range(5)))
    assert all(view is built[0] for view in built) and added.encoded == 10
    for version in range(2, 2 + VIEWS_KEPT + 1):
        await views.of(overlay(version, items(9 + version)))
    assert added.encoded == 10 + VIEWS_KEPT + 1  # one new item a version
    assert len(views._views) == VIEWS_KEPT and 1 not in views._views


def test_fields_the_model_cannot_take_are_dropped(bundle):
    catalog = Catalog(bundle)
    kept = AddedItem("odd", {"category": "2", "colour": "red"})
    too_many = AddedItem("odder", {"category": ["1", "2"], "colour": "blue"})
    view = UnionCatalog(catalog, AddedItems(bundle), overlay(1, [kept, too_many]))
    plain = AddedItems(bundle)
    np.testing.assert_array_equal(view.idx[0], plain.encode({"category": "2"}, "odd").idx)
    np.testing.assert_array_equal(view.idx[1], plain.encode({}, "odder").idx)


def test_filters_find_added_items_by_their_values_new_ones_too(bundle):
    catalog = Catalog(bundle)
    brand_new = AddedItem("n1", {"category": "a brand-new category"})
    view = UnionCatalog(catalog, AddedItems(bundle), overlay(1, [*items(5), brand_new]))
    mask, unknown = view.items_with("category", ["2", "a brand-new category", "nowhere"])
    bundle_mask, _ = catalog.items_with("category", ("2",))
    np.testing.assert_array_equal(mask[:view.bundle_size], bundle_mask)
    assert np.flatnonzero(mask[view.bundle_size:]).tolist() == [2, 5]
    assert unknown == ["nowhere"]
    by_id, _ = view.items_with("item_id", ["a3", str(catalog.ids[0])])
    assert np.flatnonzero(by_id).tolist() == [0, view.bundle_size + 3]


def test_a_bundle_without_item_features_serves_no_added_item(bundle):
    catalog = Catalog(bundle)
    view = UnionCatalog(catalog, None, overlay(1, items(3), {str(catalog.ids[5])}))
    assert view.added_count == 0 and view.size == catalog.size
    positions, unknown = view.positions(["a0", str(catalog.ids[5]), str(catalog.ids[6])])
    assert positions.tolist() == [6] and unknown == ["a0", str(catalog.ids[5])]
    assert not view.available()[5] and view.available().sum() == catalog.size - 1
