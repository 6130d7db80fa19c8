"""Reassigning a supervision area with an effective time, and patrol coverage by the areas as they were then."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from components import service as components_service
from gridcity.database import make_session_factory
from mobile_api import service
from tests.mobile_api.conftest import cell_center, count, grid_code

CST = dt.timezone(dt.timedelta(hours=8))


def _now() -> dt.datetime:
    return dt.datetime.now(CST).replace(microsecond=0)


def _reassign(client: Any, h: dict[str, str], area_id: int, inspector_id: int | None, at: dt.datetime | str) -> Any:
    at_text = at if isinstance(at, str) else at.isoformat()
    return client.post(
        f"/api/v1/supervision-areas/{area_id}/reassign",
        json={"inspector_id": inspector_id, "effective_at": at_text},
        headers=h,
    )


def _crumb(client: Any, h: dict[str, str], key: str, at: dt.datetime, cell: tuple[int, int]) -> None:
    lon, lat = cell_center(*cell)
    r = client.post(
        "/mobile/v1/tracks",
        json={"points": [{"at": at.isoformat(), "lon": lon, "lat": lat}]},
        headers={**h, "Idempotency-Key": key},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


def _area_row(db: sa.Engine, area_id: int) -> tuple[Any, ...]:
    with db.connect() as c:
        return tuple(c.exec_driver_sql(f"SELECT inspector_id FROM supervision_area WHERE id = {int(area_id)}").one())


def test_reassigning_in_the_middle_of_a_day_splits_that_days_coverage_between_the_two(client, orgdata, db, city):
    now = _now()
    if now.time() < dt.time(0, 45):
        pytest.skip("too close to local midnight for three points earlier today")
    insp, insp2 = orgdata.ids["inspector"], orgdata.ids["inspector2"]
    # 40 min ago the inspector walks grid (0,0) of their area JD-01 (grids (0,0), (0,1), (1,0), (1,1)).
    _crumb(client, orgdata.headers("inspector"), "r-1", now - dt.timedelta(minutes=40), (0, 0))
    # 20 min ago the area went to inspector2 (entered now, effective then) ...
    effective = now - dt.timedelta(minutes=20)
    r = _reassign(client, orgdata.headers("shiftlead"), city.area_id, insp2, effective)
    assert r.status_code == 200, r.text
    assert r.json()["inspector_id"] == insp2 and sorted(r.json()["grid_codes"]) == city.area_grids
    # ... who walked grid (1,1) 10 min ago; the inspector's late walk in (0,1) is no longer their area.
    _crumb(client, orgdata.headers("inspector2"), "r-2", now - dt.timedelta(minutes=10), (1, 1))
    _crumb(client, orgdata.headers("inspector"), "r-3", now - dt.timedelta(minutes=5), (0, 1))

    # The history keeps who held the grids until when.
    with db.connect() as c:
        held = c.exec_driver_sql(
            "SELECT grid_code, inspector_id, valid_to FROM supervision_history ORDER BY grid_code"
        ).all()
    assert [(g, i) for g, i, _ in held] == [(g, insp) for g in city.area_grids]
    assert {
        dt.datetime.fromisoformat(str(t)).replace(tzinfo=dt.UTC) if db.dialect.name == "sqlite" else t
        for _, _, t in held
    } == {effective.astimezone(dt.UTC)}

    # Today's coverage (the field app's "today's coverage of my area"): both held all four grids for part of
    # the day, and each visited one of them while holding it. Without the history the inspector would have
    # no area at all today and inspector2 would be credited for the whole day.
    leader = orgdata.headers("leader")
    day = now.date().isoformat()
    one = client.get("/mobile/v1/tracks/coverage", params={"inspector_id": insp, "date": day}, headers=leader).json()
    two = client.get("/mobile/v1/tracks/coverage", params={"inspector_id": insp2, "date": day}, headers=leader).json()
    assert (one["grids_total"], one["grids_visited"], one["coverage"]) == (4, 1, 0.25)
    assert one["missed"] == [grid_code(0, 1), grid_code(1, 0), grid_code(1, 1)]  # (0,1) was walked too late
    assert (two["grids_total"], two["grids_visited"], two["coverage"]) == (4, 1, 0.25)
    assert two["missed"] == [grid_code(0, 0), grid_code(0, 1), grid_code(1, 0)]

    # Evaluation's per-inspector figure over windows before, across and after the change.
    with make_session_factory(db)() as s:
        before = components_service.coverage_by_inspector(s, start=now - dt.timedelta(hours=1), end=effective)
        after = components_service.coverage_by_inspector(s, start=effective, end=now + dt.timedelta(minutes=1))
    assert before == {insp: (4, 1)}
    assert after == {insp2: (4, 1)}


def test_refused_reassignments_store_nothing(client, orgdata, db, city):
    h = orgdata.headers("admin")
    insp2 = orgdata.ids["inspector2"]
    now = _now()

    r = _reassign(client, h, city.area_id, insp2, now + dt.timedelta(hours=1))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "supervision_area.effective_in_future"
    r = _reassign(client, h, city.area_id, orgdata.ids["dispatcher"], now)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "user.not_inspector"
    r = _reassign(client, h, 999_999, insp2, now)
    assert r.status_code == 404 and r.json()["detail"][0]["type"] == "supervision_area.not_found"
    r = _reassign(client, h, city.area_id, insp2, "not a time")
    assert r.status_code == 422
    assert count(db, "supervision_history") == 0 and _area_row(db, city.area_id) == (orgdata.ids["inspector"],)

    # A change an hour ago, then one before it: the history is append-only.
    assert _reassign(client, h, city.area_id, insp2, now - dt.timedelta(hours=1)).status_code == 200
    r = _reassign(client, h, city.area_id, None, now - dt.timedelta(hours=2))
    assert r.status_code == 409 and r.json()["detail"][0]["type"] == "supervision_area.effective_before_last_change"
    assert count(db, "supervision_history") == 4 and _area_row(db, city.area_id) == (insp2,)
    # A naive time is read in the city's zone; nobody holds the area from then on.
    naive = (now - dt.timedelta(minutes=30)).replace(tzinfo=None).isoformat()
    r = _reassign(client, h, city.area_id, None, naive)
    assert r.status_code == 200 and r.json()["inspector_id"] is None
    with db.connect() as c:
        last = c.exec_driver_sql("SELECT max(valid_to) FROM supervision_history").scalar_one()
    last_dt = dt.datetime.fromisoformat(str(last))
    last_dt = last_dt.replace(tzinfo=dt.UTC) if last_dt.tzinfo is None else last_dt
    assert last_dt == (now - dt.timedelta(minutes=30)).astimezone(dt.UTC)
    # inspector2 held the area from an hour ago to half an hour ago: the day of the middle of that (not today's
    # date, which just after local midnight the hour does not reach) has them
    start, end = service.day_bounds((now - dt.timedelta(minutes=45)).date(), "Asia/Shanghai")
    with make_session_factory(db)() as s:
        assert orgdata.ids["inspector2"] in components_service.coverage_by_inspector(s, start=start, end=end)
