"""The live map on MapLibre GL JS over the app's own vector tiles, with the demo city, in a real Chromium:
rendered features found through MapLibre's queryRenderedFeatures, a live update, a drawn area → case list,
click → case card with its mini map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
import pytest
import sqlalchemy as sa

from gis_data import demo_city, demo_streets
from gridcity.database import make_session_factory
from tests.casework.helpers import LAT, LON, report
from tests.conftest import Org
from tests.console import ThreadServer
from tests.console.test_console_browser import done, login

pytestmark = pytest.mark.browser


def _city(db: sa.Engine) -> None:
    with make_session_factory(db)() as s, s.begin():
        demo_city.load(s, scale=0.05, history=False, echo=lambda _m: None)


def _settle(page: Any) -> None:
    """Wait until MapLibre has every tile of the view and has drawn it."""
    page.wait_for_function(
        "() => App.map && App.map.loaded() && App.map.areTilesLoaded() && !App.map.isMoving()", timeout=60_000
    )
    page.evaluate("() => new Promise((r) => { App.map.once('idle', r); App.map.triggerRepaint(); })")


def _rendered(page: Any, layers: list[str]) -> list[dict[str, Any]]:
    return page.evaluate(
        "(layers) => App.map.queryRenderedFeatures({layers: layers.filter((l) => App.map.getLayer(l))})"
        ".map((f) => ({layer: f.layer.id, id: f.id, p: f.properties}))",
        layers,
    )


def _go(page: Any, lon: float, lat: float, zoom: float) -> None:
    page.evaluate("([lon, lat, z]) => App.map.jumpTo({center: [lon, lat], zoom: z})", [lon, lat, zoom])
    _settle(page)


def test_console_map_renders_the_city_and_its_cases_from_tiles(
    server: ThreadServer, browser: Any, orgdata: Org, db: sa.Engine, artifacts: Path
) -> None:
    _city(db)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        first = report(http, orgdata, lon=LON, lat=LAT)  # type: ignore[arg-type]
    page = login(browser, server, "dispatcher", view="map")
    page.click("#nav a[data-view=map]")
    page.wait_for_selector("#map[data-ready='1']", timeout=60_000)
    _go(page, LON, LAT, 12.5)
    # the whole city: districts and streets by name, the case as a cluster of one, no components yet
    whole = _rendered(page, ["admin-line", "cases-cluster", "cases", "components"])
    names = {f["p"].get("name") for f in whole if f["layer"] == "admin-line"}
    assert {"陈仓区", "渭滨区", "金台区"} <= names
    assert [f["p"]["count"] for f in whole if f["layer"] == "cases-cluster"] == [1]
    assert not [f for f in whole if f["layer"] == "components"]
    # the Chinese layer switcher and legend
    assert page.inner_text("#map-layers").replace("\n", "").startswith("图层")
    for label in ("底图", "行政区划", "单元网格", "部件", "热力", "案件"):
        assert label in page.inner_text("#map-layers")
    assert page.locator("#map-legend .key[data-light=red]").inner_text() == "超时"
    page.screenshot(path=str(artifacts / "city.png"))

    # close up: the case itself, named roads, grid codes; components once switched on, with their classes
    _go(page, LON, LAT, 17)
    near = _rendered(page, ["cases", "base-road-label", "grids-label"])
    assert [f["id"] for f in near if f["layer"] == "cases"] == [first["id"]]
    case = next(f for f in near if f["layer"] == "cases")
    assert case["p"]["number"] == first["number"] and case["p"]["light"] in ("green", "none", "yellow", "red")
    roads = {f["p"]["name"] for f in near if f["layer"] == "base-road-label"}
    assert roads and roads <= {s.name for s in demo_streets.build_streets(0.05)}
    assert all(len(f["p"]["code"]) == 15 for f in near if f["layer"] == "grids-label")
    assert [f for f in near if f["layer"] == "grids-label"]
    page.check("#map-layers input[data-group=components]")
    _settle(page)
    comps = _rendered(page, ["components", "components-shape"])
    assert comps and all(f["p"]["major"] == f["p"]["class_code"][:3] for f in comps)
    page.screenshot(path=str(artifacts / "close-up.png"))

    # live: a new report shows up at once on the overlay, without reloading the view's tiles
    with httpx.Client(base_url=server.url, timeout=30) as http:
        second = report(http, orgdata, lon=LON + 0.0004, lat=LAT + 0.0002)  # type: ignore[arg-type]
    page.wait_for_function(
        "(id) => App.map.queryRenderedFeatures({layers: ['live-cases']}).some((f) => f.id === id)",
        arg=second["id"],
        timeout=30_000,
    )
    assert page.get_attribute("#map", "data-live") == "1"

    # click → the case card, with its mini map (case, component, grid)
    _go(page, LON, LAT, 17)
    pt = page.evaluate("([lon, lat]) => App.map.project([lon, lat])", [LON, LAT])
    box = page.locator("#map canvas.maplibregl-canvas").bounding_box()
    page.mouse.click(box["x"] + pt["x"], box["y"] + pt["y"])
    page.wait_for_selector(f"#detail[data-case-id='{first['id']}']:not([hidden])")
    page.wait_for_selector("#detail .case-minimap[data-ready='1']", timeout=30_000)
    assert page.evaluate("() => document.querySelector('#detail .case-minimap').dataset.caseId") == str(first["id"])
    page.screenshot(path=str(artifacts / "case-card.png"))
    done(page)


def test_a_drawn_rectangle_or_polygon_lists_the_open_cases_inside_it(
    server: ThreadServer, browser: Any, orgdata: Org, db: sa.Engine, artifacts: Path
) -> None:
    _city(db)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        a = report(http, orgdata, lon=LON, lat=LAT)  # type: ignore[arg-type]
        b = report(http, orgdata, lon=LON + 0.0008, lat=LAT - 0.0004)  # type: ignore[arg-type]
        outside = report(http, orgdata, lon=LON + 0.004, lat=LAT + 0.003)  # type: ignore[arg-type]
    page = login(browser, server, "dispatcher", view="map")
    page.click("#nav a[data-view=map]")
    page.wait_for_selector("#map[data-ready='1']", timeout=60_000)
    _go(page, LON + 0.0004, LAT - 0.0002, 16)
    box = page.locator("#map canvas.maplibregl-canvas").bounding_box()
    nw = page.evaluate("([lon, lat]) => App.map.project([lon, lat])", [LON - 0.0006, LAT + 0.0005])
    se = page.evaluate("([lon, lat]) => App.map.project([lon, lat])", [LON + 0.0015, LAT - 0.0010])
    page.click("button[data-draw=rectangle]")
    page.mouse.click(box["x"] + nw["x"], box["y"] + nw["y"])
    page.mouse.move(box["x"] + se["x"], box["y"] + se["y"], steps=8)
    page.mouse.click(box["x"] + se["x"], box["y"] + se["y"])
    page.wait_for_selector("#map-area[data-count]", timeout=30_000)
    ids = {int(v) for v in page.eval_on_selector_all("#map-area-table tbody tr", "rs => rs.map(r => r.dataset.caseId)")}
    assert ids == {a["id"], b["id"]} and outside["id"] not in ids
    page.screenshot(path=str(artifacts / "drawn-area.png"))
    # a click on a listed case opens its card
    page.click(f"#map-area-table tr[data-case-id='{b['id']}'] a.case-link")
    page.wait_for_selector(f"#detail[data-case-id='{b['id']}']:not([hidden])")
    page.click("button[data-draw=clear]")
    assert page.is_hidden("#map-area")
    # a polygon (a triangle around the first case only, though its bounding box holds the second one too)
    corners = [(LON - 0.0006, LAT + 0.0005), (LON + 0.0015, LAT + 0.0005), (LON - 0.0006, LAT - 0.0010)]
    # the case card opened above may have resized the map (on a loaded machine it may still be laying out):
    # project and click against the canvas as it is now, once the map has settled
    page.wait_for_function("() => !App.map.isMoving() && App.map.loaded()", timeout=30_000)
    box = page.locator("#map canvas.maplibregl-canvas").bounding_box()
    pts = [page.evaluate("([lon, lat]) => App.map.project([lon, lat])", [lon, lat]) for lon, lat in corners]
    inside_b = page.evaluate("([lon, lat]) => App.map.project([lon, lat])", [LON + 0.0008, LAT - 0.0004])
    assert inside_b["x"] > pts[0]["x"] and inside_b["y"] < pts[2]["y"]  # b is inside the triangle's box
    page.click("button[data-draw=polygon]")
    for pt in [*pts, pts[0]]:  # clicking the first corner again closes the ring
        page.mouse.move(box["x"] + pt["x"], box["y"] + pt["y"], steps=4)
        page.mouse.click(box["x"] + pt["x"], box["y"] + pt["y"])
    page.wait_for_selector("#map-area[data-count='1']", timeout=30_000)  # the rectangle's list said 2
    ids = {int(v) for v in page.eval_on_selector_all("#map-area-table tbody tr", "rs => rs.map(r => r.dataset.caseId)")}
    assert ids == {a["id"]}
    page.screenshot(path=str(artifacts / "drawn-polygon.png"))
    page.click("button[data-draw=clear]")
    done(page)
