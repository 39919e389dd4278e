"""GET /: the explorer page; its script and style are served under /explorer/.

Plain files of the package (service/static), no build step and nothing fetched from
elsewhere: the page talks to the public API only, like any other client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service.access import OPEN

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(include_in_schema=False)


@router.get("/", dependencies=[OPEN])
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


def mount_files(app: FastAPI) -> None:
    app.mount("/explorer", StaticFiles(directory=STATIC), name="explorer")
