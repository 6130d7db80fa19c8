"""Standard addresses: import, the bigram look-up (ranking, partial input, traditional characters), use in
intake and in Open311 — on SQLite and PostgreSQL alike (run with --db=spatialite and --db=postgis)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from shapely.geometry import Point

from components import addresses
from components.models import Address, AddressGram
from gis_data.addresses import load_addresses
from gis_data.loader import LoadRejected
from gis_data.readers import RawRow, read_csv_points
from gridcity.database import make_session_factory
from tests.conftest import Org

ROWS = [
    ("A1", "door_plate", "经二路12号", "经二路", "12", ""),
    ("A2", "door_plate", "经二路120号", "经二路", "120", ""),
    ("A3", "door_plate", "经二路2号", "经二路", "2", ""),
    ("A4", "road", "经二路", "经二路", "", ""),
    ("A5", "place", "宝鸡市中心医院", "经二路", "", "中心医院;市医院"),
    ("A6", "door_plate", "红旗路12号", "红旗路", "12", ""),
    ("A7", "place", "新经二路小区", "", "", ""),
]


def _rows(items: list[tuple[str, ...]]) -> list[RawRow]:
    return [
        RawRow(
            i + 1,
            {"code": c, "kind": k, "name": n, "road": r, "number": num, "aliases": al},
            Point(107.14 + i * 0.001, 34.36),
        )
        for i, (c, k, n, r, num, al) in enumerate(items)
    ]


@pytest.fixture
def loaded(db: sa.Engine) -> sa.Engine:
    with make_session_factory(db)() as s, s.begin():
        report = load_addresses(s, _rows(ROWS))
        assert report.counts["created"] == len(ROWS)
    return db


def names(db: sa.Engine, q: str) -> list[str]:
    with make_session_factory(db)() as s:
        return [h.address.name for h in addresses.lookup(s, q)]


def test_normalize_folds_width_case_space_and_traditional() -> None:
    assert addresses.normalize(" 經二路１２號 ") == "经二路12号"
    assert addresses.normalize("Ａ座 3-1") == "a座31"
    assert addresses.bigrams("经二路") == ["经二", "二路"]


def test_exact_name_first_then_prefix_then_substring(loaded: sa.Engine) -> None:
    got = names(loaded, "经二路")
    assert got[0] == "经二路"  # the road itself
    assert got[1:4] == ["经二路2号", "经二路12号", "经二路120号"]  # names beginning with it, shortest first
    assert set(got[4:]) == {"新经二路小区", "宝鸡市中心医院"}  # then the text containing it (name or road)
    assert "红旗路12号" not in got


def test_partial_number_ranks_the_exact_plate_first(loaded: sa.Engine) -> None:
    assert names(loaded, "经二路12号")[0] == "经二路12号"
    got = names(loaded, "经二路12")
    assert got[:2] == ["经二路12号", "经二路120号"]  # both begin with it; shorter first
    assert "红旗路12号" not in got


def test_partial_words_out_of_order_and_aliases(loaded: sa.Engine) -> None:
    assert names(loaded, "中心医院") == ["宝鸡市中心医院"]
    assert names(loaded, "市医院") == ["宝鸡市中心医院"]  # an alias
    assert names(loaded, "12号红旗") == ["红旗路12号"]  # every bigram somewhere, any order
    assert names(loaded, "經二路１２號")[0] == "经二路12号"  # traditional and full-width input


def test_no_match_and_one_character(loaded: sa.Engine) -> None:
    assert names(loaded, "人民路") == []
    assert names(loaded, "红") == ["红旗路12号"]


def test_reimport_replaces_by_code_and_bad_rows_load_nothing(loaded: sa.Engine) -> None:
    f = make_session_factory(loaded)
    with f() as s, s.begin():
        rep = load_addresses(s, _rows([("A6", "door_plate", "红旗路14号", "红旗路", "14", "")]))
        assert rep.counts["updated"] == 1
    assert names(loaded, "红旗路14") == ["红旗路14号"] and names(loaded, "红旗路12") == []
    bad = _rows([("B1", "door_plate", "人民路1号", "", "", ""), ("B1", "nonsense", "", "", "", "")])
    with f() as s, s.begin(), pytest.raises(LoadRejected) as exc:
        load_addresses(s, bad)
    codes = {e["type"] for r in exc.value.report.rows for e in r.errors}
    assert {"address.bad_kind", "address.bad_name"} <= codes
    with f() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Address).where(Address.code == "B1")) == 0
        grams = s.scalar(sa.select(sa.func.count()).select_from(AddressGram))
        assert grams and grams > 0


def test_csv_import_through_the_gis_reader(db: sa.Engine) -> None:
    csv_text = "code,name,kind,lon,lat\nC1,渭滨路8号,door_plate,107.15,34.37\n"
    with make_session_factory(db)() as s, s.begin():
        load_addresses(s, read_csv_points(csv_text))
    assert names(db, "渭滨路8") == ["渭滨路8号"]


def test_http_lookup_and_errors(client: Any, orgdata: Org, loaded: sa.Engine) -> None:
    r = client.get("/api/v1/addresses", params={"q": "经二路12"}, headers=orgdata.headers("acceptor"))
    assert r.status_code == 200, r.text
    first = r.json()["items"][0]
    assert first["name"] == "经二路12号" and first["lon"] == pytest.approx(107.14) and first["rank"] == 1
    assert set(first) >= {"grid_code", "community_code", "community_name", "full_name"}
    r = client.get("/api/v1/addresses", params={"q": "  "}, headers=orgdata.headers("acceptor"))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "address.empty_query"
    assert client.get("/api/v1/addresses", params={"q": "经二"}).status_code == 401


def test_intake_by_address_id_and_open311_by_address_string(client: Any, orgdata: Org, loaded: sa.Engine) -> None:
    with make_session_factory(loaded)() as s:
        a1 = s.scalars(sa.select(Address).where(Address.code == "A1")).one()
        a_id, a_lon = a1.id, a1.lon
    body = {
        "action": "public_report",
        "class_code": "E0101",
        "address_id": a_id,
        "channel": "hotline_12345",
        "description": "占道经营",
        "reporter": {"name": "张三", "phone": "13800000000"},
    }
    r = client.post("/api/v1/cases", json=body, headers=orgdata.headers("acceptor"))
    assert r.status_code == 201, r.text
    case = r.json()
    assert (case["lon"], case["status"], case["source"]) == (a_lon, "public_reported", "hotline_12345")
    assert "经二路12号" in case["address"]
    assert case["reporter"]["phone"] == "13800000000"  # the supervision centre sees the caller
    other = client.get(f"/api/v1/cases/{case['id']}", headers=orgdata.headers("dispatcher")).json()
    assert other["reporter"] is None  # nobody else does
    # Neither position nor address: a clear 422, nothing stored.
    r = client.post(
        "/api/v1/cases", json={"action": "public_report", "class_code": "E0101"}, headers=orgdata.headers("acceptor")
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "case.no_location"
    r = client.post("/api/v1/cases", json={**body, "address_id": 999999}, headers=orgdata.headers("acceptor"))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "address.unknown"
    # Open311: address_string alone is located through the same look-up.
    form = {
        "api_key": "demo-open311-key",
        "service_code": "E0101",
        "address_string": "宝鸡市中心医院",
        "description": "垃圾",
        "phone": "13900000000",
    }
    r = client.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 200, r.text
    number = r.json()[0]["service_request_id"]
    got = client.get(f"/open311/v2/requests/{number}.json").json()[0]
    assert got["lat"] == pytest.approx(34.36) and "13900000000" not in str(got)
    r = client.post("/open311/v2/requests.json", data={**form, "address_string": "不存在的路"})
    assert r.status_code == 400
    r = client.post("/open311/v2/requests.json", data={**form, "address_string": "", "address_id": "A6"})
    assert r.status_code == 200, r.text
