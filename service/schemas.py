"""Request and answer bodies (pydantic), with the limits every client input is held to.

The limits live in the types, so they show in the OpenAPI schema at /docs and a request
beyond them is a 422 naming the field before any work is done. Unknown body fields are
422s too (extra="forbid"): a misspelt `exclude_seen` must not pass unnoticed.

Two limits are settings (GMLREC_MAX_N, GMLREC_MAX_SCORE_ITEMS): the types mark where they
apply, and service/limits.py holds requests to them and states them in the published schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    model_serializer,
    model_validator,
)

from service.explanation_schema import Explanation
from service.limits import Limit

MAX_FIELDS = 64  # fields per feature map
MAX_VALUES = 64  # values per multi-valued field
MAX_ID = 256  # characters per id or value

# a non-empty string of printable characters (no NUL or other control characters; pydantic
# itself refuses lone surrogates, which no store or log could encode)
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=PRINTABLE)]


def _integral(value: Any) -> Any:
    """5.0 is the JSON number 5, which JSON Schema's `integer` admits (as a generated client
    may send it): taken as 5. 5.5, "5" and true stay 422s."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[StrictInt, BeforeValidator(_integral)]
Value = Annotated[Id | Integer, Field(description="a categorical value; numbers are read "
                                                 "as their decimal text")]
FeatureValue = Value | Annotated[list[Value], Field(min_length=1, max_length=MAX_VALUES)]
# pydantic publishes the key rule as patternProperties, which admits keys that do not match;
# propertyNames states the whole rule every key is held to
RequestFeatures = Annotated[dict[Id, FeatureValue], Field(
    max_length=MAX_FIELDS, json_schema_extra={
        "propertyNames": {"minLength": 1, "maxLength": MAX_ID, "pattern": PRINTABLE}})]
Ignored = Annotated[dict[str, list[str]], Field(
    description="values of the request's features the model has never seen (an FM ignores "
                "them), by field")]


def as_text(features: dict[str, Any] | None) -> dict[str, Any] | None:
    """Feature values as the model's vocabularies spell them: numbers as decimal text."""
    if features is None:
        return None
    return {f: [str(x) for x in v] if isinstance(v, list) else str(v)
            for f, v in features.items()}


class Body(BaseModel):
    # strict: a value is the type the schema says or a 422, never silently converted
    # (`"details": 0` is not false, `"n": "5"` not 5), so the published schema is the contract
    model_config = ConfigDict(extra="forbid", strict=True)


# what the validator below enforces, in the schema too (pydantic cannot derive it): user_id
# or user, not both null (`not`: not every one of them given is null)
USER_ID_OR_USER: dict[str, Any] = {"anyOf": [{"required": ["user_id"]}, {"required": ["user"]}],
                   "not": {"properties": {"user_id": {"type": "null"}, "user": {"type": "null"}}}}


class UserFeatures(Body):
    """Who to score: a known user, features of one, or both (features override the profile)."""

    user_id: Id | None = Field(None, description="a user the service knows")
    user: RequestFeatures | None = Field(None, description="user features: a cold-start "
                                                           "profile, or overrides of the "
                                                           "known user's")
    context: RequestFeatures | None = Field(None, description="context features of this request")

    @model_validator(mode="after")
    def _someone(self) -> UserFeatures:
        if self.user_id is None and self.user is None:
            raise ValueError("give user_id, user, or both")
        return self


class ProfileRequest(Body):
    features: RequestFeatures
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"features": {"gender": "F", "age": "25", "occupation": "artist"}}]})


MAX_FILTER_IDS = 10_000  # ids in a filter's item_ids or exclude_item_ids
FieldValues = Annotated[dict[Id, Annotated[list[Value], Field(min_length=1,
                                                              max_length=MAX_FILTER_IDS)]],
                        Field(max_length=MAX_FIELDS, json_schema_extra={
                            "propertyNames": {"minLength": 1, "maxLength": MAX_ID,
                                              "pattern": PRINTABLE}})]
FilterIds = Annotated[list[Id], Field(min_length=1, max_length=MAX_FILTER_IDS)]


class ItemFilter(Body):
    """Which items an answer may hold (all given parts apply): the exact top n of those."""

    include: FieldValues | None = Field(None, description="item field -> values: keep the "
                                                          "items holding one of them, in "
                                                          "every field named")
    exclude: FieldValues | None = Field(None, description="item field -> values: drop the "
                                                          "items holding any of them")
    item_ids: FilterIds | None = Field(None, description="keep only these items")
    exclude_item_ids: FilterIds | None = Field(None, description="drop these items")
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"include": {"genre": ["Comedy"]}, "exclude_item_ids": ["50"]}]})


