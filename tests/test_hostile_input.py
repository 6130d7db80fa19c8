"""Hostile input never reaches a 5xx (issue 15): bounded ids, NUL, dates, parent ids, control characters,
request size and authentication before the body, documented status codes. On the configured database."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from casework.models import Case
from gridcity import org
from gridcity.database import make_session_factory
from gridcity.org import Department, User
from gridcity.types import MAX_ID
from tests.casework.helpers import LAT, LON
from tests.conftest import Org

BIG = [str(2**31), str(2**63), str(2**64 + 1), "99999999999999999999999"]


def count(db: sa.Engine, model: Any) -> int:
    with db.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


# ---- bounded ids and offsets ------------------------------------------------------------------------------


@pytest.mark.parametrize("big", BIG)
def test_ids_and_offsets_beyond_the_id_range_are_422_never_500(client: TestClient, orgdata: Org, big: str) -> None:
    h = orgdata.headers("admin")
    for url in [
        f"/api/v1/cases/{big}",
        f"/api/v1/cases/{big}/events",
        f"/api/v1/attachments/{big}/display",
        f"/api/v1/cases/{big}/recommendation",
        f"/api/v1/cases/{big}/duplicates",
        f"/api/v1/evaluation/publications/{big}",
        f"/api/v1/cases?offset={big}",
        f"/api/v1/cases?department_id={big}",
        f"/api/v1/map/cases?offset={big}",
        f"/api/v1/map/components?offset={big}",
        f"/mobile/v1/reports?offset={big}",
        f"/mobile/v1/tracks/coverage?inspector_id={big}&date=2026-10-01",
    ]:
        r = client.get(url, headers=orgdata.headers("inspector") if url.startswith("/mobile") else h)
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert r.json()["detail"][0]["type"] in ("less_than_equal", "less_than"), r.text
    r = client.post(f"/api/v1/cases/{big}/actions", json={"action": "file"}, headers=h)
    assert r.status_code == 422
    r = client.post("/api/v1/cases/1/actions", json={"action": "file", "version": int(big)}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "version"]


def test_the_largest_id_is_a_plain_404(client: TestClient, orgdata: Org) -> None:
    r = client.get(f"/api/v1/cases/{MAX_ID}", headers=orgdata.headers("admin"))
    assert r.status_code == 404 and r.json()["detail"][0]["type"] == "case.not_found"


@pytest.mark.parametrize("big", [*BIG, "0", "-1", "abc", "1e3"])
def test_open311_media_with_any_bad_id_is_a_404_in_the_spec_format(client: TestClient, big: str) -> None:
    r = client.get(f"/open311/v2/media/{big}.jpg")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/xml"), r.text
    assert b"<errors><error><code>404</code>" in r.content


def _integer_inputs(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    comps = doc["components"]["schemas"]
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(s: Any, where: str, seen: frozenset[str]) -> None:
        if not isinstance(s, dict):
            return
        if "$ref" in s:
            name = s["$ref"].split("/")[-1]
            if name not in seen:
                walk(comps[name], f"{where}->{name}", seen | {name})
            return
        if s.get("type") == "integer":
            found.append((where, s))
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in s.get(key, []):
                walk(sub, where, seen)
        walk(s.get("items"), where + "[]", seen)
        for k, v in s.get("properties", {}).items():
            walk(v, f"{where}.{k}", seen)

    for path, item in doc["paths"].items():
        for method, op in item.items():
            for p in op.get("parameters", []):
                walk(p.get("schema"), f"{method.upper()} {path} {p['in']}:{p['name']}", frozenset())
            for ct, content in op.get("requestBody", {}).get("content", {}).items():
                walk(content.get("schema"), f"{method.upper()} {path} body({ct})", frozenset())
    return found


def test_every_integer_a_client_sends_is_bounded_in_the_openapi_document(app: FastAPI) -> None:
    found = _integer_inputs(app.openapi())
    assert any("case_id" in w for w, _ in found) and any("offset" in w for w, _ in found)
    unbounded = [
        w
        for w, s in found
        if s.get("maximum", s.get("exclusiveMaximum", 2**63)) > 2**31
        or s.get("minimum", s.get("exclusiveMinimum")) is None
    ]
    assert unbounded == []


# ---- NUL -------------------------------------------------------------------------------------------------


def test_nul_in_login_form_json_body_and_query_is_422_and_stores_nothing(
    client: TestClient, orgdata: Org, db: sa.Engine
) -> None:
    for url in ("/api/v1/auth/token", "/mobile/v1/auth/token"):
        r = client.post(url, data={"username": "inspector\x00", "password": "password-123"})
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "input.nul_character", r.text
    r = client.post(
        "/api/v1/cases",
        json={"class_code": "C0101", "lon": LON, "lat": LAT, "description": "井盖\u0000破损"},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "input.nul_character", r.text
    assert count(db, Case) == 0
    r = client.get("/api/v1/cases", params={"number": "2026\x00"}, headers=orgdata.headers("admin"))
    assert r.status_code == 422 and r.json()["detail"][0] == {
        "type": "input.nul_character",
        "loc": ["query"],
        "msg": "the query may not contain the NUL character",
    }
    r = client.get("/api/v1/cases/1%00", headers=orgdata.headers("admin"))
    assert r.status_code == 422
    r = client.post("/api/v1/departments", json={"code": "X\u0000", "name": "某局"}, headers=orgdata.headers("admin"))
    assert r.status_code == 422
    assert count(db, Department) == 3


def test_nul_in_a_phone_report_field_is_422(client: TestClient, orgdata: Org, db: sa.Engine) -> None:
    from tests.conftest import make_jpeg

    report = {"class_code": "C0101", "lon": LON, "lat": LAT, "description": "a\u0000b"}
    r = client.post(
        "/mobile/v1/reports",
        data={"report": json.dumps(report)},
        files=[("photos", ("p.jpg", make_jpeg(seed=3), "image/jpeg"))],
        headers={**orgdata.headers("inspector"), "Idempotency-Key": "nul-1"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "input.nul_character", r.text
    assert count(db, Case) == 0


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_nul_in_open311_input_is_the_spec_400(client: TestClient, db: sa.Engine, fmt: str) -> None:
    r = client.post(
        f"/open311/v2/requests.{fmt}",
        data={
            "api_key": "demo-open311-key",
            "service_code": "C0101",
            "lat": str(LAT),
            "long": str(LON),
            "description": "井盖\x00缺失",
        },
    )
    assert r.status_code == 400, r.text
    assert count(db, Case) == 0
    for url in (
        f"/open311/v2/tokens/2026%00.{fmt}",
        f"/open311/v2/requests/2026%00.{fmt}",
        f"/open311/v2/requests.{fmt}?service_request_id=a%00b",
    ):
        r = client.get(url)
        assert r.status_code in (400, 404), (url, r.text)
        assert r.headers["content-type"].startswith("text/xml" if fmt == "xml" else "application/json")


# ---- dates -----------------------------------------------------------------------------------------------


def test_a_plain_date_in_a_datetime_filter_is_read_in_the_city_zone(client: TestClient, orgdata: Org) -> None:
    h = orgdata.headers("admin")
    r = client.post(
        "/api/v1/cases", json={"class_code": "C0101", "lon": LON, "lat": LAT}, headers=orgdata.headers("inspector")
    )
    assert r.status_code == 201, r.text
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    for params, total in [
        ({"created_from": today.isoformat()}, 1),
        ({"created_to": today.isoformat()}, 0),  # midnight of today, city time
        ({"created_from": today.isoformat(), "created_to": f"{today + dt.timedelta(days=1)}T00:00:00Z"}, 1),
        ({"created_from": f"{today}T00:00:00"}, 1),
    ]:
        r = client.get("/api/v1/cases", params=params, headers=h)
        assert r.status_code == 200 and r.json()["total"] == total, (params, r.text)
    r = client.get(
        "/api/v1/map/hotspots",
        params={"created_from": "2026-01-01", "created_to": "2099-01-01T00:00:00+08:00"},
        headers=h,
    )
    assert r.status_code == 200 and sum(x["count"] for x in r.json()["by_class"]) == 1, r.text


@pytest.mark.parametrize(
    "value", ["0001-01-01", "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-10:00", "9999-12-31", "1899-12-31"]
)
def test_extreme_dates_are_refused_everywhere(client: TestClient, orgdata: Org, value: str) -> None:
    h = orgdata.headers("admin")
    for url, params in [
        ("/api/v1/cases", {"created_from": value}),
        ("/api/v1/cases", {"created_to": value}),
        ("/api/v1/map/hotspots", {"created_from": value}),
    ]:
        r = client.get(url, params=params, headers=h)
        assert r.status_code == 422, (url, r.text)
    r = client.get(
        "/mobile/v1/tracks/coverage",
        params={"inspector_id": orgdata.ids["inspector"], "date": value[:10]},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 422, r.text
    r = client.post(
        "/mobile/v1/tracks",
        json={"points": [{"at": value, "lon": LON, "lat": LAT}]},
        headers={**orgdata.headers("inspector"), "Idempotency-Key": f"t-{value[:4]}"},
    )
    assert r.status_code == 422, r.text
    for name in ("start_date", "end_date", "updated_after"):
        for fmt in ("json", "xml"):
            r = client.get(f"/open311/v2/requests.{fmt}", params={name: value})
            assert r.status_code == 400 and name.encode() in r.content, r.text


@pytest.mark.parametrize(
    "period",
    [
        "0001-01",
        "0001",
        "0001-Q1",
        "0001-W01",
        "0001-01-01..0001-01-31",
        "9999-12",
        "9999",
        "9999-Q4",
        "9999-W52",
        "9999-12-01..9999-12-31",
    ],
)
def test_extreme_evaluation_periods_are_422(client: TestClient, orgdata: Org, period: str) -> None:
    h = orgdata.headers("leader")
    for url in ("/api/v1/evaluation/department", "/api/v1/evaluation/department/export.xlsx"):
        r = client.get(url, params={"period": period}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "evaluation.bad_period", (url, r.text)


# ---- departments and names -------------------------------------------------------------------------------


def test_an_unknown_parent_department_is_422_and_stores_nothing(
    client: TestClient, orgdata: Org, db: sa.Engine
) -> None:
    h = orgdata.headers("admin")
    for parent in (999999, MAX_ID):
        r = client.post("/api/v1/departments", json={"code": "ZX", "name": "某局", "parent_id": parent}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0] == {
            "type": "department.unknown",
            "loc": ["body", "parent_id"],
            "msg": f"unknown department {parent}",
        }
    assert count(db, Department) == 3
    r = client.post(
        "/api/v1/departments", json={"code": "ZX", "name": "某局", "parent_id": orgdata.depts["SZ"]}, headers=h
    )
    assert r.status_code == 201 and r.json()["parent_id"] == orgdata.depts["SZ"]


@pytest.mark.parametrize("char", ["\x0b", "\x01", "\x1f", "\x7f", "\n", "\t", "\x85"])
def test_control_characters_in_names_are_refused(client: TestClient, orgdata: Org, db: sa.Engine, char: str) -> None:
    h = orgdata.headers("admin")
    r = client.post("/api/v1/departments", json={"code": "ZX", "name": f"某{char}局"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"], r.text
    r = client.post(
        "/api/v1/users",
        json={"username": "newbie", "password": "password-123", "role": "leader", "display_name": f"张{char}三"},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "display_name"], r.text
    assert count(db, Department) == 3 and count(db, User) == len(orgdata.ids)


def test_the_xlsx_export_survives_a_control_character_already_stored(
    client: TestClient, orgdata: Org, db: sa.Engine
) -> None:
    with make_session_factory(db)() as s, s.begin():  # stored before names were checked on input
        org.create_department(s, code="BAD", name="市\x0b政\x01局\x1f", owner_kind="roads")
    r = client.get(
        "/api/v1/evaluation/department/export.xlsx", params={"period": "2026-10"}, headers=orgdata.headers("leader")
    )
    assert r.status_code == 200, r.text
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    names = [row[1] for row in ws.iter_rows(min_row=2, values_only=True)]
    assert "市\ufffd政\ufffd局\ufffd" in names, names


# ---- request size and authentication before the body -----------------------------------------------------


def _asgi(
    app: FastAPI, method: str, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, dict[str, Any], int]:
    """Call the app directly; returns status, JSON body and how many body chunks the app read."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= len(chunks):
            await asyncio.sleep(3600)  # the client never sends more
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 60))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body) if body.startswith(b"{") else {}, read


