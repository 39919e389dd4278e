"""Business filters on POST /recommend: which catalog items an answer may hold.

`include` keeps the items that hold, in every field it names, one of the values listed;
`exclude` drops the items that hold any listed value; `item_ids` keeps only those items and
`exclude_item_ids` drops those. The answer is then the exact top n of the items that pass,
seen items left out as usual. A filter naming a field that is not an item field is a 422 at
its place; values and ids the catalog does not know are listed under `ignored`, as unknown
feature values are. docs/contract.md has the body's shape.

Few items passing is the common case ("only what is in stock: these ids"), so ranking scores
only them when they are at most DIRECT_SHARE of the catalog, instead of the whole catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundle import BundleInputError
from service.errors import InvalidInput
from service.served_model import ServedModel

DIRECT_SHARE = 0.05  # at most this share of the catalog passing: score those items only


@dataclass(frozen=True)
class Passing:
    mask: np.ndarray  # (N,) bool: the items a filter lets through
    ignored: dict[str, list[str]]  # values and ids the catalog does not know


def passing(model: ServedModel, include: dict[str, list[str]] | None,
            exclude: dict[str, list[str]] | None, item_ids: list[str] | None,
            exclude_item_ids: list[str] | None) -> Passing:
    mask = np.ones(model.catalog.size, bool)
    ignored: dict[str, list[str]] = {}
    for where, fields, keep in (("include", include, True), ("exclude", exclude, False)):
        for field, values in (fields or {}).items():
            try:
                held, unknown = model.catalog.items_with(field, tuple(values))
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
        positions, unknown = model.catalog.positions(ids)
        if keep:
            only = np.zeros(model.catalog.size, bool)
            only[positions] = True
            mask &= only
        else:
            mask[positions] = False
        if unknown:
            ignored[where] = unknown
    return Passing(mask, ignored)


def best_of(model: ServedModel, state: np.ndarray, candidates: np.ndarray, n: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """The n best of `candidates` (catalog positions) for one state, best first; ties go to
    the lower position, as the whole-catalog top n breaks them."""
    if len(candidates) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores = model.score(state, candidates)
    order = np.lexsort((candidates, -scores))[:n]
    return candidates[order], scores[order]
