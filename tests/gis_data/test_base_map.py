"""Base-map layers imported through gis_data (GeoJSON or zipped Shapefile, any CRS) and served as tiles."""

from __future__ import annotations

import io
import json
import math
import zipfile

import mapbox_vector_tile
import shapefile
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pyproj import CRS
from pyproj.enums import WktVersion

from gis_data.models import BaseFeature
from gis_data.readers import transformer
from tests.casework.helpers import LAT, LON
from tests.conftest import Org

GK = "EPSG:4545"


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _road_gk() -> list[tuple[float, float]]:
    tr = transformer("EPSG:4326", GK)
    assert tr is not None
    return [tr.transform(LON - 0.002, LAT), tr.transform(LON + 0.002, LAT)]


def _shapefile_zip(prj: bool = True) -> bytes:
    shp, shx, dbf = io.BytesIO(), io.BytesIO(), io.BytesIO()
    with shapefile.Writer(shp=shp, shx=shx, dbf=dbf, shapeType=shapefile.POLYLINE, encoding="utf-8") as w:
        w.field("name", "C", size=40)
        w.field("kind", "C", size=10)
        w.line([_road_gk()])
        w.record("宝光路", "主干路")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("roads.shp", shp.getvalue())
        z.writestr("roads.shx", shx.getvalue())
        z.writestr("roads.dbf", dbf.getvalue())
        z.writestr("roads.cpg", "UTF-8")
        if prj:
            z.writestr("roads.prj", CRS.from_user_input(GK).to_wkt(WktVersion.WKT1_ESRI))
    return buf.getvalue()


def _upload(client: TestClient, org: Org, layer: str, name: str, data: bytes, crs: str | None = None) -> object:
    form = {"crs": crs} if crs else {}
    return client.post(
        f"/api/v1/gis/base/{layer}", files={"file": (name, data)}, data=form, headers=org.headers("admin")
    )


def _roads_in_tile(client: TestClient) -> list[dict[str, object]]:
    x, y = _tile(LON, LAT, 16)
    r = client.get(f"/tiles/base/16/{x}/{y}.mvt")
    assert r.status_code == 200
    return mapbox_vector_tile.decode(r.content)["road"]["features"] if r.content else []


def test_a_zipped_shapefile_in_a_projected_crs_becomes_named_roads_on_the_tiles(
    client: TestClient, orgdata: Org, db: sa.Engine
) -> None:
    r = _upload(client, orgdata, "road", "roads.zip", _shapefile_zip())
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["created"] == 1
    with db.connect() as c:
        start, end = sa.func.ST_StartPoint(BaseFeature.geom), sa.func.ST_EndPoint(BaseFeature.geom)
        ((lon0, _lat0, lon1, lat1),) = c.execute(
            sa.select(sa.func.ST_X(start), sa.func.ST_Y(start), sa.func.ST_X(end), sa.func.ST_Y(end))
        )
    assert abs(lon0 - (LON - 0.002)) < 1e-7 and abs(lat1 - LAT) < 1e-7 and abs(lon1 - (LON + 0.002)) < 1e-7
    (road,) = _roads_in_tile(client)
    assert road["properties"] == {"name": "宝光路", "kind": "主干路"}
    # the same file again replaces its roads instead of doubling them
    assert _upload(client, orgdata, "road", "roads.zip", _shapefile_zip()).status_code == 200
    assert len(_roads_in_tile(client)) == 1


def test_geojson_in_any_crs_and_the_shapefile_crs_given_by_hand(
    client: TestClient, orgdata: Org, db: sa.Engine
) -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "渭河", "kind": "河流"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [list(p) for p in _road_gk()]
                        + [
                            [_road_gk()[1][0], _road_gk()[1][1] - 200],
                            [_road_gk()[0][0], _road_gk()[0][1] - 200],
                            list(_road_gk()[0]),
                        ]
                    ],
                },
            }
        ],
    }
    r = _upload(client, orgdata, "water", "river.geojson", json.dumps(fc).encode(), crs=GK)
    assert r.status_code == 200, r.text
    assert _upload(client, orgdata, "road", "roads.zip", _shapefile_zip(prj=False), crs=GK).status_code == 200
    x, y = _tile(LON, LAT - 0.001, 15)
    tile = mapbox_vector_tile.decode(client.get(f"/tiles/base/15/{x}/{y}.mvt").content)
    assert [f["properties"]["name"] for f in tile["water"]["features"]] == ["渭河"]


def test_bad_base_layers_are_refused_whole(client: TestClient, orgdata: Org, db: sa.Engine) -> None:
    point = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "ok"},
                "geometry": {"type": "LineString", "coordinates": [[LON, LAT], [LON, LAT + 0.001]]},
            },
            {"type": "Feature", "properties": {"name": "x"}, "geometry": {"type": "Point", "coordinates": [LON, LAT]}},
        ],
    }
    r = _upload(client, orgdata, "road", "r.geojson", json.dumps(point).encode())
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "gis.load_rejected"
    with db.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(BaseFeature)) == 0  # nothing half-stored
    r = _upload(client, orgdata, "lakes", "r.geojson", json.dumps(point).encode())
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "gis.unknown_base_layer"
    r = _upload(client, orgdata, "road", "r.zip", b"not a zip")
    assert r.status_code == 400 and r.json()["detail"][0]["type"] == "gis.bad_shapefile"
    r = _upload(client, orgdata, "road", "r.txt", b"x")
    assert r.status_code == 400 and r.json()["detail"][0]["type"] == "gis.bad_file_type"
    r = client.post("/api/v1/gis/base/road", files={"file": ("r.geojson", b"{}")}, headers=orgdata.headers("leader"))
    assert r.status_code == 403