# at most GMLREC_MAX_SCORE_ITEMS of them
ItemIds = Annotated[list[Id], Field(min_length=1,
                                    json_schema_extra=Limit.MAX_SCORE_ITEMS.mark())]


EXPLAIN = ("add each item's `explanation`: its score as the exact sum of its terms, grouped "
           "by user-side field, and its largest contributions in words")


class ScoreRequest(UserFeatures):
    item_ids: ItemIds
    details: bool = Field(False, description="add each item's display attributes")
    explain: bool = Field(False, description=EXPLAIN)
    model_config = ConfigDict(json_schema_extra={**USER_ID_OR_USER, "examples": [
        {"user_id": "196", "item_ids": ["242", "302"]},
        {"user": {"gender": "F", "age": "25", "occupation": "writer"},
         "item_ids": ["50", "181"], "details": True}]})


DIVERSITY = ("λ of maximal marginal relevance, 0 to 1: re-rank the exact top K (K = 3n, at "
             "least 50, at most 300, never below n) trading each item's score against its "
             "similarity to those above it; 0 (the default) is the plain top n")
Diversity = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, description=DIVERSITY)]


class RecommendRequest(UserFeatures):
    n: Integer = Field(10, ge=1, json_schema_extra=Limit.MAX_N.mark())
    exclude_seen: bool = Field(True, description="leave out the known user's interactions")
    details: bool = False
    explain: bool = Field(False, description=EXPLAIN)
    filter: ItemFilter | None = Field(None, description="answer only items that pass")
    diversity: Diversity = 0.0
    model_config = ConfigDict(json_schema_extra={**USER_ID_OR_USER, "examples": [
        {"user": {"gender": "M", "age": "35", "occupation": "engineer"}, "n": 5},
        {"user_id": "196", "n": 5, "filter": {"include": {"genre": ["Comedy"]}}}]})


# the largest `at`: unix seconds, so a time in milliseconds (13 digits) is a 422, not a date
# three centuries ahead
MAX_AT = 10_000_000_000
RECOMMENDATION_ID = r"^[0-9a-f]{32}$"
RecommendationId = Annotated[str, Field(pattern=RECOMMENDATION_ID, min_length=32, max_length=32,
                                        description="the `recommendation_id` of a /recommend "
                                                    "answer to this user",
                                        examples=["3f2b8c1e9d4a4f6b8e0c7a5d1b2e3f40"])]


class SimilarRequest(Body):
    n: Integer = Field(10, ge=1, json_schema_extra=Limit.MAX_N.mark())
    details: bool = False
    filter: ItemFilter | None = Field(None, description="answer only items that pass")
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"n": 5, "filter": {"include": {"genre": ["Comedy"]}}}]})


class InteractionsRequest(Body):
    item_ids: ItemIds
    at: float | None = Field(None, ge=0, le=MAX_AT, allow_inf_nan=False,
                             description="when the user interacted, unix seconds: the event "
                                         "log's time for these items; the server's clock "
                                         "when absent or later than it (a client's clock "
                                         "ahead of the server's is taken as the server's)")
    recommendation_id: Id | None = Field(
        None, description="the `recommendation_id` of the answer these items were picked "
                          "from: kept in the event log, and its items among them are credited "
                          "to it (without one, each to the user's most recent answer holding "
                          "it, within GMLREC_ATTRIBUTION_WINDOW); an id of no answer kept "
                          "credits nothing")
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"item_ids": ["50", "172"]},
        {"item_ids": ["50"], "at": 1733539200.5,
         "recommendation_id": "3f2b8c1e9d4a4f6b8e0c7a5d1b2e3f40"}]})


class ImpressionsRequest(Body):
    recommendation_id: RecommendationId
    item_ids: ItemIds = Field(description="the answer's items the user was shown")
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"recommendation_id": "3f2b8c1e9d4a4f6b8e0c7a5d1b2e3f40", "item_ids": ["50", "172"]}]})


MAX_DISPLAY = 32  # display attributes per added item
MAX_DISPLAY_TEXT = 4096  # characters per display attribute
# answers' own keys, which an item's display attributes stand beside (GET /items/{id}, each
# item of /score and /recommend)
ITEM_KEYS = ("model_version", "item_id", "features", "source", "ignored", "score",
             "explanation")
