"""What the history field asks for: its window size, its weighting and its place in the schema.

Apart from the windows (training/data/history.py) so that a dataset (training/data/instances.py)
can say it carries the field without importing what builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bundle.history import Weighting

FIELD = "history"


@dataclass(frozen=True)
class HistorySpec:
    """What `--history N --history-weight W` asks for, and where the field sits in the schema."""

    size: int  # N: the most items a window holds
    weight: Weighting
    position: int  # the history field's position in the schema

    def describe(self) -> str:
        share = "1/√m" if self.weight == "sqrt" else "1/m"
        return (f"field '{FIELD}': each instance's last m ≤ {self.size} earlier interactions of "
                f"its user, each weighing {share}")
