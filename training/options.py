"""Options declared once, beside the code that uses them, and checked once, when made.

Each group of options (a model's, GEM's, the training loop's, the run's) is a frozen dataclass
whose fields are made with `option(...)`: a default, a help line, and the valid values (a
`Literal` type, or a numeric range). The CLI's flags, its help and the TOML keys are generated
from these declarations, so a new option is written in one place. A bad value raises
ConfigError naming the flag and what it accepts.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Self

from training.errors import ConfigError


@dataclass(frozen=True)
class Bounds:
    """A numeric range; `below` excludes its end, `above` excludes its start."""

    low: float = -math.inf
    high: float = math.inf
    above: bool = False
    below: bool = False

    def admits(self, value: float) -> bool:
        low_ok = value > self.low if self.above else value >= self.low
        high_ok = value < self.high if self.below else value <= self.high
        return low_ok and high_ok

    def describe(self) -> str:
        parts = []
        if self.low > -math.inf:
            parts.append(f"{'>' if self.above else '≥'} {self.low:g}")
        if self.high < math.inf:
            parts.append(f"{'<' if self.below else '≤'} {self.high:g}")
        return " and ".join(parts)


def option(default: Any, help: str, bounds: Bounds | None = None) -> Any:
    """A dataclass field carrying its help line and, for numbers, its valid range."""
    return dataclasses.field(default=default, metadata={"help": help, "bounds": bounds})


@dataclass(frozen=True)
class Spec:
    """One option as the CLI and the TOML reader see it."""

    name: str
    kind: type  # int, float, str or bool
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    bounds: Bounds | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def accepts(self) -> str:
        """What a valid value looks like, for error messages."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        noun = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        extra = f" {self.bounds.describe()}" if self.bounds else ""
        return noun[self.kind] + extra

    def coerce(self, value: Any) -> Any:
        """The value as this option's type; a string from a flag is parsed."""
        if isinstance(value, str) and self.kind in (int, float):
            try:
                value = self.kind(value)
            except ValueError:
                raise self.invalid(value) from None
        if (self.kind is bool) != isinstance(value, bool) or \
                (self.kind is int and not isinstance(value, int)) or \
                (self.kind is float and not isinstance(value, int | float)) or \
                (self.kind is str and not isinstance(value, str)):
            raise self.invalid(value)
        value = self.kind(value)
        if self.choices and value not in self.choices or \
                self.bounds and not self.bounds.admits(value):
            raise self.invalid(value)
        return value

    def invalid(self, value: Any) -> ConfigError:
        return ConfigError(f"invalid value for {self.flag}: {value!r} (expects {self.accepts()})")


def specs(group: type) -> Iterator[Spec]:
    """The options of a dataclass group, in declaration order."""
    hints = typing.get_type_hints(group)
    for field in dataclasses.fields(group):
        kind, choices = hints[field.name], ()
        if typing.get_origin(kind) is Literal:
            choices = typing.get_args(kind)
            kind = type(choices[0])
        yield Spec(field.name, kind, field.default, field.metadata["help"], choices,
                   field.metadata.get("bounds"))


class Options:
    """Base of option groups: construction from loose values checks every field."""

    @classmethod
    def make(cls, values: dict[str, Any]) -> Self:
        """The group from (name, value) pairs, each coerced and checked; missing ones default.
        An unknown name is the caller's to report: it is not in `names()`."""
        checked = {s.name: s.coerce(values[s.name]) for s in specs(cls) if s.name in values}
        return cls(**checked)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]
