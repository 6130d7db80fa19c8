"""Recommendation, auto-dispatch, duplicates and merge on a real database, with hand-made geometry."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from casework import service as casework_service
from casework.lifecycle import Actor, CaseAction
from casework.rules import load_rules as load_case_rules
from dispatch import duplicates, service
from dispatch.service import RoutingSettings
from gridcity.errors import InvalidInput
from gridcity.roles import Role
from gridcity.settings import Settings
from tests.casework.helpers import act, report, upload
from tests.conftest import Org
from tests.dispatch.conftest import (
    BORDER_X,
    COMMUNITY,
    DISTRICT,
    GRID_E,
    GRID_OTHER_STREET,
    GRID_W,
    STREET,
    add_component,
    at,
)

ON = dt.date(2026, 3, 2)
CFG = RoutingSettings(snap_tolerance_m=30.0)


@dataclass(frozen=True)
class Probe:
    """A case as routing sees it (no case row needed)."""

    class_code: str
    kind: str
    lon: float
    lat: float
    grid_code: str | None = None
    component_id: str | None = None


def probe(class_code: str, dx: float = 0.0, dy: float = 0.0, **kw: Any) -> Probe:
    lon, lat = at(dx, dy)
    kind = "component" if class_code.startswith("C") else "event"
    return Probe(class_code, kind, lon, lat, **kw)


def recommend(session: Session, p: Probe, cfg: RoutingSettings = CFG) -> service.Recommendation:
    return service.recommend(session, case=p, rules=load_case_rules(), settings=cfg, on=ON)


def rule(cls: str, level: str, code: str, dept: int, **kw: Any) -> dict[str, Any]:
    return {
        "class_code": cls,
        "scope_level": level,
        "scope_code": code,
        "department_id": dept,
        "valid_from": "2026-01-01",
        **kw,
    }


# ---- component routing -----------------------------------------------------------------------------------


def test_the_nearest_component_of_the_class_decides_and_other_classes_are_ignored(
    session: Session, orgdata: Org
) -> None:
    d = orgdata.depts
    add_component(session, "C0118", 1, 4.0, 0.0, main=d["LD"])  # street lamp 4 m east
    add_component(session, "C0118", 2, 0.0, -12.0, main=d["HW"])  # street lamp 12 m south
    add_component(session, "C0101", 3, 1.0, 0.0, main=d["SZ"])  # water cover 1 m east: another class
    session.flush()
    rec = recommend(session, probe("C0118"))
    assert (rec.method, rec.department_id, rec.department_name) == ("component", d["LD"], "市路灯管理所")
    assert rec.component_code == "6103020118000001"
    assert rec.distance_m == pytest.approx(4.0, abs=0.1)
    assert rec.explanation == "路灯 6103020118000001，距离 4.0 米，主管单位 市路灯管理所"
    assert not rec.ambiguous
    assert [c.department_id for c in rec.candidates] == [d["LD"]]


def test_without_a_main_department_the_maintainer_then_the_owner_decides(session: Session, orgdata: Org) -> None:
    d = orgdata.depts
    add_component(session, "C0118", 1, 4.0, 0.0, maint=d["HW"], owner=d["SZ"])
    session.flush()
    rec = recommend(session, probe("C0118"))
    assert rec.department_id == d["HW"] and "养护单位 市环境卫生管理处" in rec.explanation
    session.execute(sa.text("UPDATE component SET maintainer_department_id = NULL"))
    rec = recommend(session, probe("C0118"))
    assert rec.department_id == d["SZ"] and "权属单位 市自来水公司" in rec.explanation


def test_a_line_component_is_measured_to_its_nearest_point(session: Session, orgdata: Org) -> None:
    # a 200 m long north-south line 6 m east of the point: its vertices are far, the line is near
    (x0, y0), (x1, y1) = at(6.0, -100.0), at(6.0, 100.0)
    add_component(session, "C0118", 1, 0, 0, main=orgdata.depts["LD"], wkt=f"LINESTRING({x0} {y0}, {x1} {y1})")
    session.flush()
    rec = recommend(session, probe("C0118"))
    assert rec.department_id == orgdata.depts["LD"]
    assert rec.distance_m == pytest.approx(6.0, abs=0.1)


def test_two_equally_near_components_with_different_owners_are_ambiguous(session: Session, orgdata: Org) -> None:
    d = orgdata.depts
    add_component(session, "C0118", 1, 5.0, 0.0, main=d["LD"])
    add_component(session, "C0118", 2, -5.5, 0.0, main=d["HW"])
    add_component(session, "C0118", 3, 20.0, 0.0, main=d["SZ"])  # farther: not a candidate
    session.flush()
    rec = recommend(session, probe("C0118"))
    assert (rec.method, rec.department_id, rec.ambiguous) == ("component", None, True)
    assert sorted(c.department_id for c in rec.candidates) == sorted([d["LD"], d["HW"]])
    assert "请派遣员选择" in rec.explanation
    assert "6103020118000001" in rec.explanation and "6103020118000002" in rec.explanation


def test_the_case_component_id_wins_over_a_nearer_component(session: Session, orgdata: Org) -> None:
    d = orgdata.depts
    add_component(session, "C0118", 1, 2.0, 0.0, main=d["HW"])
    far = add_component(session, "C0118", 2, 25.0, 0.0, main=d["LD"])
    session.flush()
    rec = recommend(session, probe("C0118", component_id=far))
    assert (rec.department_id, rec.component_code) == (d["LD"], far)
    assert "案件所报部件" in rec.explanation


def test_removed_components_and_those_beyond_tolerance_fall_back_to_the_rules(session: Session, orgdata: Org) -> None:
    d = orgdata.depts
    add_component(session, "C0118", 1, 3.0, 0.0, main=d["HW"], state="移除")
    add_component(session, "C0118", 2, 31.0, 0.0, main=d["HW"])  # 31 m: outside the 30 m tolerance
    session.flush()
    service.load_rules(session, rows=[rule("C01*", "street", STREET, d["LD"])])
    rec = recommend(session, probe("C0118"))
    assert (rec.method, rec.department_id, rec.grid_code) == ("rule", d["LD"], GRID_W)
    assert rec.explanation.startswith("30 米内没有路灯部件；路灯（C0118）位于网格 " + GRID_W)
    assert f"C01* @ 街道 {STREET}" in rec.explanation and rec.explanation.endswith("→ 市路灯管理所")
    # a wider tolerance reaches the 31 m lamp
    assert recommend(session, probe("C0118"), RoutingSettings(snap_tolerance_m=35.0)).department_id == d["HW"]


# ---- rule routing ----------------------------------------------------------------------------------------


def test_an_event_goes_by_the_most_specific_rule_of_its_grid(session: Session, orgdata: Org) -> None:
    d = orgdata.depts
    service.load_rules(
        session,
        rows=[
            rule("*", "city", "", d["SZ"]),
            rule("E01*", "district", DISTRICT, d["LD"]),
            rule("E0102", "community", COMMUNITY, d["HW"]),
        ],
    )
    assert recommend(session, probe("E0102")).department_id == d["HW"]  # community + exact class
    assert recommend(session, probe("E0103")).department_id == d["LD"]  # district + major wildcard
    other = recommend(session, probe("E0102", 0, 150))  # in the other street's grid: same district
    assert (other.grid_code, other.department_id) == (GRID_OTHER_STREET, d["LD"])
    outside = recommend(session, probe("E0102", 0, 500))  # in no grid: only the city rule applies
    assert (outside.grid_code, outside.department_id) == (None, d["SZ"])
    assert "不在任何单元网格内" in outside.explanation


def test_a_point_on_a_grid_border_takes_the_lowest_grid_code_and_says_so(session: Session, orgdata: Org) -> None:
    d = orgdata.depts
    service.load_rules(session, rows=[rule("E0102", "grid", GRID_W, d["HW"]), rule("E0102", "grid", GRID_E, d["SZ"])])
    rec = recommend(session, probe("E0102", BORDER_X, 0.0))
    assert (rec.grid_code, rec.department_id) == (GRID_W, d["HW"])
    assert f"位于网格边界（{GRID_W}、{GRID_E}）" in rec.explanation
    assert recommend(session, probe("E0102", BORDER_X + 1, 0.0)).department_id == d["SZ"]


def test_rules_out_of_force_do_not_apply(session: Session, orgdata: Org) -> None:
    d = orgdata.depts
    service.load_rules(
        session,
        rows=[
            rule("E0102", "grid", GRID_W, d["HW"], valid_to="2026-03-02"),
            rule("E0102", "grid", GRID_W, d["SZ"], valid_from="2026-03-02"),
        ],
    )
    assert recommend(session, probe("E0102")).department_id == d["SZ"]


def test_no_rule_means_method_none_without_candidates(session: Session, orgdata: Org) -> None:
    rec = recommend(session, probe("E0102"))
    assert (rec.method, rec.department_id, rec.candidates, rec.grid_code) == ("none", None, [], GRID_W)
    assert rec.explanation == f"暴露垃圾（E0102）位于网格 {GRID_W}，没有适用的派遣规则，请派遣员人工选择部门"


def test_a_component_case_with_no_component_and_no_rule_explains_both(session: Session, orgdata: Org) -> None:
    rec = recommend(session, probe("C0118"))
    assert rec.method == "none" and rec.candidates == []
    assert rec.explanation.startswith("30 米内没有路灯部件；") and "没有适用的派遣规则" in rec.explanation


def test_loading_rules_refuses_conflicts_with_stored_rules_and_unknown_departments(
    session: Session, orgdata: Org
) -> None:
    d = orgdata.depts
    (stored,) = service.load_rules(session, rows=[rule("E0102", "grid", GRID_W, d["HW"])])
    with pytest.raises(InvalidInput) as exc:
        service.load_rules(
            session,
            rows=[
                rule("E0103", "grid", GRID_W, d["SZ"]),
                rule("E0102", "grid", GRID_W, d["SZ"], valid_from="2026-06-01"),
            ],
        )
    assert exc.value.code == "routing.conflicting_rules"
    assert f"规则 #{stored.id}" in exc.value.message and "row 1" in exc.value.message
    assert exc.value.extra["stored_rule_ids"] == [stored.id]
    with pytest.raises(InvalidInput) as exc:
        service.load_rules(session, rows=[rule("E0102", "grid", GRID_E, 999_999)])
    assert (exc.value.code, exc.value.loc) == ("department.unknown", [0, "department_id"])
    assert len(service.list_rules(session)) == 1
    # replacing the table is checked against the new rows only
    service.load_rules(session, rows=[rule("E0102", "grid", GRID_W, d["SZ"])], replace=True)
    assert [r.department_id for r in service.list_rules(session)] == [d["SZ"]]


# ---- HTTP: recommendation, rules, auto-dispatch ----------------------------------------------------------


def _seed(db_engine: sa.Engine, fn: Any) -> None:
    from gridcity.database import make_session_factory

    with make_session_factory(db_engine)() as s, s.begin():
        fn(s)


def test_recommendation_endpoint_is_for_the_centres_and_leaders(
    grids: sa.Engine, client: TestClient, orgdata: Org
) -> None:
    _seed(grids, lambda s: add_component(s, "C0101", 1, 3.0, 0.0, main=orgdata.depts["SZ"]))
    case = report(client, orgdata, class_code="C0101")
    for user in ("dispatcher", "shiftlead", "acceptor", "leader", "admin"):
        r = client.get(f"/api/v1/cases/{case['id']}/recommendation", headers=orgdata.headers(user))
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["department_id"], body["method"], body["component_code"]) == (
            orgdata.depts["SZ"],
            "component",
            "6103020101000001",
        )
        assert body["explanation"] == "上水井盖 6103020101000001，距离 3.0 米，主管单位 市自来水公司"
    for user in ("inspector", "water"):
        r = client.get(f"/api/v1/cases/{case['id']}/recommendation", headers=orgdata.headers(user))
        assert r.status_code == 403 and r.json()["detail"][0]["type"] == "auth.role_forbidden"
    r = client.get("/api/v1/cases/999999/recommendation", headers=orgdata.headers("dispatcher"))
    assert r.status_code == 404


def test_routing_rules_endpoint_loads_all_or_nothing(grids: sa.Engine, client: TestClient, orgdata: Org) -> None:
    d = orgdata.depts
    admin = orgdata.headers("admin")
    rows = [rule("E01*", "street", STREET, d["HW"]), rule("*", "city", "", d["SZ"], valid_to="2027-01-01")]
    r = client.post("/api/v1/routing-rules", json=rows, headers=admin)
    assert r.status_code == 201, r.text
    assert [x["class_code"] for x in r.json()] == ["E01*", "*"]
    bad = [rule("E0102", "grid", GRID_W, d["LD"]), rule("E01*", "street", STREET, d["LD"])]
    r = client.post("/api/v1/routing-rules", json=bad, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "routing.conflicting_rules"
    r = client.post("/api/v1/routing-rules", json=[rule("E0102", "grid", "123", d["LD"])], headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "routing.bad_scope"
    listed = client.get("/api/v1/routing-rules", headers=admin).json()
    assert [(x["class_code"], x["valid_to"]) for x in listed] == [("E01*", None), ("*", "2027-01-01")]
    assert client.get("/api/v1/routing-rules", headers=orgdata.headers("dispatcher")).status_code == 403
    r = client.post("/api/v1/routing-rules", json=rows, headers=orgdata.headers("dispatcher"))
    assert r.status_code == 403
    r = client.post("/api/v1/routing-rules?replace=true", json=bad[:1], headers=admin)
    assert r.status_code == 201
    assert [x["class_code"] for x in client.get("/api/v1/routing-rules", headers=admin).json()] == ["E0102"]


def _events(client: TestClient, org: Org, case_id: int) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/cases/{case_id}/events", headers=org.headers("shiftlead"))
    assert r.status_code == 200, r.text
    return list(r.json())


def test_filing_an_auto_dispatch_class_dispatches_it_as_the_system(
    grids: sa.Engine, client: TestClient, orgdata: Org
) -> None:
    _seed(grids, lambda s: add_component(s, "C0118", 1, 4.0, 0.0, main=orgdata.depts["LD"]))
    case = report(client, orgdata, class_code="C0118")
    filed = act(client, orgdata, case, "shiftlead", "file")
    assert (filed["status"], filed["department_id"]) == ("dispatched", orgdata.depts["LD"])
    events = _events(client, orgdata, case["id"])
    assert [e["action"] for e in events] == ["report", "file", "dispatch"]
    auto = events[-1]
    assert auto["actor_id"] is None and auto["actor_role"] == "dispatcher"
    assert auto["data"]["auto"] is True and auto["data"]["department_id"] == orgdata.depts["LD"]
    assert auto["data"]["explanation"] == "路灯 6103020118000001，距离 4.0 米，主管单位 市路灯管理所"
    # the department sees it and can accept it
    act(client, orgdata, filed, "lighting", "accept")


def test_auto_dispatch_leaves_the_case_filed_when_not_allowed_or_not_sure(
    grids: sa.Engine, client: TestClient, orgdata: Org
) -> None:
    d = orgdata.depts

    def seed(s: Session) -> None:
        add_component(s, "C0101", 1, 3.0, 0.0, main=d["SZ"])  # class without auto-dispatch
        add_component(s, "C0118", 2, 5.0, 0.0, main=d["LD"])  # two lamps equally near, different owners
        add_component(s, "C0118", 3, -5.0, 0.0, main=d["HW"])

    _seed(grids, seed)
    for cls in ("C0101", "C0118", "E0102"):  # E0102 auto, but no rule: method none
        case = report(client, orgdata, class_code=cls)
        filed = act(client, orgdata, case, "shiftlead", "file")
        assert (filed["status"], filed["department_id"]) == ("filed", None), cls
        assert [e["action"] for e in _events(client, orgdata, case["id"])] == ["report", "file"]


def test_two_apps_with_different_settings_do_not_affect_each_other(
    grids: sa.Engine, orgdata: Org, settings: Settings
) -> None:
    # One street lamp 45 m from the reported point: within a 60 m snap tolerance, beyond a 30 m one.
    from gridcity.root.app import create_app

    _seed(grids, lambda s: add_component(s, "C0118", 1, 45.0, 0.0, main=orgdata.depts["LD"]))
    narrow = create_app(settings.model_copy(update={"snap_tolerance_m": 30.0}))
    wide = create_app(settings.model_copy(update={"snap_tolerance_m": 60.0}))  # built after: must not leak back
    try:
        assert narrow.state.pipeline is not wide.state.pipeline
        with TestClient(narrow) as a, TestClient(wide) as b:
            case = report(a, orgdata, class_code="C0118")
            assert act(a, orgdata, case, "shiftlead", "file")["status"] == "filed"  # 45 m > 30 m: not sure
            case = report(b, orgdata, class_code="C0118", photos=upload(b, orgdata, "inspector", seed=7))
            filed = act(b, orgdata, case, "shiftlead", "file")
            assert (filed["status"], filed["department_id"]) == ("dispatched", orgdata.depts["LD"])
            case = report(a, orgdata, class_code="C0118", photos=upload(a, orgdata, "inspector", seed=8))
            assert act(a, orgdata, case, "shiftlead", "file")["status"] == "filed"  # still the narrow app's
    finally:
        narrow.state.engine.dispose()
        wide.state.engine.dispose()


def test_a_pipeline_runs_exactly_its_subscribers(grids: sa.Engine, orgdata: Org, settings: Settings) -> None:
    from casework.pipeline import CasePipeline
    from gridcity.database import make_session_factory

    _seed(grids, lambda s: add_component(s, "C0118", 1, 4.0, 0.0, main=orgdata.depts["LD"]))
    rules = load_case_rules(settings.city_dir)
    seen: list[str] = []
    bare = CasePipeline(rules, [lambda s, change, p: seen.append(change.event.action.value)])
    auto = CasePipeline(rules, [*bare.subscribers, service.AutoDispatcher(RoutingSettings())])
    inspector = Actor(orgdata.ids["inspector"], Role.INSPECTOR)
    shiftlead = Actor(orgdata.ids["shiftlead"], Role.SHIFT_LEADER)
    new = casework_service.NewCase(class_code="C0118", lon=at(0, 0)[0], lat=at(0, 0)[1])
    with make_session_factory(grids)() as s, s.begin():
        c1 = bare.create_case(s, actor=inspector, action=CaseAction.REPORT, new=new).case
        assert bare.apply_action(s, case_id=c1.id, actor=shiftlead, action=CaseAction.FILE).case.status == "filed"
        c2 = auto.create_case(s, actor=inspector, action=CaseAction.REPORT, new=new).case
        change = auto.apply_action(s, case_id=c2.id, actor=shiftlead, action=CaseAction.FILE)
        # The follow-on dispatch went through the same pipeline, so its subscribers saw it too.
        assert change.case.status == "dispatched" and change.event.action is CaseAction.FILE
    assert seen == ["report", "file", "report", "file", "dispatch"]


def test_auto_dispatch_by_rule_for_an_event_class(grids: sa.Engine, client: TestClient, orgdata: Org) -> None:
    r = client.post(
        "/api/v1/routing-rules",
        json=[rule("E01*", "community", COMMUNITY, orgdata.depts["HW"])],
        headers=orgdata.headers("admin"),
    )
    assert r.status_code == 201
    case = report(client, orgdata, class_code="E0102")
    filed = act(client, orgdata, case, "shiftlead", "file")
    assert (filed["status"], filed["department_id"]) == ("dispatched", orgdata.depts["HW"])
    explanation = _events(client, orgdata, case["id"])[-1]["data"]["explanation"]
    assert explanation.startswith(f"暴露垃圾（E0102）位于网格 {GRID_W}，规则 #")


# ---- duplicates and merge --------------------------------------------------------------------------------


def _report_at(
    client: TestClient, org: Org, cls: str, dx: float, dy: float, user: str = "inspector", seed: int = 1
) -> dict[str, Any]:
    lon, lat = at(dx, dy)
    body = {
        "action": "report",
        "class_code": cls,
        "lon": lon,
        "lat": lat,
        "description": "x",
        "attachment_ids": upload(client, org, user, seed=seed),
    }
    r = client.post("/api/v1/cases", json=body, headers=org.headers(user))
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_duplicates_are_open_cases_of_the_class_nearby_and_recent(
    grids: sa.Engine, client: TestClient, orgdata: Org, settings: Settings
) -> None:
    base = _report_at(client, orgdata, "C0101", 0, 0, seed=1)
    near = _report_at(client, orgdata, "C0101", 10, 0, user="inspector2", seed=2)
    _report_at(client, orgdata, "C0102", 5, 0, seed=3)  # other class
    _report_at(client, orgdata, "C0101", 60, 0, seed=4)  # beyond 50 m
    voided = _report_at(client, orgdata, "C0101", 3, 0, seed=5)
    act(client, orgdata, voided, "shiftlead", "void", note="误报")
    # a case reported 8 days ago (duplicate_days = 7)
    from gridcity.database import make_session_factory

    with make_session_factory(grids)() as s, s.begin():
        lon, lat = at(2, 0)
        casework_service.create_case(
            s,
            actor=Actor(user_id=orgdata.ids["inspector"], role=Role.INSPECTOR),
            action=CaseAction.REPORT,
            new=casework_service.NewCase(class_code="C0101", lon=lon, lat=lat),
            at=dt.datetime.now(dt.UTC) - dt.timedelta(days=8),
        )
    r = client.get(f"/api/v1/cases/{base['id']}/duplicates", headers=orgdata.headers("acceptor"))
    assert r.status_code == 200, r.text
    found = r.json()
    assert [x["case_id"] for x in found] == [near["id"]]
    assert found[0]["distance_m"] == pytest.approx(10.0, abs=0.2)
    assert 0 <= found[0]["age_hours"] < 1 and found[0]["same"] == "class" and found[0]["status"] == "reported"
    assert client.get(f"/api/v1/cases/{base['id']}/duplicates", headers=orgdata.headers("inspector")).status_code == 403


def test_duplicates_match_the_same_component_and_a_filed_case_finds_later_reports(
    session: Session, orgdata: Org
) -> None:
    comp = add_component(session, "C0118", 1, 3.0, 0.0, main=orgdata.depts["LD"])
    session.flush()
    inspector = Actor(user_id=orgdata.ids["inspector"], role=Role.INSPECTOR)
    rules = load_case_rules()

    def new(dx: float, component: str | None = None) -> Any:
        lon, lat = at(dx, 0)
        return casework_service.create_case(
            session,
            actor=inspector,
            action=CaseAction.REPORT,
            rules=rules,
            new=casework_service.NewCase(class_code="C0118", lon=lon, lat=lat, component_id=component),
        )

    first = new(0, comp)
    casework_service.apply_action(
        session,
        case_id=first.id,
        actor=Actor(orgdata.ids["shiftlead"], Role.SHIFT_LEADER),
        action=CaseAction.FILE,
        rules=rules,
    )
    later = new(8, comp)
    props = duplicates.find_duplicates(session, case=first, settings=CFG)
    assert [(p.case_id, p.same) for p in props] == [(later.id, "component")]
    assert [p.case_id for p in duplicates.find_duplicates(session, case=later, settings=CFG)] == [first.id]


def test_merging_a_report_attaches_it_and_its_reporter_sees_the_outcome(
    grids: sa.Engine, client: TestClient, orgdata: Org
) -> None:
    target = _report_at(client, orgdata, "C0101", 0, 0, seed=1)
    dup = _report_at(client, orgdata, "C0101", 6, 0, user="inspector2", seed=2)
    other = _report_at(client, orgdata, "C0101", 90, 0, seed=3)  # inspector's, never merged
    props = client.get(f"/api/v1/cases/{dup['id']}/duplicates", headers=orgdata.headers("shiftlead")).json()
    assert [p["case_id"] for p in props] == [target["id"]]
    # before the merge inspector2 may not see the target
    assert client.get(f"/api/v1/cases/{target['id']}", headers=orgdata.headers("inspector2")).status_code == 404
    merged = act(client, orgdata, dup, "shiftlead", "merge", target_case_id=target["id"])
    assert merged["status"] == "merged"
    # the target's timeline shows the attached report
    merge_events = [e for e in _events(client, orgdata, target["id"]) if e["action"] == "merge"]
    assert [e["data"]["merged_case_id"] for e in merge_events] == [dup["id"]]
    # evaluation counts one case: the merged one is marked as such
    with grids.connect() as c:
        row = c.execute(sa.text('SELECT status, merged_into_id FROM "case" WHERE id = :i'), {"i": dup["id"]}).one()
        open_count = c.execute(
            sa.text("SELECT count(*) FROM \"case\" WHERE status NOT IN ('merged', 'voided') AND merged_into_id IS NULL")
        ).scalar_one()
    assert tuple(row) == ("merged", target["id"]) and open_count == 2
    # the merged report no longer shows up as a duplicate of anything
    props = client.get(f"/api/v1/cases/{target['id']}/duplicates", headers=orgdata.headers("shiftlead")).json()
    assert props == []
    # the reporter of the merged report follows the target to its outcome
    closed = _drive_to_closed(client, orgdata, target)
    r = client.get(f"/api/v1/cases/{target['id']}", headers=orgdata.headers("inspector2"))
    assert r.status_code == 200 and r.json()["status"] == closed["status"] == "closed"
    listed = client.get("/api/v1/cases", headers=orgdata.headers("inspector2")).json()
    assert sorted(c["id"] for c in listed["items"]) == sorted([dup["id"], target["id"]])
    # but not the inspector's other cases
    assert client.get(f"/api/v1/cases/{other['id']}", headers=orgdata.headers("inspector2")).status_code == 404


def _drive_to_closed(client: TestClient, org: Org, case: dict[str, Any]) -> dict[str, Any]:
    case = act(client, org, case, "shiftlead", "file")
    case = act(client, org, case, "dispatcher", "dispatch", department_id=org.depts["SZ"])
    case = act(client, org, case, "water", "accept")
    case = act(
        client, org, case, "water", "feedback", note="已修复", attachment_ids=upload(client, org, "water", seed=500)
    )
    case = act(client, org, case, "acceptor", "send_check", inspector_id=org.ids["inspector"])
    case = act(
        client,
        org,
        case,
        "inspector",
        "check_pass",
        lon=case["lon"],
        lat=case["lat"],
        attachment_ids=upload(client, org, "inspector", seed=501),
    )
    return act(client, org, case, "shiftlead", "close")
