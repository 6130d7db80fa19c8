"""The seven-step pipeline and every branch, through HTTP, on the configured database."""

from __future__ import annotations

import datetime as dt
import io
import threading

import sqlalchemy as sa
from PIL import Image

from tests.casework.helpers import LAT, LON, act, on_site, report, to_status, upload


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as c:
        return int(c.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one())


def test_the_whole_seven_step_story_through_http(client, orgdata, db, settings):
    photo = upload(client, orgdata, "inspector", seed=11)
    case = report(client, orgdata, photos=photo)
    assert case["status"] == "reported"
    assert case["number"].startswith(str(dt.datetime.now().year)) and len(case["number"]) == 11
    assert case["allowed_actions"] == ["self_handle"]  # the reporter may still fix it on the spot
    assert case["clocks"][0]["stage"] == "file" and case["clocks"][0]["light"] == "green"

    case = act(client, orgdata, case, "shiftlead", "file", version=case["version"])
    assert case["status"] == "filed" and case["stage"] == "dispatch"
    case = act(client, orgdata, case, "dispatcher", "dispatch", department_id=orgdata.depts["SZ"])
    assert case["status"] == "dispatched" and case["department_id"] == orgdata.depts["SZ"]
    case = act(client, orgdata, case, "water", "accept")
    assert case["status"] == "handling"
    after = upload(client, orgdata, "water", seed=12)
    case = act(client, orgdata, case, "water", "feedback", note="已更换井盖", attachment_ids=after)
    assert case["status"] == "feedback"
    case = act(client, orgdata, case, "acceptor", "send_check", inspector_id=orgdata.ids["inspector"])
    assert case["status"] == "checking" and case["assigned_inspector_id"] == orgdata.ids["inspector"]
    case = act(
        client,
        orgdata,
        case,
        "inspector",
        "check_pass",
        lon=LON,
        lat=LAT,
        attachment_ids=upload(client, orgdata, "inspector", seed=13),
    )
    case = act(client, orgdata, case, "shiftlead", "close")
    assert case["status"] == "closed" and case["closed_at"] is not None and case["light"] == "none"

    events = client.get(f"/api/v1/cases/{case['id']}/events", headers=orgdata.headers("leader")).json()
    assert [e["action"] for e in events] == [
        "report",
        "file",
        "dispatch",
        "accept",
        "feedback",
        "send_check",
        "check_pass",
        "close",
    ]
    assert [e["seq"] for e in events] == list(range(1, 9))
    assert events[0]["attachments"][0]["id"] == photo[0]
    assert events[4]["attachments"] == [
        {
            "id": after[0],
            "role": "after",
            "thumb_url": f"/api/v1/attachments/{after[0]}/thumb",
            "display_url": f"/api/v1/attachments/{after[0]}/display",
            "flags": [],
            "taken_at": None,
            "exif_lon": None,
            "exif_lat": None,
        }
    ]
    assert all(e["from_status"] != e["to_status"] for e in events)
    stages = [
        c["stage"]
        for c in client.get(f"/api/v1/cases/{case['id']}", headers=orgdata.headers("leader")).json()["clocks"]
    ]
    assert stages == ["file", "dispatch", "handle", "check"]
    # The public rendition is a real, metadata-free JPEG.
    r = client.get(f"/api/v1/attachments/{after[0]}/thumb", headers=orgdata.headers("leader"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).format == "JPEG"


def test_void_needs_a_reason_and_ends_the_case(client, orgdata):
    case = report(client, orgdata)
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions", json={"action": "void"}, headers=orgdata.headers("shiftlead")
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "case.missing_input"
    case = act(client, orgdata, case, "shiftlead", "void", note="重复上报")
    assert case["status"] == "voided" and case["allowed_actions"] == []


def test_send_back_returns_the_case_for_redispatch_to_another_department(client, orgdata):
    case = to_status(client, orgdata, "dispatched")
    case = act(client, orgdata, case, "water", "request_sendback", note="非我单位权属")
    assert case["status"] == "sendback_requested"
    case = act(client, orgdata, case, "dispatcher", "approve_sendback")
    assert case["status"] == "filed" and case["department_id"] is None
    # The water company no longer sees the case (404, as if there were none); lighting gets it.
    r = client.get(f"/api/v1/cases/{case['id']}", headers=orgdata.headers("water"))
    assert r.status_code == 404 and r.json()["detail"][0]["type"] == "case.not_found"
    case = act(client, orgdata, case, "dispatcher", "dispatch", department_id=orgdata.depts["LD"])
    case = act(client, orgdata, case, "lighting", "accept")
    assert case["status"] == "handling"


def test_rejected_send_back_leaves_the_case_with_the_department(client, orgdata):
    case = to_status(client, orgdata, "handling")
    case = act(client, orgdata, case, "water", "request_sendback", note="非我单位权属")
    case = act(client, orgdata, case, "dispatcher", "reject_sendback", note="经核实属你单位")
    assert case["status"] == "handling" and case["department_id"] == orgdata.depts["SZ"]


def test_an_approved_extension_moves_the_handling_deadline(client, orgdata):
    case = to_status(client, orgdata, "handling")
    before = dt.datetime.fromisoformat(case["deadline_at"])
    case = act(
        client,
        orgdata,
        case,
        "water",
        "request_extension",
        note="需采购配件",
        extension={"value": 2, "unit": "work_day"},
    )
    assert case["status"] == "extension_requested"
    case = act(client, orgdata, case, "dispatcher", "approve_extension")
    after = dt.datetime.fromisoformat(case["deadline_at"])
    assert case["status"] == "handling"
    assert after > before + dt.timedelta(hours=15)  # two working days of 7.5 h at least
    handle = [c for c in case["clocks"] if c["stage"] == "handle"][-1]
    assert handle["extensions"] == [{"value": 2.0, "unit": "work_day"}]


def test_extension_in_a_unit_that_does_not_fit_the_limit_is_refused(client, orgdata):
    case = to_status(client, orgdata, "handling")
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions",
        json={"action": "request_extension", "note": "x", "extension": {"value": 1, "unit": "day"}},
        headers=orgdata.headers("water"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "deadline.unit_mismatch"


def test_suspension_pauses_the_clock_and_resume_restarts_it(client, orgdata):
    case = to_status(client, orgdata, "handling")
    before = dt.datetime.fromisoformat(case["deadline_at"])
    case = act(client, orgdata, case, "water", "request_suspension", note="需列入年度改造计划")
    case = act(client, orgdata, case, "dispatcher", "approve_suspension")
    assert case["status"] == "suspended" and case["deadline_at"] is None
    handle = [c for c in case["clocks"] if c["stage"] == "handle"][-1]
    assert handle["paused"] is True
    listed = client.get("/api/v1/cases", params={"status": "suspended"}, headers=orgdata.headers("dispatcher"))
    assert listed.json()["items"][0]["light"] == "paused"
    case = act(client, orgdata, case, "dispatcher", "resume")
    assert case["status"] == "handling"
    assert dt.datetime.fromisoformat(case["deadline_at"]) >= before


def test_failed_check_sends_the_case_back_to_the_same_department_for_rework(client, orgdata):
    case = to_status(client, orgdata, "checking")
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions",
        json={"action": "check_fail", **on_site(client, orgdata)},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 422  # a failed check must say why
    case = act(client, orgdata, case, "inspector", "check_fail", note="井盖仍松动", **on_site(client, orgdata))
    assert case["status"] == "dispatched" and case["department_id"] == orgdata.depts["SZ"]
    case = act(client, orgdata, case, "water", "accept")
    handles = [c for c in case["clocks"] if c["stage"] == "handle"]
    assert len(handles) == 2 and handles[0]["ended_at"] is not None and handles[1]["ended_at"] is None


def test_self_handled_report_closes_after_review(client, orgdata):
    photos = upload(client, orgdata, "inspector", seed=30, n=2)
    case = report(client, orgdata, action="self_handle", class_code="E0101", photos=photos)
    assert case["status"] == "self_handled"
    case = act(client, orgdata, case, "shiftlead", "approve_self_handled")
    assert case["status"] == "closed"


def test_self_handled_report_needs_photos(client, orgdata):
    r = client.post(
        "/api/v1/cases",
        json={"action": "self_handle", "class_code": "E0101", "lon": LON, "lat": LAT},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "case.missing_input"


def test_public_report_verified_true_becomes_a_report(client, orgdata, db):
    case = report(
        client,
        orgdata,
        user="acceptor",
        action="public_report",
        photos=[],
        reporter={"name": "市民甲", "phone": "13800000000"},
    )
    assert case["status"] == "public_reported" and case["source"] == "hotline"
    case = act(client, orgdata, case, "acceptor", "send_verify", inspector_id=orgdata.ids["inspector2"])
    assert case["status"] == "verifying"
    # Only the inspector the task was sent to may answer it; another does not even see the case.
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions",
        json={"action": "verify_true", **on_site(client, orgdata)},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 404
    case = act(client, orgdata, case, "inspector2", "verify_true", **on_site(client, orgdata, "inspector2"))
    assert case["status"] == "reported"
    with db.connect() as c:
        assert c.exec_driver_sql("SELECT phone FROM public_reporter").scalar_one() == "13800000000"


def test_public_report_verified_false_is_voided(client, orgdata):
    case = report(client, orgdata, user="acceptor", action="public_report", photos=[])
    case = act(client, orgdata, case, "acceptor", "send_verify", inspector_id=orgdata.ids["inspector"])
    case = act(client, orgdata, case, "inspector", "verify_false", note="现场无此问题", **on_site(client, orgdata))
    assert case["status"] == "voided"


def test_roles_are_refused_with_403_and_hidden_cases_with_404(client, orgdata):
    case = report(client, orgdata)
    for user, action in [("dispatcher", "file"), ("inspector", "file"), ("water", "void"), ("leader", "file")]:
        r = client.post(
            f"/api/v1/cases/{case['id']}/actions", json={"action": action, "note": "x"}, headers=orgdata.headers(user)
        )
        # A department cannot even see a case that is not with it (404 as for a missing case); the others
        # lack the role.
        expected = (404, "case.not_found") if user == "water" else (403, "case.role_forbidden")
        assert (r.status_code, r.json()["detail"][0]["type"]) == expected, (user, action, r.text)
    assert (
        client.post(
            "/api/v1/cases", json={"class_code": "C0101", "lon": LON, "lat": LAT}, headers=orgdata.headers("water")
        ).status_code
        == 403
    )


def test_another_departments_case_answers_exactly_like_a_missing_one(client, orgdata):
    case = to_status(client, orgdata, "dispatched")
    missing = 999_999
    for method, path, body in [
        ("get", "/api/v1/cases/{}", None),
        ("post", "/api/v1/cases/{}/actions", {"action": "accept"}),
        ("get", "/api/v1/cases/{}/events", None),
    ]:
        hidden = client.request(method, path.format(case["id"]), json=body, headers=orgdata.headers("lighting"))
        absent = client.request(method, path.format(missing), json=body, headers=orgdata.headers("lighting"))
        assert hidden.status_code == absent.status_code == 404
        # Same code and message shape: only the id differs, so existence cannot be probed.
        assert hidden.json()["detail"][0]["type"] == absent.json()["detail"][0]["type"] == "case.not_found"
        assert hidden.json()["detail"][0]["msg"].replace(str(case["id"]), "N") == absent.json()["detail"][0][
            "msg"
        ].replace(str(missing), "N")
    listed = client.get("/api/v1/cases", headers=orgdata.headers("lighting")).json()
    assert listed["total"] == 0
    assert client.get("/api/v1/cases", headers=orgdata.headers("water")).json()["total"] == 1


def test_inspectors_see_only_their_own_reports_and_tasks(client, orgdata):
    mine = report(client, orgdata, user="inspector")
    report(client, orgdata, user="inspector2")
    listed = client.get("/api/v1/cases", headers=orgdata.headers("inspector")).json()
    assert [c["id"] for c in listed["items"]] == [mine["id"]]


def test_illegal_transition_is_409_and_names_the_allowed_actions(client, orgdata):
    case = report(client, orgdata)
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions", json={"action": "close"}, headers=orgdata.headers("shiftlead")
    )
    assert r.status_code == 409
    d = r.json()["detail"][0]
    assert d["type"] == "case.invalid_transition"
    assert d["ctx"]["allowed_actions"] == ["file", "void", "merge"]
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions",
        json={"action": "dispatch", "department_id": 1},
        headers=orgdata.headers("dispatcher"),
    )
    assert r.status_code == 409 and r.json()["detail"][0]["ctx"]["allowed_actions"] == []


def test_stale_version_is_409_and_changes_nothing(client, orgdata, db):
    case = report(client, orgdata)
    act(client, orgdata, case, "shiftlead", "file", version=case["version"])
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions",
        json={"action": "dispatch", "version": case["version"], "department_id": orgdata.depts["SZ"]},
        headers=orgdata.headers("dispatcher"),
    )
    assert r.status_code == 409 and r.json()["detail"][0]["type"] == "case.stale_version"
    assert _count(db, "case_event") == 2


