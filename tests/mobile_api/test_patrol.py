"""Patrol tracks: breadcrumbs in, bad points refused one by one, per-day coverage of the supervision area."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from components import service as components_service
from gridcity import coords
from gridcity.database import make_session_factory
from mobile_api import service
from tests.mobile_api.conftest import LAT, LON, cell_center, count, grid_code

CST = dt.timezone(dt.timedelta(hours=8))
_NOW = dt.datetime.now(CST)
# "N minutes ago" (N <= 60) from here stays on one day: now, or in the first hour after local midnight the
# last second of yesterday (breadcrumbs clamped to 00:00:01 fell on one instant and were stored once: CI at
# 00:05 in Shanghai)
_BASE = (
    _NOW
    if _NOW.time() >= dt.time(1, 0)
    else dt.datetime.combine(_NOW.date(), dt.time(0), CST) - dt.timedelta(seconds=1)
)
TODAY = _BASE.date()


def _at(hour: int, minute: int = 0, day: dt.date = TODAY) -> str:
    return dt.datetime.combine(day, dt.time(hour, minute), CST).isoformat()


def _earlier_today(minutes_ago: int) -> str:
    """A time ``minutes_ago`` before the tests' base instant, on ``TODAY`` (and never in the future)."""
    return (_BASE - dt.timedelta(minutes=minutes_ago)).isoformat()


def _post(client: Any, h: dict[str, str], key: str, points: list[dict[str, Any]], **extra: Any) -> Any:
    return client.post("/mobile/v1/tracks", json={"points": points, **extra}, headers={**h, "Idempotency-Key": key})


def _coverage(client: Any, h: dict[str, str], inspector_id: int, day: dt.date = TODAY) -> Any:
    return client.get(
        "/mobile/v1/tracks/coverage", params={"inspector_id": inspector_id, "date": day.isoformat()}, headers=h
    )


def test_breadcrumbs_are_stored_with_their_grid_and_bad_points_are_refused_one_by_one(client, orgdata, db, city):
    h = orgdata.headers("inspector")
    future = (dt.datetime.now(CST) + dt.timedelta(hours=2)).isoformat()
    points = [
        {"at": _earlier_today(30), "lon": cell_center(0, 0)[0], "lat": cell_center(0, 0)[1], "accuracy_m": 8},
        {"at": _earlier_today(29), "lon": LON + 1, "lat": LAT},  # outside the city
        {"at": _earlier_today(28), "lon": 200.0, "lat": LAT},  # impossible
        {"at": future, "lon": cell_center(0, 1)[0], "lat": cell_center(0, 1)[1]},  # phone clock ahead
        {"at": _earlier_today(27), "lon": cell_center(0, 1)[0], "lat": cell_center(0, 1)[1], "accuracy_m": 900},
        {"at": "2000-01-01T00:00:00+08:00", "lon": cell_center(0, 1)[0], "lat": cell_center(0, 1)[1]},  # stale
        {"at": _earlier_today(26), "lon": cell_center(1, 1)[0], "lat": cell_center(1, 1)[1]},
    ]
    r = _post(client, h, "t-1", points)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [(x["index"], x["type"]) for x in body["refused"]] == [
        (1, "geo.outside_city"),
        (2, "geo.invalid_coordinates"),
        (3, "track.future_time"),
        (4, "track.inaccurate"),
        (5, "track.too_old"),
    ]
    with db.connect() as c:
        grids = sorted(c.exec_driver_sql("SELECT grid_code FROM patrol_point").scalars())
    assert grids == [grid_code(0, 0), grid_code(1, 1)]


def test_resent_breadcrumbs_are_not_stored_twice(client, orgdata, db, city):
    h = orgdata.headers("inspector")
    points = [
        {"at": _earlier_today(20 - i), "lon": cell_center(0, 0)[0], "lat": cell_center(0, 0)[1]} for i in range(3)
    ]
    assert _post(client, h, "t-a", points).json()["accepted"] == 3
    # Same key: the stored answer.
    again = _post(client, h, "t-a", points)
    assert again.json() == {"accepted": 3, "duplicates": 0, "refused": []} and again.headers["idempotent-replayed"]
    # The queue re-sent under a new key (plus one new point): only the new point is stored.
    more = [*points, {"at": _earlier_today(5), "lon": cell_center(1, 0)[0], "lat": cell_center(1, 0)[1]}]
    assert _post(client, h, "t-b", more).json() == {"accepted": 1, "duplicates": 3, "refused": []}
    assert count(db, "patrol_point") == 4


