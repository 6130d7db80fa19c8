"""The phone API additions the field app (城管通) uses: classes, nearest components, snapping kept on the case,
case detail with photos and history, department actions from the phone, the limits for the phone."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from components.models import Component
from gridcity import spatial
from tests.casework.helpers import act, report, to_status
from tests.mobile_api.conftest import CELL, DISTRICT, LAT, LON, a_report, count, photo, post_report

HERE = (LON + CELL / 2, LAT + CELL / 2)
M = 1 / 111_000  # ~1 m of latitude in degrees


def _component(db, class_code: str, seq: int, dy_m: float, state: str = "完好") -> str:
    code = f"{DISTRICT}{class_code[1:]}{seq:06d}"
    with Session(db) as s, s.begin():
        s.add(
            Component(
                code=code,
                class_code=class_code,
                name=f"{class_code}-{seq}",
                state=state,
                geom=spatial.ewkt(f"POINT({HERE[0]} {HERE[1] + dy_m * M})"),
            )
        )
    return code


def test_classes_have_each_chinese_name_once_and_my_recent_classes_first(client, orgdata, db, city):
    h = orgdata.headers("inspector")
    r = client.get("/mobile/v1/classes", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    names = [c["name_zh"] for c in body["items"]]
    assert len(names) == len(set(names)) and len(names) > 300
    gens = {c["generation"] for c in body["items"]}
    assert gens == {"cjt214", "gbt47678"}
    keys = {c["key"] for c in body["items"]}
    assert "C0101" in keys and "C01001" in keys  # 上水井盖 and 供水井盖: two names, both offered
    assert body["recent"] == []
    post_report(client, h, "k1", a_report(class_code="E0101"), photos=[photo(1)])
    post_report(client, h, "k2", a_report(class_code="C0101"), photos=[photo(2)])
    assert client.get("/mobile/v1/classes", headers=h).json()["recent"] == ["C0101", "E0101"]


def test_nearest_components_of_a_class_and_its_counterpart_within_the_tolerance(client, orgdata, db, city):
    near = _component(db, "C0101", 1, 5)
    mapped = _component(db, "C01001", 2, 12)  # 供水井盖 replaces 上水井盖: found for either class
    _component(db, "C0101", 3, 60)  # beyond 30 m
    _component(db, "C0101", 4, 2, state="废弃")  # gone from the street
    _component(db, "C0102", 5, 1)  # another class
    h = orgdata.headers("inspector")
    r = client.get(
        "/mobile/v1/components/nearest", params={"class_code": "C0101", "lon": HERE[0], "lat": HERE[1]}, headers=h
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["inside_city"] is True and body["tolerance_m"] == 30
    assert [c["code"] for c in body["items"]] == [near, mapped]
    assert 4 < body["items"][0]["distance_m"] < 6 and abs(body["items"][0]["lat"] - (HERE[1] + 5 * M)) < 1e-6
    r = client.get(
        "/mobile/v1/components/nearest", params={"class_code": "C01001", "lon": HERE[0], "lat": HERE[1]}, headers=h
    )
    assert [c["code"] for c in r.json()["items"]] == [near, mapped]
    # An event class has no components; a point outside the city says so; an unknown class is 422.
    r = client.get(
        "/mobile/v1/components/nearest", params={"class_code": "E0101", "lon": HERE[0], "lat": HERE[1]}, headers=h
    )
    assert r.json()["items"] == []
    r = client.get(
        "/mobile/v1/components/nearest", params={"class_code": "C0101", "lon": 116.4, "lat": 39.9}, headers=h
    )
    assert r.status_code == 200 and r.json() == {"inside_city": False, "tolerance_m": 30, "items": []}
    r = client.get(
        "/mobile/v1/components/nearest", params={"class_code": "C9999", "lon": HERE[0], "lat": HERE[1]}, headers=h
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "class.unknown"


def test_a_report_keeps_the_component_it_was_snapped_to_or_the_one_chosen(client, orgdata, db, city):
    near = _component(db, "C0101", 1, 5)
    other = _component(db, "C0101", 2, 20)
    h = orgdata.headers("inspector")
    r = post_report(client, h, "s1", a_report(), photos=[photo(1)])
    assert r.status_code == 201, r.text
    assert r.json()["component_id"] == near
    case = client.get(f"/api/v1/cases/{r.json()['case_id']}", headers=orgdata.headers("acceptor")).json()
    assert case["component_id"] == near
    r = post_report(client, h, "s2", a_report(component_id=other), photos=[photo(2)])
    assert r.json()["component_id"] == other
    # Two equally near components: the server does not guess, the dispatcher decides.
    _component(db, "C0101", 3, 5.3)
    r = post_report(client, h, "s3", a_report(), photos=[photo(3)])
    assert r.status_code == 201 and "component_id" not in r.json()


def test_task_detail_has_photos_history_distance_and_the_on_site_rule(client, orgdata, db):
    case = to_status(client, orgdata, "checking")
    h = orgdata.headers("inspector")
    r = client.get(f"/mobile/v1/tasks/{case['id']}", params={"lon": case["lon"] + 0.001, "lat": case["lat"]}, headers=h)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["task"] == "check" and d["class_name"] == "上水井盖" and d["onsite_radius_m"] == 200
    assert 80 < d["distance_m"] < 100
    assert [e["action"] for e in d["events"]] == ["report", "file", "dispatch", "accept", "feedback", "send_check"]
    assert len(d["photos"]) == 2 and {p["role"] for p in d["photos"]} == {"before", "after"}
    assert set(d["allowed_actions"]) >= {"check_pass", "check_fail"}
    thumb = client.get(d["photos"][0]["thumb_url"], headers=h)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    # Someone else's case is not shown.
    assert client.get(f"/mobile/v1/tasks/{case['id']}", headers=orgdata.headers("inspector2")).status_code in (403, 404)
    assert client.get("/mobile/v1/tasks/999999", headers=h).status_code == 404


def test_department_accepts_asks_for_an_extension_in_a_valid_unit_and_a_send_back(client, orgdata, db):
    case = to_status(client, orgdata, "dispatched")
    h = {**orgdata.headers("water"), "Idempotency-Key": "a-1"}
    d = client.get(f"/mobile/v1/tasks/{case['id']}", headers=orgdata.headers("water")).json()
    assert d["task"] == "handle" and "accept" in d["allowed_actions"]
    units = d["extension_units"]
    assert units and set(units) < {"work_hour", "work_day", "hour", "day", "minute"}
    r = client.post(f"/mobile/v1/tasks/{case['id']}/action", json={"action": "accept"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "handling"
    again = client.post(f"/mobile/v1/tasks/{case['id']}/action", json={"action": "accept"}, headers=h)
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert count(db, "case_event", f"WHERE case_id = {case['id']} AND action = 'accept'") == 1
    wrong = next(u for u in ("work_day", "day") if u not in units)
    r = client.post(
        f"/mobile/v1/tasks/{case['id']}/action",
        headers={**h, "Idempotency-Key": "a-2"},
        json={"action": "request_extension", "note": "备件未到", "extension": {"value": 2, "unit": wrong}},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "deadline.unit_mismatch"
    r = client.post(
        f"/mobile/v1/tasks/{case['id']}/action",
        headers={**h, "Idempotency-Key": "a-2"},
        json={"action": "request_extension", "note": "备件未到", "extension": {"value": 2, "unit": units[0]}},
    )
    assert r.status_code == 200 and r.json()["status"] == "extension_requested"
    # Still in the department's queue (as in the console's inbox), with no feedback offered until decided.
    queue = client.get("/mobile/v1/tasks", headers=orgdata.headers("water")).json()["items"]
    assert [(t["id"], t["status"], t["task"]) for t in queue] == [(case["id"], "extension_requested", "handle")]
    d = client.get(f"/mobile/v1/tasks/{case['id']}", headers=orgdata.headers("water")).json()
    assert d["task"] == "handle" and "feedback" not in d["allowed_actions"]
    # Asked for on a case not yet accepted, the extension accepts it on the spot.
    fresh = to_status(client, orgdata, "dispatched")
    r = client.post(
        f"/mobile/v1/tasks/{fresh['id']}/action",
        headers={**h, "Idempotency-Key": "a-6"},
        json={"action": "request_extension", "note": "备件未到", "extension": {"value": 2, "unit": units[0]}},
    )
    assert r.status_code == 200 and r.json()["status"] == "extension_requested"
    case2 = to_status(client, orgdata, "handling")
    r = client.post(
        f"/mobile/v1/tasks/{case2['id']}/action",
        headers={**h, "Idempotency-Key": "a-3"},
        json={"action": "request_sendback", "note": "不属本单位"},
    )
    assert r.status_code == 200 and r.json()["status"] == "sendback_requested"
    # Inspectors do not act for departments; another department cannot.
    case3 = to_status(client, orgdata, "dispatched")
    r = client.post(
        f"/mobile/v1/tasks/{case3['id']}/action",
        json={"action": "accept"},
        headers={**orgdata.headers("inspector"), "Idempotency-Key": "a-4"},
    )
    assert r.status_code == 403
    r = client.post(
        f"/mobile/v1/tasks/{case3['id']}/action",
        json={"action": "accept"},
        headers={**orgdata.headers("lighting"), "Idempotency-Key": "a-5"},
    )
    assert r.status_code in (403, 404)
    r = client.post(f"/mobile/v1/tasks/{case3['id']}/action", json={"action": "dispatch"}, headers=h)
    assert r.status_code == 422


def test_my_report_detail_shows_its_timeline(client, orgdata, db):
    case = report(client, orgdata)
    act(client, orgdata, case, "shiftlead", "file")
    d = client.get(f"/mobile/v1/tasks/{case['id']}", headers=orgdata.headers("inspector")).json()
    assert "task" not in d and [e["action"] for e in d["events"]] == ["report", "file"]


def test_config_gives_the_limits_and_the_city_extent(client, orgdata, city, settings):
    r = client.get("/mobile/v1/config", headers=orgdata.headers("inspector"))
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["max_upload_bytes"] == settings.max_upload_bytes and c["max_photos"] == 9
    x0, y0, x1, y1 = c["city_bbox"]
    assert x0 < LON < x1 and y0 < LAT < y1
    assert client.get("/mobile/v1/config").status_code == 401


def test_the_additions_are_in_openapi(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/mobile/v1/classes",
        "/mobile/v1/components/nearest",
        "/mobile/v1/tasks/{case_id}",
        "/mobile/v1/tasks/{case_id}/action",
        "/mobile/v1/config",
    ):
        assert p in paths, p
    assert json.dumps(paths["/mobile/v1/tasks/{case_id}/action"]).count("Idempotency-Key") >= 1
