"""Profiles to feature rows: what a user's state is computed from, and what the model ignores.

A row joins three sources: the profile the service holds for the user (stored by PUT, or the
training data's), the request's overrides of it and the request's context. They are not
trusted alike. A stored profile may have been written for another model version, so fields
this one cannot take are dropped silently (the PUT that stored them was told). Overrides and
context come from this request: a field the model cannot take is a 422 at its place in the
body, and values the model does not know are reported back as `ignored`.

A model trained with a user-id field (MovieLens' `user_id`) saw each user's own id in its
rows, so a profile that does not name that field gets the user's id, as in training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bundle import Bundle, BundleInputError, EncodedUser
from bundle import format as fmt
from bundle.history import HistoryField
from service.errors import InvalidInput

FeatureMap = Mapping[str, Any]  # field -> value or list of values, as clients send them


class ProfileEncoder:
    """Encodes profiles, overrides and context for one bundle (see the module doc)."""

    def __init__(self, bundle: Bundle):
        self._bundle = bundle
        self.history = HistoryField.of(bundle)
        history_field = self.history.field if self.history else None
        self.user_fields = tuple(f.name for f in bundle.fields
                                 if f.side != fmt.ITEM_SIDE and f.name != history_field)
        self.id_field = _id_field(bundle)

    def check(self, features: FeatureMap, where: str) -> dict[str, list[str]]:
        """Raise InvalidInput (at body.<where>.<field>) for a field the model cannot take;
        return the values it does not know, which it will ignore."""
        if self.history and self.history.field in features:
            raise InvalidInput(("body", where, self.history.field),
                               f"{self.history.field}: the user's history is what POST "
                               "/users/{user_id}/interactions records, not a feature",
                               "invalid_field")
        try:
            return self._bundle.encoder.encode(features).ignored
        except BundleInputError as err:
            raise InvalidInput(("body", where, err.field), str(err), "invalid_field") from None

    def encode(self, user_id: str | None, profile: FeatureMap,
               overrides: FeatureMap | None = None, context: FeatureMap | None = None,
               window: Sequence[str] = ()) -> EncodedUser:
        """The feature row of a stored profile, a request's overrides and its context, and
        for a model with a history field the user's window (HistoryField.window); its
        `ignored` holds the unknown values of the request's own fields only."""
        usable = {field: value for field, value in profile.items() if self._fits(field, value)}
        for where, given in (("user", overrides), ("context", context)):
            if given:
                self.check(given, where)
        implied = {}
        if user_id is not None and self.id_field and self.id_field not in usable \
                and not (overrides and self.id_field in overrides):
            implied = {self.id_field: user_id}
        row = self._bundle.encoder.encode({**implied, **usable, **(overrides or {})}, context)
        asked = {*(overrides or ()), *(context or ())}
        idx, val = self.history.apply(row.idx, row.val, window) if self.history else \
            (row.idx, row.val)
        return EncodedUser(idx, val, {f: v for f, v in row.ignored.items() if f in asked})

    def _fits(self, field: str, value: Any) -> bool:
        if self.history and field == self.history.field:
            return False
        try:
            self._bundle.encoder.encode({field: value})
        except BundleInputError:
            return False
        return True


def _id_field(bundle: Bundle) -> str | None:
    """The user-side field whose values are the users' ids, if the model has one: a
    categorical field whose vocabulary holds every training user's id."""
    ids = {str(u) for u in bundle.array(fmt.USER_IDS).tolist()}
    for field in bundle.fields:
        if field.side == fmt.USER_SIDE and field.kind == "categorical" and ids \
                and ids <= set(field.vocab):
            return field.name
    return None