DisplayText = Annotated[str, Field(max_length=MAX_DISPLAY_TEXT, pattern=r"^[^\x00-\x1f\x7f]*$")]
Display = Annotated[dict[Id, DisplayText], Field(max_length=MAX_DISPLAY, json_schema_extra={
    "propertyNames": {"minLength": 1, "maxLength": MAX_ID, "pattern": PRINTABLE,
                      "not": {"enum": list(ITEM_KEYS)}}})]


class ItemRequest(Body):
    features: RequestFeatures = Field(description="item field -> value(s): any item-side field "
                                                  "of the served model but the one holding "
                                                  "items' own ids (the path names the item)")
    display: Display = Field(default_factory=dict,
                             description="what answers show beside the item (title, ...), as "
                                         "given; not scored")
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"features": {"genre": ["Drama", "War"], "category": "c1"},
         "display": {"title": "A film added today"}}]})


class ItemScore(BaseModel):
    """An item, its score and its title (where the catalog has titles); with details=true
    every display attribute (title, year, genres, ...)."""

    model_config = ConfigDict(extra="allow")
    item_id: str
    score: float
    explanation: Explanation | None = Field(None, description="with explain=true only")

    # no return annotation: pydantic would publish it as the item's serialization schema
    # (`dict[str, Any]` hides every property) instead of the model's own
    @model_serializer(mode="wrap")
    def _explained_only(self, handler: SerializerFunctionWrapHandler):
        """An answer without explain=true has no `explanation` key at all: unchanged."""
        data = handler(self)
        if data.get("explanation", True) is None:
            del data["explanation"]
        return data


class Answer(BaseModel):
    # `model_version` is the API's name; pydantic < 2.10 reserves the `model_` prefix and
    # would warn at import (on stderr, amid the JSON logs) without this
    model_config = ConfigDict(protected_namespaces=())
    model_version: str = Field(description="the bundle version that computed the answer")


# where the user a /score or /recommend answer scored came from (GET /users/{id} calls the
# first two its `source`)
UserSource = Literal["stored", "training", "unknown", "anonymous"]
SourceOfUser = Annotated[UserSource, Field(description=(
    "where the user's profile came from: `stored` (a PUT wrote it), `training` (the model's "
    "training data), `unknown` (an id with neither, answered from an empty profile: the "
    "model's item-side terms alone; GMLREC_UNKNOWN_USERS=cold), `anonymous` (no user_id: the "
    "request's `user` features)"))]


class ScoreAnswer(Answer):
    user_id: str | None
    user_source: SourceOfUser
    scores: list[ItemScore] = Field(description="in request order")
    ignored: Ignored


ILS = ("the mean similarity of the answer's items over their pairs, under the model's "
       "item-to-item pair measure (the one diversity uses; in the model's own units, so compare "
       "it within one model); null for fewer than two items, or a bundle exported before "
       "added items")


class RecommendAnswer(Answer):
    user_id: str | None
    user_source: SourceOfUser
    items: list[ItemScore] = Field(description="best first, ranked over the whole catalog: "
                                               "the bundle's items and the added ones, less "
                                               "the retired")
    ignored: Ignored
    recommendation_id: str = Field(pattern=RECOMMENDATION_ID,
                                   description="this answer's id: give it with the "
                                               "impressions and interactions it leads to")
    variant: str = Field(description="the experiment's variant that made the answer "
                                     "(GMLREC_VARIANTS; `default` without one)")
    intra_list_similarity: float | None = Field(description=ILS)


class SimilarAnswer(Answer):
    item_id: str = Field(description="the item the others are similar to")
    measure: Literal["history", "pairs"] = Field(description=(
        "`history`: each item's score for an empty profile whose history window holds this "
        "one item (a model with a history field that knows the item); `pairs`: the model's "
        "pair term between the two items' features"))
    items: list[ItemScore] = Field(description="most similar first, over the whole catalog "
                                               "less the item itself and the retired; `score` "
                                               "is the measure's")
    ignored: Ignored


class ProfileAnswer(Answer):
    user_id: str
    features: dict[str, Any]
    ignored: Ignored


class InteractionsAnswer(Answer):
    user_id: str
    recorded: int = Field(description="distinct item ids in this request")


Source = Literal["bundle", "added"]
SOURCE = ("`bundle`: the served bundle holds the item, and its features score it; `added`: "
          "PUT /items/{item_id} added it")


