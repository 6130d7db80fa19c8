"""The web console: ``/`` redirects to ``/console/``; the page and its scripts are static files (no CDN).

Everything the console needs ships in ``gridcity/static`` (plain JavaScript, CSS and SVG/canvas drawing), so
it works on a machine without internet access. The page talks to the JSON API and to ``/ws/live``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)


def setup(app: FastAPI) -> None:
    """Serve the console's static files under ``/console/static``."""
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")


@router.get("/")
def root() -> RedirectResponse:
    """The console is the home page."""
    return RedirectResponse("/console/")


@router.get("/console")
@router.get("/console/")
def console() -> FileResponse:
    """The single page of the console (its views are chosen by the user's role)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})