def test_anonymous_bodies_to_authenticated_routes_are_refused_before_a_byte_is_read(app: FastAPI) -> None:
    huge = str(400 * 1024 * 1024)
    for path, ctype in [
        ("/api/v1/cases", "application/json"),
        ("/api/v1/attachments", "multipart/form-data; b=x"),
        ("/mobile/v1/reports", "multipart/form-data; boundary=x"),
        ("/api/v1/departments", "application/json"),
    ]:
        for auth in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YTpi"}):
            status, body, read = _asgi(
                app, "POST", path, {"content-type": ctype, "content-length": "1000", **auth}, [b"x" * 1000]
            )
            assert (status, read) == (401, 0), (path, auth, status, body)
            assert body["detail"][0]["type"] in ("auth.missing_token", "auth.invalid_token")
        # An anonymous 400 MiB announcement is refused without reading (the size, or the missing token).
        status, _, read = _asgi(app, "POST", path, {"content-type": ctype, "content-length": huge}, [b"x"])
        assert status in (401, 413) and read == 0


def test_a_body_larger_than_its_limit_is_413_before_it_is_read(app: FastAPI, orgdata: Org) -> None:
    settings = app.state.settings
    auth = orgdata.headers("inspector")
    status, body, read = _asgi(
        app,
        "POST",
        "/api/v1/cases",
        {**auth, "content-type": "application/json", "content-length": str(settings.max_json_bytes + 1)},
        [b"{"],
    )
    assert (status, read) == (413, 0) and body["detail"][0]["type"] == "request.too_large"
    status, body, read = _asgi(
        app,
        "POST",
        "/mobile/v1/reports",
        {
            **auth,
            "content-type": "multipart/form-data; boundary=x",
            "idempotency-key": "k1",
            "content-length": str(settings.max_multipart_bytes + 1),
        },
        [b"--x"],
    )
    assert (status, read) == (413, 0)
    # Open311 POST is anonymous by design (api_key in the body): its size is still checked first.
    status, _, read = _asgi(
        app,
        "POST",
        "/open311/v2/requests.json",
        {"content-type": "application/x-www-form-urlencoded", "content-length": str(settings.max_json_bytes + 1)},
        [b"a"],
    )
    assert (status, read) == (413, 0)