class ItemAnswer(Answer):
    """An item's features and, beside them, its display attributes (title, year, ...)."""

    model_config = ConfigDict(extra="allow")
    item_id: str
    features: dict[str, Any]
    source: Source = Field(description=SOURCE)


class ItemPutAnswer(ItemAnswer):
    """The item as stored: its features and display attributes as PUT gave them."""

    ignored: Ignored


class ListedItem(BaseModel):
    item_id: str
    source: Source = Field(description=SOURCE)


class ItemsAnswer(Answer):
    items: list[ListedItem] = Field(description="the bundle's items in catalog order, then the "
                                                "added ones in the order they were first added; "
                                                "retired items left out")
    next_cursor: str | None = Field(description="the `cursor` of the next page; null on the "
                                                "last page")


class HealthAnswer(BaseModel):
    status: Literal["ok"]


class ReadyAnswer(BaseModel):
    model_config = ConfigDict(protected_namespaces=())  # as Answer's
    status: Literal["ready", "degraded", "not_ready"]
    model_version: str | None
    store: Literal["redis", "memory"]
    detail: str | None = None


class FieldAnswer(BaseModel):
    """A feature field and (the start of) its vocabulary: what a profile, a context or an
    item can say in it."""

    name: str
    side: Literal["user", "item", "context"]
    kind: Literal["categorical", "multihot", "numeric"]
    size: int = Field(description="how many values the model knows")
    values: list[str] = Field(description="the first `values` of them, in vocabulary order; "
                                          "all of them when the list is as long as `size`; "
                                          "none for a field of ids (users', items', a "
                                          "history's), which are not listed")


class ModelAnswer(Answer):
    name: str
    kind: str
    created_at: str | None
    items: int
    users: int
    user_fields: list[str]
    id_field: str | None = Field(description="the user field holding each user's own id; a "
                                             "profile without it gets the user's id")
    fields: list[FieldAnswer]
    metrics: dict[str, Any]


class UsersAnswer(Answer):
    total: int = Field(description="users of the model's training data")
    user_ids: list[str] = Field(description="training order without a prefix; text order of "
                                            "the ids that start with it otherwise")


class UserAnswer(Answer):
    user_id: str
    features: dict[str, Any]
    source: Literal["stored", "training"] = Field(
        description="`stored`: a profile PUT wrote; `training`: the model's training data")
    history: list[str] = Field(description="item ids recorded by POST /users/{id}/interactions,"
                                           " oldest first, the last GMLREC_HISTORY_CAP of them")


class ReloadAnswer(Answer):
    previous_version: str | None
    changed: bool
    others_told: bool = Field(description="whether the other workers and replicas were told "
                                          "to reload (through the user store)")


class ImpressionsAnswer(BaseModel):
    user_id: str
    recommendation_id: str
    variant: str = Field(description="the variant that made the answer")
    first: bool = Field(description="whether this was the answer's first impression (the one "
                                    "counted)")
    shown: int = Field(description="distinct ids of the request among the answer's items")


class Interval(BaseModel):
    low: float
    high: float


class Comparison(BaseModel):
    """A variant's hit rate against the control's: the two-proportion z test."""

    z: float
    p_value: float = Field(description="two-sided")
    n: int = Field(description="this variant's impressions")
    n_control: int = Field(description="the control's impressions")


class VariantReport(BaseModel):
    model_config = ConfigDict(protected_namespaces=())  # as Answer's
    name: str
    shadow: bool
    share: float
    model_version: str | None = Field(description="the version it serves now")
    users: int = Field(description="distinct users answered (approximate: HyperLogLog in "
                                   "Redis)")
    answers: int
    impressions: int = Field(description="answers reported shown, each once")
    hits: int = Field(description="impressed answers credited with an interaction, each once")
    attributed: int = Field(description="interacted items credited to the variant's answers")
    hit_rate: float | None = Field(description="hits / impressions; null without impressions")
    interval: Interval | None = Field(description="the hit rate's 95% Wilson interval")
    vs_control: Comparison | None = Field(description="null for the control, a shadow, or "
                                                      "without impressions on either side")
    shadow_answers: int = Field(description="a shadow's rankings compared")
    mean_overlap: float | None = Field(description="a shadow's mean overlap@n with the "
                                                   "served answers")


class ExperimentAnswer(BaseModel):
    experiment: str = Field(description="GMLREC_EXPERIMENT")
    control: str
    attribution_window_s: int
    variants: list[VariantReport]
