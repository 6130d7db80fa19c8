"""The phone API end to end: login, reports with real photos, EXIF flags, tasks, results, orphan cleaning."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gridcity import coords
from tests.casework.helpers import act, report, to_status
from tests.mobile_api.conftest import (
    CELL,
    LAT,
    LON,
    a_report,
    bomb_png,
    cell_center,
    count,
    grid_code,
    media_files,
    photo,
    post_report,
    post_result,
)

NOW_CST = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
EXIF_NOW = NOW_CST.strftime("%Y:%m:%d %H:%M:%S")
HERE = (LON + CELL / 2, LAT + CELL / 2)


def _nothing_stored(db: sa.Engine, settings: Any) -> None:
    assert count(db, "case") == 0 and count(db, "case_event") == 0 and count(db, "attachment") == 0
    assert count(db, "idempotency_record") == 0
    assert media_files(settings.media_dir) == []


# ---- login ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["inspector", "water"])
def test_inspectors_and_field_staff_log_in(client, orgdata, username):
    r = client.post("/mobile/v1/auth/token", data={"username": username, "password": "password-123"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["username"] == username
    r = client.get("/mobile/v1/reports", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 200


@pytest.mark.parametrize("username", ["acceptor", "dispatcher", "leader", "admin"])
def test_other_roles_cannot_log_in_on_the_phone(client, orgdata, username):
    r = client.post("/mobile/v1/auth/token", data={"username": username, "password": "password-123"})
    assert r.status_code == 403 and r.json()["detail"][0]["type"] == "mobile.role_forbidden"


def test_wrong_password_is_401(client, orgdata):
    r = client.post("/mobile/v1/auth/token", data={"username": "inspector", "password": "nope-nope"})
    assert r.status_code == 401 and r.json()["detail"][0]["type"] == "auth.bad_credentials"


# ---- reports -------------------------------------------------------------------------------------------------


def test_a_report_with_matching_exif_is_filed_without_flags(client, orgdata, db):
    pic = photo(1, taken=EXIF_NOW, lonlat=HERE)
    r = post_report(
        client, orgdata.headers("inspector"), "k-1", a_report(captured_at=NOW_CST.isoformat()), photos=[pic]
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "reported" and body["action"] == "report"
    assert body["lon"] == pytest.approx(HERE[0]) and body["lat"] == pytest.approx(HERE[1])
    assert body["photos"][0]["flags"] == []
    assert count(db, "case") == 1 and count(db, "case_event") == 1 and count(db, "event_attachment") == 1
    mine = client.get("/mobile/v1/reports", headers=orgdata.headers("inspector")).json()
    assert mine["total"] == 1 and mine["items"][0]["number"] == body["number"]
    assert mine["items"][0]["status"] == "reported"
    assert client.get("/mobile/v1/reports", headers=orgdata.headers("inspector2")).json()["total"] == 0


def test_exif_far_away_and_old_is_flagged_for_the_operator_but_accepted(client, orgdata, db):
    far = (HERE[0] + 0.02, HERE[1])  # ~1.8 km east
    old = (NOW_CST - dt.timedelta(days=3)).strftime("%Y:%m:%d %H:%M:%S")
    r = post_report(
        client, orgdata.headers("inspector"), "k-flags", a_report(), photos=[photo(2, taken=old, lonlat=far)]
    )
    assert r.status_code == 201, r.text
    assert sorted(r.json()["photos"][0]["flags"]) == ["photo.far_from_claim", "photo.old"]
    with db.connect() as c:
        flags = c.execute(sa.text("SELECT flags FROM attachment")).scalar_one()
        data = c.execute(sa.text("SELECT data FROM case_event")).scalar_one()
    flags = flags if isinstance(flags, list) else __import__("json").loads(flags)
    data = data if isinstance(data, dict) else __import__("json").loads(data)
    assert {f["code"] for f in flags} == {"photo.far_from_claim", "photo.old"}
    assert {f["code"] for f in data["photo_flags"]} == {"photo.far_from_claim", "photo.old"}
    # The operator sees the flags on the case timeline.
    events = client.get(f"/api/v1/cases/{r.json()['case_id']}/events", headers=orgdata.headers("acceptor")).json()
    assert {f["code"] for f in events[0]["data"]["photo_flags"]} == {"photo.far_from_claim", "photo.old"}


def test_a_photo_without_exif_is_flagged_as_such(client, orgdata):
    r = post_report(client, orgdata.headers("inspector"), "k-noexif", a_report(), photos=[photo(3)])
    assert r.status_code == 201
    assert sorted(r.json()["photos"][0]["flags"]) == ["photo.no_exif_gps", "photo.no_exif_time"]


def test_a_png_named_jpg_is_accepted_by_its_content(client, orgdata, db):
    r = post_report(client, orgdata.headers("inspector"), "k-png", a_report(), photos=[photo(4, fmt="PNG")])
    assert r.status_code == 201, r.text
    with db.connect() as c:
        assert c.execute(sa.text("SELECT media_type FROM attachment")).scalar_one() == "image/png"


@pytest.mark.parametrize(
    ("bad", "status", "code"),
    [
        (b"this is a text file, not a photo\n" * 10, 415, "photo.unsupported_type"),
        ("corrupt", 422, "photo.corrupt"),
        ("bomb", 422, "photo.too_many_pixels"),
    ],
)
def test_bad_photos_are_refused_and_leave_nothing(client, orgdata, db, settings, bad, status, code):
    if bad == "corrupt":
        bad = photo(5, size=(800, 600))[:4000]  # a truncated JPEG
    elif bad == "bomb":
        bad = bomb_png()
    good = photo(6, taken=EXIF_NOW, lonlat=HERE)
    r = post_report(client, orgdata.headers("inspector"), "k-bad", a_report(), photos=[good, bad])
    assert r.status_code == status, r.text
    detail = r.json()["detail"][0]
    assert detail["type"] == code and detail["loc"] == ["body", "photos", 1]
    _nothing_stored(db, settings)  # the first, good photo's files were removed with the rollback


def test_a_database_error_after_the_files_were_written_leaves_no_files_and_no_rows(app, orgdata, db, settings):
    # A real database failure (a trigger) when the case's event is inserted, i.e. after the photos are on disk.
    if db.dialect.name == "postgresql":
        ddl = [
            "CREATE FUNCTION gc_test_boom() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$ "
            "LANGUAGE plpgsql",
            "CREATE TRIGGER gc_test_boom BEFORE INSERT ON case_event FOR EACH ROW EXECUTE FUNCTION gc_test_boom()",
        ]
        drop = ["DROP TRIGGER gc_test_boom ON case_event", "DROP FUNCTION gc_test_boom()"]
    else:
        ddl = ["CREATE TRIGGER gc_test_boom BEFORE INSERT ON case_event BEGIN SELECT RAISE(ABORT, 'boom'); END"]
        drop = ["DROP TRIGGER gc_test_boom"]
    with db.begin() as c:
        for stmt in ddl:
            c.exec_driver_sql(stmt)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            r = post_report(c, orgdata.headers("inspector"), "k-boom", a_report(), photos=[photo(7), photo(8)])
        assert r.status_code == 500 and r.json()["detail"][0]["type"] == "internal"
    finally:
        with db.begin() as c:
            for stmt in drop:
                c.exec_driver_sql(stmt)
    _nothing_stored(db, settings)


def test_an_unknown_class_is_refused_before_any_photo_is_stored(client, orgdata, db, settings):
    r = post_report(client, orgdata.headers("inspector"), "k-cls", a_report(class_code="C9999"), photos=[photo(9)])
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "class.unknown"
    assert r.json()["detail"][0]["loc"] == ["body", "report", "class_code"]
    _nothing_stored(db, settings)


def test_report_needs_one_to_nine_photos(client, orgdata, db, settings):
    r = post_report(client, orgdata.headers("inspector"), "k-0", a_report(), photos=[])
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "mobile.photo_count"
    r = post_report(client, orgdata.headers("inspector"), "k-10", a_report(), photos=[photo(i) for i in range(10)])
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "mobile.photo_count"
    _nothing_stored(db, settings)


def test_a_malformed_report_field_is_422_in_the_usual_shape(client, orgdata, db):
    r = post_report(
        client,
        orgdata.headers("inspector"),
        "k-mal",
        {"class_code": "C0101", "lon": 500, "lat": LAT},
        photos=[photo(1)],
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "report", "lon"]
    r = client.post(
        "/mobile/v1/reports",
        data={"report": "{not json"},
        files=[("photos", ("a.jpg", photo(1)))],
        headers={**orgdata.headers("inspector"), "Idempotency-Key": "k-mal2"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    assert count(db, "case") == 0


def test_gcj02_input_lands_on_the_converted_wgs84_point(client, orgdata, db):
    g_lon, g_lat = coords.wgs84_to_gcj02(*HERE)
    assert coords.haversine_m(g_lon, g_lat, *HERE) > 100  # the datums really differ here
    r = post_report(
        client,
        orgdata.headers("inspector"),
        "k-gcj",
        a_report(lon=g_lon, lat=g_lat, coord_system="gcj02"),
        photos=[photo(10)],
    )
    assert r.status_code == 201, r.text
    with db.connect() as c:
        lon, lat = c.execute(sa.text('SELECT lon, lat FROM "case"')).one()
    assert coords.haversine_m(lon, lat, *HERE) < 0.01
    assert coords.haversine_m(lon, lat, *coords.gcj02_to_wgs84(g_lon, g_lat)) < 1e-6


def test_a_point_outside_the_city_is_refused_with_a_clear_error(client, orgdata, db, settings, city):
    r = post_report(client, orgdata.headers("inspector"), "k-out", a_report(lon=LON + 1, lat=LAT), photos=[photo(11)])
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["type"] == "geo.outside_city" and d["loc"] == ["body", "report", "lon"] and "outside the city" in d["msg"]
    _nothing_stored(db, settings)
    # Inside, the case gets its unit grid.
    r = post_report(client, orgdata.headers("inspector"), "k-in", a_report(), photos=[photo(11)])
    assert r.status_code == 201 and r.json()["grid_code"] == grid_code(0, 0)


def test_department_staff_cannot_report(client, orgdata, db):
    r = post_report(client, orgdata.headers("water"), "k-dep", a_report(), photos=[photo(12)])
    assert r.status_code == 403 and r.json()["detail"][0]["type"] == "mobile.role_forbidden"


def test_every_submission_needs_an_idempotency_key(client, orgdata, db):
    r = post_report(client, orgdata.headers("inspector"), None, a_report(), photos=[photo(13)])
    assert r.status_code == 400 and r.json()["detail"][0]["type"] == "idempotency.missing_key"
    r = post_report(client, orgdata.headers("inspector"), "spaces are not allowed", a_report(), photos=[photo(13)])
    assert r.status_code == 400 and r.json()["detail"][0]["type"] == "idempotency.bad_key"
    for path, kw in [
        ("/mobile/v1/tracks", {"json": {"points": [{"at": NOW_CST.isoformat(), "lon": LON, "lat": LAT}]}}),
        ("/mobile/v1/batch", {"json": {"items": [{"kind": "tracks"}]}}),
        ("/mobile/v1/photos", {"files": [("photos", ("a.jpg", photo(1)))]}),
        ("/mobile/v1/tasks/1/result", {"data": {"result": "{}"}}),
    ]:
        r = client.post(path, headers=orgdata.headers("inspector"), **kw)
        assert r.status_code == 400 and r.json()["detail"][0]["type"] == "idempotency.missing_key", path
    assert count(db, "case") == 0 and count(db, "patrol_point") == 0 and count(db, "attachment") == 0


def test_a_self_handled_report_keeps_before_and_after_photos_apart(client, orgdata, db):
    h = orgdata.headers("inspector")
    r = post_report(
        client,
        h,
        "k-self",
        a_report(self_handled=True, note="已扶正"),
        before=[photo(20), photo(21)],
        after=[photo(22)],
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "self_handled" and body["action"] == "self_handle"
    events = client.get(f"/api/v1/cases/{body['case_id']}/events", headers=orgdata.headers("shiftlead")).json()
    roles = sorted(a["role"] for a in events[0]["attachments"])
    assert roles == ["after", "before", "before"]
    mine = client.get("/mobile/v1/reports", headers=h).json()["items"]
    assert mine[0]["self_handled"] is True
    # Without after photos it is refused.
    r = post_report(client, h, "k-self2", a_report(self_handled=True), before=[photo(23)])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "after"]
    r = post_report(
        client, h, "k-self3", a_report(self_handled=True), photos=[photo(23)], before=[photo(24)], after=[photo(25)]
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "mobile.unexpected_photos"
    assert count(db, "case") == 1


# ---- tasks and results ---------------------------------------------------------------------------------------


def _verify_task(client: TestClient, orgdata: Any, lon: float, lat: float, inspector: str = "inspector") -> dict:
    case = report(client, orgdata, user="acceptor", action="public_report", photos=[], lon=lon, lat=lat)
    return act(client, orgdata, case, "acceptor", "send_verify", inspector_id=orgdata.ids[inspector])


def _set_deadline(db: sa.Engine, case_id: int, when: dt.datetime) -> None:
    with db.begin() as c:
        c.execute(
            sa.text('UPDATE "case" SET deadline_at = :d WHERE id = :i'),
            {"d": when.astimezone(dt.UTC).replace(tzinfo=None) if db.dialect.name == "sqlite" else when, "i": case_id},
        )


def test_the_inbox_is_ordered_by_deadline_then_distance(client, orgdata, db):
    near = _verify_task(client, orgdata, *cell_center(0, 0))
    far = _verify_task(client, orgdata, *cell_center(2, 2))
    urgent = _verify_task(client, orgdata, *cell_center(2, 1))
    other = _verify_task(client, orgdata, *cell_center(0, 0), inspector="inspector2")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    later = soon + dt.timedelta(hours=2)
    _set_deadline(db, urgent["id"], soon)
    _set_deadline(db, near["id"], later)
    _set_deadline(db, far["id"], later)
    here = cell_center(0, 0)
    r = client.get("/mobile/v1/tasks", params={"lon": here[0], "lat": here[1]}, headers=orgdata.headers("inspector"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [t["id"] for t in items] == [urgent["id"], near["id"], far["id"]]
    assert items[0]["task"] == "verify" and items[1]["distance_m"] < items[2]["distance_m"]
    assert other["id"] not in [t["id"] for t in items]
    # Standing at the far cell swaps the two with the same deadline.
    there = cell_center(2, 2)
    items = client.get(
        "/mobile/v1/tasks", params={"lon": there[0], "lat": there[1]}, headers=orgdata.headers("inspector")
    ).json()["items"]
    assert [t["id"] for t in items] == [urgent["id"], far["id"], near["id"]]


def test_department_staff_see_their_dispatched_cases(client, orgdata):
    case = to_status(client, orgdata, "dispatched")
    water = client.get("/mobile/v1/tasks", headers=orgdata.headers("water")).json()["items"]
    assert [(t["id"], t["task"]) for t in water] == [(case["id"], "handle")]
    assert client.get("/mobile/v1/tasks", headers=orgdata.headers("lighting")).json()["items"] == []


def test_a_verify_result_on_site_moves_the_case_and_far_away_is_refused(client, orgdata, db):
    task = _verify_task(client, orgdata, *cell_center(1, 1))
    h = orgdata.headers("inspector")
    far = (task["lon"] + 0.01, task["lat"])  # ~900 m away
    r = post_result(client, h, "r-far", task["id"], {"outcome": "pass", "lon": far[0], "lat": far[1]}, [photo(30)])
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["type"] == "mobile.not_on_site" and d["ctx"]["distance_m"] > 800
    assert count(db, "attachment") == 0 and count(db, "case_event") == 2
    r = post_result(
        client, h, "r-ok", task["id"], {"outcome": "pass", "lon": task["lon"] + 0.0005, "lat": task["lat"]}, [photo(31)]
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "reported" and r.json()["action"] == "verify_true"
    # The task is gone from the inbox, and the same outcome again is not a task any more.
    assert client.get("/mobile/v1/tasks", headers=h).json()["items"] == []
    r = post_result(
        client, h, "r-again", task["id"], {"outcome": "pass", "lon": task["lon"], "lat": task["lat"]}, [photo(32)]
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "mobile.no_task"


def test_a_failed_check_needs_a_note_and_sends_the_case_back(client, orgdata):
    case = to_status(client, orgdata, "checking")
    h = orgdata.headers("inspector")
    body = {"outcome": "fail", "lon": case["lon"], "lat": case["lat"]}
    r = post_result(client, h, "c-1", case["id"], body, [photo(40)])
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "case.missing_input"
    r = post_result(client, h, "c-2", case["id"], {**body, "note": "井盖仍破损"}, [photo(40)])
    assert r.status_code == 200 and r.json()["status"] == "dispatched" and r.json()["action"] == "check_fail"


def test_field_staff_feed_back_from_the_site_accepting_on_the_spot(client, orgdata, db):
    case = to_status(client, orgdata, "dispatched")
    r = post_result(
        client,
        orgdata.headers("water"),
        "f-1",
        case["id"],
        {"outcome": "done", "lon": case["lon"], "lat": case["lat"], "note": "已更换"},
        [photo(50)],
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "feedback"
    events = client.get(f"/api/v1/cases/{case['id']}/events", headers=orgdata.headers("leader")).json()
    assert [e["action"] for e in events][-2:] == ["accept", "feedback"]
    assert events[-1]["attachments"][0]["role"] == "after"
    # Another department's staff cannot; to them the case does not exist.
    case2 = to_status(client, orgdata, "dispatched")
    r = post_result(
        client,
        orgdata.headers("lighting"),
        "f-2",
        case2["id"],
        {"outcome": "done", "lon": case2["lon"], "lat": case2["lat"]},
        [photo(51)],
    )
    assert r.status_code == 404 and r.json()["detail"][0]["type"] == "case.not_found"


# ---- orphan cleaning -----------------------------------------------------------------------------------------


def _age(paths: list[Any], seconds: float) -> None:
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t))


def test_the_cleaner_removes_what_a_crash_left_and_keeps_everything_in_use(client, app, orgdata, db, settings):
    from gridcity.database import make_session_factory
    from mobile_api.maintenance import clean_orphans

    store = app.state.store
    # In use: a report's photo.
    r = post_report(client, orgdata.headers("inspector"), "k-use", a_report(), photos=[photo(60)])
    assert r.status_code == 201
    report_photo = r.json()["photos"][0]["id"]
    in_use = media_files(settings.media_dir)
    # A crash after the files were written and before the commit: files exist, no row ever will.
    crashed = [store.put(photo(61), ".orig")[1], store.put(b"display", ".display.jpg", key="f" * 64)[1]]
    # A photo uploaded for a queued item that never came, two days ago.
    r = client.post(
        "/mobile/v1/photos",
        files=[("photos", ("a.jpg", photo(62)))],
        headers={**orgdata.headers("inspector"), "Idempotency-Key": "ph-1"},
    )
    assert r.status_code == 201
    stale_sha = r.json()["photos"][0]["sha256"]
    two_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    with db.begin() as c:  # both photos are old now; only the report's one is referenced
        c.execute(
            sa.text("UPDATE attachment SET created_at = :t"),
            {"t": two_days_ago.replace(tzinfo=None) if db.dialect.name == "sqlite" else two_days_ago},
        )
    stale_files = [p for p in media_files(settings.media_dir) if p.name.startswith(stale_sha)]
    assert len(stale_files) == 2  # original + thumbnail; the display rendition is made on demand
    # A request writing its files right now (not yet committed): young files without a row.
    young = store.put(photo(63), ".orig")[1]
    _age(in_use + crashed + stale_files, 3 * 3600)

    factory = make_session_factory(db)
    # A clean that is rolled back removes nothing.
    with factory() as s:
        clean_orphans(s, store, dt.timedelta(hours=1))
        s.rollback()
    assert all(p.exists() for p in crashed + stale_files)
    with factory() as s, s.begin():
        rep = clean_orphans(s, store, dt.timedelta(hours=1))
    assert rep.attachments_removed == 1 and rep.files_removed == 4
    assert not any(p.exists() for p in crashed + stale_files)
    assert all(p.exists() for p in in_use) and young.exists()
    assert count(db, "attachment") == 1
    # The report's photo is kept and still served.
    with db.connect() as c:
        assert c.execute(sa.text("SELECT id FROM attachment")).scalar_one() == report_photo
    rr = client.get(f"/api/v1/attachments/{report_photo}/thumb", headers=orgdata.headers("leader"))
    assert rr.status_code == 200


def test_a_photo_reused_from_an_old_orphan_is_refreshed_so_the_cleaner_keeps_it(client, app, orgdata, db, settings):
    from gridcity.database import make_session_factory
    from mobile_api.maintenance import clean_orphans

    store = app.state.store
    pic = photo(70)
    # The same bytes were left behind by a crash long ago (original only, as a crash mid-write would).
    orphan = store.put(pic, ".orig")[1]
    _age([orphan], 5 * 3600)
    r = post_report(client, orgdata.headers("inspector"), "k-reuse", a_report(), photos=[pic])
    assert r.status_code == 201
    with make_session_factory(db)() as s, s.begin():
        clean_orphans(s, store, dt.timedelta(hours=1))
    assert orphan.exists() and len(media_files(settings.media_dir)) == 2
