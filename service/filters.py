"""Business filters on POST /recommend: which items of the request's catalog an answer may hold.

`include` keeps the items that hold, in every field it names, one of the values listed;
`exclude` drops the items that hold any listed value; `item_ids` keeps only those items and
`exclude_item_ids` drops those. The catalog is the union of the bundle's items and the added
ones, less the retired (service/union_catalog.py), so a filter selects added items as it does
the bundle's. The answer is then the exact top n of the items that pass, seen items left out
as usual (service/union_top.py). A filter naming a field that is not an item field is a 422
at its place; values and ids the catalog does not know (or has retired) are listed under
`ignored`, as unknown feature values are. docs/contract.md has the body's shape.

Few items passing is the common case ("only what is in stock: these ids"), so ranking scores
only them when they are at most DIRECT_SHARE of the catalog, instead of the whole catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundle import BundleInputError
from service.errors import InvalidInput
from service.union_catalog import UnionCatalog

DIRECT_SHARE = 0.05  # at most this share of the catalog passing: score those items only


@dataclass(frozen=True)
class Passing:
    mask: np.ndarray  # (size,) bool over union positions: the items a filter lets through
    ignored: dict[str, list[str]]  # values and ids the catalog does not know


def passing(catalog: UnionCatalog, include: dict[str, list[str]] | None,
            exclude: dict[str, list[str]] | None, item_ids: list[str] | None,
            exclude_item_ids: list[str] | None) -> Passing:
    mask = catalog.available()
    ignored: dict[str, list[str]] = {}
    for where, fields, keep in (("include", include, True), ("exclude", exclude, False)):
        for field, values in (fields or {}).items():
            try:
                held, unknown = catalog.items_with(field, tuple(values))
            except BundleInputError as err:
                raise InvalidInput(("body", "filter", where, field), str(err),
                                   "invalid_field") from None
            mask &= held if keep else ~held
            if unknown:
                ignored.setdefault(field, []).extend(unknown)
    for where, ids, keep in (("item_ids", item_ids, True),
                             ("exclude_item_ids", exclude_item_ids, False)):
        if ids is None:
            continue
        positions, unknown = catalog.positions(ids)
        if keep:
            only = np.zeros(catalog.size, bool)
            only[positions] = True
            mask &= only
        else:
            mask[positions] = False
        if unknown:
            ignored[where] = unknown
    return Passing(mask, ignored)
