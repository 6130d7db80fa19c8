"""Queues page, sort and filter on the server; case-list exports; admin API; self-handled review."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import sqlalchemy as sa
from openpyxl import load_workbook

from casework.models import Case
from gridcity.database import make_session_factory
from tests.casework.helpers import act, report, upload
from tests.conftest import Org


def _age(db: sa.Engine, case_id: int, *, days: float, deadline_days: float | None = None) -> None:
    """Move a case back in time (its report and its cached deadline)."""
    now = dt.datetime.now(dt.UTC)
    with make_session_factory(db)() as s, s.begin():
        c = s.get(Case, case_id)
        assert c is not None
        c.created_at = now - dt.timedelta(days=days)
        if deadline_days is not None:
            c.deadline_at = now - dt.timedelta(days=deadline_days)
            c.warn_at = c.deadline_at - dt.timedelta(hours=1)


def test_queue_sorts_most_overdue_first_filters_and_counts(client: Any, orgdata: Org, db: sa.Engine) -> None:
    cases = [
        act(
            client,
            orgdata,
            report(client, orgdata, description=f"井盖{i}", address=f"经二路{i}号"),
            "shiftlead",
            "file",
        )
        for i in range(6)
    ]
    _age(db, cases[2]["id"], days=30, deadline_days=20)  # the most overdue
    _age(db, cases[4]["id"], days=5, deadline_days=1)
    h = orgdata.headers("dispatcher")
    page = client.get("/api/v1/cases", params={"status": "filed", "sort": "overdue", "limit": 2}, headers=h).json()
    assert page["total"] == 6 and len(page["items"]) == 2
    assert [c["id"] for c in page["items"]] == [cases[2]["id"], cases[4]["id"]]
    assert page["items"][0]["light"] == "red" and page["items"][0]["class_name"]
    nxt = client.get(
        "/api/v1/cases", params={"status": "filed", "sort": "overdue", "limit": 2, "offset": 4}, headers=h
    ).json()
    assert len(nxt["items"]) == 2  # the last page holds the rest: nothing is cut
    red = client.get("/api/v1/cases", params={"light": "red"}, headers=h).json()
    assert {c["id"] for c in red["items"]} == {cases[2]["id"], cases[4]["id"]}
    old = client.get(
        "/api/v1/cases", params={"created_to": (dt.datetime.now(dt.UTC) - dt.timedelta(days=10)).isoformat()}, headers=h
    ).json()
    assert [c["id"] for c in old["items"]] == [cases[2]["id"]]
    assert client.get("/api/v1/cases", params={"q": "经二路3号"}, headers=h).json()["total"] == 1
    assert client.get("/api/v1/cases", params={"q": cases[1]["number"]}, headers=h).json()["total"] == 1
    assert client.get("/api/v1/cases", params={"q": "100%"}, headers=h).json()["total"] == 0
    by_created = client.get("/api/v1/cases", params={"sort": "created"}, headers=h).json()["items"]
    assert by_created[0]["id"] == cases[2]["id"]
    r = client.get("/api/v1/cases", params={"sort": "sideways"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "literal_error"
    r = client.get("/api/v1/cases", params={"area_code": "61x"}, headers=h)
    assert r.status_code == 422


def test_case_list_exports_hold_what_the_list_shows(client: Any, orgdata: Org, db: sa.Engine) -> None:
    for i in range(3):
        act(client, orgdata, report(client, orgdata, description=f"描述{i}"), "shiftlead", "file")
    h = orgdata.headers("dispatcher")
    listed = client.get("/api/v1/cases", params={"status": "filed", "sort": "overdue"}, headers=h).json()
    r = client.get("/api/v1/cases/export.csv", params={"status": "filed", "sort": "overdue"}, headers=h)
    assert r.status_code == 200 and r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["案卷号", "类别", "类别代码", "状态"]
    assert [x[0] for x in rows[1:]] == [c["number"] for c in listed["items"]]
    assert all(x[3] == "待派遣" for x in rows[1:])
    r = client.get("/api/v1/cases/export.xlsx", params={"status": "filed"}, headers=h)
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None and ws.max_row == 4
    assert client.get("/api/v1/cases/export.csv").status_code == 401
    assert client.get("/api/v1/cases/export.pdf", headers=h).status_code == 422


def test_self_handled_report_is_approved_returned_or_voided_by_the_shift_leader(client: Any, orgdata: Org) -> None:
    def self_handled(seed: int) -> dict[str, Any]:  # evidence is used once: each report its own photo
        return report(client, orgdata, action="self_handle", photos=upload(client, orgdata, "inspector", seed=seed))

    a, b, c = self_handled(50), self_handled(51), self_handled(52)
    assert set(a["allowed_actions"]) == set()  # the inspector cannot review their own
    lead = client.get(f"/api/v1/cases/{a['id']}", headers=orgdata.headers("shiftlead")).json()
    assert {"approve_self_handled", "return_self_handled", "void"} <= set(lead["allowed_actions"])
    assert act(client, orgdata, a, "shiftlead", "approve_self_handled")["status"] == "closed"
    act(client, orgdata, b, "shiftlead", "return_self_handled", expect=422)  # a note is required
    returned = act(client, orgdata, b, "shiftlead", "return_self_handled", note="现场未处置完毕")
    assert returned["status"] == "reported" and "file" in returned["allowed_actions"]
    assert act(client, orgdata, c, "shiftlead", "void", note="重复上报")["status"] == "voided"


def test_extension_units_follow_the_handling_limit(client: Any, orgdata: Org) -> None:
    case = act(client, orgdata, report(client, orgdata), "shiftlead", "file")
    case = act(client, orgdata, case, "dispatcher", "dispatch", department_id=orgdata.depts["SZ"])
    case = act(client, orgdata, case, "water", "accept")
    handle = [c for c in case["clocks"] if c["stage"] == "handle"][-1]
    work = "work" in (handle["limit"] or "work")
    assert set(case["extension_units"]) == ({"work_hour", "work_day"} if work else {"hour", "day", "minute"})
    unit = case["extension_units"][0]
    case = act(
        client, orgdata, case, "water", "request_extension", note="需采购配件", extension={"value": 2, "unit": unit}
    )
    assert case["requested_extension"] == {"value": 2.0, "unit": unit}


def test_admin_manages_users_departments_and_areas(client: Any, orgdata: Org) -> None:
    admin = orgdata.headers("admin")
    r = client.post(
        "/api/v1/users",
        json={"username": "newbie", "password": "secret-pass-1", "role": "dispatcher", "display_name": "新派遣员"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    tok = client.post("/api/v1/auth/token", data={"username": "newbie", "password": "secret-pass-1"}).json()
    bearer = {"Authorization": "Bearer " + tok["access_token"]}
    assert client.get("/api/v1/auth/me", headers=bearer).status_code == 200
    r = client.patch(f"/api/v1/users/{uid}", json={"role": "department"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "user.department_required"
    r = client.patch(
        f"/api/v1/users/{uid}", json={"role": "department", "department_id": orgdata.depts["LD"]}, headers=admin
    )
    assert r.json()["role"] == "department"
    assert (
        client.post(f"/api/v1/users/{uid}/password", json={"password": "another-pass-2"}, headers=admin).status_code
        == 204
    )
    login = {"username": "newbie", "password": "another-pass-2"}
    assert client.post("/api/v1/auth/token", data=login).status_code == 200
    # Deactivation ends the sessions: the token issued before is refused on the next request.
    r = client.post(f"/api/v1/users/{uid}/deactivate", headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False
    r = client.get("/api/v1/auth/me", headers=bearer)
    assert r.status_code == 401 and r.json()["detail"][0]["type"] == "auth.user_inactive"
    assert client.get("/api/v1/cases", headers=bearer).status_code == 401
    assert client.post(f"/api/v1/users/{uid}/deactivate", headers=orgdata.headers("dispatcher")).status_code == 403
    r = client.post(f"/api/v1/users/{orgdata.ids['admin']}/deactivate", headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "user.self_deactivate"
    assert client.post(f"/api/v1/users/{uid}/activate", headers=admin).json()["active"] is True
    # Departments as a tree, without cycles.
    sz, ld = orgdata.depts["SZ"], orgdata.depts["LD"]
    assert client.patch(f"/api/v1/departments/{ld}", json={"parent_id": sz}, headers=admin).json()["parent_id"] == sz
    r = client.patch(f"/api/v1/departments/{sz}", json={"parent_id": ld}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "department.parent_cycle"
    # Supervision areas.
    r = client.post(
        "/api/v1/supervision-areas",
        json={"code": "ZR01", "name": "一号责任区", "inspector_id": orgdata.ids["inspector"]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    r = client.patch(
        f"/api/v1/supervision-areas/{aid}", json={"inspector_id": orgdata.ids["inspector2"]}, headers=admin
    )
    assert r.json()["inspector_id"] == orgdata.ids["inspector2"]
    r = client.patch(f"/api/v1/supervision-areas/{aid}", json={"inspector_id": orgdata.ids["water"]}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "user.not_inspector"
    r = client.patch(f"/api/v1/supervision-areas/{aid}", json={"grid_codes": ["610302001001001"]}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "supervision_area.unknown_grid"


def test_area_changes_from_the_console_keep_the_area_history(client: Any, orgdata: Org, db: sa.Engine) -> None:
    """Giving an area to another inspector from the admin screen closes the grid's earlier assignment, so that
    inspectors' evaluations attribute earlier cases to whoever was responsible then (issue 14)."""
    from geoalchemy2.shape import from_shape
    from shapely.geometry import box

    from components.models import Grid, SupervisionHistory

    code = "610302001001001"
    with make_session_factory(db)() as s, s.begin():
        s.add(
            Grid(
                code=code,
                community_code=code[:12],
                area_m2=1e4,
                geom=from_shape(box(107.1, 34.3, 107.101, 34.301), srid=4326),
            )
        )
    admin = orgdata.headers("admin")
    r = client.post(
        "/api/v1/supervision-areas",
        json={"code": "ZR09", "name": "九号责任区", "grid_codes": [code], "inspector_id": orgdata.ids["inspector"]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = client.patch(
        f"/api/v1/supervision-areas/{r.json()['id']}", json={"inspector_id": orgdata.ids["inspector2"]}, headers=admin
    )
    assert r.status_code == 200, r.text
    with db.connect() as c:
        rows = c.execute(
            sa.select(SupervisionHistory.grid_code, SupervisionHistory.inspector_id).order_by(SupervisionHistory.id)
        ).all()
    # Created (nobody → inspector), then handed over (inspector → inspector2): two closed assignments.
    assert [tuple(r) for r in rows] == [(code, None), (code, orgdata.ids["inspector"])]
