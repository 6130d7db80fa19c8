"""The evaluation HTTP API: rankings, evidence, publications, exports and bad input."""

from __future__ import annotations

import csv
import io

import openpyxl
import sqlalchemy as sa
from fastapi.testclient import TestClient

from evaluation.models import Publication, PublishedResult
from gridcity.database import make_session_factory
from tests.conftest import Org
from tests.evaluation.conftest import Driver, local
from tests.evaluation.test_evaluation_service import scenario


def seed(db: sa.Engine, org: Org) -> dict[str, int]:
    with make_session_factory(db)() as s, s.begin():
        return scenario(Driver(s, org))


def test_ranking_evidence_and_roles(client: TestClient, db: sa.Engine, orgdata: Org) -> None:
    ids = seed(db, orgdata)
    r = client.get("/api/v1/evaluation/department", params={"period": "2026-10"}, headers=orgdata.headers("leader"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == "v1" and body["period"] == "2026-10"
    top = body["rows"][0]
    assert top["subject_id"] == str(orgdata.depts["SZ"]) and top["rank"] == 1 and top["grade"] == "C"
    assert float(top["composite"]) == 70.0 and "insufficient_data" in top["flags"]
    assert any("综合指标值" in line for line in top["explanation"]["lines"])
    ev = client.get(
        f"/api/v1/evaluation/department/{orgdata.depts['SZ']}/evidence",
        params={"period": "2026-10", "primitive": "overdue_handled"},
        headers=orgdata.headers("dispatcher"),
    )
    assert ev.status_code == 200, ev.text
    assert [c["case_id"] for c in ev.json()["cases"]] == [ids["B"]]
    assert (
        client.get(
            "/api/v1/evaluation/department", params={"period": "2026-10"}, headers=orgdata.headers("water")
        ).status_code
        == 403
    )
    assert (
        client.get(
            "/api/v1/evaluation/department", params={"period": "2026-10"}, headers=orgdata.headers("inspector")
        ).status_code
        == 403
    )


def test_bad_input_gets_stable_codes(client: TestClient, orgdata: Org) -> None:
    h = orgdata.headers("leader")
    cases = [
        ("/api/v1/evaluation/department", {"period": "2026-13"}, "evaluation.bad_period"),
        ("/api/v1/evaluation/department", {"period": "2026-10-15..2026-10-01"}, "evaluation.end_before_start"),
        ("/api/v1/evaluation/department", {"period": "2025-01-01..2026-12-31"}, "evaluation.range_too_long"),
        ("/api/v1/evaluation/department", {"period": "2026-10", "version": "v99"}, "evaluation.unknown_version"),
        ("/api/v1/evaluation/planets", {"period": "2026-10"}, "evaluation.unknown_subject_type"),
        ("/api/v1/evaluation/grid/export.csv", {"period": "bad"}, "evaluation.bad_period"),
        (
            "/api/v1/evaluation/department/1/evidence",
            {"period": "2026-10", "primitive": "x"},
            "evaluation.unknown_primitive",
        ),
    ]
    for url, params, code in cases:
        r = client.get(url, params=params, headers=h)
        assert r.status_code == 422, (url, params, r.text)
        assert r.json()["detail"][0]["type"] == code
    r = client.post("/api/v1/evaluation/publications", json={"period": "2026-10", "version": "v99"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "evaluation.unknown_version"
    r = client.post("/api/v1/evaluation/publications", json={"period": "2026-10", "bogus": 1}, headers=h)
    assert r.status_code == 422
    # nothing half-stored
    with make_session_factory(client.app.state.engine)() as s:  # type: ignore[attr-defined]
        assert s.scalar(sa.select(sa.func.count()).select_from(Publication)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(PublishedResult)) == 0


def test_publication_is_frozen(client: TestClient, db: sa.Engine, orgdata: Org) -> None:
    seed(db, orgdata)
    h = orgdata.headers("leader")
    r = client.post("/api/v1/evaluation/publications", json={"period": "2026-10"}, headers=h)
    assert r.status_code == 201, r.text
    pub = r.json()
    sz_id = str(orgdata.depts["SZ"])
    frozen = [x for x in pub["results"] if x["subject_type"] == "department" and x["subject_id"] == sz_id][0]
    assert frozen["counts"]["should_handle"] == 2 and frozen["rank"] == 1
    # Publishing the same period and version again is refused.
    again = client.post("/api/v1/evaluation/publications", json={"period": "2026-10"}, headers=h)
    assert again.status_code == 409 and again.json()["detail"][0]["type"] == "evaluation.already_published"
    assert (
        client.post(
            "/api/v1/evaluation/publications", json={"period": "2026-10"}, headers=orgdata.headers("dispatcher")
        ).status_code
        == 403
    )
    # A later case in October changes the live ranking, never the publication.
    with make_session_factory(db)() as s, s.begin():
        d = Driver(s, orgdata)
        c = d.new(local(20, 9))
        d.do(c, "shiftlead", "file", local(20, 9, 10))
        d.do(c, "dispatcher", "dispatch", local(20, 9, 20), department_id="SZ")
    live = client.get("/api/v1/evaluation/department", params={"period": "2026-10"}, headers=h).json()
    live_sz = [x for x in live["rows"] if x["subject_id"] == sz_id][0]
    assert live_sz["counts"]["filed"] == 3
    got = client.get(
        f"/api/v1/evaluation/publications/{pub['id']}", params={"subject_type": "department"}, headers=h
    ).json()
    again_sz = [x for x in got["results"] if x["subject_id"] == sz_id][0]
    assert again_sz == frozen
    assert client.get("/api/v1/evaluation/publications/999999", headers=h).status_code == 404


def test_csv_and_xlsx_exports(client: TestClient, db: sa.Engine, orgdata: Org) -> None:
    seed(db, orgdata)
    h = orgdata.headers("leader")
    r = client.get("/api/v1/evaluation/department/export.csv", params={"period": "2026-10"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["排名", "名称", "综合指标值", "等级"]
    assert "按期处置率" in rows[0] and "返工率" in rows[0]
    assert rows[1][:4] == ["1", "市自来水公司", "70.0", "C"]
    assert rows[1][rows[0].index("按期处置率")] == "50.0"
    assert "样本不足" in rows[1][-1]
    x = client.get("/api/v1/evaluation/department/export.xlsx", params={"period": "2026-10"}, headers=h)
    assert x.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(x.content)).active
    assert ws is not None
    values = list(ws.values)
    assert list(values[0][:4]) == ["排名", "名称", "综合指标值", "等级"]
    assert list(values[1][:4]) == [1, "市自来水公司", 70.0, "C"]
    assert len(values) == 4  # SZ, LD, HW
