"""Grid look-ups, point-in-city checks and component checks against hand-made geometry, on both back ends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from casework.models import Case
from components import service
from components.models import Grid
from gis_data import loader, readers
from gridcity import spatial
from gridcity.database import make_session_factory
from gridcity.errors import InvalidInput
from tests.casework.helpers import upload
from tests.conftest import Org
from tests.gis_data import citydata as cd


@pytest.fixture
def city(db: sa.Engine) -> sa.Engine:
    """A 2×2-grid city with one component C0101 in grid 001."""
    factory = make_session_factory(db)
    with factory() as s, s.begin():
        loader.load_areas(s, readers.read_geojson(cd.city()))
        lon, lat = cd.centre(0, 0)
        fc = {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    "properties": {"code": "6103020101000001", "class_code": "C0101"},
                }
            ],
        }
        loader.load_components(s, readers.read_geojson(fc))
    return db


def _session(db: sa.Engine):  # type: ignore[no-untyped-def]
    return make_session_factory(db)()


def test_point_inside_a_grid_gets_that_grid(city: sa.Engine) -> None:
    with _session(city) as s:
        for (col, row), seq in {(0, 0): 1, (1, 0): 2, (0, 1): 3, (1, 1): 4}.items():
            lon, lat = cd.centre(col, row)
            assert service.locate_point(s, lon=lon, lat=lat) == service.Located(cd.grid_code(seq), True)


def test_point_on_a_shared_border_gets_the_lowest_code(city: sa.Engine) -> None:
    with _session(city) as s:
        # the shared vertex of grids 002 and 004 on the east-west border, and the centre corner of all four
        lon, lat = cd.lonlat(cd.X0 + 200, cd.Y0 - 100)
        assert service.locate_point(s, lon=lon, lat=lat).grid_code == cd.grid_code(2)
        lon, lat = cd.lonlat(cd.X0 + 100, cd.Y0 - 100)
        assert service.locate_point(s, lon=lon, lat=lat).grid_code == cd.grid_code(1)
        assert service.check_point_in_city(s, lon=lon, lat=lat) == cd.grid_code(1)


def test_point_outside_the_city_is_refused(city: sa.Engine) -> None:
    lon, lat = cd.lonlat(cd.X0 - 500, cd.Y0 + 500)
    with _session(city) as s:
        assert service.locate_point(s, lon=lon, lat=lat) == service.Located(None, False)
        with pytest.raises(InvalidInput) as exc:
            service.check_point_in_city(s, lon=lon, lat=lat)
    assert exc.value.code == "geo.outside_city"
    assert exc.value.loc == ["body", "lon"]


def test_without_a_city_every_point_is_inside(db: sa.Engine) -> None:
    with _session(db) as s:
        assert service.locate_point(s, lon=107.14, lat=34.36) == service.Located(None, True)
        assert service.check_point_in_city(s, lon=107.14, lat=34.36) is None


def test_point_lookup_uses_the_spatial_index(city: sa.Engine, backend: str) -> None:
    """The expression other queries filter by (``spatial.covers_point``); the grid of a new case has its own
    statement, whose plan ``tests/dispatch/test_dispatch_plans.py`` checks with the routing statements."""
    with _session(city) as s:
        stmt = select(Grid.code).where(spatial.covers_point(s, Grid.geom, 107.14, 34.36))
        sql = str(stmt.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
        if backend == "spatialite":
            plan = " ".join(str(r) for r in s.execute(sa.text("EXPLAIN QUERY PLAN " + sql)))
        else:
            s.execute(sa.text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(r[0] for r in s.execute(sa.text("EXPLAIN " + sql)))
        assert "idx_grid_geom" in plan


@pytest.mark.parametrize(
    ("component_id", "class_code", "error"),
    [
        ("61030201010000", "C0101", "component.malformed_id"),
        ("6103020101000002", "C0101", "component.unknown"),
        ("6103020101000001", "C0102", "component.class_mismatch"),
    ],
)
def test_component_check_refuses_bad_components(
    city: sa.Engine, component_id: str, class_code: str, error: str
) -> None:
    with _session(city) as s, pytest.raises(InvalidInput) as exc:
        service.check_component_for_case(s, component_id=component_id, class_code=class_code)
    assert exc.value.code == error
    assert exc.value.loc == ["body", "component_id"]


def test_component_check_accepts_the_right_class(city: sa.Engine) -> None:
    with _session(city) as s:
        service.check_component_for_case(s, component_id="6103020101000001", class_code="C0101")


def _report(client, orgdata: Org, lon: float, lat: float, **extra):  # type: ignore[no-untyped-def]
    body = {
        "action": "report",
        "class_code": "C0101",
        "lon": lon,
        "lat": lat,
        "description": "井盖破损",
        "attachment_ids": upload(client, orgdata, "inspector"),
        **extra,
    }
    return client.post("/api/v1/cases", json=body, headers=orgdata.headers("inspector"))


def test_case_outside_the_city_is_refused_over_http(city: sa.Engine, client, orgdata: Org) -> None:  # type: ignore[no-untyped-def]
    lon, lat = cd.lonlat(cd.X0 + 1000, cd.Y0 - 1000)
    r = _report(client, orgdata, lon, lat)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["type"] == "geo.outside_city"
    assert r.json()["detail"][0]["loc"] == ["body", "lon"]
    with _session(city) as s:
        assert s.scalar(select(sa.func.count()).select_from(Case)) == 0


def test_case_inside_the_city_gets_its_grid_and_checked_component(
    city: sa.Engine,
    client,  # type: ignore[no-untyped-def]
    orgdata: Org,
) -> None:
    lon, lat = cd.centre(1, 1)
    r = _report(client, orgdata, lon, lat, component_id="6103020101000001")
    assert r.status_code == 201, r.text
    assert r.json()["grid_code"] == cd.grid_code(4)
    r = _report(client, orgdata, lon, lat, component_id="6103020101000009")
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "component.unknown"
