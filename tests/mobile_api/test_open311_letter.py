"""Open311 to the letter (issue 15): each test quotes the spec text it proves, in XML and in JSON.

Sources: GeoReport v2 (wiki.open311.org/GeoReport_v2), its Extensions page and the v2.1 draft, as studied in
/work/shared/domain/peers.md (O1, O3, O4).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from casework.models import Case, EventAttachment
from gridcity.root.app import create_app
from gridcity.settings import Settings
from tests.casework.helpers import LAT, LON, act, on_site
from tests.conftest import Org, make_jpeg
from tests.mobile_api.test_open311 import BASE, KEY, post

FORMATS = ["xml", "json"]


def count(db: sa.Engine, model: Any) -> int:
    with db.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


def requests_of(client: TestClient, fmt: str, **params: Any) -> list[dict[str, Any]]:
    """GET requests in ``fmt``, as dicts (XML parsed strictly: a malformed document fails here)."""
    r = client.get(f"{BASE}/requests.{fmt}", params=params)
    assert r.status_code == 200, r.text
    if fmt == "json":
        return list(r.json())
    root = ET.fromstring(r.content)
    assert root.tag == "service_requests"
    return [{child.tag: (child.text if len(child) == 0 else child) for child in req} for req in root]


# ---- "characters XML 1.0 forbids" -------------------------------------------------------------------------


def test_xml_stays_well_formed_whatever_was_stored(client: TestClient, orgdata: Org, settings: Any) -> None:
    # XML 1.0 §2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
    settings.open311_publish_notes = True  # the city publishes inspectors' descriptions too (off by default)
    nasty = "井盖\x0b缺失\x01，\x1f危险\x08"
    r = post(client, description=nasty, address_string="经二路\x0c口")
    assert r.status_code == 200, r.text
    # The staff API and the phone take the same characters in (a description is free text).
    r = client.post(
        "/api/v1/cases",
        json={"class_code": "C0101", "lon": LON, "lat": LAT, "description": "a\x0bb\x1fc"},
        headers=orgdata.headers("inspector"),
    )
    assert r.status_code == 201, r.text
    got = requests_of(client, "xml")  # ET.fromstring would raise on a single forbidden character
    assert {g["description"] for g in got} == {"井盖\ufffd缺失\ufffd，\ufffd危险\ufffd", "a\ufffdb\ufffdc"}
    assert any(g["address"] == "经二路\ufffd口" for g in got)
    # JSON can carry them, escaped: it keeps what was stored.
    assert {g["description"] for g in requests_of(client, "json")} == {nasty, "a\x0bb\x1fc"}
    # Error bodies echo input too: they stay well-formed as well.
    r = client.get(f"{BASE}/services/C%0B1.xml")
    assert r.status_code == 404 and ET.fromstring(r.content).tag == "errors"


# ---- "media[]" (v2.1 draft) ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_multipart_media_brackets_are_kept_like_media(client: TestClient, db: sa.Engine, fmt: str) -> None:
    # v2.1 draft, media: "A client may POST multiple files as multipart/form-data. This is the equivalent of
    # having multiple <input type="file" name="media[]" /> inputs."
    files = [("media[]", (f"p{i}.jpg", make_jpeg(seed=100 + i), "image/jpeg")) for i in range(2)]
    r = post(client, fmt, files=files)
    assert r.status_code == 200, r.text
    assert count(db, EventAttachment) == 2
    req = requests_of(client, "json", extensions="true")[0]
    assert len(req["extended_attributes"]["media_urls"]) == 2 and req["media_url"].endswith(".jpg")


# ---- POST with an unknown service_code ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("code", ["C9999", "X1", "C01001", "E06010"])
def test_post_with_an_unknown_service_code_is_404(client: TestClient, db: sa.Engine, fmt: str, code: str) -> None:
    # GeoReport v2, POST Service Request, errors: "404 - service_code or jurisdiction_id was not found".
    # C01001/E06010 exist in GB/T 47678, which this city does not list as services (one generation).
    r = post(client, fmt, service_code=code)
    assert r.status_code == 404, r.text
    if fmt == "xml":
        assert ET.fromstring(r.content).findtext("error/code") == "404"
    else:
        assert r.json()[0]["code"] == 404 and code in r.json()[0]["description"]
    assert count(db, Case) == 0
    r = post(client, fmt, service_code=None)  # "400 - service_code or jurisdiction_id was not provided"
    assert r.status_code == 400


# ---- media_url only http(s) -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "data:image/png;base64,AAAA",
        "//example.com/a.jpg",
        "http://",
        "https:///a.jpg",
        "http://exa mple.com/a.jpg",
        "gopher://x/",
    ],
)
def test_media_url_must_be_http_or_https(client: TestClient, db: sa.Engine, fmt: str, url: str) -> None:
    # GeoReport v2: media_url is "A URL to media associated with the request, eg an image"; it is shown to
    # every client, so only web URLs are kept.
    r = post(client, fmt, media_url=url)
    assert r.status_code == 400 and b"media_url" in r.content, r.text
    assert count(db, Case) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_https_media_url_is_kept(client: TestClient, fmt: str) -> None:
    r = post(client, fmt, media_url="https://img.example.com/a.jpg?x=1")
    assert r.status_code == 200, r.text
    got = requests_of(client, fmt)
    assert got[0]["media_url"] == "https://img.example.com/a.jpg?x=1"


# ---- repeated filter parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_repeated_filter_parameters_mean_the_comma_list(client: TestClient, orgdata: Org, fmt: str) -> None:
    # GeoReport v2, GET Service Requests: service_code "can be declared multiple times, comma delimited";
    # status "Options: open, closed" — the same form.
    ids = [str(post(client, service_code=c).json()[0]["service_request_id"]) for c in ("C0101", "C0102", "C0103")]
    case = client.get("/api/v1/cases", params={"number": ids[2]}, headers=orgdata.headers("acceptor")).json()
    case = act(client, orgdata, case["items"][0], "acceptor", "send_verify", inspector_id=orgdata.ids["inspector"])
    act(
        client,
        orgdata,
        case,
        "inspector",
        "verify_false",
        note="现场井盖完好",  # closed
        **on_site(client, orgdata),
    )

    def ids_of(query: str) -> list[str]:
        r = client.get(f"{BASE}/requests.{fmt}?{query}")
        assert r.status_code == 200, r.text
        if fmt == "json":
            return sorted(x["service_request_id"] for x in r.json())
        return sorted(e.text or "" for e in ET.fromstring(r.content).iter("service_request_id"))

    assert ids_of("status=open&status=closed") == ids_of("status=open,closed") == sorted(ids)
    assert ids_of("status=closed") == [ids[2]]
    assert ids_of("service_code=C0101&service_code=C0102") == ids_of("service_code=C0101,C0102") == sorted(ids[:2])
    assert ids_of(f"service_request_id={ids[0]}&service_request_id={ids[1]}") == sorted(ids[:2])
    assert client.get(f"{BASE}/requests.{fmt}?status=open&status=bogus").status_code == 400


# ---- one visible service per class name -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_service_per_class_name_from_the_city_generation(client: TestClient, fmt: str) -> None:
    r = client.get(f"{BASE}/services.{fmt}")
    assert r.status_code == 200
    if fmt == "json":
        services = [(s["service_code"], s["service_name"]) for s in r.json()]
    else:
        services = [(s.findtext("service_code"), s.findtext("service_name")) for s in ET.fromstring(r.content)]
    names = Counter(name for _, name in services)
    assert names.most_common(1)[0][1] == 1, names.most_common(3)
    assert {len(code or "") for code, _ in services} == {5}  # C0101: CJ/T 214, the shipped default
    assert ("C0101", "上水井盖") in services and not any(code == "C01001" for code, _ in services)
    assert client.get(f"{BASE}/services/C01001.{fmt}").status_code == 404


def test_a_city_on_gbt47678_lists_that_generation(db: sa.Engine, settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"open311_generation": "gbt47678"}))
    try:
        with TestClient(app) as c:
            services = c.get(f"{BASE}/services.json").json()
            codes = {s["service_code"] for s in services}
            assert "C01001" in codes and "C0101" not in codes
            assert Counter(s["service_name"] for s in services).most_common(1)[0][1] == 1
            assert c.get(f"{BASE}/services/C0101.json").status_code == 404
    finally:
        app.state.engine.dispose()


# ---- notes on the request (Extensions) -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_notes_sit_on_the_request_with_extensions(client: TestClient, fmt: str) -> None:
    # Extensions page, "Extended Attributes" example: "notes" is a key of the request, beside
    # "extended_attributes", each note with datetime, description and type.
    post(client)
    r = client.get(f"{BASE}/requests.{fmt}", params={"extensions": "true"})
    if fmt == "json":
        req = r.json()[0]
        assert "notes" not in req["extended_attributes"]
        assert [n["type"] for n in req["notes"]] == ["public_report"]
        assert set(req["notes"][0]) == {"datetime", "description", "type"}
    else:
        req_el = ET.fromstring(r.content).find("request")
        assert req_el is not None
        notes = req_el.find("notes")
        assert notes is not None and [n.findtext("type") for n in notes.findall("note")] == ["public_report"]
        assert req_el.find("extended_attributes/notes") is None
    plain = client.get(f"{BASE}/requests.{fmt}")
    assert b"<notes>" not in plain.content and b'"notes"' not in plain.content


# ---- CORS -------------------------------------------------------------------------------------------------


def test_open311_answers_cors_for_other_sites_and_the_staff_api_does_not(client: TestClient) -> None:
    origin = {"Origin": "https://app.example.org"}
    r = client.get(f"{BASE}/services.json", headers=origin)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    r = client.options(
        f"{BASE}/requests.json",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert r.status_code == 200 and "POST" in r.headers["access-control-allow-methods"]
    r = client.get("/api/v1/auth/me", headers=origin)
    assert "access-control-allow-origin" not in r.headers


def test_open311_cors_origins_are_a_setting(db: sa.Engine, settings: Settings) -> None:
    for origins, origin, allowed in [
        (["https://map.city.gov.cn"], "https://map.city.gov.cn", True),
        (["https://map.city.gov.cn"], "https://evil.example", False),
        ([], "https://map.city.gov.cn", False),
    ]:
        app = create_app(settings.model_copy(update={"open311_cors_origins": origins}))
        try:
            with TestClient(app) as c:
                r = c.get(f"{BASE}/discovery.json", headers={"Origin": origin})
                assert r.status_code == 200
                assert (r.headers.get("access-control-allow-origin") == origin) is allowed, (origins, origin)
        finally:
            app.state.engine.dispose()


def test_api_key_is_still_required_to_post(client: TestClient) -> None:
    r = client.post(
        f"{BASE}/requests.json", data={"service_code": "C0101", "lat": str(LAT), "long": str(LON), "api_key": KEY + "x"}
    )
    assert r.status_code == 403
