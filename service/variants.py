"""Variants of an online experiment: which bundle answers which user.

GMLREC_VARIANTS (JSON text) or GMLREC_VARIANTS_FILE (a file holding the same JSON) names
them: a list of objects

    {"name": "control", "model": "rec", "share": 0.5}
    {"name": "deeper", "model": "rec-deep", "share": 0.5}
    {"name": "next", "model": "rec-next", "models_dir": "/srv/models", "shadow": true}

Each serving variant answers `share` of the users (the serving shares add up to 1); the
first one is the control the others are tested against (GET /admin/experiment). A shadow
variant has no share: it ranks the same requests as the variant that served them, off the
request's path, and its answer is only compared, never returned. `model` is a model name
under `models_dir` (GMLREC_MODEL and GMLREC_MODELS_DIR when left out); each variant serves
that model's newest version and reloads it by itself (service/variant_hosts.py).

Nothing set: one variant, `default`, with GMLREC_MODEL and GMLREC_MODELS_DIR: the service
as it was before variants.

A user's variant is a pure function of its id, GMLREC_EXPERIMENT (the salt) and the
configured shares, so it is the same on every request and every replica with the same
configuration, and a new experiment name shuffles users afresh (`assign`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_VARIANTS = 8  # bounds the `variant` label of every metric
DEFAULT = "default"
NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
SHARE_TOLERANCE = 1e-6
_SCALE = float(2 ** 64)


class VariantsError(ValueError):
    """GMLREC_VARIANTS (or its file) is not a usable list of variants; the message says why."""


class Variant(BaseModel):
    """One variant as configured."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME)
    model: str | None = None  # a model name under models_dir; None: GMLREC_MODEL
    models_dir: Path | None = None  # None: GMLREC_MODELS_DIR
    share: float = Field(0.0, ge=0.0, le=1.0)
    shadow: bool = False


_VARIANTS = TypeAdapter(list[Variant])


@dataclass(frozen=True)
class Split:
    """The configured variants: the serving ones with their cumulative shares, the shadows."""

    variants: tuple[Variant, ...]

    @property
    def serving(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if not v.shadow)

    @property
    def shadows(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.shadow)

    @property
    def control(self) -> Variant:
        return self.serving[0]

    def names(self) -> list[str]:
        return [v.name for v in self.variants]


def default_split(model: str | None, models_dir: Path) -> Split:
    """The one variant of a service without GMLREC_VARIANTS."""
    return Split((Variant(name=DEFAULT, model=model, models_dir=models_dir, share=1.0),))


def parse(text: str, model: str | None, models_dir: Path) -> Split:
    """The variants of GMLREC_VARIANTS' JSON, each with its model and folder filled in from
    the defaults; VariantsError if they are not a usable experiment."""
    try:
        variants = _VARIANTS.validate_python(json.loads(text))
    except json.JSONDecodeError as err:
        raise VariantsError(f"not JSON: {err.msg} at character {err.pos}") from None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise VariantsError(f"{where}: {first['msg']}") from None
    filled = tuple(v.model_copy(update={"model": v.model or model,
                                        "models_dir": v.models_dir or models_dir})
                   for v in variants)
    return Split(_checked(filled))


def _checked(variants: Sequence[Variant]) -> tuple[Variant, ...]:
    if not 1 <= len(variants) <= MAX_VARIANTS:
        raise VariantsError(f"give 1 to {MAX_VARIANTS} variants, not {len(variants)}")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise VariantsError("variant names must differ")
    for v in variants:
        if v.shadow and v.share:
            raise VariantsError(f"{v.name}: a shadow variant serves nobody: no share")
        if not v.shadow and v.share <= 0:
            raise VariantsError(f"{v.name}: a serving variant needs a share above 0")
    serving = [v for v in variants if not v.shadow]
    if not serving:
        raise VariantsError("at least one variant must serve (shadow: false)")
    total = sum(v.share for v in serving)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise VariantsError(f"the serving variants' shares add up to {total:g}, not 1")
    return tuple(variants)


def bucket(user_id: str, salt: str) -> float:
    """Where a user falls in [0, 1): the first 64 bits of SHA-256(salt, NUL, id), uniform
    over users whatever their ids look like, and unrelated between two salts."""
    digest = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(split: Split, user_id: str, salt: str) -> Variant:
    """The serving variant of a user: the one whose slice of [0, 1), in configured order,
    holds the user's bucket (the last one takes what rounding leaves)."""
    at, edge = bucket(user_id, salt), 0.0
    serving = split.serving
    for variant in serving[:-1]:
        edge += variant.share
        if at < edge:
            return variant
    return serving[-1]
