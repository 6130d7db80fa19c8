"""Vector tiles: decoded features and attributes, clipping, authorization per layer, ETags, bad coordinates,
TileJSON and the style; ST_AsMVT and the Python encoder (and PostGIS and SpatiaLite) give the same features."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest
import shapely
import sqlalchemy as sa
from fastapi.testclient import TestClient
from shapely.geometry import shape

from casework import service as casework_service
from casework.models import Case
from components.models import Component, Grid
from gis_data import demo_city, demo_streets, tiles
from gridcity import migrate, spatial
from gridcity.database import make_engine, make_session_factory
from gridcity.roles import Role
from gridcity.types import utcnow
from tests.casework.helpers import LAT, LON, act, report
from tests.conftest import Org

SCALE = 0.05
EXTENT = spatial.MVT_EXTENT


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def decode(data: bytes) -> dict[str, Any]:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True}) if data else {}


def get(client: TestClient, path: str, headers: dict[str, str] | None = None) -> Any:
    return client.get(path, headers=headers or {})


@pytest.fixture
def city(db: sa.Engine) -> sa.Engine:
    with make_session_factory(db)() as s, s.begin():
        demo_city.load(s, scale=SCALE, history=False, echo=lambda _m: None)
    return db


def _tile(
    client: TestClient, layer: str, z: int, lon: float = LON, lat: float = LAT, headers: dict[str, str] | None = None
) -> tuple[Any, dict[str, Any]]:
    x, y = tile_of(lon, lat, z)
    r = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", headers=headers or {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    return r, decode(r.content)


def test_static_layers_hold_the_city_with_its_names_and_codes(
    client: TestClient, orgdata: Org, city: sa.Engine
) -> None:
    h = orgdata.headers("leader")
    # base map: roads with their Chinese names, buildings, parks (public: no login needed)
    _, base = _tile(client, "base", 15)
    names = {f["properties"].get("name") for f in base["road"]["features"]}
    all_names = {s.name for s in demo_streets.build_streets(SCALE)}
    assert names and names <= all_names
    assert {f["properties"]["kind"] for f in base["road"]["features"]} <= set(demo_streets.KINDS)
    assert base["building"]["features"] and all(
        f["geometry"]["type"] == "Polygon" for f in base["building"]["features"]
    )
    # admin areas by zoom: districts only when far out, communities too when close
    _, far = _tile(client, "admin", 10, headers=h)
    assert {f["properties"]["level"] for f in far["admin"]["features"]} == {"district"}
    _, near = _tile(client, "admin", 14, headers=h)
    levels = {f["properties"]["level"] for f in near["admin"]["features"]}
    assert levels == {"district", "street", "community"}
    assert any(f["properties"]["name"] == "渭滨区" for f in near["admin"]["features"])
    # grids: exactly the grids the tile (with its buffer) touches, with their codes
    z = 16
    x, y = tile_of(LON, LAT, z)
    _, g = _tile(client, "grids", z, headers=h)
    with city.connect() as c:
        box = spatial.tile_bbox_wgs84(z, x, y)
        want = set(c.execute(sa.select(Grid.code).where(spatial.bbox_filter(c, Grid.geom, box))).scalars())
    assert {f["properties"]["code"] for f in g["grids"]["features"]} == want and want
    # components: class and major class, the id of the row
    _, comp = _tile(client, "components", 17, headers=h)
    feats = comp["components"]["features"]
    assert feats
    with city.connect() as c:
        rows = {r.id: r for r in c.execute(sa.select(Component.id, Component.code, Component.class_code))}
    for f in feats:
        row = rows[f["id"]]
        assert f["properties"]["code"] == row.code and f["properties"]["class_code"] == row.class_code
        assert f["properties"]["major"] == row.class_code[:3]
    # below a layer's minimum zoom the tile is empty, not an error
    r, empty = _tile(client, "components", 12, headers=h)
    assert r.content == b"" and empty == {}


def test_geometries_are_clipped_to_the_tile_buffer(client: TestClient, orgdata: Org, city: sa.Engine) -> None:
    _, base = _tile(client, "base", 16)
    lo, hi = -spatial.MVT_BUFFER, EXTENT + spatial.MVT_BUFFER
    crossing = 0
    for f in base["road"]["features"] + base["building"]["features"]:
        xs, ys = zip(*shapely.get_coordinates(shape(f["geometry"])).tolist(), strict=True)
        assert lo <= min(xs) and max(xs) <= hi and lo <= min(ys) and max(ys) <= hi, f
        crossing += min(xs) < 0 or max(xs) > EXTENT or min(ys) < 0 or max(ys) > EXTENT
    assert crossing  # roads run across the tile's edge and are cut at the buffer
    # an arterial crosses the whole city, but one tile only holds its own stretch
    art = [f for f in base["road"]["features"] if f["properties"]["kind"] == "主干路"]
    assert art and all(shape(f["geometry"]).length < EXTENT * 1.1 * 2 for f in art)


def _case_at(
    client: TestClient, org_: Org, db: sa.Engine, lon: float, lat: float, dept: str | None, user: str = "inspector"
) -> int:
    case_id = int(report(client, org_, user=user, lon=lon, lat=lat)["id"])
    if dept is not None:
        with db.begin() as c:
            c.execute(sa.update(Case).where(Case.id == case_id).values(department_id=org_.depts[dept]))
    return case_id


def test_case_and_hotspot_tiles_obey_the_api_authorization(client: TestClient, orgdata: Org, db: sa.Engine) -> None:
    water = _case_at(client, orgdata, db, LON, LAT, "SZ")
    light = _case_at(client, orgdata, db, LON + 0.0005, LAT, "LD")
    other = _case_at(client, orgdata, db, LON - 0.0005, LAT, None, user="inspector2")
    z = 16

    def ids(user: str) -> set[int]:
        _, t = _tile(client, "cases", z, headers=orgdata.headers(user))
        return {f["id"] for f in t.get("cases", {}).get("features", [])}

    assert ids("leader") == {water, light, other}
    assert ids("water") == {water}
    assert ids("lighting") == {light}
    assert ids("inspector") == {water, light}
    x, y = tile_of(LON, LAT, z)
    for layer in ("cases", "hotspots", "admin", "grids", "components"):
        r = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
        assert r.status_code == 401 and r.json()["detail"][0]["type"] == "auth.missing_token"
    # attributes of a case
    _, t = _tile(client, "cases", z, headers=orgdata.headers("leader"))
    f = next(f for f in t["cases"]["features"] if f["id"] == water)
    number = client.get(f"/api/v1/cases/{water}", headers=orgdata.headers("leader")).json()["number"]
    assert f["properties"]["number"] == number and f["properties"]["status"] == "reported"
    assert f["properties"]["department"] == "市自来水公司" and f["properties"]["class_code"] == "C0101"
    assert f["properties"]["light"] in tiles.LIGHT_COLOURS
    # zoomed out: one cluster with the three cases, for the leader; one for the water department
    _, t = _tile(client, "cases", 11, headers=orgdata.headers("leader"))
    (cl,) = t["cases"]["features"]
    assert cl["properties"]["cluster"] == 1 and cl["properties"]["count"] == 3
    _, t = _tile(client, "cases", 11, headers=orgdata.headers("water"))
    assert [f["properties"]["count"] for f in t["cases"]["features"]] == [1]
    # hot spots count only what the user may see
    with db.begin() as c:
        c.execute(sa.update(Case).values(grid_code="610302001001001"))
    _, hot = _tile(client, "hotspots", 14, headers=orgdata.headers("leader"))
    assert [f["properties"]["count"] for f in hot["hotspots"]["features"]] == [3]
    _, hot = _tile(client, "hotspots", 14, headers=orgdata.headers("water"))
    assert [f["properties"]["count"] for f in hot["hotspots"]["features"]] == [1]


def test_case_tiles_change_when_cases_change_and_answer_304_otherwise(
    client: TestClient, orgdata: Org, db: sa.Engine
) -> None:
    case = report(client, orgdata, user="inspector", lon=LON, lat=LAT)
    h = orgdata.headers("leader")
    x, y = tile_of(LON, LAT, 16)
    path = f"/tiles/cases/16/{x}/{y}.mvt"
    r1 = client.get(path, headers=h)
    assert r1.status_code == 200 and r1.headers["etag"] and "no-cache" in r1.headers["cache-control"]
    r2 = client.get(path, headers={**h, "If-None-Match": r1.headers["etag"]})
    assert r2.status_code == 304 and r2.content == b""
    act(client, orgdata, case, "shiftlead", "file")
    r3 = client.get(path, headers={**h, "If-None-Match": r1.headers["etag"]})
    assert r3.status_code == 200 and r3.headers["etag"] != r1.headers["etag"]
    (f,) = decode(r3.content)["cases"]["features"]
    assert f["properties"]["status"] == "filed"
    # a closed case leaves the open-case layer
    act(client, orgdata, {"id": case["id"]}, "shiftlead", "void", note="重复")
    assert decode(client.get(path, headers=h).content) == {}
    # the base map is public and cacheable
    r = client.get(f"/tiles/base/16/{x}/{y}.mvt")
    assert r.status_code == 200 and r.headers["cache-control"].startswith("public")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/tiles/base/23/0/0.mvt", 422, "tile.out_of_range"),
        ("/tiles/base/-1/0/0.mvt", 422, "greater_than_equal"),
        ("/tiles/base/3/8/0.mvt", 422, "tile.out_of_range"),
        ("/tiles/base/3/0/-1.mvt", 422, "greater_than_equal"),
        ("/tiles/base/3/0/99999999999999999999999.mvt", 422, "less_than_equal"),
        ("/tiles/base/3/x/0.mvt", 422, "int_parsing"),
        ("/tiles/nope/3/0/0.mvt", 404, "tile.unknown_layer"),
        ("/tiles/nope.json", 404, "tile.unknown_layer"),
        ("/tiles/fonts/Noto%20Sans%20Regular/1-7.pbf", 400, "tile.bad_glyph_range"),
        ("/tiles/fonts/Noto%20Sans%20Regular/a-b.pbf", 400, "tile.bad_glyph_range"),
    ],
)
def test_bad_tile_coordinates_answer_cleanly(client: TestClient, path: str, status: int, code: str) -> None:
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.json()["detail"][0]["type"] == code


def test_tiles_outside_the_city_and_at_every_zoom_are_empty_or_small(
    client: TestClient, orgdata: Org, city: sa.Engine
) -> None:
    h = orgdata.headers("leader")
    for layer in tiles.LAYERS:
        r = client.get(f"/tiles/{layer}/10/0/0.mvt", headers=h)  # the Pacific
        assert r.status_code == 200 and r.content == b""
        r = client.get(f"/tiles/{layer}/0/0/0.mvt", headers=h)  # the world
        assert r.status_code == 200
        r = client.get(f"/tiles/{layer}/22/{(1 << 22) - 1}/{(1 << 22) - 1}.mvt", headers=h)
        assert r.status_code == 200 and r.content == b""


def test_tilejson_and_style_documents(client: TestClient, city: sa.Engine) -> None:
    for name, info in tiles.LAYERS.items():
        tj = client.get(f"/tiles/{name}.json").json()
        assert tj["tilejson"] == "3.0.0" and tj["tiles"][0].endswith(f"/tiles/{name}/{{z}}/{{x}}/{{y}}.mvt")
        assert [v["id"] for v in tj["vector_layers"]] == list(info.mvt_layers)
        x0, y0, x1, y1 = tj["bounds"]
        assert x0 < LON < x1 and y0 < LAT < y1
    st = client.get("/tiles/style.json").json()
    assert st["version"] == 8 and set(st["sources"]) == set(tiles.LAYERS)
    for layer in st["layers"]:
        if "source" in layer:
            assert layer["source"] in st["sources"]
            if st["sources"][layer["source"]]["type"] == "vector":
                assert layer["source-layer"] in tiles.LAYERS[layer["source"]].mvt_layers
    ids = {layer["id"] for layer in st["layers"]}
    assert {"cases", "cases-cluster", "heat", "components", "grids-label", "base-road-label"} <= ids
    assert st["metadata"]["gridcity:layers"]["cases"] == "案件" and not st["metadata"]["gridcity:gcj02"]
    assert "external" not in st["sources"]  # offline by default
    en = client.get("/tiles/style.json", params={"lang": "en"}).json()
    assert en["metadata"]["gridcity:layers"]["cases"] == "Cases"
    g = client.get(st["glyphs"].replace("{fontstack}", "Noto Sans Regular").replace("{range}", "0-255"))
    assert g.status_code == 200 and len(g.content) > 1000


def test_external_basemap_setting_and_gcj02_shift(client: TestClient, app: Any, orgdata: Org, city: sa.Engine) -> None:
    app.state.settings.basemap = "custom"
    app.state.settings.basemap_url = "https://tiles.city.example/{z}/{x}/{y}.png"
    app.state.settings.basemap_gcj02 = True
    st = client.get("/tiles/style.json").json()
    assert st["sources"]["external"]["tiles"] == ["https://tiles.city.example/{z}/{x}/{y}.png"]
    assert st["metadata"]["gridcity:gcj02"] is True
    dx, dy = st["metadata"]["gridcity:gcj02_offset"]
    assert 0.001 < abs(dx) < 0.01 and 0.0005 < abs(dy) < 0.01  # a few hundred metres in Baoji
    tj = client.get("/tiles/grids.json").json()
    assert tj["tiles"][0].endswith("?crs=gcj02")
    # the same grid, shifted by the GCJ-02 offset (a few hundred metres in Baoji) on the shifted tile
    h = orgdata.headers("leader")
    z = 15
    x, y = tile_of(LON, LAT, z)
    plain = decode(client.get(f"/tiles/grids/{z}/{x}/{y}.mvt", headers=h).content)["grids"]["features"]
    moved = decode(client.get(f"/tiles/grids/{z}/{x}/{y}.mvt?crs=gcj02", headers=h).content)["grids"]["features"]
    a = {f["properties"]["code"]: shape(f["geometry"]).centroid for f in plain}
    b = {f["properties"]["code"]: shape(f["geometry"]).centroid for f in moved}
    common = set(a) & set(b)
    assert common
    px_per_m = EXTENT / (40075016.7 / (1 << z))
    for code in common:
        d = a[code].distance(b[code]) / px_per_m
        assert 100 < d < 800, d
    app.state.settings.basemap, app.state.settings.basemap_key = "tianditu", "k123"
    st = client.get("/tiles/style.json").json()
    assert "tk=k123" in st["sources"]["external"]["tiles"][0] and not st["metadata"]["gridcity:gcj02"]


# ---- the same features both ways ---------------------------------------------------------------------------


def _same_features(a: dict[str, Any], b: dict[str, Any]) -> int:
    """Compare two decoded tiles feature by feature; the number of features compared."""
    assert set(a) == set(b)
    n = 0
    for name in a:
        fa = {f["id"]: f for f in a[name]["features"]}
        fb = {f["id"]: f for f in b[name]["features"]}
        assert set(fa) == set(fb), name
        for fid, f in fa.items():
            g = fb[fid]
            assert f["properties"] == g["properties"], (name, fid)
            ga, gb = shape(f["geometry"]), shape(g["geometry"])
            assert ga.geom_type.removeprefix("Multi") == gb.geom_type.removeprefix("Multi"), (name, fid)
            assert shapely.hausdorff_distance(ga, gb) <= 2.0, (name, fid, ga.wkt[:200], gb.wkt[:200])
            n += 1
    return n


SAMPLE = [
    ("base", 14),
    ("base", 16),
    ("admin", 12),
    ("admin", 14),
    ("grids", 15),
    ("components", 16),
    ("components", 18),
    ("cases", 12),
    ("cases", 16),
    ("hotspots", 14),
]


def _tiles_of(factory: Any, actor: casework_service.Actor, now: Any, encoder: bool) -> dict[tuple[str, int], bytes]:
    out = {}
    with factory() as s:
        for layer, z in SAMPLE:
            x, y = tile_of(LON + 0.004, LAT - 0.003, z)
            out[(layer, z)] = tiles.build_tile(s, tiles.LAYERS[layer], z, x, y, actor=actor, now=now, encoder=encoder)
    return out


@pytest.mark.postgis
def test_st_asmvt_and_the_python_encoder_give_the_same_features(
    client: TestClient, orgdata: Org, city: sa.Engine, backend: str
) -> None:
    if backend != "postgis":
        pytest.skip("compares ST_AsMVT with the encoder on the same PostGIS rows")
    for i in range(4):
        _case_at(client, orgdata, city, LON + 0.004 + i * 0.0004, LAT - 0.003, "SZ")
    factory = make_session_factory(city)
    actor = casework_service.Actor(user_id=orgdata.ids["leader"], role=Role.LEADER, department_id=None)
    now = utcnow()
    pg = _tiles_of(factory, actor, now, encoder=False)
    py = _tiles_of(factory, actor, now, encoder=True)
    total = sum(_same_features(decode(pg[k]), decode(py[k])) for k in pg)
    assert total > 500


def _same_open_cases(engine: sa.Engine, now: Any) -> None:
    """The same 24 open cases (ids, places, grids, stages, departments by code) in a demo city's database."""
    import datetime as dt  # noqa: PLC0415

    from casework.lifecycle import CaseStatus  # noqa: PLC0415
    from gridcity.org import Department  # noqa: PLC0415

    with engine.begin() as c:
        depts = [
            c.scalar(sa.select(Department.id).where(Department.code == code))
            for code in sorted(c.scalars(sa.select(Department.code)))[:3]
        ]
        grids = sorted(
            c.scalars(
                sa.select(Grid.code).where(
                    spatial.bbox_filter(
                        c, Grid.geom, spatial.tile_bbox_wgs84(14, *tile_of(LON + 0.004, LAT - 0.003, 14))
                    )
                )
            )
        )
        rows = []
        for i in range(24):
            lon, lat = LON + 0.004 + (i % 6) * 0.0003, LAT - 0.003 + (i // 6) * 0.0002
            deadline = now + dt.timedelta(hours=(-5, 2, 40)[i % 3])
            rows.append(
                {
                    "id": 900_001 + i,
                    "number": f"2099-{i:06d}",
                    "source": "inspector",
                    "class_code": ("C0101", "C0402", "E0101")[i % 3],
                    "kind": "component",
                    "urgency": "normal",
                    "status": (CaseStatus.FILED, CaseStatus.DISPATCHED)[i % 2],
                    "version": 1,
                    "lon": lon,
                    "lat": lat,
                    "geom": f"SRID=4326;POINT({lon} {lat})",
                    "grid_code": grids[i % 3],
                    "department_id": depts[i % 3] if i % 4 else None,
                    "created_at": now - dt.timedelta(days=i),
                    "updated_at": now,
                    "stage": "handling",
                    "deadline_at": deadline,
                    "warn_at": deadline - dt.timedelta(hours=8),
                }
            )
        c.execute(sa.insert(Case), rows)


@pytest.mark.postgis
def test_postgis_and_spatialite_give_the_same_tiles(city: sa.Engine, backend: str, tmp_path: Path) -> None:
    """The same demo city in both databases: every sampled tile decodes to the same features."""
    if backend != "postgis":
        pytest.skip("needs both databases: runs with --db=postgis and a SpatiaLite file beside it")
    lite = make_engine(f"sqlite:///{tmp_path / 'lite.sqlite'}")
    try:
        migrate.upgrade(lite)
        lite_factory = make_session_factory(lite)
        with lite_factory() as s, s.begin():
            demo_city.load(s, scale=SCALE, history=False, echo=lambda _m: None)
        now = utcnow()
        for engine in (city, lite):
            _same_open_cases(engine, now)
        actor = casework_service.Actor(user_id=1, role=Role.LEADER, department_id=None)
        pg = _tiles_of(make_session_factory(city), actor, now, encoder=False)
        sl = _tiles_of(lite_factory, actor, now, encoder=False)
        total = 0
        for key in pg:
            total += _same_features(decode(pg[key]), decode(sl[key]))
        assert total > 500
        # the case layers too: single cases with light and department, clusters, hot spots
        counts = {key: sum(len(v["features"]) for v in decode(pg[key]).values()) for key in pg}
        assert counts[("cases", 16)] >= 10 and counts[("cases", 12)] >= 1 and counts[("hotspots", 14)] >= 2
        lights = {f["properties"].get("light") for f in decode(pg[("cases", 16)])["cases"]["features"]}
        assert {"red", "yellow", "green"} <= lights
    finally:
        lite.dispose()


def test_department_users_get_a_per_department_cache_entry(client: TestClient, orgdata: Org, db: sa.Engine) -> None:
    """Two departments asking for the same tile never see each other's cached tile."""
    a = _case_at(client, orgdata, db, LON, LAT, "SZ")
    b = _case_at(client, orgdata, db, LON, LAT + 0.0003, "LD")
    for user, want in (("water", {a}), ("lighting", {b}), ("water", {a})):
        _, t = _tile(client, "cases", 16, headers=orgdata.headers(user))
        assert {f["id"] for f in t["cases"]["features"]} == want


def test_a_case_change_through_another_worker_reaches_this_workers_tiles(
    client: TestClient, orgdata: Org, db: sa.Engine, settings: Any
) -> None:
    """Two server processes (two apps, each with its own tile cache and remembered version) on one database: a
    case changed through one is on the other's next tile, and both give the same tile the same ETag."""
    from gridcity.root.app import create_app  # noqa: PLC0415

    other_app = create_app(settings)
    try:
        with TestClient(other_app) as other:
            # A case tile's version includes the minute (its lights change with it): start early in a minute, so
            # that both workers' tiles below fall in the same one (on a loaded machine they once did not).
            if dt.datetime.now(dt.UTC).second > 40:
                time.sleep(61 - dt.datetime.now(dt.UTC).second)
            case = report(client, orgdata, user="inspector", lon=LON, lat=LAT)
            h = orgdata.headers("leader")
            x, y = tile_of(LON, LAT, 16)
            path = f"/tiles/cases/16/{x}/{y}.mvt"
            first = client.get(path, headers=h)
            assert client.get(path, headers=h).content == first.content  # warm: from this worker's cache
            assert other.get(path, headers=h).headers["etag"] == first.headers["etag"]
            act(other, orgdata, case, "shiftlead", "file")
            # this worker's cache and remembered version are stale now; its next tile is not
            for headers in (h, {**h, "If-None-Match": first.headers["etag"]}):
                r = client.get(path, headers=headers)
                assert r.status_code == 200 and r.headers["etag"] != first.headers["etag"]
                (f,) = decode(r.content)["cases"]["features"]
                assert f["properties"]["status"] == "filed"
            again = other.get(path, headers={**h, "If-None-Match": r.headers["etag"]})
            assert again.status_code == 304
            # a department's tile changes with the case too (it is dispatched to them)
            _, t = _tile(other, "cases", 16, headers=orgdata.headers("water"))
            assert t == {}
            with db.begin() as c:
                c.execute(sa.update(Case).where(Case.id == case["id"]).values(department_id=orgdata.depts["SZ"]))
            act(client, orgdata, case, "shiftlead", "void", note="重复")
            assert decode(other.get(path, headers=h).content) == {}
    finally:
        other_app.state.engine.dispose()


@pytest.mark.postgis
def test_a_postgis_tile_is_one_statement_and_a_current_one_is_not_rebuilt(
    client: TestClient, app: Any, orgdata: Org, db: sa.Engine, backend: str
) -> None:
    """The version (the layer's revision) is read in the tile's own statement, one for
    every layer, and when it equals the version of the tile the cache or the client holds, PostgreSQL never
    runs the tile's sub-select."""
    if backend != "postgis":
        pytest.skip("the one-statement case tile is PostGIS's")
    report(client, orgdata, user="inspector", lon=LON, lat=LAT)
    statements: list[tuple[int, str]] = []  # (thread, SQL): the app's background pumps share the engine
    engine = app.state.engine

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append((threading.get_ident(), statement))

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        x, y = tile_of(LON, LAT, 16)
        h = orgdata.headers("leader")
        for layer in ("cases", "hotspots", "base", "admin", "grids", "components"):
            path = f"/tiles/{layer}/16/{x}/{y}.mvt"
            for headers in (h, h, {**h, "If-None-Match": client.get(path, headers=h).headers["etag"]}):
                statements.clear()
                assert client.get(path, headers=headers).status_code in (200, 304)
                request_threads = {t for t, s in statements if "ST_AsMVT" in s}  # the tile's own thread
                tile_statements = [s for t, s in statements if t in request_threads and "FROM app_user" not in s]
                version_table = "layer_revision"
                assert len(tile_statements) == 1 and version_table in tile_statements[0], statements
                # the base map's four MVT layers are one row too
                assert tile_statements[0].count("ST_AsMVT(") == (4 if layer == "base" else 1)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    actor = casework_service.Actor(user_id=orgdata.ids["leader"], role=Role.LEADER, department_id=None)
    info = tiles.LAYERS["cases"]
    kind = tiles.prepared("postgresql", info, tiles.variant(info, 16, actor) or (), actor, shift=False, encoder=False)
    assert kind.versioned is not None and kind.versioned_sql is not None  # compiled by the tiles served above
    assert "'closed'" in kind.versioned_sql and "%(tx0)s" in kind.versioned_sql  # fixed values written in
    now = utcnow()
    params = {**tiles.layer_params(info, 16, x, y, now), **spatial.tile_params(16, x, y)}
    # the driver SQL gives the same tile as the statement it was compiled from (cases, clusters, hot spots)
    with db.begin() as c:
        c.execute(sa.update(Case).values(grid_code="610302001001001"))
    with make_session_factory(db)() as s:
        for layer, z in (("cases", 16), ("cases", 11), ("hotspots", 14)):
            tx, ty = tile_of(LON, LAT, z)
            built = tiles._build_versioned(
                s, tiles.LAYERS[layer], z, tx, ty, actor=actor, now=now, gcj02=False, known=""
            )
            assert built is not None and built[1]
            assert built[1] == tiles.build_tile(s, tiles.LAYERS[layer], z, tx, ty, actor=actor, now=now)
    with db.connect() as c:
        last = c.exec_driver_sql(kind.versioned_sql, {**params, "known": -1}).one().rev  # -1: no tile held

        def explain(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> tuple[str, Any]:
            return "EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters

        sa.event.listen(c, "before_cursor_execute", explain, retval=True)

        def plan(known: int) -> str:
            assert kind.versioned_sql is not None
            return "\n".join(r[0] for r in c.exec_driver_sql(kind.versioned_sql, {**params, "known": known}))

        current, other = plan(last), plan(-1)
        assert "never executed" in current and "st_asmvt" in current.lower(), current
        assert "never executed" not in other, other


@pytest.mark.postgis
def test_a_postgis_case_tile_first_in_its_session_runs_alone_and_one_later_sees_the_transaction(
    client: TestClient, orgdata: Org, db: sa.Engine, backend: str
) -> None:
    """The first statement of a session, the tile runs without opening a transaction (no BEGIN, no ROLLBACK at
    close); after a write in the session, it runs inside that transaction and shows its uncommitted case."""
    if backend != "postgis":
        pytest.skip("the one-statement case tile is PostGIS's")
    report(client, orgdata, user="inspector", lon=LON, lat=LAT)
    actor = casework_service.Actor(user_id=orgdata.ids["leader"], role=Role.LEADER, department_id=None)
    info, z = tiles.LAYERS["cases"], 16
    x, y = tile_of(LON, LAT, z)
    now = utcnow()

    def numbers(s: Any) -> set[str]:
        built = tiles._build_versioned(s, info, z, x, y, actor=actor, now=now, gcj02=False, known="")
        assert built is not None and built[1] is not None
        return {f.get("properties", {}).get("number") for f in decode(built[1]).get("cases", {}).get("features", [])}

    with make_session_factory(db)() as s:
        raw = s.connection().connection.driver_connection
        assert raw is not None
        shown = numbers(s)
        assert len(shown) == 1
        assert raw.info.transaction_status == 0 and not raw.autocommit  # idle: no transaction was opened
        s.execute(sa.update(Case).values(number="TEST-UNCOMMITTED"))
        assert numbers(s) == {"TEST-UNCOMMITTED"}  # in the session's transaction: its own write shows
        assert raw.info.transaction_status != 0 and not raw.autocommit
        s.rollback()
    with make_session_factory(db)() as s:
        assert numbers(s) == shown  # nothing of the rolled-back write


def test_static_layer_versions_belong_to_one_apps_tile_cache(
    client: TestClient, app: Any, orgdata: Org, city: sa.Engine, settings: Any, backend: str
) -> None:
    """The reused version of a rarely changing layer lives in the app's own tile cache (no process-wide state):
    another app on the same process starts with none, and an import through an app forgets that app's.
    PostGIS reuses none: it reads the version in the tile's own statement."""
    from gridcity.root.app import create_app  # noqa: PLC0415

    _tile(client, "admin", 12, headers=orgdata.headers("leader"))
    mine: tiles.TileCache = app.state.tile_cache
    if backend == "postgis":
        assert mine.static_versions == {} and {layer for _db, layer in mine.last_seen} == {"admin"}
    else:
        assert {layer for _db, layer in mine.static_versions} == {"admin"}
    other_app = create_app(settings)
    try:
        assert other_app.state.tile_cache is not mine and other_app.state.tile_cache.static_versions == {}
    finally:
        other_app.state.engine.dispose()
    feature = {
        "type": "Feature",
        "properties": {"layer": "road", "name": "新路", "kind": "支路"},
        "geometry": {"type": "LineString", "coordinates": [[LON, LAT], [LON + 0.001, LAT]]},
    }
    files = {"file": ("roads.geojson", json.dumps({"type": "FeatureCollection", "features": [feature]}).encode())}
    r = client.post("/api/v1/gis/base/road", files=files, headers=orgdata.headers("admin"))
    assert r.status_code == 200, r.text
    assert mine.static_versions == {}


def test_a_feature_changed_in_place_changes_its_layers_version(orgdata: Org, city: sa.Engine) -> None:
    """Every write to a layer's table bumps its revision (triggers of migration 0007), so an update that keeps
    the row count and the newest id (a component moved, an area or grid renamed, a road reclassified, a
    department renamed) changes the layer's version; a rolled-back one does not."""
    from gis_data.models import BaseFeature  # noqa: PLC0415
    from gridcity.org import Department  # noqa: PLC0415

    now = utcnow()
    with city.connect() as c:
        comp_id = c.execute(sa.select(sa.func.min(Component.id))).scalar_one()
        dept_id = c.execute(sa.select(sa.func.min(Department.id))).scalar_one()
    from components.models import Area  # noqa: PLC0415

    changes = {
        "components": sa.update(Component).where(Component.id == comp_id).values(name="挪过的井盖"),
        "admin": sa.update(Area).where(Area.level == "district").values(name="改名区"),
        "grids": sa.update(Grid)
        .where(Grid.id == sa.select(sa.func.min(Grid.id)).scalar_subquery())
        .values(community_code="610302001999"),
        "base": sa.update(BaseFeature).where(BaseFeature.layer == "road").values(kind="次干路"),
        "cases": sa.update(Department).where(Department.id == dept_id).values(name="改名的部门"),
    }
    factory = make_session_factory(city)

    def version(layer: str) -> str:
        with factory() as s:
            return tiles.data_version(s, tiles.TileCache(), layer, now)

    for layer, change in changes.items():
        before = version(layer)
        with city.connect() as c:
            c.execute(change)
            c.rollback()
        assert version(layer) == before, layer
        with city.begin() as c:
            assert c.execute(change).rowcount >= 1
        after = version(layer)
        assert after != before, layer
        others = {other: version(other) for other in changes if other != layer}
        with city.begin() as c:
            c.execute(change)
        assert version(layer) != after
        assert {other: version(other) for other in changes if other != layer} == others  # only its own layer


def test_a_moved_component_and_a_renamed_department_reach_the_next_tile(
    client: TestClient, app: Any, orgdata: Org, db: sa.Engine
) -> None:
    """Over HTTP: the component tile shows a component's new place and the case tile a department's new name
    and a case's number changed without an event, under a new ETag (the client's old one no longer answers 304)."""
    from gridcity.org import Department  # noqa: PLC0415

    with make_session_factory(db)() as s, s.begin():
        s.execute(
            sa.insert(Component).values(
                code="61030210100000001",
                class_code="C0101",
                name="井盖",
                state="完好",
                geom=f"SRID=4326;POINT({LON} {LAT})",
            )
        )
    case = report(client, orgdata, user="inspector", lon=LON, lat=LAT)
    act(client, orgdata, case, "shiftlead", "file")
    act(client, orgdata, case, "dispatcher", "dispatch", department_id=orgdata.depts["SZ"])
    h = orgdata.headers("leader")
    x, y = tile_of(LON, LAT, 17)
    for layer, change, check in (
        (
            "components",
            sa.update(Component).values(geom=sa.func.ST_GeomFromText(f"POINT({LON + 0.0005} {LAT})", 4326)),
            lambda t: t["components"]["features"][0]["geometry"]["coordinates"],
        ),
        (
            "cases",
            sa.update(Department).where(Department.id == orgdata.depts["SZ"]).values(name="新名字"),
            lambda t: t["cases"]["features"][0]["properties"]["department"],
        ),
        (  # a case row changed without an event (a repair in plain SQL): migration 0008's trigger
            "cases",
            sa.update(Case).where(Case.id == case["id"]).values(number="补录-0001"),
            lambda t: t["cases"]["features"][0]["properties"]["number"],
        ),
    ):
        path = f"/tiles/{layer}/17/{x}/{y}.mvt"
        first = client.get(path, headers=h)
        assert first.status_code == 200
        assert client.get(path, headers={**h, "If-None-Match": first.headers["etag"]}).status_code == 304
        with db.begin() as c:
            c.execute(change)
        app.state.tile_cache.forget_versions()  # SpatiaLite reuses a static version for 2 s; PostGIS never
        r = client.get(path, headers={**h, "If-None-Match": first.headers["etag"]})
        assert r.status_code == 200 and r.headers["etag"] != first.headers["etag"], layer
        assert check(decode(r.content)) != check(decode(first.content)), layer


@pytest.mark.postgis
def test_a_postgis_base_tile_in_one_row_is_its_layers_tiles_concatenated(
    orgdata: Org, city: sa.Engine, backend: str
) -> None:
    """The base map's ST_AsMVT sub-selects in one statement give the bytes of its layers built one by one
    (an empty layer adds nothing and does not blank the others)."""
    if backend != "postgis":
        pytest.skip("the one-statement tile is PostGIS's")
    now = utcnow()
    info = tiles.LAYERS["base"]
    with make_session_factory(city)() as s:
        kinds = 0
        for z in (13, 15, 16):
            x, y = tile_of(LON, LAT, z)
            built = tiles._build_versioned(s, info, z, x, y, actor=None, now=now, gcj02=False, known="")
            assert built is not None and built[1] is not None
            var = tiles.variant(info, z, None)
            assert var is not None
            kind = tiles.prepared("postgresql", info, var, None, shift=False, encoder=False)
            p = {**tiles.layer_params(info, z, x, y, now), **spatial.tile_params(z, x, y)}
            one_by_one = [bytes(s.scalar(stmt, p) or b"") for _, stmt in kind.tile.statements]
            assert built[1] == b"".join(one_by_one)
            kinds += sum(1 for part in one_by_one if part)
        assert kinds >= 2 and set(decode(built[1])) <= set(info.mvt_layers)


def test_a_layer_without_its_revision_row_still_gets_correct_tiles(
    client: TestClient, app: Any, orgdata: Org, db: sa.Engine
) -> None:
    """The migration gives every tile layer its ``layer_revision`` row; a database that lost one (a restore, a
    hand-made fix) still serves the right tile and ETag (PostGIS: by two statements instead of one, since the
    one-statement tile reads the revision as a row), and the layer's next write brings the row back."""
    case = report(client, orgdata, user="inspector", lon=LON, lat=LAT)
    h = orgdata.headers("leader")
    x, y = tile_of(LON, LAT, 16)
    path = f"/tiles/cases/16/{x}/{y}.mvt"
    before = client.get(path, headers=h)
    with db.begin() as c:
        c.execute(sa.text("DELETE FROM layer_revision WHERE layer = 'cases'"))
    try:
        lost = client.get(path, headers=h)
        assert lost.status_code == 200
        assert decode(lost.content) == decode(before.content)
        assert lost.headers["etag"] != before.headers["etag"]  # revision 0: not the tile held under the old one
        act(client, orgdata, case, "shiftlead", "file")  # a write to cases: the trigger makes the row again
        with db.connect() as c:
            assert c.execute(sa.text("SELECT rev FROM layer_revision WHERE layer = 'cases'")).scalar_one() >= 1
        (f,) = decode(client.get(path, headers=h).content)["cases"]["features"]
        assert f["properties"]["status"] == "filed"
    finally:
        with db.begin() as c:  # the other tests' database keeps its row, as the migration made it
            c.execute(
                sa.text("INSERT INTO layer_revision (layer, rev) VALUES ('cases', 1) ON CONFLICT (layer) DO NOTHING")
            )
