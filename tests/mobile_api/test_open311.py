"""The Open311 GeoReport v2 server (/open311/v2), in XML and JSON, on the configured database."""

from __future__ import annotations

import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from casework.lifecycle import CaseStatus
from casework.models import Case
from components.models import Area, Component
from tests.casework.helpers import LAT, LON, act, on_site, to_status
from tests.conftest import make_jpeg

BASE = "/open311/v2"
KEY = "demo-open311-key"
W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
EMAIL = "zhang.san.private@example.com"


def xml(r: Any) -> ET.Element:
    assert r.headers["content-type"].startswith("text/xml"), r.headers["content-type"]
    assert r.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(r.content)


def post(client: Any, fmt: str = "json", *, files: Any = None, **fields: Any) -> Any:
    body = {
        "api_key": KEY,
        "service_code": "C0101",
        "lat": str(LAT),
        "long": str(LON),
        "description": "井盖缺失，很危险",
        "email": EMAIL,
        "first_name": "三",
        "last_name": "张",
        "phone": "13800000000",
        "device_id": "dev-42",
        **fields,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return client.post(f"{BASE}/requests.{fmt}", data=body, files=files)


def new_request(client: Any, **fields: Any) -> str:
    r = post(client, **fields)
    assert r.status_code == 200, r.text
    return str(r.json()[0]["service_request_id"])


def one(client: Any, rid: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"{BASE}/requests/{rid}.json", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    return dict(body[0])


def case_id(client: Any, orgdata: Any, number: str) -> dict[str, Any]:
    r = client.get("/api/v1/cases", params={"number": number}, headers=orgdata.headers("acceptor"))
    assert r.status_code == 200 and r.json()["total"] == 1
    full = client.get(f"/api/v1/cases/{r.json()['items'][0]['id']}", headers=orgdata.headers("acceptor"))
    return dict(full.json())


def insert_cases(
    db: sa.Engine,
    n: int,
    *,
    created_at: dt.datetime,
    status: CaseStatus = CaseStatus.FILED,
    class_code: str = "C0101",
    prefix: str | None = None,
) -> list[str]:
    """Insert ``n`` cases in one statement (no events): fast volume for the window and cap tests."""
    prefix = prefix or uuid.uuid4().hex[:6]
    rows = [
        {
            "number": f"T{prefix}-{i:06d}",
            "source": "inspector",
            "class_code": class_code,
            "kind": "component",
            "urgency": "normal",
            "status": status,
            "version": 1,
            "lon": LON,
            "lat": LAT,
            "geom": f"SRID=4326;POINT({LON} {LAT})",
            "created_at": created_at + dt.timedelta(seconds=i),
            "updated_at": created_at + dt.timedelta(seconds=i),
        }
        for i in range(n)
    ]
    with Session(db) as s, s.begin():
        s.execute(sa.insert(Case), rows)
    return [r["number"] for r in rows]


# ---- discovery, services, definitions -------------------------------------------------------------------


def test_discovery_in_both_formats(client):
    j = client.get(f"{BASE}/discovery.json")
    assert j.status_code == 200 and j.headers["content-type"].startswith("application/json")
    doc = j.json()
    assert {"changeset", "contact", "key_service", "endpoints"} <= doc.keys()
    ep = doc["endpoints"][0]
    assert ep["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert ep["url"].endswith("/open311/v2") and ep["type"] == "production"
    assert ep["formats"] == ["text/xml", "application/json"]
    root = xml(client.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == ["text/xml", "application/json"]
    assert root.findtext("endpoints/endpoint/specification") == "http://wiki.open311.org/GeoReport_v2"


def test_services_list_our_classes_with_chinese_names_and_groups(client):
    services = client.get(f"{BASE}/services.json").json()
    assert isinstance(services, list) and len(services) > 100
    by_code = {s["service_code"]: s for s in services}
    cover = by_code["C0101"]
    assert cover["service_name"] == "上水井盖" and cover["group"] == "部件/公用设施"
    assert cover["type"] == "realtime" and cover["metadata"] is True
    assert all(isinstance(s["service_code"], str) for s in services)
    assert any(s["service_code"].startswith("E") for s in services)
    root = xml(client.get(f"{BASE}/services.xml"))
    assert root.tag == "services" and len(root.findall("service")) == len(services)
    first = root.find("service")
    assert first is not None
    assert [c.tag for c in first] == [
        "service_code",
        "service_name",
        "description",
        "metadata",
        "type",
        "keywords",
        "group",
    ]
    assert root.find("service[service_code='C0101']/service_name").text == "上水井盖"  # type: ignore[union-attr]
    assert root.findtext("service/metadata") == "true"


def test_service_definition_in_both_formats_and_404(client):
    d = client.get(f"{BASE}/services/C0101.json").json()
    assert d["service_code"] == "C0101"
    attr = {a["code"]: a for a in d["attributes"]}
    assert attr["component_id"]["variable"] is True and attr["component_id"]["required"] is False
    assert attr["component_id"]["datatype"] == "string" and attr["component_id"]["order"] == 1
    root = xml(client.get(f"{BASE}/services/C0101.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "C0101"
    assert root.findtext("attributes/attribute/code") == "component_id"
    # An event class has no component id to ask for.
    e = client.get(f"{BASE}/services/E0101.json").json()
    assert "component_id" not in {a["code"] for a in e["attributes"]}

    r = client.get(f"{BASE}/services/C9999.json")
    assert r.status_code == 404 and r.json()[0]["code"] == 404 and "C9999" in r.json()[0]["description"]
    root = xml(client.get(f"{BASE}/services/nonsense.xml"))
    assert root.tag == "errors" and root.findtext("error/code") == "404"


def test_unknown_format_and_unknown_path_use_the_spec_error_body(client):
    r = client.get(f"{BASE}/services.html")
    assert r.status_code == 400
    root = xml(r)
    assert root.tag == "errors" and root.findtext("error/code") == "400"
    r = client.get(f"{BASE}/no/such/thing.json")
    assert r.status_code == 404 and xml(r).findtext("error/code") == "404"


# ---- POST requests ---------------------------------------------------------------------------------------


def test_post_json_creates_a_public_report_that_needs_verification(client, orgdata, db):
    r = post(client, address_string="渭滨区经二路 12 号")
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    rid = body[0]["service_request_id"]
    assert isinstance(rid, str) and "token" not in body[0]
    case = case_id(client, orgdata, rid)
    assert case["status"] == "public_reported" and case["source"] == "open311"
    assert case["class_code"] == "C0101" and case["address"] == "渭滨区经二路 12 号"
    with db.connect() as c:
        rep = c.exec_driver_sql("SELECT name, phone, email, device_id FROM public_reporter").one()
        actor = c.exec_driver_sql("SELECT actor_id, actor_role FROM case_event").one()
    assert tuple(rep) == ("三 张", "13800000000", EMAIL, "dev-42")
    assert actor[0] is None and actor[1] == "acceptor"  # the system, in the acceptor role
    # It cannot be filed before an inspector has verified it.
    act(client, orgdata, case, "shiftlead", "file", expect=409)


def test_post_xml_answer(client):
    r = post(client, "xml")
    assert r.status_code == 200
    root = xml(r)
    assert root.tag == "service_requests"
    assert root.find("request/token") is None
    rid = root.findtext("request/service_request_id")
    assert rid and re.fullmatch(r"\d{4}-\d{6}", rid)


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
def test_post_without_a_valid_api_key_is_403_and_stores_nothing(client, db, key):
    r = post(client, api_key=key)
    assert r.status_code == 403
    assert r.json() == [{"code": 403, "description": "Invalid api_key received -- can't proceed with create_request."}]
    root = xml(post(client, "xml", api_key=key))
    assert root.tag == "errors" and root.findtext("error/code") == "403"
    with db.connect() as c:
        assert c.exec_driver_sql('SELECT count(*) FROM "case"').scalar_one() == 0


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"service_code": None}, "service_code"),
        ({"lat": "abc"}, "lat"),
        ({"lat": "91"}, "lat"),
        ({"long": "-181"}, "long"),
        ({"long": "nan"}, "long"),
        ({"long": None}, "lat and long"),
        ({"lat": None, "long": None}, "location"),
        ({"lat": None, "long": None, "address_string": "经二路"}, "no standard address matches"),
        ({"description": "很" * 4001}, "description"),
        ({"email": "a" * 300}, "email"),
        ({"attribute[component_id]": "12ab"}, "component_id"),
        ({"service_code": "E0101", "attribute[component_id]": "6103020101000001"}, "component_id"),
    ],
)
def test_post_bad_input_is_400_with_the_spec_body_and_stores_nothing(client, db, fields, needle):
    r = post(client, **fields)
    assert r.status_code == 400, r.text
    errors = r.json()
    assert isinstance(errors, list) and errors[0]["code"] == 400 and needle in errors[0]["description"]
    with db.connect() as c:
        assert c.exec_driver_sql('SELECT count(*) FROM "case"').scalar_one() == 0
        assert c.exec_driver_sql("SELECT count(*) FROM public_reporter").scalar_one() == 0


def test_post_an_unknown_component_or_a_point_outside_the_city_is_400(client, db):
    r = post(client, **{"attribute[component_id]": "6103020101000001"})
    assert r.status_code == 400 and "unknown component" in r.json()[0]["description"]
    with Session(db) as s, s.begin():
        box = f"MULTIPOLYGON((({LON - 0.1} {LAT - 0.1}, {LON + 0.1} {LAT - 0.1}, {LON + 0.1} {LAT + 0.1}, "
        box += f"{LON - 0.1} {LAT + 0.1}, {LON - 0.1} {LAT - 0.1})))"
        s.add(Area(code="610302", level="district", name="渭滨区", geom=f"SRID=4326;{box}"))
    r = post(client, lat="39.9", long="116.4")
    assert r.status_code == 400 and "outside the city" in r.json()[0]["description"]
    assert post(client).status_code == 200  # inside


def test_post_accepts_attribute_brackets_and_ignores_unknown_attributes(client, orgdata, db):
    with Session(db) as s, s.begin():
        s.add(Component(code="6103020101000001", class_code="C0101", geom=f"SRID=4326;POINT({LON} {LAT})"))
    rid = new_request(client, **{"attribute[component_id]": "6103020101000001", "attribute[fixmystreet_id]": "7"})
    assert case_id(client, orgdata, rid)["component_id"] == "6103020101000001"


def test_multipart_media_creates_attachments_served_without_login(client, orgdata, db):
    files = [
        ("media", ("a.jpg", make_jpeg(seed=5), "image/jpeg")),
        ("media", ("b.jpg", make_jpeg(seed=6), "image/jpeg")),
    ]
    rid = new_request(client, files=files, media_url="http://example.com/ignored.jpg")
    with db.connect() as c:
        rows = c.exec_driver_sql(
            "SELECT ea.role, a.uploaded_by FROM event_attachment ea JOIN attachment a ON a.id = ea.attachment_id"
        ).all()
    assert [tuple(r) for r in rows] == [("before", None), ("before", None)]
    req = one(client, rid, extensions="true")
    urls = req["extended_attributes"]["media_urls"]
    assert len(urls) == 2 and req["media_url"] == urls[0]  # files win over media_url
    # Absolute, on the configured public origin (not the request's Host), by an unguessable hash.
    assert all(re.fullmatch(r"http://127\.0\.0\.1:8000/open311/v2/media/[0-9a-f]{64}\.jpg", u) for u in urls)
    r = client.get(urls[0].removeprefix("http://127.0.0.1:8000"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"


def test_media_of_no_case_and_a_bad_media_token_are_404(client, orgdata):
    r = client.get(f"{BASE}/media/99999.jpg")
    assert r.status_code == 404 and xml(r).findtext("error/code") == "404"
    # A photo uploaded through the staff API but not yet attached to any case stays private.
    upload = client.post(
        "/api/v1/attachments",
        files=[("files", ("p.jpg", make_jpeg(seed=77), "image/jpeg"))],
        headers=orgdata.headers("inspector"),
    )
    assert client.get(f"{BASE}/media/{upload.json()[0]['id']}.jpg").status_code == 404
    r = client.get(f"{BASE}/media/abc.jpg")
    assert r.status_code == 404 and xml(r).tag == "errors"


def test_media_url_alone_is_kept_and_a_broken_photo_stores_nothing(client, db, settings):
    rid = new_request(client, media_url="http://example.com/p.jpg")
    assert one(client, rid)["media_url"] == "http://example.com/p.jpg"
    r = post(
        client,
        files=[
            ("media", ("ok.jpg", make_jpeg(seed=31), "image/jpeg")),
            ("media", ("x.jpg", b"not a photo at all", "image/jpeg")),
        ],
    )
    assert r.status_code == 400 and r.json()[0]["code"] in (400, 415)
    assert "media.1" in r.json()[0]["description"]
    with db.connect() as c:
        assert c.exec_driver_sql('SELECT count(*) FROM "case"').scalar_one() == 1
        assert c.exec_driver_sql("SELECT count(*) FROM attachment").scalar_one() == 0
    # The good photo's files were removed again by the rollback.
    assert not [p for p in settings.media_dir.rglob("*") if p.is_file()]


# ---- GET requests ----------------------------------------------------------------------------------------


def test_get_request_by_id_in_both_formats(client):
    rid = new_request(client, address_string="经二路")
    req = one(client, rid)
    assert req["service_request_id"] == rid and req["status"] == "open"
    assert req["service_code"] == "C0101" and req["service_name"] == "上水井盖"
    assert req["status_notes"] == "已收到您的举报，等待监督员现场核实"
    assert req["lat"] == pytest.approx(LAT) and req["long"] == pytest.approx(LON)
    assert req["address"] == "经二路" and req["description"] == "井盖缺失，很危险"
    assert req["requested_datetime"].endswith("+08:00") and W3C.match(req["requested_datetime"])
    assert W3C.match(req["updated_datetime"])
    assert list(req)[:4] == ["service_request_id", "status", "status_notes", "service_name"]
    assert "extended_attributes" not in req

    root = xml(client.get(f"{BASE}/requests/{rid}.xml"))
    assert root.tag == "service_requests" and len(root.findall("request")) == 1
    assert root.findtext("request/service_request_id") == rid
    assert root.findtext("request/status") == "open"
    assert W3C.match(root.findtext("request/requested_datetime") or "")
    assert root.find("request/agency_responsible") is not None  # empty element, as in the spec's example


def test_unknown_request_id_and_token_are_404(client):
    r = client.get(f"{BASE}/requests/2020-999999.json")
    assert r.status_code == 404 and r.json()[0]["code"] == 404
    assert xml(client.get(f"{BASE}/requests/2020-999999.xml")).findtext("error/code") == "404"
    assert client.get(f"{BASE}/tokens/nope.json").status_code == 404


def test_token_resolves_to_the_request(client):
    rid = new_request(client)
    assert client.get(f"{BASE}/tokens/{rid}.json").json() == [{"service_request_id": rid, "token": rid}]
    root = xml(client.get(f"{BASE}/tokens/{rid}.xml"))
    assert root.tag == "service_requests" and root.findtext("request/token") == rid


def test_public_report_verified_then_handled_changes_status_and_notes(client, orgdata):
    rid = new_request(client)
    case = case_id(client, orgdata, rid)
    case = act(client, orgdata, case, "acceptor", "send_verify", inspector_id=orgdata.ids["inspector"])
    req = one(client, rid)
    assert req["status"] == "open" and req["status_notes"] == "已派监督员到现场核实"
    assert req["expected_datetime"] is not None and W3C.match(req["expected_datetime"])  # the verify deadline
    case = act(client, orgdata, case, "inspector", "verify_true", **on_site(client, orgdata))
    assert one(client, rid)["status_notes"] == "经现场核实属实，等待立案"
    case = act(client, orgdata, case, "shiftlead", "file")
    case = act(client, orgdata, case, "dispatcher", "dispatch", department_id=orgdata.depts["SZ"])
    req = one(client, rid, extensions="true")
    assert req["status_notes"] == "已派遣至市自来水公司处置" and req["agency_responsible"] == "市自来水公司"
    assert req["expected_datetime"] == _w3c(case["deadline_at"])  # the handling deadline
    ext = req["extended_attributes"]
    assert ext["detailed_status"] == "dispatched"
    assert "notes" not in ext  # the Extensions page puts notes on the request, beside extended_attributes
    assert [n["type"] for n in req["notes"]] == ["public_report", "send_verify", "verify_true", "file", "dispatch"]


def _w3c(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds")


def test_verify_false_closes_with_the_reason_only_if_the_city_publishes_notes(client, app, orgdata):
    rid = new_request(client)
    case = case_id(client, orgdata, rid)
    case = act(client, orgdata, case, "acceptor", "send_verify", inspector_id=orgdata.ids["inspector"])
    act(client, orgdata, case, "inspector", "verify_false", note="现场井盖完好", **on_site(client, orgdata))
    req = one(client, rid)
    # By default staff free text stays internal: the standard public text only.
    assert req["status"] == "closed" and req["status_notes"] == "经现场核实不属实，已作废"
    assert "现场井盖完好" not in client.get(f"{BASE}/requests/{rid}.xml", params={"extensions": "true"}).text
    assert req["expected_datetime"] is None
    app.state.settings.open311_publish_notes = True  # the city opts in
    assert one(client, rid)["status_notes"] == "经现场核实不属实，已作废：现场井盖完好"


def test_closed_and_merged_cases_are_closed_with_notes(client, orgdata):
    closed = to_status(client, orgdata, "closed")
    req = one(client, closed["number"])
    assert req["status"] == "closed" and req["status_notes"] == "问题已处置并核查通过，已结案"
    assert req["updated_datetime"] == _w3c(closed["closed_at"])
    target = to_status(client, orgdata, "reported")
    rid = new_request(client)
    dup = case_id(client, orgdata, rid)
    act(client, orgdata, dup, "shiftlead", "merge", target_case_id=target["id"])
    req = one(client, rid, extensions="true")
    assert req["status"] == "closed" and target["number"] in req["status_notes"]
    assert req["extended_attributes"]["detailed_status"] == "merged"
    # The merge mirror on the target does not replace its own note.
    assert one(client, target["number"])["status_notes"] == "城市管理监督员已上报，等待立案"


def test_filters_status_service_code_and_id_list(client, orgdata):
    a = new_request(client)
    b = new_request(client, service_code="E0101")
    closed = to_status(client, orgdata, "closed")["number"]

    def ids(**params: Any) -> set[str]:
        r = client.get(f"{BASE}/requests.json", params=params)
        assert r.status_code == 200, r.text
        return {x["service_request_id"] for x in r.json()}

    assert ids() == {a, b, closed}
    assert ids(status="open") == {a, b}
    assert ids(status="closed") == {closed}
    assert ids(status="open,closed") == {a, b, closed}
    assert ids(service_code="E0101") == {b}
    assert ids(service_code="E0101,C0101") == {a, b, closed}
    # service_request_id overrides every other argument.
    assert ids(service_request_id=f"{a},{closed}", status="closed", service_code="E0101") == {a, closed}
    assert ids(status="", service_code="") == {a, b, closed}  # empty = absent
    root = xml(client.get(f"{BASE}/requests.xml", params={"status": "open"}))
    assert root.tag == "service_requests" and {r.findtext("service_request_id") for r in root} == {a, b}
    assert all(W3C.match(r.findtext("requested_datetime") or "") for r in root)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2026-13-01T00:00:00Z"}, "end_date"),
        ({"start_date": "2026-03-10T00:00:00Z", "end_date": "2026-03-01T00:00:00Z"}, "before"),
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "90 days"),
        ({"status": "pending"}, "status"),
        ({"service_code": "C9999"}, "service_code"),
        ({"page": "0"}, "page"),
        ({"page_size": "1001"}, "page_size"),
        ({"updated_after": "x"}, "updated_after"),
        ({"extensions": "yes"}, "extensions"),
    ],
)
def test_get_requests_bad_input_is_400(client, params, needle):
    r = client.get(f"{BASE}/requests.json", params=params)
    assert r.status_code == 400, r.text
    assert r.json()[0]["code"] == 400 and needle in r.json()[0]["description"]
    root = xml(client.get(f"{BASE}/requests.xml", params=params))
    assert root.tag == "errors" and root.findtext("error/code") == "400"


def test_default_window_is_the_last_90_days(client, db):
    now = dt.datetime.now(dt.UTC)
    old = insert_cases(db, 2, created_at=now - dt.timedelta(days=100))
    recent = insert_cases(db, 2, created_at=now - dt.timedelta(days=10))
    got = [x["service_request_id"] for x in client.get(f"{BASE}/requests.json").json()]
    assert got == list(reversed(recent))  # newest first, the old ones are outside the window
    start = (now - dt.timedelta(days=101)).isoformat()
    got = {x["service_request_id"] for x in client.get(f"{BASE}/requests.json", params={"start_date": start}).json()}
    assert got == set(old)  # start_date alone: a 90-day window from it
    end = (now - dt.timedelta(days=95)).astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat()
    got = {x["service_request_id"] for x in client.get(f"{BASE}/requests.json", params={"end_date": end}).json()}
    assert got == set(old)


def test_at_most_1000_by_default_and_paging(client, db):
    numbers = insert_cases(db, 1005, created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    newest_first = list(reversed(numbers))
    r = client.get(f"{BASE}/requests.json")
    assert [x["service_request_id"] for x in r.json()] == newest_first[:1000]
    page2 = client.get(f"{BASE}/requests.json", params={"page": 2, "page_size": 400}).json()
    assert [x["service_request_id"] for x in page2] == newest_first[400:800]
    page3 = client.get(f"{BASE}/requests.json", params={"page": 3, "page_size": 400}).json()
    assert [x["service_request_id"] for x in page3] == newest_first[800:]
    root = xml(client.get(f"{BASE}/requests.xml", params={"page_size": 3}))
    assert [r.findtext("service_request_id") for r in root] == newest_first[:3]


def test_updated_after_and_before_form_a_change_feed(client, db):
    now = dt.datetime.now(dt.UTC)
    [old] = insert_cases(db, 1, created_at=now - dt.timedelta(days=200))
    with db.begin() as c:  # an old request that changed yesterday
        c.execute(sa.update(Case).where(Case.number == old).values(updated_at=now - dt.timedelta(days=1)))
    [stale] = insert_cases(db, 1, created_at=now - dt.timedelta(days=5))
    got = {
        x["service_request_id"]
        for x in client.get(
            f"{BASE}/requests.json", params={"updated_after": (now - dt.timedelta(days=2)).isoformat()}
        ).json()
    }
    assert got == {old}
    got = {
        x["service_request_id"]
        for x in client.get(
            f"{BASE}/requests.json", params={"updated_before": (now - dt.timedelta(days=2)).isoformat()}
        ).json()
    }
    assert got == {stale}


# ---- privacy ---------------------------------------------------------------------------------------------


def test_reporter_data_never_appears_in_any_response(client, orgdata):
    files = [("media", ("a.jpg", make_jpeg(seed=9), "image/jpeg"))]
    bodies = [post(client, files=files).content, post(client, "xml").content]
    rid = new_request(client)
    case = case_id(client, orgdata, rid)
    act(client, orgdata, case, "acceptor", "send_verify", inspector_id=orgdata.ids["inspector"])
    for fmt in ("json", "xml"):
        bodies.append(client.get(f"{BASE}/requests.{fmt}", params={"extensions": "true"}).content)
        bodies.append(client.get(f"{BASE}/requests/{rid}.{fmt}", params={"extensions": "true"}).content)
        bodies.append(client.get(f"{BASE}/tokens/{rid}.{fmt}").content)
    for body in bodies:
        text = body.decode("utf-8")
        for secret in (EMAIL, "13800000000", "dev-42", "张", "actor_id", "inspector_id", "reporter"):
            assert secret not in text
