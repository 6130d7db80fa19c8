"""The deadline monitor: each yellow and red warning exactly once per case, stage run and level."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from casework import service
from casework.alerts import CaseAlert
from casework.lifecycle import Actor, CaseAction
from casework.models import Case
from casework.monitor import monitor_once
from casework.rules import load_rules
from gridcity.database import make_engine, make_session_factory, transaction
from gridcity.roles import Role
from tests.casework.helpers import LAT, LON
from tests.conftest import Org

TZ = ZoneInfo("Asia/Shanghai")
# A Tuesday in March 2026, 09:00 local: the 立案 stage of C0101 has 1 working hour (yellow at 48 min).
T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=TZ).astimezone(dt.UTC)


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def new_report(factory: sessionmaker[Session], org: Org, at: dt.datetime = T0) -> int:
    with transaction(factory) as s:
        case = service.create_case(
            s,
            actor=Actor(org.ids["inspector"], Role.INSPECTOR),
            action=CaseAction.REPORT,
            new=service.NewCase(class_code="C0101", lon=LON, lat=LAT),
            at=at,
        )
        return case.id


def run(factory: sessionmaker[Session], at: dt.datetime) -> list[tuple[int, str]]:
    with transaction(factory) as s:
        return [(a.case_id, a.level) for a in monitor_once(s, now=at)]


def stored(factory: sessionmaker[Session]) -> list[tuple[int, str, str]]:
    with factory() as s:
        return [(a.case_id, a.stage, a.level) for a in s.scalars(sa.select(CaseAlert).order_by(CaseAlert.id))]


def test_yellow_then_red_each_once(db: sa.Engine, orgdata: Org) -> None:
    f = make_session_factory(db)
    cid = new_report(f, orgdata)
    assert run(f, minutes(30)) == []
    assert run(f, minutes(47)) == []
    assert run(f, minutes(49)) == [(cid, "yellow")]
    assert run(f, minutes(49)) == []
    assert run(f, minutes(55)) == []
    assert run(f, minutes(61)) == [(cid, "red")]
    assert run(f, minutes(61)) == []
    assert run(f, minutes(60 * 24 * 30)) == []
    assert stored(f) == [(cid, "file", "yellow"), (cid, "file", "red")]


def test_working_time_counts_not_wall_time(db: sa.Engine, orgdata: Org) -> None:
    # Reported at 11:50: 10 working minutes before lunch, then the clock stops until 14:00.
    f = make_session_factory(db)
    start = dt.datetime(2026, 3, 10, 11, 50, tzinfo=TZ).astimezone(dt.UTC)
    cid = new_report(f, orgdata, at=start)
    assert run(f, dt.datetime(2026, 3, 10, 13, 55, tzinfo=TZ)) == []  # 10 working minutes used
    assert run(f, dt.datetime(2026, 3, 10, 14, 39, tzinfo=TZ)) == [(cid, "yellow")]  # 49 used
    assert run(f, dt.datetime(2026, 3, 10, 14, 51, tzinfo=TZ)) == [(cid, "red")]  # 61 used


def test_missed_warnings_are_raised_after_a_restart(db: sa.Engine, orgdata: Org, database_url: str) -> None:
    f = make_session_factory(db)
    cid = new_report(f, orgdata)
    # The monitor was down through the whole stage: on its first run it raises both, yellow first.
    assert run(f, minutes(300)) == [(cid, "yellow"), (cid, "red")]
    # A "restarted" process (its own engine and sessions) finds nothing left to raise.
    engine2 = make_engine(database_url)
    try:
        assert run(make_session_factory(engine2), minutes(301)) == []
    finally:
        engine2.dispose()
    assert [lv for _, _, lv in stored(f)] == ["yellow", "red"]


def test_concurrent_monitors_raise_each_warning_once(db: sa.Engine, orgdata: Org) -> None:
    f = make_session_factory(db)
    ids = [new_report(f, orgdata) for _ in range(5)]
    results: list[list[tuple[int, str]]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(run(f, minutes(120)))
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    raised = sorted(x for r in results for x in r)
    assert raised == sorted((cid, lv) for cid in ids for lv in ("yellow", "red"))
    assert len(stored(f)) == 10


def test_finished_and_suspended_stages_raise_nothing(db: sa.Engine, orgdata: Org) -> None:
    f = make_session_factory(db)
    cid = new_report(f, orgdata)
    with transaction(f) as s:
        service.apply_action(
            s,
            case_id=cid,
            actor=Actor(orgdata.ids["shiftlead"], Role.SHIFT_LEADER),
            action=CaseAction.FILE,
            at=minutes(10),
        )
    # The 立案 stage ended in time; the 派遣 stage (1 working hour) runs from minute 10.
    assert run(f, minutes(55)) == []
    assert run(f, minutes(62)) == [(cid, "yellow")]
    with transaction(f) as s:
        service.apply_action(
            s,
            case_id=cid,
            actor=Actor(orgdata.ids["dispatcher"], Role.DISPATCHER),
            action=CaseAction.DISPATCH,
            inp=service.ActionInput(department_id=orgdata.depts["SZ"]),
            at=minutes(63),
        )
    # Handling (1 working day for C0101) started at minute 63; no alert for the ended dispatch stage.
    assert run(f, minutes(80)) == []
    dept = Actor(orgdata.ids["water"], Role.DEPARTMENT, department_id=orgdata.depts["SZ"])
    with transaction(f) as s:
        service.apply_action(s, case_id=cid, actor=dept, action=CaseAction.ACCEPT, at=minutes(81))
        service.apply_action(
            s,
            case_id=cid,
            actor=dept,
            action=CaseAction.REQUEST_SUSPENSION,
            inp=service.ActionInput(note="待审批"),
            at=minutes(82),
        )
        service.apply_action(
            s,
            case_id=cid,
            actor=Actor(orgdata.ids["dispatcher"], Role.DISPATCHER),
            action=CaseAction.APPROVE_SUSPENSION,
            at=minutes(83),
        )
    # Suspended (挂账): the clock is paused, so no warning however long it waits.
    assert run(f, minutes(60 * 24 * 20)) == []
    with f() as s:
        c = s.get(Case, cid)
        assert c is not None and c.status == "suspended"
    assert [(st, lv) for _, st, lv in stored(f)] == [("dispatch", "yellow")]


def test_alerts_agree_with_the_case_clock(db: sa.Engine, orgdata: Org) -> None:
    f = make_session_factory(db)
    cid = new_report(f, orgdata)
    rules = load_rules()
    for m in range(0, 75, 3):
        at = minutes(m)
        run(f, at)
        with f() as s:
            case = s.get(Case, cid)
            assert case is not None
            light = service.case_clocks(s, case, rules=rules, now=at)[-1].clock.light  # type: ignore[union-attr]
        expected = {"green": [], "yellow": ["yellow"], "red": ["yellow", "red"]}[light]
        assert [lv for _, _, lv in stored(f)] == expected, (m, light)
