"""The hot-spot aggregate and the class legend of the map (gis_data.map_router), on both databases."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from casework.models import Case
from tests.casework.helpers import report
from tests.conftest import Org

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _case(
    client: TestClient,
    org: Org,
    db: sa.Engine,
    *,
    class_code: str,
    grid: str | None,
    day: int,
    lon: float,
    lat: float,
    user: str = "inspector",
) -> int:
    case_id = int(report(client, org, user=user, class_code=class_code, lon=lon, lat=lat)["id"])
    with db.begin() as c:  # we place the case in a grid and a day of the period
        c.execute(
            sa.update(Case).where(Case.id == case_id).values(grid_code=grid, created_at=T0 + dt.timedelta(days=day))
        )
    return case_id


def _hot(client: TestClient, org: Org, user: str = "leader", **params: Any) -> Any:
    return client.get("/api/v1/map/hotspots", params=params, headers=org.headers(user))


def test_hotspots_count_cases_by_grid_and_major_class_in_the_period(
    client: TestClient, orgdata: Org, db: sa.Engine
) -> None:
    g1, g2 = "610302001001001", "610302001001002"
    _case(client, orgdata, db, class_code="C0101", grid=g1, day=1, lon=107.140, lat=34.360)
    _case(client, orgdata, db, class_code="C0102", grid=g1, day=2, lon=107.142, lat=34.362)
    _case(client, orgdata, db, class_code="C0201", grid=g1, day=3, lon=107.144, lat=34.364)
    _case(client, orgdata, db, class_code="E0101", grid=g2, day=4, lon=107.150, lat=34.370)
    _case(client, orgdata, db, class_code="C0101", grid=g2, day=40, lon=107.150, lat=34.370)  # next month
    r = _hot(client, orgdata, created_from=T0.isoformat(), created_to=(T0 + dt.timedelta(days=31)).isoformat())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "FeatureCollection" and body["total"] == 4 and body["max_count"] == 3
    first, second = body["features"]
    assert first["properties"] == {"grid_code": g1, "count": 3, "classes": {"C01": 2, "C02": 1}}
    assert first["geometry"]["coordinates"] == [107.142, 34.362]  # mean of its cases
    assert second["properties"] == {"grid_code": g2, "count": 1, "classes": {"E01": 1}}
    assert [(c["major"], c["count"]) for c in body["by_class"]] == [("C01", 2), ("C02", 1), ("E01", 1)]
    assert all(c["name"] and c["color"].startswith("#") for c in body["by_class"])
    # The whole history, and one major class.
    assert _hot(client, orgdata).json()["total"] == 5
    only = _hot(client, orgdata, major="C01").json()
    assert only["total"] == 3 and {c["major"] for c in only["by_class"]} == {"C01"}


def test_hotspots_show_a_department_only_its_cases(client: TestClient, orgdata: Org, db: sa.Engine) -> None:
    mine = _case(client, orgdata, db, class_code="C0101", grid="g-1", day=1, lon=107.14, lat=34.36)
    _case(client, orgdata, db, class_code="C0101", grid="g-2", day=1, lon=107.15, lat=34.37)
    with db.begin() as c:
        c.execute(sa.update(Case).where(Case.id == mine).values(department_id=orgdata.depts["SZ"]))
    water = _hot(client, orgdata, user="water").json()
    assert water["total"] == 1 and [f["id"] for f in water["features"]] == ["g-1"]
    assert _hot(client, orgdata).json()["total"] == 2


def test_hotspots_refuse_bad_input(client: TestClient, orgdata: Org) -> None:
    bad = _hot(client, orgdata, created_from="2026-03-02T00:00:00Z", created_to="2026-03-01T00:00:00Z")
    assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "map.bad_period"
    assert _hot(client, orgdata, major="C01%").status_code == 422
    assert _hot(client, orgdata, created_from="yesterday").status_code == 422
    assert client.get("/api/v1/map/hotspots").status_code == 401


def test_legend_names_and_colours_every_major_class(client: TestClient, orgdata: Org) -> None:
    r = client.get("/api/v1/map/legend", headers=orgdata.headers("dispatcher"))
    assert r.status_code == 200
    majors = r.json()["majors"]
    keys = [m["major"] for m in majors]
    assert keys == sorted(keys) and "C01" in keys and "E01" in keys
    assert all(m["name"] and m["color"].startswith("#") for m in majors)
