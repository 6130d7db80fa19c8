"""The live map with a city of the demo city's size loaded: bbox-limited, zoom-gated layers in a real browser."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from components.codes import default_catalog
from components.models import Component, Grid
from tests.conftest import Org
from tests.console import ThreadServer
from tests.console.test_console_browser import done, login

pytestmark = pytest.mark.browser

LON0, LAT0 = 107.10, 34.32  # south-west corner of the synthetic city (Baoji)
NX, NY = 72, 70  # 5,040 unit grids
STEP = 0.0015  # ~140 m
COMPONENTS = 81_000


def load_city(db: sa.Engine) -> list[str]:
    """Bulk-insert 5,040 square grids and 81,000 components of several major classes; return the classes."""
    catalog = default_catalog()
    classes: list[str] = []
    for info in catalog:
        if info.key.startswith("C") and info.enabled and info.key[:3] not in {c[:3] for c in classes}:
            classes.append(info.key)
    classes = classes[:8]
    grids = []
    for i in range(NX):
        for j in range(NY):
            x, y = LON0 + i * STEP, LAT0 + j * STEP
            ring = f"{x} {y},{x + STEP} {y},{x + STEP} {y + STEP},{x} {y + STEP},{x} {y}"
            grids.append({"code": f"6103020010{i:02d}{j:03d}", "community_code": "610302001001",
                          "area_m2": 19600.0, "geom": f"SRID=4326;POLYGON(({ring}))"})
    rnd = random.Random(6)
    comps = [{"code": f"61030{k:012d}", "class_code": classes[k % len(classes)],
              "geom": f"SRID=4326;POINT({LON0 + rnd.random() * NX * STEP} {LAT0 + rnd.random() * NY * STEP})"}
             for k in range(COMPONENTS)]
    with db.begin() as c:
        c.execute(sa.insert(Grid), grids)
        for k in range(0, len(comps), 10_000):
            c.execute(sa.insert(Component), comps[k:k + 10_000])
    return classes


def _drawn(page: Any) -> int:
    return int(page.get_attribute("#map-canvas", "data-features") or "0")


def _show(page: Any, lon: float, lat: float, scale: float) -> None:
    """Set the view and wait until the layers fetched for exactly this view have been drawn."""
    key = page.evaluate(f"App.mapView.set({lon}, {lat}, {scale}), App.mapView.key()")
    page.wait_for_function(
        "(k) => { const d = document.getElementById('map-canvas').dataset;"
        " return d.layersLoaded === k && d.drawn === k; }",
        arg=key, timeout=60_000)


def test_map_with_a_city_of_demo_size_stays_within_its_feature_limits(
    server: ThreadServer, browser: Any, orgdata: Org, db: sa.Engine, artifacts: Path
) -> None:
    classes = load_city(db)
    requests: list[str] = []
    page = login(browser, server, "dispatcher", view="map")
    page.on("request", lambda r: requests.append(r.url))
    page.click("#nav a[data-view=map]")
    page.locator("#map-layers input[type=checkbox]").first.wait_for()
    # Switch every layer on (components are off by default).
    for box in page.locator("#map-layers input[type=checkbox]").all():
        if not box.is_checked():
            box.check()

    # The whole city in view: the grids come bbox-limited; components wait for a closer zoom.
    _show(page, LON0 + NX * STEP / 2, LAT0 + NY * STEP / 2, 9000)
    whole = _drawn(page)
    assert 0 < whole <= 500 + 1500  # areas + grids limits; no component at this zoom
    assert "放大后显示" in page.inner_text("#map-hint")
    assert page.locator("#map-legend .key").count() == 0
    page.screenshot(path=str(artifacts / "city-whole.png"))

    # Zoomed in: components are fetched for the view's bbox only, at most the limit, coloured by class.
    _show(page, LON0 + NX * STEP / 2, LAT0 + NY * STEP / 2, 40000)  # the first zoom with components
    near = _drawn(page)
    assert 0 < near <= 500 + 1500 + 2000
    fetched = [parse_qs(urlsplit(u).query) for u in requests if "/api/v1/map/components" in u]
    comp_queries = [q for q in fetched if q.get("limit") != ["1"]]  # not the one-feature probe of the layer
    assert comp_queries and all("bbox" in q and q.get("limit") == ["2000"] for q in comp_queries)
    keys = page.locator("#map-legend .key")
    assert 1 <= keys.count() <= len(classes)
    assert {k.get_attribute("data-major") for k in keys.all()} <= {c[:3] for c in classes}
    assert "components: 2000 / " in page.inner_text("#map-hint")  # more match than are drawn, and it says so
    page.screenshot(path=str(artifacts / "city-zoomed.png"))
    done(page)
