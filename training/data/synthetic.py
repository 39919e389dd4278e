"""Synthetic implicit feedback with planted structure, for tests and scale runs.

Users fall into segments whose members share a taste over item categories; an interaction draws a
category from its user's taste, then an item of that category with Zipf-like popularity. Segment
and category therefore carry signal that a side-feature model can find and random ranking cannot.
Everything is vectorized so 10M interactions over 1M items take seconds, not minutes.

Optional context fields (`context_low`, `context_high`: how many values each has) are planted
per interaction: half the time a value at home with the item's category (value v is at home with
category v mod categories), otherwise any value. A context value thus hints at the category:
coarsely for a field of few values, which GEM's graph turns into hubs, sharply for one of many.
They come from a random stream of their own, after everything else, so a spec without them
gives exactly what it gave before they existed.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from training.data.instances import Interactions
from training.data.schema import (
    FeatureSchema,
    Field,
    categorical_columns,
    concat_tables,
    context_rows,
)
from training.errors import ConfigError

DEFAULTS: dict[str, int | float] = {"users": 1000, "items": 2000, "interactions": 50000,
                                    "categories": 20, "segments": 8, "seed": 0, "skew": 1.0,
                                    "context_low": 0, "context_high": 0}
MINIMUM: dict[str, int | float] = {"users": 1, "items": 3, "interactions": 0, "categories": 1,
                                   "segments": 1, "seed": 0, "skew": 0.0, "context_low": 0,
                                   "context_high": 0}
CONTEXT_KEYS = ("context_low", "context_high")  # each the values of a context field; 0: none
CONTEXT_AT_HOME = 0.5  # share of interactions whose context value is at home with the category
CONTEXT_STREAM = 1  # the context draws' own random stream, beside the seed
PER_USER = 3  # distinct interactions every user gets: a test and a validation holdout leave one
FACTORS = 8  # rank of the user taste model
SHARPNESS = 2.0  # scale of taste logits: higher means users concentrate on fewer categories
CHUNK = 1 << 20  # interactions sampled per step, bounding the (chunk, categories) temporaries
T0 = 1_500_000_000  # first timestamp (seconds), 2017


def parse_params(params: str) -> dict[str, int | float]:
    """`users=1000,items=500,...` over the defaults; unknown keys and bad values are errors."""
    values = dict(DEFAULTS)
    for pair in filter(None, (p.strip() for p in params.split(","))):
        key, sep, text = (s.strip() for s in pair.partition("="))
        if key not in DEFAULTS:
            raise ConfigError(f"synthetic: unknown key '{key}' (valid: {', '.join(DEFAULTS)})")
        if not sep:
            raise ConfigError(f"synthetic: key '{key}' needs a value, e.g. {key}={DEFAULTS[key]}")
        values[key] = _value(key, text)
    if values["categories"] > values["items"]:
        raise ConfigError(f"synthetic: 'categories' ({values['categories']}) must not exceed "
                          f"'items' ({values['items']}), or some category would be empty")
    return values


def _value(key: str, text: str) -> int | float:
    kind = type(DEFAULTS[key])
    try:
        value = kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise ConfigError(f"synthetic: '{key}' must be {expected}, got {text!r}") from None
    if not math.isfinite(value) or value < MINIMUM[key]:
        raise ConfigError(f"synthetic: '{key}' must be at least {MINIMUM[key]}, got {text!r}")
    return value


def load_synthetic(params: str = "") -> Interactions:
    """Generate the dataset `params` describes; the same params give the same arrays."""
    p = parse_params(params)
    rng = np.random.default_rng(int(p["seed"]))
    n_users, n_items = int(p["users"]), int(p["items"])
    segment, taste_cdf = _tastes(rng, n_users, int(p["categories"]), int(p["segments"]))
    category, by_category, start = _catalog(rng, n_items, int(p["categories"]))
    users, slots = _interactions(rng, int(p["interactions"]), taste_cdf, start, float(p["skew"]))
    items = by_category[slots]
    times = T0 + np.cumsum(rng.integers(1, 60, size=len(users)))  # generation order = time order
    _, first = np.unique(users * n_items + items, return_index=True)
    keep = np.sort(first)  # drop repeated (user, item) pairs, keep the earliest
    contexts = _plant_context(np.random.default_rng([int(p["seed"]), CONTEXT_STREAM]),
                              category[items[keep]], p)
    schema = FeatureSchema.build([
        Field("user_id", "user", "categorical", _names(n_users)),
        Field("segment", "user", "categorical", _names(int(p["segments"]))),
        Field("item_id", "item", "categorical", _names(n_items)),
        Field("category", "item", "categorical", _names(int(p["categories"]))),
        *(Field(key, "context", "categorical", _names(int(p[key]))) for key in contexts)])
    f = schema.fields
    user_table = concat_tables([categorical_columns(f[0], 0, np.arange(n_users)),
                                categorical_columns(f[1], 1, segment)])
    item_table = concat_tables([categorical_columns(f[2], 2, np.arange(n_items)),
                                categorical_columns(f[3], 3, category)])
    context_table, context_of = context_rows(f[4:], list(range(4, len(f))),
                                             list(contexts.values())) if contexts else (None, None)
    canonical = ",".join(f"{k}={v}" for k, v in p.items() if k not in CONTEXT_KEYS or v)
    return Interactions(f"synthetic:{params}" if params else "synthetic", schema,
                        users[keep], items[keep], times[keep], user_table, item_table,
                        f[0].vocab, f[2].vocab, hashlib.sha256(canonical.encode()).hexdigest()[:16],
                        context_table=context_table, contexts=context_of)


def _plant_context(rng: np.random.Generator, category: np.ndarray,
                   p: dict[str, int | float]) -> dict[str, np.ndarray]:
    """Per context key asked for, each interaction's value: with probability CONTEXT_AT_HOME
    one at home with its item's category (v mod categories = the category; with fewer values
    than categories, the one value category mod values), else any value. Keyed by field name,
    in CONTEXT_KEYS order."""
    n_categories, planted = int(p["categories"]), {}
    for key in (k for k in CONTEXT_KEYS if p[k]):
        n = int(p[key])
        home = category % n
        if n > n_categories:  # several values at home with each category: pick one of them
            at_home = (n - 1 - category) // n_categories + 1
            home = category + n_categories * (rng.random(len(category)) * at_home).astype(int)
        anywhere = rng.integers(n, size=len(category))
        planted[key] = np.where(rng.random(len(category)) < CONTEXT_AT_HOME, home, anywhere)
    return planted


def _names(n: int) -> tuple[str, ...]:
    return tuple(map(str, range(n)))


def _tastes(rng: np.random.Generator, n_users: int, n_categories: int,
            n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's segment and the CDF (U, C) of its taste: softmax of a low-rank score whose
    user factor is the segment's centre plus personal noise."""
    segment = rng.integers(n_segments, size=n_users)
    centre = rng.normal(size=(n_segments, FACTORS))
    user = centre[segment] + 0.5 * rng.normal(size=(n_users, FACTORS))
    logits = user @ rng.normal(size=(FACTORS, n_categories)) * (SHARPNESS / math.sqrt(FACTORS))
    weight = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(weight, axis=1) / weight.sum(axis=1, keepdims=True)
    return segment, cdf.astype(np.float32)


def _catalog(rng: np.random.Generator, n_items: int,
             n_categories: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Category of each item (none empty); items listed by category, most popular first within
    each; and where each category's run starts in that list (C + 1 bounds)."""
    category = rng.permutation(np.arange(n_items) % n_categories)
    shuffled = rng.permutation(n_items)
    by_category = shuffled[np.argsort(category[shuffled], kind="stable")]
    start = np.searchsorted(category[by_category], np.arange(n_categories + 1))
    return category, by_category, start


def _interactions(rng: np.random.Generator, n: int, taste_cdf: np.ndarray, start: np.ndarray,
                  skew: float) -> tuple[np.ndarray, np.ndarray]:
    """Users and slots (positions in by-category order) of all interactions, in time order.

    Every user first gets PER_USER consecutive slots, which are distinct items; the rest go to
    users drawn by a log-normal activity, so a few users are heavy and most are light.
    """
    n_users, n_items = len(taste_cdf), start[-1]
    base = _draw_slots(rng, np.arange(n_users), taste_cdf, start, skew)
    base_slots = (base[:, None] + np.arange(PER_USER)) % n_items
    activity = np.cumsum(rng.lognormal(size=n_users))
    rest = max(n - PER_USER * n_users, 0)
    rest_users = np.searchsorted(activity, rng.random(rest) * activity[-1], side="right")
    rest_users = np.minimum(rest_users, n_users - 1)
    users = np.concatenate([np.repeat(np.arange(n_users), PER_USER), rest_users])
    slots = np.concatenate([base_slots.ravel(), _draw_slots(rng, rest_users, taste_cdf, start,
                                                            skew)])
    return users, slots


def _draw_slots(rng: np.random.Generator, users: np.ndarray, taste_cdf: np.ndarray,
                start: np.ndarray, skew: float) -> np.ndarray:
    """A category per interaction by inverse CDF over the user's taste, then a rank in it."""
    out = np.empty(len(users), np.int64)
    for lo in range(0, len(users), CHUNK):
        chunk = users[lo:lo + CHUNK]
        r = rng.random(len(chunk), dtype=np.float32)
        cat = np.minimum((taste_cdf[chunk] < r[:, None]).sum(axis=1), len(start) - 2)
        size = start[cat + 1] - start[cat]
        out[lo:lo + CHUNK] = start[cat] + _zipf_rank(rng.random(len(chunk)), size, skew)
    return out


def _zipf_rank(r: np.ndarray, size: np.ndarray, skew: float) -> np.ndarray:
    """Inverse CDF of the density ∝ x^-skew on [1, size + 1), floored: rank 0 is most popular."""
    top = size + 1.0
    if math.isclose(skew, 1.0):
        x = top**r
    else:
        a = 1.0 - skew
        x = (1.0 + r * (top**a - 1.0)) ** (1.0 / a)
    return np.clip(x.astype(np.int64) - 1, 0, size - 1)