def test_a_chunked_body_is_cut_off_at_its_limit(app: FastAPI, orgdata: Org) -> None:
    limit = app.state.settings.max_json_bytes
    chunk = b" " * (64 * 1024)
    chunks = [chunk] * (limit // len(chunk) + 50)  # ~3 MiB more than allowed, no Content-Length
    status, body, read = _asgi(
        app,
        "POST",
        "/api/v1/cases",
        {**orgdata.headers("inspector"), "content-type": "application/json", "transfer-encoding": "chunked"},
        chunks,
    )
    assert status == 413 and body["detail"][0]["type"] == "request.too_large", body
    assert read == limit // len(chunk) + 1  # stopped at the first chunk past the limit
    status, _, read = _asgi(
        app,
        "POST",
        "/open311/v2/requests.json",
        {"content-type": "application/x-www-form-urlencoded", "transfer-encoding": "chunked"},
        chunks,
    )
    assert status in (400, 413) and read == limit // len(chunk) + 1


def test_the_phone_api_multipart_limit_is_the_guard_limit(app: FastAPI) -> None:
    from mobile_api import forms

    class _Req:
        pass

    req = _Req()
    req.app = app  # type: ignore[attr-defined]
    settings = app.state.settings
    assert forms.max_body_bytes(req) == settings.max_multipart_bytes  # type: ignore[arg-type]
    assert settings.max_multipart_bytes == settings.max_upload_bytes * 18 + 1024 * 1024


def test_normal_bodies_still_pass(client: TestClient, orgdata: Org) -> None:
    r = client.post(
        "/api/v1/cases",
        json={"class_code": "C0101", "lon": LON, "lat": LAT, "description": "井" * 4000},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/auth/token", data={"username": "inspector", "password": "password-123"})
    assert r.status_code == 200


# ---- documented status codes -----------------------------------------------------------------------------


def test_every_operation_documents_400_413_415_and_open311_its_real_content_types(app: FastAPI) -> None:
    doc = app.openapi()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status in ("400", "413", "415", "422"):
                assert status in op["responses"], (method, path, status)
            if path.startswith("/open311/"):
                for status in ("400", "403", "404"):
                    assert set(op["responses"][status]["content"]) == {"text/xml", "application/json"}
    media = doc["paths"]["/open311/v2/media/{token}.jpg"]["get"]["responses"]
    assert set(media["200"]["content"]) == {"image/jpeg"}
    services = doc["paths"]["/open311/v2/services.{fmt}"]["get"]["responses"]
    assert set(services["200"]["content"]) == {"text/xml", "application/json"}


def test_the_guard_builds_its_route_table_once_when_many_event_loops_ask_at_once(app: FastAPI) -> None:
    # Found in CI: four TestClients (four event loops, four threads) reporting at once; FastAPI's OpenAPI
    # generation swaps the process-wide warning filters with warnings.catch_warnings, so two threads building
    # it together let a silenced pydantic warning through as an error (pytest's "error" filter) and a report
    # died. The guard builds the table under a lock.
    import sys

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    errors: list[BaseException] = []
    answers: list[bool] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows, so that an unguarded build races
    try:
        _ask_in_threads(app, inner, errors, answers)
    finally:
        sys.setswitchinterval(switch)
    assert errors == []
    assert answers == [True] * 30


def _ask_in_threads(app: FastAPI, inner: Any, errors: list[BaseException], answers: list[bool]) -> None:
    import threading

    from gridcity.guard import RequestGuard

    for _ in range(5):  # a fresh app each round: the OpenAPI document is built once per app
        app.openapi_schema = None
        guard = RequestGuard(inner, fastapi_app=app)
        barrier = threading.Barrier(6)

        def ask(guard: RequestGuard = guard, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                answers.append(guard._needs_auth({"method": "POST", "path": "/api/v1/cases"}))
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
