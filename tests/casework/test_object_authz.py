"""Object-level authorization (issue 15): photos follow their case, evidence belongs to its author, the
on-site rule is one rule on every route. Through HTTP, on the configured database."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.casework.helpers import LAT, LON, act, on_site, report, to_status, upload


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as c:
        return int(c.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one())


def _photos_of(client: Any, org: Any, case_id: int) -> list[int]:
    events = client.get(f"/api/v1/cases/{case_id}/events", headers=org.headers("leader")).json()
    return [a["id"] for e in events for a in e["attachments"]]


# ---- a photo belongs to its case ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["display", "thumb", "original"])
def test_a_photo_of_a_case_the_user_may_not_see_is_404_like_a_missing_one(client, orgdata, kind):
    case = to_status(client, orgdata, "feedback")  # reported by inspector, handled by water
    photos = _photos_of(client, orgdata, case["id"])
    assert len(photos) == 2  # the report's photo and the after-photo
    for aid in photos:
        for user in ("lighting", "inspector2"):
            hidden = client.get(f"/api/v1/attachments/{aid}/{kind}", headers=orgdata.headers(user))
            absent = client.get(f"/api/v1/attachments/999999/{kind}", headers=orgdata.headers(user))
            assert hidden.status_code == absent.status_code == 404, (aid, user, hidden.text)
            assert hidden.json()["detail"][0]["type"] == absent.json()["detail"][0]["type"] == "attachment.not_found"
            assert not hidden.content.startswith(b"\xff\xd8")
        # Those who may see the case see its photos (the original never leaves the server).
        for user in ("water", "inspector", "leader", "dispatcher"):
            r = client.get(f"/api/v1/attachments/{aid}/{kind}", headers=orgdata.headers(user))
            if kind == "original":
                assert r.status_code == 404
            else:
                assert r.status_code == 200 and r.content[:2] == b"\xff\xd8", (user, r.text)


def test_an_unattached_photo_is_its_uploaders_only(client, orgdata):
    [aid] = upload(client, orgdata, "water")
    assert client.get(f"/api/v1/attachments/{aid}/thumb", headers=orgdata.headers("water")).status_code == 200
    for user in ("lighting", "inspector", "leader"):
        assert client.get(f"/api/v1/attachments/{aid}/thumb", headers=orgdata.headers(user)).status_code == 404


def test_a_department_loses_the_photos_with_the_case(client, orgdata):
    case = to_status(client, orgdata, "dispatched")
    [aid] = _photos_of(client, orgdata, case["id"])
    assert client.get(f"/api/v1/attachments/{aid}/thumb", headers=orgdata.headers("water")).status_code == 200
    case = act(client, orgdata, case, "water", "request_sendback", note="非我单位权属")
    act(client, orgdata, case, "dispatcher", "approve_sendback")
    assert client.get(f"/api/v1/attachments/{aid}/thumb", headers=orgdata.headers("water")).status_code == 404


# ---- evidence belongs to its author ---------------------------------------------------------------------


def test_a_department_cannot_attach_another_departments_after_photo(client, orgdata, db):
    """The hole of issue 15: lighting fed back water's after-photo of another case as its own."""
    water_case = to_status(client, orgdata, "feedback")
    water_after = _photos_of(client, orgdata, water_case["id"])[-1]
    light_case = to_status(client, orgdata, "dispatched")
    # Send it to lighting: back, approve, dispatch.
    light_case = act(client, orgdata, light_case, "water", "request_sendback", note="非我单位")
    light_case = act(client, orgdata, light_case, "dispatcher", "approve_sendback")
    light_case = act(client, orgdata, light_case, "dispatcher", "dispatch", department_id=orgdata.depts["LD"])
    light_case = act(client, orgdata, light_case, "lighting", "accept")
    events, links = _count(db, "case_event"), _count(db, "event_attachment")
    r = client.post(
        f"/api/v1/cases/{light_case['id']}/actions",
        json={"action": "feedback", "note": "已修复", "attachment_ids": [water_after]},
        headers=orgdata.headers("lighting"),
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "attachment.unknown"  # answered like a missing photo
    assert r.json()["detail"][0]["loc"] == ["attachment_ids", 0]
    assert (_count(db, "case_event"), _count(db, "event_attachment")) == (events, links)  # nothing half stored
    got = client.get(f"/api/v1/cases/{light_case['id']}", headers=orgdata.headers("lighting")).json()
    assert got["status"] == "handling" and got["version"] == light_case["version"]


def test_own_photo_already_used_elsewhere_is_refused(client, orgdata, db):
    case = report(client, orgdata)
    [used] = _photos_of(client, orgdata, case["id"])
    before = _count(db, "case")
    r = client.post(
        "/api/v1/cases",
        json={"action": "report", "class_code": "C0101", "lon": LON, "lat": LAT, "attachment_ids": [used]},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "attachment.already_used"
    assert _count(db, "case") == before


def test_another_users_unattached_photo_is_refused_on_create_and_check(client, orgdata, db):
    [theirs] = upload(client, orgdata, "inspector2")
    before = _count(db, "case")
    r = client.post(
        "/api/v1/cases",
        json={"action": "report", "class_code": "C0101", "lon": LON, "lat": LAT, "attachment_ids": [theirs]},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "attachment.unknown"
    assert _count(db, "case") == before
    case = to_status(client, orgdata, "checking")
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions",
        json={"action": "check_pass", "lon": LON, "lat": LAT, "attachment_ids": [theirs]},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "attachment.unknown"
    assert client.get(f"/api/v1/cases/{case['id']}", headers=orgdata.headers("leader")).json()["status"] == "checking"


# ---- the on-site rule is one rule -----------------------------------------------------------------------


@pytest.mark.parametrize("position", [None, (LON + 0.01, LAT)])  # none, or ~900 m away
def test_the_console_route_enforces_the_on_site_rule_for_check(client, orgdata, db, position):
    case = to_status(client, orgdata, "checking")
    body: dict[str, Any] = {"action": "check_pass", "attachment_ids": upload(client, orgdata, "inspector")}
    if position is not None:
        body.update(lon=position[0], lat=position[1])
    events = _count(db, "case_event")
    r = client.post(f"/api/v1/cases/{case['id']}/actions", json=body, headers=orgdata.headers("inspector"))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "mobile.not_on_site", r.text
    assert _count(db, "case_event") == events
    # Without photos it is refused too, even on site.
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions",
        json={"action": "check_pass", "lon": LON, "lat": LAT},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "case.missing_input"
    # On site with a photo it passes.
    assert act(client, orgdata, case, "inspector", "check_pass", **on_site(client, orgdata))["status"] == "checked"


def test_the_console_route_enforces_the_on_site_rule_for_verify(client, orgdata, app):
    case = report(client, orgdata, user="acceptor", action="public_report", photos=[])
    case = act(client, orgdata, case, "acceptor", "send_verify", inspector_id=orgdata.ids["inspector"])
    far = {"lon": LON + 0.01, "lat": LAT, "attachment_ids": upload(client, orgdata, "inspector")}
    for action, extra in (("verify_true", {}), ("verify_false", {"note": "无"})):
        r = client.post(
            f"/api/v1/cases/{case['id']}/actions",
            json={"action": action, **far, **extra},
            headers=orgdata.headers("inspector"),
        )
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "mobile.not_on_site"
        assert r.json()["detail"][0]["ctx"]["radius_m"] == app.state.settings.onsite_radius_m
    assert act(client, orgdata, case, "inspector", "verify_true", **on_site(client, orgdata))["status"] == "reported"


def test_the_radius_is_the_settings_on_the_console_route(db, orgdata, settings):
    # ~900 m away is on site for a city with a 1 km radius (GRIDCITY_ONSITE_RADIUS_M), on the console route
    # as on the phone.
    from fastapi.testclient import TestClient

    from gridcity.root.app import create_app

    wide = create_app(settings.model_copy(update={"onsite_radius_m": 1000.0}))
    with TestClient(wide) as client:
        case = to_status(client, orgdata, "checking")
        case = act(
            client,
            orgdata,
            case,
            "inspector",
            "check_pass",
            lon=LON + 0.01,
            lat=LAT,
            attachment_ids=upload(client, orgdata, "inspector"),
        )
        assert case["status"] == "checked"
    wide.state.engine.dispose()
