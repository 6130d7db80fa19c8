"""The role × operation matrix, built from the OpenAPI document itself (issue 15, OWASP API1/API5).

Every operation of ``app.openapi()`` must have at least one row in :data:`ROWS`; each row writes down the
status every caller gets: anonymous, each role, and a department that does not own the object
(``other_department``). A route added without a row fails :func:`test_every_operation_has_a_row`; a row
whose answer changes fails :func:`test_matrix`, which prints the whole differing cells.

Adding a row: ``Row("METHOD /path/{param}", auth=<status of every logged-in role>, <role>=<status>, ...)``;
path parameters default to the objects of :func:`world` by name (``case_id`` is the department's case,
``attachment_id`` its report photo ...), or pass ``path={...}`` with values or ``lambda w: ...``. The request
is sent with ``json``/``data``/``files``/``query``/``headers`` as given. Unset cells default to ``auth`` for
logged-in roles and to 401 for ``anonymous``.

The object: case ``case`` was reported by ``inspector2`` (not in the matrix), filed, dispatched to the
water department (``department``) and accepted; ``other_department`` is the lighting department, and the
matrix's ``inspector`` neither reported it nor holds a task for it. Hidden objects answer 404 like missing
ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from casework.models import Attachment
from tests.casework.helpers import LAT, LON, act, report
from tests.conftest import Org, make_jpeg

#: Matrix column → login of the test organisation (None: no token).
ROLES: dict[str, str | None] = {
    "anonymous": None,
    "inspector": "inspector",
    "acceptor": "acceptor",
    "shift_leader": "shiftlead",
    "dispatcher": "dispatcher",
    "department": "water",
    "other_department": "lighting",
    "leader": "leader",
    "admin": "admin",
}
CITYWIDE = ("acceptor", "shift_leader", "dispatcher", "leader", "admin")
FIELD = ("inspector", "department", "other_department")
IDEM = {"Idempotency-Key": "matrix-1"}


@dataclass
class Row:
    """One operation (or one probe of it) with the expected status per caller."""

    op: str
    auth: int | None = None
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    files: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    cells: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def expected(self, role: str) -> int:
        if role in self.cells:
            return self.cells[role]
        if role == "anonymous":
            return 401
        assert self.auth is not None, f"{self.op}: no status for {role}"
        return self.auth


def R(
    op: str,
    auth: int | None = None,
    *,
    path: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    json: Any = None,
    data: dict[str, Any] | None = None,
    files: Any = None,
    headers: dict[str, str] | None = None,
    note: str = "",
    only: tuple[str, ...] = (),
    only_status: int = 0,
    **cells: int,
) -> Row:
    """A row: ``auth`` for every logged-in caller, overridden per cell; ``only`` callers get ``only_status``."""
    cells = dict(cells)
    for role in only:
        cells.setdefault(role, only_status)
    return Row(op, auth, path or {}, query, json, data, files, headers or {}, cells, note)


def citywide(status: int, others: int = 403, **cells: int) -> dict[str, int]:
    """Cells: ``status`` for the centres, leaders and admins, ``others`` for the field roles."""
    return {**dict.fromkeys(CITYWIDE, status), **dict.fromkeys(FIELD, others), **cells}


def only(roles: tuple[str, ...], status: int, others: int = 403, **cells: int) -> dict[str, int]:
    """Cells: ``status`` for ``roles``, ``others`` for every other logged-in caller."""
    return {**{r: (status if r in roles else others) for r in ROLES if r != "anonymous"}, **cells}


def photo_files(seed: int, field_name: str = "files") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field_name, (f"m{seed}.jpg", make_jpeg(seed=seed), "image/jpeg"))]


TRACK = {"points": [{"at": "2026-10-01T09:00:00+08:00", "lon": LON, "lat": LAT}]}
OPEN = dict.fromkeys(ROLES, 200)  # anonymous too
CASE_READ = {"inspector": 404, "other_department": 404}  # hidden == missing

ROWS: list[Row] = [
    # ---- kernel: login, me, departments, users ---------------------------------------------------------
    R("POST /api/v1/auth/token", data={"username": "nobody", "password": "wrong"}, **dict.fromkeys(ROLES, 401)),
    R("GET /api/v1/auth/me", 200),
    R("GET /api/v1/departments", 200),
    R("POST /api/v1/departments", json={"code": "MX", "name": "矩阵部门"}, **only(("admin",), 201)),
    R("GET /api/v1/users", **only(CITYWIDE, 200)),
    R(
        "POST /api/v1/users",
        json={"username": "matrix-user", "password": "password-123", "role": "leader"},
        **only(("admin",), 201),
    ),
    # ---- cases ----------------------------------------------------------------------------------------------
    R(
        "POST /api/v1/cases",
        json={"action": "report", "class_code": "C0101", "lon": LON, "lat": LAT, "attachment_ids": [999_999]},
        note="reporting is the inspector's; a photo that is not theirs is refused after the role check",
        **only(("inspector",), 422),
    ),
    R("GET /api/v1/cases", 200),
    R("GET /api/v1/cases/{case_id}", 200, **CASE_READ),
    R("GET /api/v1/cases/{case_id}", 404, path={"case_id": 999_999}, note="missing answers like hidden"),
    R(
        "POST /api/v1/cases/{case_id}/actions",
        json={"action": "close"},
        note="close: hidden → 404, other roles → 403, the shift leader → 409 (wrong state, nothing changes)",
        **citywide(403, inspector=404, other_department=404, department=403, shift_leader=409),
    ),
    R("POST /api/v1/cases/{case_id}/actions", path={"case_id": 999_999}, json={"action": "close"}, auth=404),
    R("GET /api/v1/cases/{case_id}/events", 200, **CASE_READ),
    # ---- photos ---------------------------------------------------------------------------------------------
    R("POST /api/v1/attachments", 201, files=lambda w: photo_files(w["seed"]())),
    R("GET /api/v1/attachments/{attachment_id}/{kind}", 200, path={"kind": "thumb"}, **CASE_READ),
    R("GET /api/v1/attachments/{attachment_id}/{kind}", 200, path={"kind": "display"}, **CASE_READ),
    R(
        "GET /api/v1/attachments/{attachment_id}/{kind}",
        404,
        path={"kind": "original"},
        note="the original (with its EXIF) is never served",
    ),
    R("GET /api/v1/attachments/{attachment_id}/{kind}", 404, path={"attachment_id": 999_999, "kind": "thumb"}),
    # ---- map and components ----------------------------------------------------------------------------------
    R("GET /api/v1/map/areas", 200),
    R("GET /api/v1/map/grids", 200),
    R("GET /api/v1/map/components", 200),
    R("GET /api/v1/components/export.geojson", 200),
    R("GET /api/v1/components/{code}", 404, path={"code": "610302000000000001"}, note="no components loaded"),
    R("GET /api/v1/map/cases", 200),
    R("GET /api/v1/map/hotspots", 200),
    R("GET /api/v1/map/legend", 200),
    R(
        "POST /api/v1/gis/areas",
        json={"type": "FeatureCollection", "features": []},
        note="admin's import (an empty collection imports nothing)",
        **only(("admin",), 200),
    ),
    R("POST /api/v1/gis/components", json={"type": "FeatureCollection", "features": []}, **only(("admin",), 422)),
    # ---- dispatch -------------------------------------------------------------------------------------------
    R("GET /api/v1/cases/{case_id}/recommendation", **citywide(200)),
    R("GET /api/v1/cases/{case_id}/duplicates", **citywide(200)),
    R("GET /api/v1/routing-rules", **only(("admin",), 200)),
    R("POST /api/v1/routing-rules", json=[{"bogus": True}], **only(("admin",), 422)),
    # ---- evaluation -----------------------------------------------------------------------------------------
    R("POST /api/v1/evaluation/publications", json={}, **only(("leader", "admin"), 422)),
    R("GET /api/v1/evaluation/publications/{publication_id}", path={"publication_id": 999_999}, **only(CITYWIDE, 404)),
    R(
        "GET /api/v1/evaluation/{subject_type}/export.csv",
        path={"subject_type": "department"},
        query={"period": "2026-10"},
        **only(CITYWIDE, 200),
    ),
    R(
        "GET /api/v1/evaluation/{subject_type}/export.xlsx",
        path={"subject_type": "department"},
        query={"period": "2026-10"},
        **only(CITYWIDE, 200),
    ),
    R(
        "GET /api/v1/evaluation/{subject_type}",
        path={"subject_type": "department"},
        query={"period": "2026-10"},
        **only(CITYWIDE, 200),
    ),
    R(
        "GET /api/v1/evaluation/{subject_type}/{subject_id}/evidence",
        path={"subject_type": "department", "subject_id": "1"},
        query={"period": "2026-10"},
        note="readers get past the role check to the missing ?primitive",
        **only(CITYWIDE, 422),
    ),
    # ---- phone API ------------------------------------------------------------------------------------------
    R(
        "POST /mobile/v1/auth/token",
        data={"username": "nobody-phone", "password": "wrong"},
        note="another account than the console row's, so the failed-login throttle (10 per account) is not reached",
        **dict.fromkeys(ROLES, 401),
    ),
    R("GET /mobile/v1/tasks", **only(FIELD, 200)),
    R(
        "POST /mobile/v1/reports",
        headers=IDEM,
        data={"report": f'{{"class_code": "C0101", "lon": {LON}, "lat": {LAT}}}'},
        files=lambda w: photo_files(w["seed"](), "photos"),
        note="the phone API is for field roles; reporting is the inspector's",
        **only(("inspector",), 201),
    ),
    R("GET /mobile/v1/reports", 200, note="each caller's own reports only"),
    R(
        "POST /mobile/v1/tasks/{case_id}/result",
        headers=IDEM,
        data={"result": '{"outcome": "done", "lon": 108.5, "lat": 34.3}'},
        files=lambda w: photo_files(w["seed"](), "photos"),
        note="hidden case → 404; the owning department is refused because it is not on site",
        **only(FIELD, 404, department=422),
    ),
    R("POST /mobile/v1/photos", headers=IDEM, files=lambda w: photo_files(w["seed"](), "photos"), **only(FIELD, 201)),
    R(
        "POST /mobile/v1/batch",
        headers=IDEM,
        json=lambda w: {"items": [{"kind": "tracks", "key": f"b{w['seed']()}", "tracks": TRACK}]},
        **only(FIELD, 200),
    ),
    R(
        "POST /mobile/v1/tracks",
        headers=IDEM,
        json=lambda w: TRACK,
        note="patrol tracks are the inspector's",
        **only(("inspector",), 200),
    ),
    R(
        "GET /mobile/v1/tracks/coverage",
        query=lambda w: {"inspector_id": w["inspector2"], "date": "2026-10-01"},
        **only(("acceptor", "shift_leader", "leader", "admin"), 200),
    ),
    # ---- Open311 (public by design; POST needs an api_key) ------------------------------------------------
    R("GET /open311/v2/discovery.{fmt}", path={"fmt": "json"}, **OPEN),
    R("GET /open311/v2/services.{fmt}", path={"fmt": "json"}, **OPEN),
    R("GET /open311/v2/services/{service_code}.{fmt}", path={"fmt": "json", "service_code": "C0101"}, **OPEN),
    R(
        "POST /open311/v2/requests.{fmt}",
        path={"fmt": "json"},
        data={"service_code": "C0101"},
        note="no api_key",
        **dict.fromkeys(ROLES, 403),
    ),
    R("GET /open311/v2/requests.{fmt}", path={"fmt": "json"}, **OPEN),
    R(
        "GET /open311/v2/requests/{service_request_id}.{fmt}",
        path={"fmt": "json", "service_request_id": "x-1"},
        **dict.fromkeys(ROLES, 404),
    ),
    R("GET /open311/v2/tokens/{token}.{fmt}", path={"fmt": "json", "token": "x-1"}, **dict.fromkeys(ROLES, 404)),
    R(
        "GET /open311/v2/media/{token}.jpg",
        path={"token": lambda w: w["public_sha"]},
        note="a public report's own photo",
        **OPEN,
    ),
    R(
        "GET /open311/v2/media/{token}.jpg",
        path={"token": lambda w: w["evidence_sha"]},
        note="an inspector's evidence photo is never public",
        **dict.fromkeys(ROLES, 404),
    ),
    R(
        "GET /open311/v2/media/{token}.jpg",
        path={"token": lambda w: str(w["public_attachment_id"])},
        note="never by the sequential id",
        **dict.fromkeys(ROLES, 404),
    ),
    # ---- console: addresses, queues, admin (issue 13) ------------------------------------------------------
    R("GET /api/v1/addresses", 200, query={"q": "路"}),
    R("GET /api/v1/addresses/{address_id}", 404, path={"address_id": 999_999}),
    R("GET /api/v1/case-classes", 200),
    R("GET /api/v1/cases/export.{ext}", 200, path={"ext": "csv"}, note="each caller's own queue only"),
    R("GET /api/v1/supervision-areas", **only(CITYWIDE, 200)),
    R("POST /api/v1/supervision-areas", json={}, **only(("admin",), 422)),
    R("PATCH /api/v1/supervision-areas/{area_id}", path={"area_id": 999_999}, json={}, **only(("admin",), 404)),
    R(
        "POST /api/v1/supervision-areas/{area_id}/reassign",
        path={"area_id": 999_999},
        json={"inspector_id": None, "effective_at": "2026-01-05T08:30:00+08:00"},
        **only(("admin", "shift_leader"), 404),
    ),
    R("PATCH /api/v1/departments/{department_id}", path={"department_id": 999_999}, json={}, **only(("admin",), 404)),
    R("PATCH /api/v1/users/{user_id}", path={"user_id": 999_999}, json={}, **only(("admin",), 404)),
    R(
        "POST /api/v1/users/{user_id}/password",
        path={"user_id": 999_999},
        json={"password": "password-456"},
        **only(("admin",), 404),
    ),
    R("POST /api/v1/users/{user_id}/deactivate", path={"user_id": 999_999}, **only(("admin",), 404)),
    R("POST /api/v1/users/{user_id}/activate", path={"user_id": 999_999}, **only(("admin",), 404)),
    # ---- tiles and base map (issue 12) ----------------------------------------------------------------------
    R("GET /tiles/style.json", **OPEN),
    R("GET /tiles/{layer}.json", path={"layer": "base"}, **OPEN),
    R("GET /tiles/{layer}.json", path={"layer": "cases"}, note="metadata only; the case tiles need a login", **OPEN),
    R(
        "GET /tiles/fonts/{fontstack}/{glyph_range}.pbf",
        path={"fontstack": "Noto Sans Regular", "glyph_range": "0-255"},
        **OPEN,
    ),
    R("GET /tiles/{layer}/{z}/{x}/{y}.mvt", path={"layer": "base", "z": 14, "x": 13261, "y": 6510}, **OPEN),
    R(
        "GET /tiles/{layer}/{z}/{x}/{y}.mvt",
        path={"layer": "cases", "z": 14, "x": 13261, "y": 6510},
        note="case tiles need a login and hold only what the caller may see",
        auth=200,
    ),
    R(
        "POST /api/v1/gis/base/{layer}",
        path={"layer": "road"},
        json={"type": "FeatureCollection", "features": []},
        note="admin's import; an empty layer is refused",
        **only(("admin",), 422),
    ),
    # ---- field app (issue 11) -------------------------------------------------------------------------------
    R("GET /mobile/v1/classes", 200, note="the class catalogue (and my recent classes)"),
    R("GET /mobile/v1/components/nearest", query={"class_code": "C0101", "lon": LON, "lat": LAT}, **only(FIELD, 200)),
    R("GET /mobile/v1/config", 200, note="limits and the city's extent, nothing private"),
    R("GET /mobile/v1/tasks/{case_id}", **only(FIELD, 404, department=200)),
    R(
        "POST /mobile/v1/tasks/{case_id}/action",
        headers=IDEM,
        json={"action": "accept"},
        note="department actions: other roles are refused by role (403, whatever the id); hidden → 404; "
        "the owning department already accepted → 409",
        **only(FIELD, 403, other_department=404, department=409),
    ),
    # ---- meta -----------------------------------------------------------------------------------------------
    R("GET /healthz", **OPEN),
]


def operations(app: Any) -> set[str]:
    """Every ``METHOD /path`` of the app's OpenAPI document."""
    return {
        f"{method.upper()} {path}"
        for path, ops in app.openapi()["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_every_operation_has_a_row(app: Any) -> None:
    ops = operations(app)
    covered = {r.op for r in ROWS}
    missing = sorted(ops - covered)
    assert not missing, "operations without a row in the authorization matrix: " + ", ".join(missing)
    stale = sorted(covered - ops)
    assert not stale, "rows for operations the app no longer has: " + ", ".join(stale)


def world(client: TestClient, org: Org, db: sa.Engine) -> dict[str, Any]:
    """The objects the rows point at (see the module docstring)."""
    case = report(client, org, user="inspector2")
    case = act(client, org, case, "shiftlead", "file")
    case = act(client, org, case, "dispatcher", "dispatch", department_id=org.depts["SZ"])
    case = act(client, org, case, "water", "accept")
    assert case["status"] == "handling"
    events = client.get(f"/api/v1/cases/{case['id']}/events", headers=org.headers("admin")).json()
    attachment_id = events[0]["attachments"][0]["id"]
    r = client.post(
        "/open311/v2/requests.json",
        data={"api_key": "demo-open311-key", "service_code": "C0101", "lat": str(LAT), "long": str(LON)},
        files=[("media", ("pub.jpg", make_jpeg(seed=77_001), "image/jpeg"))],
    )
    assert r.status_code == 200, r.text
    with db.connect() as c:
        shas = dict(c.execute(sa.select(Attachment.id, Attachment.sha256)).all())
    public_sha = hashlib.sha256(make_jpeg(seed=77_001)).hexdigest()
    seeds = iter(range(78_000, 79_000))
    return {
        "case_id": case["id"],
        "attachment_id": attachment_id,
        "evidence_sha": shas[attachment_id],
        "public_sha": public_sha,
        "public_attachment_id": next(a for a, s in shas.items() if s == public_sha),
        "inspector2": org.ids["inspector2"],
        "seed": lambda: next(seeds),
    }


def _value(v: Any, w: dict[str, Any]) -> Any:
    return v(w) if callable(v) else v


def _send(client: TestClient, org: Org, row: Row, role: str, w: dict[str, Any]) -> int:
    method, template = row.op.split(" ", 1)
    params = {name: w[name] for name in ("case_id", "attachment_id") if "{" + name + "}" in template}
    params.update({k: _value(v, w) for k, v in row.path.items()})
    url = template.format(**params)
    login = ROLES[role]
    headers = {**row.headers, **(org.headers(login) if login else {})}
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"matrix-{role}-{w['seed']()}"
    r = client.request(
        method,
        url,
        headers=headers,
        params=_value(row.query, w),
        json=_value(row.json, w),
        data=_value(row.data, w),
        files=_value(row.files, w),
    )
    return r.status_code


def test_matrix(client: TestClient, orgdata: Org, db: sa.Engine) -> None:
    w = world(client, orgdata, db)
    wrong = []
    for row in ROWS:
        for role in ROLES:
            got = _send(client, orgdata, row, role, w)
            want = row.expected(role)
            if got != want:
                wrong.append(f"{row.op} {row.path or ''} as {role}: expected {want}, got {got}")
    assert not wrong, "authorization matrix differs:\n" + "\n".join(wrong)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "anonymous"])
def test_roles_are_real_logins(orgdata: Org, role: str) -> None:
    assert ROLES[role] in orgdata.ids
