"""The `explanation` an item of /recommend and /score carries with explain=true: its score as
the exact sum of its terms (bundle/explain.py), labelled and in words (bundle/reasons.py).
docs/contract.md (Reasons) describes the fields, docs/math.md (Reasons) the terms.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class PairTerm(BaseModel):
    item_feature: str = Field(description="the item's feature, `field=value`")
    value: float = Field(description="x_j x_l φ(j, l): this pair's share of the score")
    weight: float | None = Field(None, description="GML-FM with its weight: w_jl = h·(v_j ⊙ "
                                                   "v_l); null otherwise")
    distance: float | None = Field(None, description="GML-FM: D(t_j, t_l); null for other "
                                                     "models")


class UserTerm(BaseModel):
    feature: str = Field(description="the user-side feature, `field=value` (a history item: "
                                     "its id)")
    text: str = Field(description="the term in words")
    x: float = Field(description="its value in the user's row (a history item: the window "
                                 "weight)")
    value: float = Field(description="the sum of its pairs with the item's features")
    pairs: list[PairTerm]


class FieldGroup(BaseModel):
    field: str
    side: str = Field(description="`user`, `context` or `history`")
    value: float = Field(description="the sum of its terms")
    terms: list[UserTerm] = Field(description="largest magnitude first")


class UserPart(BaseModel):
    value: float = Field(description="the user's own terms: the same for every item, so they "
                                     "never change a ranking")
    linear: float
    pairs: float


class ItemFeature(BaseModel):
    feature: str
    value: float = Field(description="x_l w_l")


class ItemPart(BaseModel):
    value: float = Field(description="the item's own terms (linear and within-item pairs): "
                                     "the same for every user")
    linear: float
    pairs: float
    features: list[ItemFeature]


class Explanation(BaseModel):
    """An item's score in terms; `available: false` with `why` for a model whose score is not
    a sum of per-feature terms."""

    available: bool
    why: str | None = Field(None, description="why there is no decomposition (available: "
                                              "false)")
    score: float | None = Field(None, description="the sum of the terms (float64), equal to "
                                                  "the item's score within 1e-5 relative")
    global_bias: float | None = Field(None, description="w0")
    user: UserPart | None = None
    item: ItemPart | None = None
    fields: list[FieldGroup] | None = Field(None, description="one group per user-side field "
                                                              "(profile, context, history), "
                                                              "largest magnitude first")
    reasons: list[str] | None = Field(None, description="the largest positive contributions "
                                                        "in words, largest first (at most 3)")
