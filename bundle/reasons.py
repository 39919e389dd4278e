"""An item's terms (bundle/explain.py) as a person reads them: grouped by the user-side field
they come from, sorted by size, each named by its field and value, and the largest positive
ones said in words ("because you watched The Lantern", "popular with occupation: writer").

Nothing here computes a score: it only labels and orders the exact terms, so what the words
name is what moved the score. A term is named by the bundle's own vocabularies and titles:
a profile or context column by `field: value`, a history column by the title of the item it
holds, the user's own id column as the user's own taste, the item's own terms as its
popularity (they are the same for every user).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.explain import Terms
from bundle.fields import FieldInfo
from bundle.loaded import Bundle

REASONS = 3  # phrases per item: its largest positive contributions
HISTORY = "history"  # the side a history field's terms are grouped under


class Describer:
    """Labels one bundle's terms (see the module doc)."""

    def __init__(self, bundle: Bundle, user_id_field: str | None = None):
        """`user_id_field`: the user field holding each user's own id, whose term is the
        user's own taste rather than a feature shared with others."""
        self.fields, self.catalog = bundle.fields, bundle.catalog
        self.user_columns, self.item_columns = bundle.user_columns, bundle.item_columns
        self.user_id_field = user_id_field
        self.item_id_field = bundle.manifest.get(fmt.ITEM_ID_FIELD)
        history = bundle.manifest.get("history")
        self.history_field = history["field"] if history else None
        # the data spec names the dataset (movielens-100k, synthetic:..., libfm:PATH)
        dataset = str(bundle.manifest.get("data", {}).get("spec", ""))
        self.verb = "watched" if dataset.lower().startswith("movielens") else "chose"
        self.titled = "title" in self.catalog.display_names

    def describe(self, terms: Terms, user_idx: np.ndarray, user_val: np.ndarray,
                 item_idx: np.ndarray, item_val: np.ndarray) -> list[dict[str, Any]]:
        """Each item of `terms`, whose rows are user_idx/user_val (R,) and item_idx/item_val
        (A, W_i), as the explanation an answer carries (docs/contract.md, Reasons). The user
        row's labels are made once for all the items."""
        user = [(j, *self._user_label(self.user_columns[j], i), x)
                for j, (i, x) in enumerate(zip(user_idx.tolist(), user_val.tolist())) if x]
        cross = terms.cross.tolist()
        weight = None if terms.weight is None else terms.weight.tolist()
        distance = None if terms.distance is None else terms.distance.tolist()
        values = terms.cross.sum(2).tolist()  # (A, R)
        totals, item_pairs = terms.total.tolist(), terms.item_pairs.tolist()
        item_linear = terms.item_linear.tolist()
        own = {"value": terms.user_linear + terms.user_pairs, "linear": terms.user_linear,
               "pairs": terms.user_pairs}
        answers = []
        for a, (idx, val) in enumerate(zip(item_idx.tolist(), item_val.tolist())):
            features = [(c, self._label(self.item_columns[c], i))
                        for c, (i, x) in enumerate(zip(idx, val)) if x]
            groups: dict[str, dict[str, Any]] = {}
            for j, name, feature, text, side, x in user:
                pairs = []
                for c, label in features:
                    pair: dict[str, Any] = {"item_feature": label, "value": cross[a][j][c]}
                    if weight is not None:
                        pair["weight"] = weight[a][j][c]
                    if distance is not None:
                        pair["distance"] = distance[a][j][c]
                    pairs.append(pair)
                term = {"feature": feature, "text": text, "x": x, "value": values[a][j],
                        "pairs": pairs}
                group = groups.setdefault(name, {"field": name, "side": side, "value": 0.0,
                                                 "terms": []})
                group["value"] += term["value"]
                group["terms"].append(term)
            for group in groups.values():
                group["terms"].sort(key=lambda t: -abs(t["value"]))
            linear = sum(item_linear[a])
            item = {"value": linear + item_pairs[a], "linear": linear, "pairs": item_pairs[a],
                    "features": [{"feature": label, "value": item_linear[a][c]}
                                 for c, label in features]}
            answers.append({"available": True, "score": totals[a],
                            "global_bias": terms.global_, "user": own, "item": item,
                            "fields": sorted(groups.values(), key=lambda g: -abs(g["value"])),
                            "reasons": self._reasons(groups.values(), item["value"])})
        return answers

    def _user_label(self, name: str, index: int) -> tuple[str, str, str, str]:
        """A user column's field name, `field=value`, words and side."""
        field = self.fields.named(name)
        assert field is not None
        value = self._value(field, index)
        return name, f"{name}={value}", self._phrase(field, value), self._side(field)

    def _reasons(self, groups: Any, item_value: float) -> list[str]:
        """The REASONS largest positive contributions that differ between items, in words."""
        said = [(t["value"], t["text"]) for g in groups for t in g["terms"]]
        said.append((item_value, "popular overall"))
        return [text for value, text in sorted(said, key=lambda p: -p[0])[:REASONS]
                if value > 0]

    def _side(self, field: FieldInfo) -> str:
        return HISTORY if field.name == self.history_field else field.side

    @staticmethod
    def _value(field: FieldInfo, index: int) -> str:
        code = index - field.offset
        return str(field.vocab[code]) if 0 <= code < len(field.vocab) else field.name

    def _label(self, name: str, index: int) -> str:
        field = self.fields.named(name)
        assert field is not None
        return f"{name}={self._value(field, index)}"

    def _title(self, item_id: str) -> str:
        """An item's title where the catalog has titles, else its id."""
        position = int(self.catalog.index_of([item_id])[0])
        if not self.titled or position < 0:
            return item_id
        return self.catalog.display(position, ["title"])["title"]

    def _phrase(self, field: FieldInfo, value: str) -> str:
        if field.name == self.history_field:
            return f"because you {self.verb} {self._title(value)}"
        if field.name == self.user_id_field:
            return "close to your own taste"
        if field.side == fmt.USER_SIDE:
            return f"popular with {field.name}: {value}"
        return f"suits {field.name}: {value}"
