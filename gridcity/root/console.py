"""The web console: ``/`` redirects to ``/console/``; the page and its scripts are static files (no CDN).

The console's own files ship in ``gridcity/static``; the front-end libraries of the field (MapLibre GL JS,
Apache ECharts, idb, Terra Draw, Swagger UI) come from npm with the committed ``package-lock.json``, are
installed into ``node_modules`` by ``scripts/setup.sh`` and are served from there under ``/vendor/<name>/``,
so every page works on a city network without internet access.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"

# URL name -> folder inside node_modules that holds the package's built files. Only these are served.
VENDOR_DIRS: dict[str, str] = {
    "maplibre-gl": "maplibre-gl/dist",
    "echarts": "echarts/dist",
    "idb": "idb/build",
    "terra-draw": "terra-draw/dist",
    "terra-draw-maplibre-gl-adapter": "terra-draw-maplibre-gl-adapter/dist",
    "swagger-ui": "swagger-ui-dist",
}

router = APIRouter(include_in_schema=False)


def setup(app: FastAPI) -> None:
    """Serve the console's static files under ``/console/static``."""
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    for name, folder in VENDOR_DIRS.items():
        # check_dir=False: an app built before ``npm ci`` ran still starts; the files answer 404 until then.
        app.mount(
            f"/vendor/{name}", StaticFiles(directory=NODE_MODULES / folder, check_dir=False), name=f"vendor-{name}"
        )


@router.get("/")
def root() -> RedirectResponse:
    """The console is the home page."""
    return RedirectResponse("/console/")


@router.get("/console")
@router.get("/console/")
def console() -> FileResponse:
    """The single page of the console (its views are chosen by the user's role)."""
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )
