"""Area/grid and component loading: validation, all-or-nothing, CRS handling, idempotence, export, map layers."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, mapping
from sqlalchemy import select

from components.models import Area, Component, ComponentHistory, Grid
from gis_data import loader, readers
from gridcity.database import make_session_factory
from gridcity.errors import InvalidInput
from tests.casework.helpers import report
from tests.conftest import Org
from tests.gis_data import citydata as cd

# ---- helpers ------------------------------------------------------------------------------------------


def _count(db: sa.Engine, model: Any) -> int:
    with make_session_factory(db)() as s:
        return s.scalar(select(sa.func.count()).select_from(model)) or 0


def _load_areas(db: sa.Engine, fc: dict[str, Any]) -> loader.LoadReport:
    with make_session_factory(db)() as s, s.begin():
        return loader.load_areas(s, readers.read_geojson(fc))


def _rejected_areas(db: sa.Engine, fc: dict[str, Any]) -> dict[int, set[str]]:
    """Load ``fc`` expecting a refusal; return {row: error types}, and check nothing was written."""
    before = (_count(db, Area), _count(db, Grid))
    with pytest.raises(loader.LoadRejected) as exc, make_session_factory(db)() as s, s.begin():
        loader.load_areas(s, readers.read_geojson(fc))
    assert (_count(db, Area), _count(db, Grid)) == before
    rep = exc.value.report
    assert exc.value.code == "gis.load_rejected"
    assert len(rep.rows) == len(fc["features"])
    return {r.row: {e["type"] for e in r.errors} for r in rep.rows if r.errors}


def comp(code: str, lon: float, lat: float, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"code": code, **props},
    }


def fc(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


@pytest.fixture
def city(db: sa.Engine) -> sa.Engine:
    _load_areas(db, cd.city())
    return db


def _post_components(client: TestClient, org: Org, body: bytes, name: str, crs: str | None = None):  # type: ignore[no-untyped-def]
    data = {"crs": crs} if crs else {}
    return client.post(
        "/api/v1/gis/components", files={"file": (name, io.BytesIO(body))}, data=data, headers=org.headers("admin")
    )


# ---- areas and grids ----------------------------------------------------------------------------------


def test_city_loads_and_reloads_unchanged(db: sa.Engine) -> None:
    first = _load_areas(db, cd.city())
    assert first.counts["created"] == 7 and first.ok
    second = _load_areas(db, cd.city())
    assert second.counts["unchanged"] == 7 and second.counts["created"] == 0
    with make_session_factory(db)() as s:
        g = s.scalars(select(Grid).where(Grid.code == cd.grid_code(1))).one()
        assert g.community_code == cd.COMMUNITY
        assert g.area_m2 == pytest.approx(10_000, rel=1e-6)  # measured in the projected CRS
        assert s.scalar(select(Area.parent_code).where(Area.code == cd.COMMUNITY)) == cd.STREET


def test_renamed_grid_is_updated(city: sa.Engine) -> None:
    data = cd.city()
    data["features"][3]["properties"]["name"] = "一号网格"
    rep = _load_areas(city, data)
    assert rep.counts["updated"] == 1 and rep.counts["unchanged"] == 6


def test_overlapping_grids_are_refused(db: sa.Engine) -> None:
    data = cd.city()
    data["features"][4]["geometry"] = mapping(cd.cell(0, 0).union(cd.cell(1, 0)).buffer(0))  # 002 covers 001
    errors = _rejected_areas(db, data)
    assert "grid.overlap" in errors[4] and "grid.overlap" in errors[5]


def test_overlap_with_an_already_loaded_grid_is_refused(city: sa.Engine) -> None:
    extra = fc(cd.feature(cd.grid_code(9), cd.cell(1, 1)))
    errors = _rejected_areas(city, extra)
    assert errors == {1: {"grid.overlap"}}


def test_gap_inside_a_community_is_refused(db: sa.Engine) -> None:
    errors = _rejected_areas(db, cd.city(skip={4}))
    assert errors == {3: {"community.gap"}}


def test_grid_outside_its_community_is_refused(db: sa.Engine) -> None:
    data = cd.city()
    data["features"].append(cd.feature(cd.grid_code(5), cd.cell(5, 5)))
    errors = _rejected_areas(db, data)
    assert errors == {8: {"grid.outside_community"}}


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("61030200100100", "area.malformed_code"),
        ("610302001001000", "area.malformed_code"),
        ("abc", "area.malformed_code"),
        ("610302001002001", "area.parent_missing"),
    ],
)
def test_bad_grid_code_is_refused(db: sa.Engine, code: str, error: str) -> None:
    data = cd.city()
    data["features"][6]["properties"]["code"] = code  # grid 004
    errors = _rejected_areas(db, data)
    assert error in errors[7]


def test_duplicate_code_is_refused(db: sa.Engine) -> None:
    data = cd.city()
    data["features"][6]["properties"]["code"] = cd.grid_code(3)
    errors = _rejected_areas(db, data)
    assert "area.duplicate_code" in errors[6] and "area.duplicate_code" in errors[7]


def test_self_intersecting_polygon_is_refused(db: sa.Engine) -> None:
    data = cd.city()
    a, b, c, d = (cd.lonlat(cd.X0 + x, cd.Y0 - y) for x, y in [(0, 0), (100, 100), (100, 0), (0, 100)])
    data["features"][3]["geometry"] = {"type": "Polygon", "coordinates": [[a, b, c, d, a]]}  # a bow-tie
    errors = _rejected_areas(db, data)
    assert "geom.invalid" in errors[4]


def test_level_and_geometry_type_must_match_the_code(db: sa.Engine) -> None:
    data = cd.city()
    data["features"][1]["properties"]["level"] = "community"
    data["features"][3]["geometry"] = {"type": "Point", "coordinates": list(cd.centre(0, 0))}
    errors = _rejected_areas(db, data)
    assert errors[2] == {"area.level_mismatch"}
    assert "geom.wrong_type" in errors[4]


def test_unusual_grid_area_is_only_a_warning(db: sa.Engine) -> None:
    big = cd.cell(0, 0, size=300)  # 90,000 m²
    data = fc(
        *cd.city()["features"][:2], cd.feature(cd.COMMUNITY, MultiPolygon([big])), cd.feature(cd.grid_code(1), big)
    )
    data["features"][0]["geometry"] = mapping(MultiPolygon([big]))
    data["features"][1]["geometry"] = mapping(MultiPolygon([big]))
    rep = _load_areas(db, data)
    assert rep.ok
    assert [w["type"] for w in rep.rows[3].warnings] == ["grid.area_unusual"]


def test_area_import_over_http(client: TestClient, orgdata: Org, db: sa.Engine) -> None:
    r = client.post("/api/v1/gis/areas", json=cd.city(), headers=orgdata.headers("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["created"] == 7
    # a second community of two cells with only one grid
    comm2 = "610302001002"
    bad = fc(
        cd.feature(comm2, MultiPolygon([cd.cell(3, 0).union(cd.cell(4, 0))])),
        cd.feature(cd.grid_code(1, comm2), cd.cell(3, 0)),
    )
    r = client.post("/api/v1/gis/areas", json=bad, headers=orgdata.headers("admin"))
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["type"] == "gis.load_rejected"
    assert detail["ctx"]["report"]["rows"][0]["errors"][0]["type"] == "community.gap"
    assert [row["outcome"] for row in detail["ctx"]["report"]["rows"]] == ["rejected", "not_loaded"]
    assert _count(db, Grid) == 4  # the earlier load is intact
    r = client.post("/api/v1/gis/areas", json=cd.city(), headers=orgdata.headers("inspector"))
    assert r.status_code == 403


# ---- components ---------------------------------------------------------------------------------------

ID1, ID2, ID3 = "6103020101000001", "6103020118000001", "6103020402000001"


def _components() -> dict[str, Any]:
    return fc(
        comp(ID1, *cd.centre(0, 0), class_code="C0101", main_department="SZ", state="完好"),
        comp(ID2, *cd.centre(1, 0), class_code="C0118", main_department="LD", initial_date="20240301"),
        comp(ID3, *cd.centre(1, 1), class_code="0402", name="国槐"),
    )


def test_components_load_locate_and_reload_unchanged(city: sa.Engine, orgdata: Org) -> None:
    with make_session_factory(city)() as s, s.begin():
        rep = loader.load_components(s, readers.read_geojson(_components()))
    assert rep.counts["created"] == 3
    with make_session_factory(city)() as s, s.begin():
        again = loader.load_components(s, readers.read_geojson(_components()))
        c = s.scalars(select(Component).where(Component.code == ID2)).one()
        assert (c.grid_code, c.main_department_id, c.initial_date.isoformat()) == (
            cd.grid_code(2),
            orgdata.depts["LD"],
            "2024-03-01",
        )
    assert again.counts["unchanged"] == 3
    assert _count(city, ComponentHistory) == 3


def test_changed_component_is_updated_with_history(city: sa.Engine, client: TestClient, orgdata: Org) -> None:
    body = json.dumps(_components()).encode()
    assert _post_components(client, orgdata, body, "c.geojson").status_code == 200
    changed = _components()
    changed["features"][0]["properties"]["state"] = "破损"
    r = _post_components(client, orgdata, json.dumps(changed).encode(), "c.geojson")
    assert r.json()["counts"] == {"rows": 3, "created": 0, "updated": 1, "unchanged": 2, "rejected": 0, "warnings": 0}
    r = client.get(f"/api/v1/components/{ID1}", headers=orgdata.headers("inspector"))
    assert r.status_code == 200
    hist = r.json()["history"]
    assert [h["action"] for h in hist] == ["create", "update"]
    assert hist[1]["changes"] == {"state": ["完好", "破损"]}
    assert r.json()["feature"]["properties"]["state"] == "破损"
    assert client.get("/api/v1/components/6103020101000099", headers=orgdata.headers("inspector")).status_code == 404


@pytest.mark.parametrize("epsg", ["EPSG:4545", "EPSG:4524", "EPSG:4490"])
def test_projected_csv_lands_on_the_right_lonlat(city: sa.Engine, client: TestClient, orgdata: Org, epsg: str) -> None:
    lon, lat = cd.centre(1, 0)
    x, y = Transformer.from_crs("EPSG:4326", epsg, always_xy=True).transform(lon, lat)
    csv = f"code,class_code,x,y,name\n{ID1},C0101,{x!r},{y!r},井盖\n".encode()
    r = _post_components(client, orgdata, csv, "c.csv", crs=epsg)
    assert r.status_code == 200, r.text
    r = client.get(f"/api/v1/components/{ID1}", headers=orgdata.headers("inspector"))
    got_lon, got_lat = r.json()["feature"]["geometry"]["coordinates"]
    assert got_lon == pytest.approx(lon, abs=1e-7) and got_lat == pytest.approx(lat, abs=1e-7)
    assert r.json()["feature"]["properties"]["grid_code"] == cd.grid_code(2)


def test_projected_geojson_with_lines_and_polygons(city: sa.Engine) -> None:
    to_gk = Transformer.from_crs("EPSG:4326", "EPSG:4545", always_xy=True)
    line = [to_gk.transform(*cd.centre(0, 0)), to_gk.transform(*cd.centre(0, 1))]
    ring = [to_gk.transform(*cd.lonlat(cd.X0 + dx, cd.Y0 - dy)) for dx, dy in [(10, 10), (60, 10), (60, 60), (10, 10)]]
    data = fc(
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": line},
            "properties": {"code": "6103020211000001", "class_code": "C0211"},
        },
        {
            "type": "Feature",
            "geometry": mapping(Polygon(ring)),
            "properties": {"code": "6103020405000001", "class_code": "C0405"},
        },
    )
    with make_session_factory(city)() as s, s.begin():
        rep = loader.load_components(s, readers.read_geojson(data, crs="EPSG:4545"))
        assert rep.counts["created"] == 2
        grids = dict(s.execute(select(Component.code, Component.grid_code)).all())
    assert grids["6103020405000001"] == cd.grid_code(1)


@pytest.mark.parametrize(
    ("feature", "error"),
    [
        (comp("6103020199000001", *cd.centre(0, 1), class_code="C0199"), "class.unknown"),
        (comp("61030201010001", *cd.centre(0, 1), class_code="C0101"), "component.malformed_id"),
        (comp("6103030101000007", *cd.centre(0, 1), class_code="C0101"), "component.id_mismatch"),  # district
        (comp("6103020102000007", *cd.centre(0, 1), class_code="C0101"), "component.id_mismatch"),  # class
        (comp("6103020101000007", *cd.lonlat(cd.X0 - 900, cd.Y0), class_code="C0101"), "geo.outside_city"),
        (comp("6103020101000007", *cd.centre(0, 1), class_code="C0101", main_department="NOPE"), "department.unknown"),
        (comp("6103020101000007", *cd.centre(0, 1), class_code="C0101", state="坏了"), "component.bad_state"),
        (comp(ID1, *cd.centre(0, 1), class_code="C0101"), "component.duplicate_code"),
        (comp("6103020101000007", *cd.centre(0, 1), class_code="E0101"), "class.not_component"),
    ],
)
def test_one_bad_component_refuses_the_whole_file(
    city: sa.Engine, client: TestClient, orgdata: Org, feature: dict[str, Any], error: str
) -> None:
    data = _components()
    data["features"].append(feature)
    r = _post_components(client, orgdata, json.dumps(data).encode(), "c.geojson")
    assert r.status_code == 422, r.text
    rep = r.json()["detail"][0]["ctx"]["report"]
    assert [row["outcome"] for row in rep["rows"]] == ["not_loaded"] * 3 + ["rejected"]
    assert error in {e["type"] for e in rep["rows"][3]["errors"]}
    assert _count(city, Component) == 0 and _count(city, ComponentHistory) == 0


def test_unknown_crs_and_bad_files_are_refused(city: sa.Engine, client: TestClient, orgdata: Org) -> None:
    body = json.dumps(_components()).encode()
    for crs in ("EPSG:999999", "not-a-crs"):
        r = _post_components(client, orgdata, body, "c.geojson", crs=crs)
        assert r.status_code == 422
        assert r.json()["detail"][0]["type"] == "geo.unknown_crs"
    assert _post_components(client, orgdata, b"{not json", "c.geojson").json()["detail"][0]["type"] == "gis.bad_geojson"
    assert _post_components(client, orgdata, b"a,b\n1,2\n", "c.csv").json()["detail"][0]["type"] == "gis.bad_csv"
    assert _post_components(client, orgdata, body, "c.shp").status_code == 400
    with pytest.raises(InvalidInput):
        readers.parse_crs("EPSG:0")
    assert _count(city, Component) == 0


def test_csv_with_bad_coordinates_reports_the_row(city: sa.Engine, client: TestClient, orgdata: Org) -> None:
    lon, lat = cd.centre(0, 0)
    csv = f"code,class_code,lon,lat\n{ID1},C0101,{lon},{lat}\n{ID2},C0118,abc,{lat}\n".encode()
    r = _post_components(client, orgdata, csv, "c.csv")
    assert r.status_code == 422
    rows = r.json()["detail"][0]["ctx"]["report"]["rows"]
    assert rows[1]["errors"][0]["type"] == "geo.bad_coordinates"
    assert _count(city, Component) == 0


def test_export_round_trip_is_unchanged(city: sa.Engine, client: TestClient, orgdata: Org) -> None:
    assert _post_components(client, orgdata, json.dumps(_components()).encode(), "c.geojson").status_code == 200
    exported = client.get("/api/v1/components/export.geojson", headers=orgdata.headers("leader")).json()
    assert [f["properties"]["code"] for f in exported["features"]] == [ID1, ID2, ID3]
    assert exported["features"][0]["properties"]["main_department"] == "SZ"
    r = _post_components(client, orgdata, json.dumps(exported).encode(), "export.geojson")
    assert r.json()["counts"]["unchanged"] == 3, r.text


# ---- map layers ---------------------------------------------------------------------------------------


def _bbox_of_cell(col: int, row: int) -> str:
    x0, y0, x1, y1 = cd.cell(col, row).buffer(-1e-5).bounds
    return f"{x0},{y0},{x1},{y1}"


def test_map_layers_filter_by_bbox_and_page(city: sa.Engine, client: TestClient, orgdata: Org) -> None:
    h = orgdata.headers("inspector")
    assert _post_components(client, orgdata, json.dumps(_components()).encode(), "c.geojson").status_code == 200
    r = client.get("/api/v1/map/grids", params={"bbox": _bbox_of_cell(1, 1)}, headers=h).json()
    assert r["type"] == "FeatureCollection"
    assert [f["id"] for f in r["features"]] == [cd.grid_code(4)] and r["numberMatched"] == 1
    r = client.get("/api/v1/map/grids", params={"limit": 3, "offset": 2}, headers=h).json()
    assert (r["numberMatched"], r["numberReturned"]) == (4, 2)
    assert [f["id"] for f in r["features"]] == [cd.grid_code(3), cd.grid_code(4)]
    assert client.get("/api/v1/map/grids", params={"limit": 5001}, headers=h).status_code == 422
    assert (
        client.get("/api/v1/map/grids", params={"bbox": "1,2,3"}, headers=h).json()["detail"][0]["type"]
        == "bbox.malformed"
    )
    r = client.get("/api/v1/map/areas", params={"level": "district"}, headers=h).json()
    assert [f["id"] for f in r["features"]] == [cd.DISTRICT]
    r = client.get("/api/v1/map/components", params={"class_code": ["C0118", "C0402"]}, headers=h).json()
    assert [f["id"] for f in r["features"]] == [ID2, ID3]
    r = client.get("/api/v1/map/components", params={"bbox": _bbox_of_cell(0, 0)}, headers=h).json()
    assert [f["id"] for f in r["features"]] == [ID1]
    assert client.get("/api/v1/map/grids").status_code == 401


def test_map_cases_layer(city: sa.Engine, client: TestClient, orgdata: Org) -> None:
    h = orgdata.headers("shiftlead")
    lon, lat = cd.centre(0, 1)
    case = report(client, orgdata, lon=lon, lat=lat)
    r = client.get("/api/v1/map/cases", headers=h).json()
    assert r["numberMatched"] == 1
    props = r["features"][0]["properties"]
    assert props["number"] == case["number"] and props["status"] == case["status"]
    assert props["light"] in {"green", "yellow", "red", "paused", "none"}
    assert client.get("/api/v1/map/cases", params={"light": props["light"]}, headers=h).json()["numberMatched"] == 1
    assert client.get("/api/v1/map/cases", params={"status": "closed"}, headers=h).json()["numberMatched"] == 0
    assert client.get("/api/v1/map/cases", params={"light": "blue"}, headers=h).status_code == 422
    far = "100.0,20.0,100.1,20.1"
    assert client.get("/api/v1/map/cases", params={"bbox": far}, headers=h).json()["numberMatched"] == 0
