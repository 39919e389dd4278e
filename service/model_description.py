"""What the served version tells clients of itself: GET /model, the fields a request may name.

The fields are what the published schema states of feature maps (service/model_schema.py).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from bundle import Bundle
from bundle import format as fmt
from service.profiles import ProfileEncoder


class ModelDescription:
    """One bundle version, described."""

    def __init__(self, bundle: Bundle, profiles: ProfileEncoder):
        self._bundle, self._profiles = bundle, profiles

    def of(self, values: int) -> dict[str, Any]:
        """What GET /model tells: the model, its catalog, and each field with up to `values`
        of its vocabulary (enough for a client to build a profile form)."""
        bundle, manifest = self._bundle, self._bundle.manifest
        fields = [{"name": f.name, "side": f.side, "kind": f.kind, "size": len(f.vocab),
                   "values": [] if f.name in self._id_fields else
                   [str(v) for v in f.vocab[:values]]} for f in bundle.fields]
        return {"name": bundle.name, "version": bundle.version,
                "kind": manifest["model"]["kind"], "created_at": manifest.get("created_at"),
                "items": len(bundle.catalog), "users": len(bundle.users),
                "user_fields": list(self._profiles.user_fields),
                "id_field": self._profiles.id_field, "fields": fields,
                "metrics": manifest.get("metrics", {})}

    def request_fields(self) -> tuple[dict[str, int], tuple[str, ...]]:
        """The user-side fields a request may name, each with the most values it takes (one
        per column of the user row), and the item fields a filter may name: what the
        published schema says of feature maps while this version serves
        (service/model_schema.py)."""
        columns = self._bundle.user_columns
        user = {name: columns.count(name) for name in self._profiles.user_fields}
        return user, tuple(f.name for f in self._bundle.fields if f.side == fmt.ITEM_SIDE)

    def item_fields(self) -> dict[str, int]:
        """The item fields PUT /items/{item_id} may name, each with the most values it takes
        (one per column of the item row): every item field but the one holding the items'
        own ids, which the path names."""
        columns = self._bundle.item_columns
        id_field = self._bundle.manifest.get(fmt.ITEM_ID_FIELD)
        return {f.name: columns.count(f.name) for f in self._bundle.fields
                if f.side == fmt.ITEM_SIDE and f.name != id_field}

    @functools.cached_property
    def _id_fields(self) -> frozenset[str]:
        """Fields whose values are ids (the users', the catalog's, a history of item ids):
        GET /model lists none of them, so a read key cannot enumerate who the users are."""
        profiles, bundle = self._profiles, self._bundle
        names = {profiles.id_field} if profiles.id_field else set()
        if profiles.history:
            names.add(profiles.history.field)
        for field in bundle.fields:
            if field.kind == "categorical" and len(field.vocab) == len(bundle.catalog) \
                    and np.array_equal(np.asarray(field.vocab, dtype=str), bundle.catalog.ids):
                names.add(field.name)
        return frozenset(names)
