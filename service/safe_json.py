"""JSON answers that any text a client sent can be written into."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


class SafeJSONResponse(JSONResponse):
    """JSON that survives any str a client managed to send (a lone surrogate in an echoed
    value would make the UTF-8 encoder raise): escape to ASCII only when it must."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False,
                              separators=(",", ":")).encode("ascii")
