"""Small helpers for driving the case API in tests."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Org, make_jpeg

# A point in Baoji (渭滨区), inside the demo city.
LON, LAT = 107.1448, 34.3693


# Evidence belongs to its author and is used once: every upload is a new photo unless a seed is given.
_SEEDS = itertools.count(100_000, 10)


def upload(client: TestClient, org: Org, user: str, seed: int | None = None, n: int = 1) -> list[int]:
    seed = next(_SEEDS) if seed is None else seed
    files = [("files", (f"p{seed + i}.jpg", make_jpeg(seed=seed + i), "image/jpeg")) for i in range(n)]
    r = client.post("/api/v1/attachments", files=files, headers=org.headers(user))
    assert r.status_code == 201, r.text
    return [a["id"] for a in r.json()]


def report(
    client: TestClient,
    org: Org,
    *,
    user: str = "inspector",
    class_code: str = "C0101",
    action: str = "report",
    photos: list[int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "action": action,
        "class_code": class_code,
        "lon": LON,
        "lat": LAT,
        "description": "井盖破损",
        "attachment_ids": photos if photos is not None else upload(client, org, user),
        **extra,
    }
    r = client.post("/api/v1/cases", json=body, headers=org.headers(user))
    assert r.status_code == 201, r.text
    return r.json()


def act(
    client: TestClient, org: Org, case: dict[str, Any], user: str, action: str, *, expect: int = 200, **body: Any
) -> dict[str, Any]:
    r = client.post(f"/api/v1/cases/{case['id']}/actions", json={"action": action, **body}, headers=org.headers(user))
    assert r.status_code == expect, r.text
    return r.json()


def on_site(client: TestClient, org: Org, user: str = "inspector") -> dict[str, Any]:
    """What a verify/check result needs on the console route as on the phone: the position and a photo."""
    return {"lon": LON, "lat": LAT, "attachment_ids": upload(client, org, user)}


def to_status(client: TestClient, org: Org, status: str, **kw: Any) -> dict[str, Any]:
    """Drive a fresh case to ``status`` along the main path."""
    case = report(client, org, **kw)
    steps = [
        ("filed", "shiftlead", "file", {}),
        ("dispatched", "dispatcher", "dispatch", {"department_id": org.depts["SZ"]}),
        ("handling", "water", "accept", {}),
        ("feedback", "water", "feedback", {"note": "已修复"}),
        ("checking", "acceptor", "send_check", {"inspector_id": org.ids["inspector"]}),
        ("checked", "inspector", "check_pass", None),
        ("closed", "shiftlead", "close", {}),
    ]
    for target, user, action, body in steps:
        if case["status"] == status:
            return case
        if action == "feedback":
            body = {**body, "attachment_ids": upload(client, org, "water")}
        if body is None:
            body = on_site(client, org, user)
        case = act(client, org, case, user, action, **body)
        assert case["status"] == target
    assert case["status"] == status
    return case
