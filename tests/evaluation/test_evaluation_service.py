"""Evaluation through the real pipeline: cases driven with explicit times, counted by SQL, hand-checked."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluation import facts, service
from evaluation.models import StageFact
from gridcity import spatial
from gridcity.errors import InvalidInput
from tests.conftest import Org
from tests.evaluation.conftest import GRID, Driver, local

# All on Mon 2026-10-12 .. Wed 2026-10-14 (working days; 08:30-12:00, 14:00-18:00 Asia/Shanghai).
# C0101 normal: file 1 wh, dispatch 1 wh, handle 1 work_day (7.5 wh), check 2 wh, verify 2 wh;
# step limits: send_verify / send_check / close 1 wh. Overall 立案→结案 = 1 + 7.5 + 2 + 1 + 1 = 12.5 wh.


def scenario(d: Driver) -> dict[str, int]:
    """Four cases whose counts are worked out by hand in the assertions below."""
    d.supervise("inspector", GRID)
    # A: the main path, everything on time.
    a = d.new(local(12, 9))
    d.do(a, "shiftlead", "file", local(12, 9, 30))
    d.do(a, "dispatcher", "dispatch", local(12, 10), department_id="SZ")
    d.do(a, "water", "accept", local(12, 10, 30))
    d.do(a, "water", "feedback", local(13, 9))  # handle deadline Tue 10:00
    d.do(a, "acceptor", "send_check", local(13, 9, 10), inspector_id="inspector")
    d.do(a, "inspector", "check_pass", local(13, 9, 40))
    d.do(a, "shiftlead", "close", local(13, 10))
    # B: mis-dispatched to LD, sent back, re-dispatched to SZ, handled late, reworked once, closed late.
    b = d.new(local(12, 9))
    d.do(b, "shiftlead", "file", local(12, 9, 10))
    d.do(b, "dispatcher", "dispatch", local(12, 9, 20), department_id="LD")
    d.do(b, "lighting", "request_sendback", local(12, 10))
    d.do(b, "dispatcher", "approve_sendback", local(12, 10, 30))
    d.do(b, "dispatcher", "dispatch", local(12, 11), department_id="SZ")
    d.do(b, "water", "accept", local(12, 11, 10))
    d.do(b, "water", "feedback", local(14, 9))  # deadline Tue 11:00: 5.5 working hours late
    d.do(b, "acceptor", "send_check", local(14, 9, 10), inspector_id="inspector")
    d.do(b, "inspector", "check_fail", local(14, 10))
    d.do(b, "water", "accept", local(14, 10, 10))
    d.do(b, "water", "feedback", local(14, 11))
    d.do(b, "acceptor", "send_check", local(14, 11, 10), inspector_id="inspector")
    d.do(b, "inspector", "check_pass", local(14, 11, 30))
    d.do(b, "shiftlead", "close", local(14, 11, 40))  # overall deadline Tue 16:10
    # C: a public report, verified late by inspector2, filed, never dispatched (overall deadline Wed 14:40).
    c = d.new(local(12, 14), user="acceptor", action="public_report")
    d.do(c, "acceptor", "send_verify", local(12, 14, 30), inspector_id="inspector2")
    d.do(c, "inspector2", "verify_true", local(12, 17))  # verify deadline 16:30
    d.do(c, "shiftlead", "file", local(12, 17, 10))
    # D: an invalid report, voided.
    e = d.new(local(12, 15))
    d.do(e, "shiftlead", "void", local(12, 15, 30))
    return {"A": a, "B": b, "C": c, "D": e}


def counts(session: Session, subject_type: str, period: str = "2026-10") -> dict[str, dict[str, int]]:
    return service.count_primitives(session, period=service.parse_period(period), subject_type=subject_type)


def test_department_counts_follow_the_effective_dispatch(session: Session, driver: Driver, orgdata: Org) -> None:
    scenario(driver)
    got = counts(session, "department")
    sz = got[str(orgdata.depts["SZ"])]
    assert sz == {
        "filed": 2,
        "voided": 0,
        "should_close": 2,
        "closed": 2,
        "closed_on_time": 1,
        "rework": 1,
        "should_handle": 2,
        "handled": 2,
        "handled_on_time": 1,
        "overdue_handled": 1,
        "overdue_unhandled": 0,
        "extended": 0,
    }
    # The mis-dispatch is not LD's fault: LD has nothing at all.
    assert str(orgdata.depts["LD"]) not in got


def test_department_case_families_count_the_same_in_one_statement(
    session: Session, driver: Driver, orgdata: Org
) -> None:
    """PostgreSQL counts 立案 and 结案 in one statement (one join to the effective dispatch), SQLite in two: both
    ways run here on either database and must agree with each other and with the hand-checked counts."""
    scenario(driver)
    p = service.parse_period("2026-10")
    one = service.count_primitives(session, period=p, subject_type="department", merge=True)
    two = service.count_primitives(session, period=p, subject_type="department", merge=False)
    assert one == two
    sz = one[str(orgdata.depts["SZ"])]
    assert {k: sz[k] for k in ("filed", "voided", "should_close", "closed", "closed_on_time", "rework")} == {
        "filed": 2,
        "voided": 0,
        "should_close": 2,
        "closed": 2,
        "closed_on_time": 1,
        "rework": 1,
    }
    assert str(orgdata.depts["LD"]) not in one


def test_dispatcher_pays_for_the_mis_dispatch(session: Session, driver: Driver, orgdata: Org) -> None:
    scenario(driver)
    got = counts(session, "dispatcher")[str(orgdata.ids["dispatcher"])]
    assert got == {"dispatched": 2, "should_dispatch": 3, "dispatched_on_time": 3, "dispatched_accurately": 2}


def test_positions_and_regions_hand_checked(session: Session, driver: Driver, orgdata: Org) -> None:
    scenario(driver)
    ids = orgdata.ids
    insp = counts(session, "inspector")
    assert insp[str(ids["inspector"])] == {
        "filed": 3,
        "voided": 0,
        "missed": 1,
        "reported": 3,
        "valid_reported": 2,
        "should_check": 3,
        "checked_on_time": 3,
    }
    assert insp[str(ids["inspector2"])] == {"should_verify": 1, "verified_on_time": 0}
    assert counts(session, "acceptor")[str(ids["acceptor"])] == {
        "accepted": 1,
        "verify_dispatch_due": 1,
        "verify_dispatch_on_time": 1,
        "check_dispatch_due": 3,
        "check_dispatch_on_time": 3,
    }
    assert counts(session, "shift_leader")[str(ids["shiftlead"])] == {
        "filed": 3,
        "voided": 0,
        "filed_on_time": 3,
        "close_task_due": 2,
        "close_task_on_time": 2,
    }
    for level, code in (("grid", GRID), ("community", GRID[:12]), ("street", GRID[:9]), ("district", GRID[:6])):
        assert counts(session, level)[code] == {
            "filed": 3,
            "voided": 0,
            "public_verified": 1,
            "should_close": 3,
            "closed": 2,
            "closed_on_time": 1,
            "rework": 1,
        }, level


def test_as_of_the_period_end(session: Session, driver: Driver, orgdata: Org) -> None:
    """Monday alone: nothing determined yet for handling; Tuesday: B overdue and not yet handled as of its end."""
    scenario(driver)
    sz = str(orgdata.depts["SZ"])
    assert "should_handle" not in counts(session, "department", "2026-10-12..2026-10-12").get(sz, {})
    tue = counts(session, "department", "2026-10-13..2026-10-13")[sz]
    assert (tue["should_handle"], tue["handled"], tue["handled_on_time"], tue["overdue_unhandled"]) == (2, 1, 1, 1)


def test_evidence_names_the_cases_and_the_overrun(session: Session, driver: Driver, orgdata: Org) -> None:
    ids = scenario(driver)
    items = service.evidence(
        session,
        period="2026-10",
        subject_type="department",
        subject_id=str(orgdata.depts["SZ"]),
        primitive="overdue_handled",
    )
    assert [(i.case_id, i.number) for i in items] == [(ids["B"], driver.number(ids["B"]))]
    # B's handling task runs from the SZ dispatch (Mon 11:00) to the feedback the check accepted (Wed 11:00):
    # the first feedback (Wed 09:00) failed its check, so the rework continues the same task. Deadline Tue
    # 11:00; overdue by Tue 11:00-12:00 (1 h) + 14:00-18:00 (4 h) + Wed 08:30-11:00 (2.5 h) = 7.5 working hours.
    assert items[0].overdue_seconds == pytest.approx(7.5 * 3600)
    assert items[0].overdue_measure == "working_seconds"
    acc = service.evidence(
        session,
        period="2026-10",
        subject_type="dispatcher",
        subject_id=str(orgdata.ids["dispatcher"]),
        primitive="dispatched_accurately",
    )
    assert sorted(i.case_id for i in acc) == sorted([ids["A"], ids["B"]])
    with pytest.raises(InvalidInput) as exc:
        service.evidence(session, period="2026-10", subject_type="department", subject_id="1", primitive="nope")
    assert exc.value.code == "evaluation.unknown_primitive"


def test_ranking_scores_flags_and_ties(session: Session, driver: Driver, orgdata: Org) -> None:
    scenario(driver)
    r = service.compute(session, period="2026-10", subject_type="department")
    by_id = {x.subject_id: x for x in r.rows}
    sz, ld, hw = (by_id[str(orgdata.depts[k])] for k in ("SZ", "LD", "HW"))
    # SZ: 立案数分值 100×10% + 结案率 100×30% + 按期处置率 50×30% + (1 − 返工率 50)×30% = 70
    assert sz.score.composite == pytest.approx(70) and sz.score.grade == "C"
    assert sz.rank == 1 and "insufficient_data" in sz.flags  # 2 cases < min_cases 10
    # LD and HW have nothing: they tie, after SZ.
    assert ld.rank == hw.rank == 2 and ld.tied and hw.tied
    insp = {x.subject_id: x for x in service.compute(session, period="2026-10", subject_type="inspector").rows}
    # The inspector has a supervision area but walked none of it; inspector2 has no area to judge.
    mine = insp[str(orgdata.ids["inspector"])]
    assert mine.counts["patrol_coverage"] == 0 and "no_patrol_data" not in mine.flags
    assert "no_patrol_data" in insp[str(orgdata.ids["inspector2"])].flags


def test_rebuild_from_the_log_reproduces_the_hooked_facts(session: Session, driver: Driver) -> None:
    scenario(driver)
    cols = [c for c in StageFact.__table__.c if c.name != "id"]
    before = sorted(tuple(r) for r in session.execute(sa.select(*cols)))
    facts.rebuild_all(session, rules=driver.rules)
    after = sorted(tuple(r) for r in session.execute(sa.select(*cols)))
    # open runs carry overdue-so-far as of computation; all runs here are closed except C's dispatch run
    strip = [i for i, c in enumerate(cols) if c.name == "overdue_seconds"]
    assert [tuple(v for i, v in enumerate(r) if i not in strip) for r in before] == [
        tuple(v for i, v in enumerate(r) if i not in strip) for r in after
    ]
    assert len(after) > 20


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("2026-13", "evaluation.bad_period"),
        ("Oct 2026", "evaluation.bad_period"),
        ("", "evaluation.bad_period"),
        ("2026-W54", "evaluation.bad_period"),
        ("2026-02-30..2026-03-01", "evaluation.bad_period"),
        ("2026-10-15..2026-10-01", "evaluation.end_before_start"),
        ("2026-01-01..2027-01-02", "evaluation.range_too_long"),
    ],
)
def test_bad_periods_are_rejected_with_stable_codes(text: str, code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        service.parse_period(text)
    assert exc.value.code == code


def test_period_forms() -> None:
    cst = dt.timezone(dt.timedelta(hours=8))
    m = service.parse_period("2026-10")
    assert (m.start, m.end) == (dt.datetime(2026, 10, 1, tzinfo=cst), dt.datetime(2026, 11, 1, tzinfo=cst))
    assert service.parse_period("2026-Q4").end == dt.datetime(2027, 1, 1, tzinfo=cst)
    assert service.parse_period("2026").last_day == dt.date(2026, 12, 31)
    w = service.parse_period("2026-W43")
    assert (w.first_day, w.last_day) == (dt.date(2026, 10, 19), dt.date(2026, 10, 25))
    r = service.parse_period("2026-10-01..2026-10-15")
    assert r.end == dt.datetime(2026, 10, 16, tzinfo=cst) and r.label == "2026-10-01..2026-10-15"
    assert service.parse_period("2024-01-01..2024-12-31").kind == "range"  # 366 days (leap year) is allowed


def test_inspector_patrol_coverage_counts_for_them(session: Session, driver: Driver, orgdata: Org) -> None:
    from components.models import PatrolPoint, SupervisionArea, SupervisionGrid

    scenario(driver)  # the inspector supervises GRID
    area = session.scalars(sa.select(SupervisionArea).where(SupervisionArea.code == "SA-inspector")).one()
    session.add(SupervisionGrid(supervision_area_id=area.id, grid_code="610302001001002"))
    # One of the two grids visited in October; a breadcrumb in November does not count.
    session.add_all(
        [
            PatrolPoint(
                inspector_id=orgdata.ids["inspector"], at=local(12, 9), lon=107.1448, lat=34.3693, grid_code=GRID
            ),
            PatrolPoint(
                inspector_id=orgdata.ids["inspector"],
                at=local(12, 9) + dt.timedelta(days=30),
                lon=107.1448,
                lat=34.3693,
                grid_code="610302001001002",
            ),
        ]
    )
    session.flush()
    rows = {x.subject_id: x for x in service.compute(session, period="2026-10", subject_type="inspector").rows}
    mine = rows[str(orgdata.ids["inspector"])]
    assert mine.counts["patrol_coverage"] == 50.0 and "no_patrol_data" not in mine.flags
    assert "no_patrol_data" in rows[str(orgdata.ids["inspector2"])].flags


def test_a_filing_voided_before_dispatch_counts_as_voided_and_nowhere_else(
    session: Session, driver: Driver, orgdata: Org
) -> None:
    d, ids = driver, orgdata.ids
    d.supervise("inspector", GRID)
    # X: filed, then voided by the shift leader before dispatch.
    x = d.new(local(12, 9))
    d.do(x, "shiftlead", "file", local(12, 9, 30))
    d.do(x, "shiftlead", "void", local(12, 10))
    # Y: filed, mis-dispatched to LD, sent back, then voided (the case is back at 立案/待派遣).
    y = d.new(local(12, 9))
    d.do(y, "shiftlead", "file", local(12, 9, 10))
    d.do(y, "dispatcher", "dispatch", local(12, 9, 20), department_id="LD")
    d.do(y, "lighting", "request_sendback", local(12, 10))
    d.do(y, "dispatcher", "approve_sendback", local(12, 10, 30))
    d.do(y, "shiftlead", "void", local(12, 11))
    # Z: filed and left waiting.
    z = d.new(local(12, 9))
    d.do(z, "shiftlead", "file", local(12, 9, 20))
    lead = counts(session, "shift_leader")[str(ids["shiftlead"])]
    assert lead == {"filed": 1, "voided": 2, "filed_on_time": 3}
    assert counts(session, "grid")[GRID] == {
        "filed": 1,
        "voided": 2,
        "public_verified": 0,
        "should_close": 1,
        "closed": 0,
        "closed_on_time": 0,
        "rework": 0,
    }
    # 有效上报: a report whose filing was voided is not valid.
    insp = counts(session, "inspector")[str(ids["inspector"])]
    assert (insp["reported"], insp["valid_reported"], insp["filed"], insp["voided"]) == (3, 1, 1, 2)
    # The department never held a voided case; the dispatcher still pays for the mis-dispatch.
    assert counts(session, "department") == {}
    assert counts(session, "dispatcher")[str(ids["dispatcher"])] == {
        "dispatched": 1,
        "should_dispatch": 1,
        "dispatched_on_time": 1,
        "dispatched_accurately": 0,
    }
    # 准确立案率 = (立案数 − 作废数) / 立案数 with the standard's 立案数 = filed + voided = 1/3.
    ranking = service.compute(session, period="2026-10", subject_type="shift_leader", source="raw")
    row = next(r for r in ranking.rows if r.subject_id == str(ids["shiftlead"]))
    rate = next(r for r in row.score.rates if r.numerator == 1 and r.denominator == 3)
    assert round(float(rate.value), 2) == 33.33
    # The rollup serves the same numbers (the period is before every event's end: Oct ends after them).
    assert (
        service.compute(session, period="2026-10", subject_type="shift_leader").rows[0].counts == ranking.rows[0].counts
    )


def test_the_rollup_is_refreshed_when_a_case_changes(session: Session, driver: Driver, orgdata: Org) -> None:
    d = driver
    a = d.new(local(12, 9))
    d.do(a, "shiftlead", "file", local(12, 9, 30))
    first = service.compute(session, period="2026", subject_type="grid")
    assert first.source == "rollup" and next(r for r in first.rows if r.subject_id == GRID).counts["filed"] == 1
    d.do(a, "shiftlead", "void", local(13, 9))  # marks the days of the case stale
    second = service.compute(session, period="2026", subject_type="grid")
    counts_ = next(r for r in second.rows if r.subject_id == GRID).counts
    assert second.source == "rollup" and (counts_["filed"], counts_["voided"]) == (0, 1)
    # A period that ended before the latest event is not served from the rollup (it is as of now).
    assert service.compute(session, period="2026-10-12..2026-10-12", subject_type="grid").source == "raw"
    # Another zone's days: the rollup is rebuilt on that zone's local days, and still equals the raw counts.
    utc = service.compute(session, period="2026", subject_type="grid", tz="UTC")
    assert utc.source == "rollup"
    assert [r.counts for r in utc.rows] == [
        r.counts for r in service.compute(session, period="2026", subject_type="grid", tz="UTC", source="raw").rows
    ]
    with pytest.raises(InvalidInput) as e:
        service.compute(session, period="2026", subject_type="grid", source="cache")
    assert e.value.code == "evaluation.unknown_source"


def test_a_one_day_refresh_joins_by_index_lookups(session: Session, driver: Driver, orgdata: Org, backend: str) -> None:
    """One day's rollup joins that day's facts to the effective-dispatch runs by index look-ups: on PostgreSQL
    merge and hash joins are off for the day's statement (the planner's estimates otherwise walked the whole
    index of the runs, ~12 ms a family at 100,000 cases a year) and back on after it. On PostgreSQL the day's
    one statement is a prepared statement run with its generic plan (planned once per connection, not ~5 ms
    per refresh) and sent without psycopg converting its ~40,000 characters again; the connection's own plan
    mode is back after it. The day's rows are the same as the raw counts."""
    scenario(driver)
    conn = session.connection()

    def settings() -> tuple[str, ...]:
        raw = conn.connection.driver_connection
        assert raw is not None
        row = raw.execute(
            "SELECT current_setting('enable_mergejoin'), current_setting('enable_hashjoin'), "
            "current_setting('plan_cache_mode')"
        ).fetchone()
        assert row is not None
        return tuple(str(v) for v in row)

    def prepared() -> list[tuple[int, int]]:
        return [
            (int(r[0]), int(r[1]))
            for r in conn.exec_driver_sql(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement ILIKE 'INSERT INTO eval_rollup%%' AND statement LIKE '%%UNION ALL%%'"  # one day
            )
        ]

    seen: list[str] = []

    def spy(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVAL_ROLLUP"):
            seen.append(statement[:24])

    if backend == "postgis":
        before = prepared()
    sa.event.listen(conn, "before_cursor_execute", spy)
    try:
        service.refresh_rollup_days(session, [dt.date(2026, 10, 12)])
        service.refresh_rollup_days(session, [dt.date(2026, 10, 13)])
    finally:
        sa.event.remove(conn, "before_cursor_execute", spy)
    if backend != "postgis":
        assert len(seen) == 2, seen  # one statement for each whole day
    else:
        assert seen == []  # not through SQLAlchemy's cursor: prepared, already converted
        after = prepared()
        assert len(after) == 1, after  # one prepared statement on this connection, reused by the second day
        generic, custom = after[0]
        assert custom == 0 and generic == (before[0][0] if before else 0) + 2, (before, after)
        assert settings() == ("on", "on", "force_custom_plan")  # restored for the rest of the transaction
        join = "SELECT 1 FROM stage_fact a JOIN case_event b ON b.case_id = a.case_id"
        with sa.orm.Session(bind=conn) as probe:  # the same mechanism, seen in a plan
            with spatial.joins_by_index_lookups(probe, generic_plan=True):
                inside = "\n".join(r[0] for r in probe.execute(sa.text("EXPLAIN " + join)))
                assert settings() == ("off", "off", "force_generic_plan")
        # (what the planner picks outside the block depends on the tables' statistics: on a fresh cluster with
        # these few rows it also chose a nested loop once, so only the block's side is asserted)
        assert "Nested Loop" in inside and "Hash Join" not in inside and "Merge Join" not in inside, inside
    day = service.parse_period("2026-10-12..2026-10-12")
    for st in ("department", "grid", "inspector"):
        assert service.count_primitives_rollup(session, period=day, subject_type=st) == service.count_primitives(
            session, period=day, subject_type=st
        ), st