def test_concurrent_dispatch_has_exactly_one_winner(app, orgdata, db):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        case = to_status(c, orgdata, "filed")
    results: list[tuple[int, str]] = []
    barrier = threading.Barrier(2)

    def dispatch(dept: str) -> None:
        with TestClient(app) as c:
            barrier.wait()
            r = c.post(
                f"/api/v1/cases/{case['id']}/actions",
                json={"action": "dispatch", "department_id": orgdata.depts[dept]},
                headers=orgdata.headers("dispatcher"),
            )
            results.append((r.status_code, r.text))

    threads = [threading.Thread(target=dispatch, args=(d,)) for d in ("SZ", "LD")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(code for code, _ in results) == [200, 409], results
    with db.connect() as conn:
        n = conn.exec_driver_sql("SELECT count(*) FROM case_event WHERE action = 'dispatch'").scalar_one()
    assert n == 1


def test_concurrent_reports_get_unique_readable_numbers(app, orgdata):
    from fastapi.testclient import TestClient

    numbers: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        with TestClient(app) as c:
            for _ in range(5):
                case = report(c, orgdata)  # a new photo each: evidence is used once
                with lock:
                    numbers.append(case["number"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(numbers) == 20 and len(set(numbers)) == 20
    seqs = sorted(int(n.split("-")[1]) for n in numbers)
    assert seqs == list(range(1, 21))


def test_unknown_case_is_404(client, orgdata):
    r = client.get("/api/v1/cases/999999", headers=orgdata.headers("leader"))
    assert r.status_code == 404 and r.json()["detail"][0]["type"] == "case.not_found"


def test_malformed_json_is_422(client, orgdata):
    r = client.post(
        "/api/v1/cases",
        content=b"{not json",
        headers={**orgdata.headers("inspector"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_unknown_department_is_422_and_leaves_the_case_filed(client, orgdata, db):
    case = to_status(client, orgdata, "filed")
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions",
        json={"action": "dispatch", "department_id": 4242},
        headers=orgdata.headers("dispatcher"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "department.unknown"
    assert client.get(f"/api/v1/cases/{case['id']}", headers=orgdata.headers("leader")).json()["status"] == "filed"
    assert _count(db, "case_event") == 2


def test_unknown_class_is_422_and_stores_nothing(client, orgdata, db):
    r = client.post(
        "/api/v1/cases", json={"class_code": "C9999", "lon": LON, "lat": LAT}, headers=orgdata.headers("inspector")
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "class.unknown"
    assert _count(db, "case") == 0 and _count(db, "case_counter") == 0


def test_impossible_coordinates_are_422(client, orgdata, db):
    r = client.post(
        "/api/v1/cases", json={"class_code": "C0101", "lon": 200, "lat": LAT}, headers=orgdata.headers("inspector")
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "lon"]


def test_unknown_attachment_is_422_and_leaves_no_case(client, orgdata, db):
    r = client.post(
        "/api/v1/cases",
        json={"class_code": "C0101", "lon": LON, "lat": LAT, "attachment_ids": [77]},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "attachment.unknown"
    assert _count(db, "case") == 0 and _count(db, "case_event") == 0


def test_a_bad_photo_in_an_upload_leaves_no_rows_and_no_files(client, orgdata, db, settings):
    files = [
        ("files", ("good.jpg", __import__("tests.conftest", fromlist=["x"]).make_jpeg(seed=5), "image/jpeg")),
        ("files", ("bad.jpg", b"this is text, not a photo", "image/jpeg")),
    ]
    r = client.post("/api/v1/attachments", files=files, headers=orgdata.headers("inspector"))
    assert r.status_code == 415 and r.json()["detail"][0]["type"] == "photo.unsupported_type"
    assert r.json()["detail"][0]["loc"] == ["body", "files", 1]
    assert _count(db, "attachment") == 0
    media = settings.media_dir
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]


def test_feedback_without_photo_is_refused(client, orgdata):
    case = to_status(client, orgdata, "handling")
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions",
        json={"action": "feedback", "note": "done"},
        headers=orgdata.headers("water"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["ctx"]["missing"] == ["attachment_ids"]


def test_list_filters_and_paging(client, orgdata):
    a = to_status(client, orgdata, "dispatched")
    b = report(client, orgdata, class_code="E0101")
    h = orgdata.headers("leader")
    assert client.get("/api/v1/cases", params={"status": "dispatched"}, headers=h).json()["total"] == 1
    assert client.get("/api/v1/cases", params={"class_code": "E0101"}, headers=h).json()["items"][0]["id"] == b["id"]
    assert (
        client.get("/api/v1/cases", params={"department_id": orgdata.depts["SZ"]}, headers=h).json()["items"][0]["id"]
        == a["id"]
    )
    page = client.get("/api/v1/cases", params={"limit": 1, "offset": 1}, headers=h).json()
    assert page["total"] == 2 and [c["id"] for c in page["items"]] == [a["id"]]
    inside = f"{LON - 0.01},{LAT - 0.01},{LON + 0.01},{LAT + 0.01}"
    assert client.get("/api/v1/cases", params={"bbox": inside}, headers=h).json()["total"] == 2
    assert client.get("/api/v1/cases", params={"bbox": "100,30,100.1,30.1"}, headers=h).json()["total"] == 0
    assert client.get("/api/v1/cases", params={"bbox": "1,2,3"}, headers=h).status_code == 422
    assert client.get("/api/v1/cases", params={"overdue": "true"}, headers=h).json()["total"] == 0
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert client.get("/api/v1/cases", params={"created_from": future}, headers=h).json()["total"] == 0


def test_login_issues_a_token_and_refuses_bad_passwords(client, orgdata):
    r = client.post("/api/v1/auth/token", data={"username": "dispatcher", "password": "password-123"})
    assert r.status_code == 200
    token = r.json()["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["role"] == "dispatcher"
    bad = client.post("/api/v1/auth/token", data={"username": "dispatcher", "password": "nope"})
    assert bad.status_code == 401 and bad.json()["detail"][0]["type"] == "auth.bad_credentials"
    assert client.get("/api/v1/auth/me").status_code == 401
    assert client.get("/api/v1/auth/me", headers={"Authorization": "Bearer x.y.z"}).status_code == 401


def test_expired_token_is_401(client, orgdata, settings):
    from gridcity import security

    tok = security.create_token(
        user_id=orgdata.ids["leader"],
        role="leader",
        secret=settings.resolved_secret_key(),
        ttl=dt.timedelta(seconds=-1),
    )
    r = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401 and r.json()["detail"][0]["type"] == "auth.token_expired"


def test_openapi_lists_every_action_with_examples(client):
    spec = client.get("/openapi.json").json()
    assert "/api/v1/cases/{case_id}/actions" in spec["paths"]
    action_in = spec["components"]["schemas"]["ActionIn"]
    assert action_in["examples"][0]["action"] == "dispatch"
    assert "approve_suspension" in spec["components"]["schemas"]["CaseAction"]["enum"]
