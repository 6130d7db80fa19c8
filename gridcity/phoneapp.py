"""The field app 城管通 at ``/m/``: an installable progressive web app served by gridcity itself.

Its files are plain JavaScript modules in ``gridcity/static/m`` (no bundler): the page, the service worker
that keeps the app shell for offline use, the web app manifest and its icons. The libraries it uses (idb,
MapLibre GL JS) come from ``/vendor/`` (see :mod:`gridcity.root.console`). Everything is sent with
``Cache-Control: no-cache`` so a phone revalidates (cheaply, by ETag) and the service worker sees updates.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static" / "m"
mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("text/javascript", ".mjs")

router = APIRouter(include_in_schema=False)


class _NoCacheStatic(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def setup(app: FastAPI) -> None:
    """Serve the field app under ``/m/``."""
    app.mount("/m", _NoCacheStatic(directory=STATIC_DIR, html=True), name="fieldapp")


@router.get("/m")
def field_app() -> RedirectResponse:
    """The app lives at ``/m/`` (its service worker's scope)."""
    return RedirectResponse("/m/")