def test_gcj02_breadcrumbs_are_converted(client, orgdata, db, city):
    g = coords.wgs84_to_gcj02(*cell_center(1, 1))
    r = _post(
        client,
        orgdata.headers("inspector"),
        "t-g",
        [{"at": _earlier_today(3), "lon": g[0], "lat": g[1]}],
        coord_system="gcj02",
    )
    assert r.json()["accepted"] == 1
    with db.connect() as c:
        lon, lat, grid = c.exec_driver_sql("SELECT lon, lat, grid_code FROM patrol_point").one()
    assert coords.haversine_m(lon, lat, *cell_center(1, 1)) < 0.01 and grid == grid_code(1, 1)


def test_only_inspectors_upload_tracks_and_malformed_bodies_are_422(client, orgdata, db):
    p = [{"at": _earlier_today(1), "lon": LON, "lat": LAT}]
    r = _post(client, orgdata.headers("water"), "t-w", p)
    assert r.status_code == 403
    r = _post(client, orgdata.headers("inspector"), "t-m", [{"at": "yesterday-ish", "lon": LON, "lat": LAT}])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "points", 0, "at"]
    assert count(db, "patrol_point") == 0 and count(db, "idempotency_record") == 0


def test_coverage_is_the_share_of_area_grids_visited_that_day(client, orgdata, db, city):
    h = orgdata.headers("inspector")
    yesterday = TODAY - dt.timedelta(days=1)
    points = [
        # Two of the four area grids today, one of them twice.
        {"at": _at(0, 1), "lon": cell_center(0, 0)[0], "lat": cell_center(0, 0)[1]},
        {"at": _at(0, 2), "lon": cell_center(0, 0)[0], "lat": cell_center(0, 0)[1]},
        {"at": _at(0, 3), "lon": cell_center(1, 1)[0], "lat": cell_center(1, 1)[1]},
        # A grid outside the area does not count.
        {"at": _at(0, 4), "lon": cell_center(2, 2)[0], "lat": cell_center(2, 2)[1]},
        # Yesterday 23:59 local (15:59 UTC: the same UTC date as today's early points) is yesterday's.
        {"at": _at(23, 59, yesterday), "lon": cell_center(0, 1)[0], "lat": cell_center(0, 1)[1]},
    ]
    if dt.datetime.now(CST).time() < dt.time(0, 5):
        pytest.skip("too close to local midnight for points 'earlier today'")
    assert _post(client, h, "t-c", points).json()["accepted"] == 5
    r = _coverage(client, orgdata.headers("leader"), orgdata.ids["inspector"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["grids_total"] == 4 and body["grids_visited"] == 2 and body["coverage"] == 0.5
    assert body["points"] == 4
    assert body["missed"] == [grid_code(0, 1), grid_code(1, 0)]
    y = _coverage(client, orgdata.headers("shiftlead"), orgdata.ids["inspector"], yesterday).json()
    assert y["grids_visited"] == 1 and y["coverage"] == 0.25 and y["points"] == 1
    # The inspector sees their own; an inspector without an area has no coverage figure.
    assert _coverage(client, h, orgdata.ids["inspector"]).json()["coverage"] == 0.5
    none = _coverage(client, orgdata.headers("admin"), orgdata.ids["inspector2"]).json()
    assert none["grids_total"] == 0 and none["coverage"] is None


@pytest.mark.parametrize("viewer", ["inspector2", "dispatcher", "water"])
def test_coverage_is_not_for_everyone(client, orgdata, city, viewer):
    r = _coverage(client, orgdata.headers(viewer), orgdata.ids["inspector"])
    assert r.status_code == 403 and r.json()["detail"][0]["type"] == "mobile.role_forbidden"


def test_evaluation_can_get_every_inspectors_coverage_in_one_query(client, orgdata, db, city):
    from components.models import SupervisionArea, SupervisionGrid

    factory = make_session_factory(db)
    with factory() as s, s.begin():
        area = SupervisionArea(code="JD-02", name="责任区二", inspector_id=orgdata.ids["inspector2"])
        s.add(area)
        s.flush()
        s.add_all(
            [SupervisionGrid(supervision_area_id=area.id, grid_code=g) for g in (grid_code(2, 2), grid_code(2, 1))]
        )
    _post(
        client,
        orgdata.headers("inspector2"),
        "t-2",
        [{"at": _earlier_today(2), "lon": cell_center(2, 2)[0], "lat": cell_center(2, 2)[1]}],
    )
    _post(
        client,
        orgdata.headers("inspector"),
        "t-1",
        [{"at": _earlier_today(2), "lon": cell_center(2, 2)[0], "lat": cell_center(2, 2)[1]}],
    )
    start, end = service.day_bounds(TODAY, "Asia/Shanghai")
    with factory() as s:
        cov = components_service.coverage_by_inspector(s, start=start, end=end)
    # inspector2 visited one of two; inspector visited a grid outside their area.
    assert cov == {orgdata.ids["inspector"]: (4, 0), orgdata.ids["inspector2"]: (2, 1)}
