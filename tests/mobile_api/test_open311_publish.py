"""What Open311 publishes (issue 15): photos public by rule only, by an unguessable hash, never by id; staff
free text only when the city opts in; absolute URLs from the configured public base URL, never the Host."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

from casework.models import Attachment
from tests.casework.helpers import LAT, LON, act, on_site, to_status
from tests.conftest import make_jpeg

BASE = "/open311/v2"
ORIGIN = "http://127.0.0.1:8000"


def new_request(client: Any, seed: int) -> str:
    r = client.post(
        f"{BASE}/requests.json",
        data={
            "api_key": "demo-open311-key",
            "service_code": "C0101",
            "lat": str(LAT),
            "long": str(LON),
            "description": "井盖坏了",
        },
        files=[("media", ("a.jpg", make_jpeg(seed=seed), "image/jpeg"))],
    )
    assert r.status_code == 200, r.text
    return str(r.json()[0]["service_request_id"])


def one(client: Any, rid: str) -> dict[str, Any]:
    r = client.get(f"{BASE}/requests/{rid}.json", params={"extensions": "true"})
    assert r.status_code == 200, r.text
    return dict(r.json()[0])


def media_of(client: Any, rid: str) -> list[str]:
    return list(one(client, rid)["extended_attributes"]["media_urls"])


def path_of(url: str) -> str:
    assert url.startswith(ORIGIN + BASE + "/media/")
    return url.removeprefix(ORIGIN)


def shas(db: sa.Engine) -> dict[int, str]:
    with db.connect() as c:
        return {int(a): str(s) for a, s in c.execute(sa.select(Attachment.id, Attachment.sha256)).all()}


def test_an_inspectors_evidence_is_never_served(client, orgdata, db):
    case = to_status(client, orgdata, "checked")  # report photo, after-photo, check photo
    all_shas = shas(db)
    assert len(all_shas) == 3
    assert one(client, case["number"])["media_url"] is None
    assert media_of(client, case["number"]) == []
    for aid, sha in all_shas.items():
        for path in (f"{BASE}/media/{sha}.jpg", f"{BASE}/media/{aid}.jpg"):
            r = client.get(path)
            assert r.status_code == 404 and not r.content.startswith(b"\xff\xd8"), path


def test_a_public_reports_own_photo_is_served_by_hash_not_by_id(client, orgdata, db):
    rid = new_request(client, seed=501)
    [url] = media_of(client, rid)
    sha = hashlib.sha256(make_jpeg(seed=501)).hexdigest()
    assert url == f"{ORIGIN}{BASE}/media/{sha}.jpg"
    r = client.get(path_of(url))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    [aid] = [a for a, s in shas(db).items() if s == sha]
    assert client.get(f"{BASE}/media/{aid}.jpg").status_code == 404  # the sequential id names nothing


def test_after_photos_only_when_the_city_publishes_them(client, app, orgdata, db):
    rid = new_request(client, seed=502)
    case = client.get("/api/v1/cases", params={"number": rid}, headers=orgdata.headers("leader")).json()["items"][0]
    case = act(client, orgdata, case, "acceptor", "send_verify", inspector_id=orgdata.ids["inspector"])
    case = act(client, orgdata, case, "inspector", "verify_true", **on_site(client, orgdata))
    case = act(client, orgdata, case, "shiftlead", "file")
    case = act(client, orgdata, case, "dispatcher", "dispatch", department_id=orgdata.depts["SZ"])
    case = act(client, orgdata, case, "water", "accept")
    after = client.post(
        "/api/v1/attachments",
        files=[("files", ("x.jpg", make_jpeg(seed=503), "image/jpeg"))],
        headers=orgdata.headers("water"),
    ).json()[0]["id"]
    act(client, orgdata, case, "water", "feedback", note="已修复", attachment_ids=[after])
    after_sha = shas(db)[after]
    public_sha = hashlib.sha256(make_jpeg(seed=502)).hexdigest()
    # Default: the public's own photo only (the inspector's verify photo never).
    assert [path_of(u).rsplit("/", 1)[1] for u in media_of(client, rid)] == [f"{public_sha}.jpg"]
    assert client.get(f"{BASE}/media/{after_sha}.jpg").status_code == 404
    # The city opts in: the after-photo is published too, still not the verify photo.
    app.state.settings.open311_publish_after_photos = True
    assert [path_of(u).rsplit("/", 1)[1] for u in media_of(client, rid)] == [f"{public_sha}.jpg", f"{after_sha}.jpg"]
    assert client.get(f"{BASE}/media/{after_sha}.jpg").status_code == 200


def test_an_inspectors_description_is_staff_text(client, app, orgdata):
    case = to_status(client, orgdata, "filed")
    assert one(client, case["number"])["description"] is None
    rid = new_request(client, seed=504)
    assert one(client, rid)["description"] == "井盖坏了"  # the public's own words
    app.state.settings.open311_publish_notes = True
    assert one(client, case["number"])["description"] == "井盖破损"


def test_absolute_urls_come_from_the_setting_not_the_host_header(client, app, orgdata):
    rid = new_request(client, seed=505)
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    disc = client.get(f"{BASE}/discovery.json", headers=evil).json()
    assert disc["endpoints"][0]["url"] == ORIGIN + BASE
    req = client.get(f"{BASE}/requests/{rid}.json", headers=evil).json()[0]
    assert req["media_url"].startswith(ORIGIN + BASE + "/media/")
    assert "evil" not in client.get(f"{BASE}/requests/{rid}.xml", headers=evil).text
    app.state.settings.public_base_url = "https://311.baoji.example/"
    assert client.get(f"{BASE}/discovery.json").json()["endpoints"][0]["url"] == "https://311.baoji.example" + BASE
