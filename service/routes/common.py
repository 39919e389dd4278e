"""What several routes share: the id path parameter, the 404 description, item answers."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import Path

from service.model_host import ServedModel
from service.schemas import MAX_ID, PRINTABLE, ItemScore

# ids sit in the path as one segment, or several: `{user_id}` lets an id hold a '/'
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=PRINTABLE,
                             examples=["196"])]
NOT_FOUND = {404: {"description": "unknown user or item ids, named in `detail`"}}


def scored_items(model: ServedModel, positions: np.ndarray, scores: np.ndarray,
                 details: bool) -> list[ItemScore]:
    """Items with their scores, in the given order; with details, display attributes too."""
    return [ItemScore(item_id=model.item_ids[p], score=float(s),
                      **(model.display(p) if details else {}))
            for p, s in zip(positions.tolist(), scores.tolist())]
