"""The evaluation rules of issue 14, each by a hand-worked example (derivation in the comments), plus a
property test of the on-time rule on every timed step.

Calendar (casework/data/calendar.toml): working periods 08:30–12:00 and 14:00–18:00 (7.5 working hours a
day), weekends off, 2026-10-01..07 National Day holiday with make-up working days Sun 2026-09-20 and Sat
2026-10-10. Class C0101 (上水井盖), normal urgency: 立案 1 work_hour, 派遣 1 work_hour, 处置 1 work_day (= 7.5
working hours), 核查 2 work_hours, 核实 2 work_hours; steps 发核查 / 结案 1 work_hour each.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from fractions import Fraction
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from casework import deadlines
from casework.lifecycle import CaseAction, CaseStatus
from casework.rules import load_rules
from components import service as components_service
from evaluation import export, facts, scoring, service
from evaluation.models import StageFact
from tests.conftest import Org
from tests.evaluation.conftest import GRID, Driver

CST = ZoneInfo("Asia/Shanghai")
A, S = CaseAction, CaseStatus


def at(month: int, day: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hh, mm, tzinfo=CST).astimezone(dt.UTC)


def dept_counts(session: Session, orgdata: Org, period: str = "2026-10") -> dict[str, int]:
    got = service.count_primitives(session, period=service.parse_period(period), subject_type="department")
    return got.get(str(orgdata.depts["SZ"]), {})


def handled_case(d: Driver, dispatch: dt.datetime, feedback: dt.datetime, *, check: dt.datetime) -> int:
    cid = d.new(dispatch - dt.timedelta(minutes=20))
    d.do(cid, "shiftlead", "file", dispatch - dt.timedelta(minutes=10))
    d.do(cid, "dispatcher", "dispatch", dispatch, department_id="SZ")
    d.do(cid, "water", "accept", dispatch)
    d.do(cid, "water", "feedback", feedback)
    d.do(cid, "acceptor", "send_check", check - dt.timedelta(minutes=5), inspector_id="inspector")
    d.do(cid, "inspector", "check_pass", check)
    return cid


def task(session: Session, cid: int) -> StageFact:
    return session.scalars(sa.select(StageFact).where(StageFact.case_id == cid, StageFact.stage == "task")).one()


# --------------------------------------------------------------------------------------------------------
# Rule 2: on time = elapsed working time <= limit


def test_a_deadline_at_noon_and_a_feedback_in_the_lunch_break_is_on_time(
    session: Session, driver: Driver, orgdata: Org
) -> None:
    # Dispatch Mon 2026-10-12 14:00; 7.5 working hours = Mon 14:00–18:00 (4 h) + Tue 08:30–12:00 (3.5 h):
    # deadline Tue 12:00. A feedback at Tue 13:30 used 7.5 working hours (none passes in the break): on time,
    # although 13:30 is later than 12:00 on the wall clock. One at Tue 14:01 used 7.5 h + 1 min: late by 60 s.
    ok = handled_case(driver, at(10, 12, 14), at(10, 13, 13, 30), check=at(10, 13, 14, 30))
    late = handled_case(driver, at(10, 12, 14), at(10, 13, 14, 1), check=at(10, 13, 14, 40))
    assert task(session, ok).deadline_at == at(10, 13, 12)
    assert task(session, ok).on_time and task(session, ok).overdue_seconds == 0
    assert not task(session, late).on_time and task(session, late).overdue_seconds == 60
    handle = session.scalars(sa.select(StageFact).where(StageFact.case_id == ok, StageFact.stage == "handle")).one()
    assert handle.on_time  # the lifecycle's 处置 run is judged the same way
    got = dept_counts(session, orgdata)
    assert (got["should_handle"], got["handled"], got["handled_on_time"], got["overdue_handled"]) == (2, 2, 1, 1)


def test_a_deadline_on_the_evening_before_a_holiday_stretches_over_the_holiday(
    session: Session, driver: Driver, orgdata: Org
) -> None:
    # Dispatch Wed 2026-09-30 08:30: 3.5 h + 4 h = 7.5 h → deadline Wed 18:00, the eve of the National Day
    # holiday (Oct 1–7). A feedback on Mon Oct 5 (holiday) and one at Thu Oct 8 08:30 (first working instant)
    # used exactly 7.5 working hours: both on time. Thu Oct 8 08:31 is one working minute late.
    a = handled_case(driver, at(9, 30, 8, 30), at(10, 5, 10), check=at(10, 8, 9))
    b = handled_case(driver, at(9, 30, 8, 30), at(10, 8, 8, 30), check=at(10, 8, 9, 30))
    c = handled_case(driver, at(9, 30, 8, 30), at(10, 8, 8, 31), check=at(10, 8, 10))
    assert [task(session, x).on_time for x in (a, b, c)] == [True, True, False]
    assert task(session, c).overdue_seconds == 60
    # The late one is determined at the first instant it is late (Thu 08:30), in October.
    assert task(session, c).determined_at == at(10, 8, 8, 30)


def test_a_make_up_working_saturday_counts(session: Session, driver: Driver) -> None:
    # Dispatch Fri 2026-10-09 14:00: Fri 4 h + Sat Oct 10 (a make-up working day) 08:30–12:00 3.5 h → deadline
    # Sat 12:00. Sat 13:00 (lunch) is on time; Sun Oct 11 10:00 is late by Sat's afternoon, 4 working hours.
    ok = handled_case(driver, at(10, 9, 14), at(10, 10, 13), check=at(10, 12, 9))
    late = handled_case(driver, at(10, 9, 14), at(10, 11, 10), check=at(10, 12, 9, 30))
    assert task(session, ok).on_time and not task(session, late).on_time
    assert task(session, late).overdue_seconds == 4 * 3600


# --------------------------------------------------------------------------------------------------------
# Rule 1: rework is judged; a superficial quick feedback earns nothing


def test_a_quick_feedback_that_fails_the_check_is_not_handled_on_time(
    session: Session, driver: Driver, orgdata: Org
) -> None:
    # Dispatch Mon 2026-10-12 08:30 → deadline Mon 18:00. A superficial feedback at 09:00 fails its check at
    # 10:00 (返工); the real fix is fed back Wed Oct 14 09:30 and passes. The task runs from the dispatch to the
    # accepted feedback: 7.5 (Mon) + 7.5 (Tue) + 1 (Wed) = 16 working hours, 8.5 h over the limit: handled
    # late (超期处置), never "on time" — exactly what an honest late fix at Wed 09:30 would get.
    d = driver
    cid = d.new(at(10, 12, 8, 10))
    d.do(cid, "shiftlead", "file", at(10, 12, 8, 20))
    d.do(cid, "dispatcher", "dispatch", at(10, 12, 8, 30), department_id="SZ")
    d.do(cid, "water", "accept", at(10, 12, 8, 30))
    d.do(cid, "water", "feedback", at(10, 12, 9))
    d.do(cid, "acceptor", "send_check", at(10, 12, 9, 10), inspector_id="inspector")
    d.do(cid, "inspector", "check_fail", at(10, 12, 10))
    d.do(cid, "water", "accept", at(10, 12, 10, 10))
    d.do(cid, "water", "feedback", at(10, 14, 9, 30))
    d.do(cid, "acceptor", "send_check", at(10, 14, 9, 40), inspector_id="inspector")
    d.do(cid, "inspector", "check_pass", at(10, 14, 10))
    d.do(cid, "shiftlead", "close", at(10, 14, 10, 30))
    t = task(session, cid)
    assert (t.on_time, t.overdue_seconds, t.ended_at, t.completed_at) == (
        False,
        8.5 * 3600,
        at(10, 14, 9, 30),
        at(10, 14, 10),
    )
    got = dept_counts(session, orgdata)
    assert (got["should_handle"], got["handled"], got["handled_on_time"], got["overdue_handled"], got["rework"]) == (
        1,
        1,
        0,
        1,
        1,
    )
    # The lifecycle's first 处置 run (to the superficial feedback) was "on time" as a run: that is why the
    # department is not judged on runs.
    first = session.scalars(
        sa.select(StageFact).where(StageFact.case_id == cid, StageFact.stage == "handle", StageFact.run_no == 1)
    ).one()
    assert first.on_time


def test_a_case_still_in_rework_and_overdue_at_the_period_end_is_overdue_unhandled(
    session: Session, driver: Driver, orgdata: Org
) -> None:
    # Dispatch Thu 2026-10-29 08:30 → deadline Thu 18:00; the quick feedback fails its check; nothing more
    # happens in October. As of the period end (Nov 1 00:00) Friday's 7.5 working hours are past the deadline:
    # 超期未处置, not 处置. A second case dispatched Fri Oct 30 08:30 (deadline Fri 18:00) has, as of Nov 1,
    # used exactly its limit (the weekend has no working time): not overdue yet, so not counted in October;
    # it becomes overdue at Mon Nov 2 08:30 and counts in November.
    d = driver
    ids = []
    for day in (29, 30):
        cid = d.new(at(10, day, 8, 10))
        d.do(cid, "shiftlead", "file", at(10, day, 8, 20))
        d.do(cid, "dispatcher", "dispatch", at(10, day, 8, 30), department_id="SZ")
        d.do(cid, "water", "accept", at(10, day, 8, 30))
        d.do(cid, "water", "feedback", at(10, day, 9))
        d.do(cid, "acceptor", "send_check", at(10, day, 9, 10), inspector_id="inspector")
        d.do(cid, "inspector", "check_fail", at(10, day, 10))
        ids.append(cid)
    oct_ = dept_counts(session, orgdata)
    assert (oct_["should_handle"], oct_["handled"], oct_["overdue_unhandled"]) == (1, 0, 1)
    assert dept_counts(session, orgdata, "2026-11")["overdue_unhandled"] == 1
    assert task(session, ids[1]).determined_at == at(11, 2, 8, 30)
    # Rule 3: the drill-down says by how much, in working time, as of the period end: Fri Oct 30's 7.5 h.
    items = service.evidence(
        session,
        period="2026-10",
        subject_type="department",
        subject_id=str(orgdata.depts["SZ"]),
        primitive="overdue_unhandled",
    )
    assert [(i.case_id, i.overdue_seconds, i.overdue_measure) for i in items] == [
        (ids[0], 7.5 * 3600, "working_seconds")
    ]


# --------------------------------------------------------------------------------------------------------
# Rule 4: bands scale with the period; rule 5: exports hold what their headers say


def test_count_bands_scale_with_the_period() -> None:
    iset = service.indicator_set_for(service.parse_period("2026-10"), None)
    counts = dict.fromkeys(iset.subject("department").primitives, 0)
    # Department 立案数分值 bands (monthly): [0, 51) → 100, [51, 101) → 90, [101, 201) → 75 ...
    # A quarter with 240 filed cases is 240 ÷ 3 = 80 a month → 90 (unscaled, 240 would score 60).
    q = scoring.band_scale("quarter", 92, iset.band_period)
    assert q == 3
    s = scoring.score_subject("department", {**counts, "filed": 240}, iset, period_scale=q)
    assert next(c.score for c in s.components if c.key == "filed_score") == 90
    # A year: 12 months; a week: 7 × 12 / 365 months, so 20 filed in a week ≈ 86.9 a month → 90.
    assert scoring.band_scale("year", 365, "month") == 12
    w = scoring.band_scale("week", 7, "month")
    assert w == Fraction(84, 365)
    s = scoring.score_subject("department", {**counts, "filed": 20}, iset, period_scale=w)
    assert next(c.score for c in s.components if c.key == "filed_score") == 90
    # An indicator set may say its bands do not scale.
    fixed = dataclasses.replace(iset, band_scaling="none")
    s = scoring.score_subject("department", {**counts, "filed": 240}, fixed, period_scale=q)
    assert next(c.score for c in s.components if c.key == "filed_score") == 60


def test_exports_put_the_score_under_a_score_header_and_name_regions_by_code(session: Session, driver: Driver) -> None:
    handled_case(driver, at(10, 12, 14), at(10, 13, 13, 30), check=at(10, 13, 14, 30))
    ranking = service.compute(session, period="2026-10", subject_type="grid", source="raw")
    rows = list(csv.reader(io.StringIO(export.to_csv(ranking).decode("utf-8-sig"))))
    head = rows[0]
    assert head[:3] == ["排名", "编码", "名称"]
    mine = next(r for r in rows[1:] if r[1] == GRID)
    # One filed case in a class-1 grid: 立案数 1 lies in the band [1, 3) → 90 points; the column says 90.
    score_col = next(i for i, h in enumerate(head) if h.endswith("分值") and "立案" in h)
    assert float(mine[score_col]) == next(
        c.score for c in ranking.rows[0].score.components if c.name_zh == head[score_col]
    )
    assert float(mine[score_col]) != 1.0


# --------------------------------------------------------------------------------------------------------
# Rule 6: supervision areas and posts as they were


def test_cases_count_for_the_inspector_responsible_for_the_grid_at_the_time(
    session: Session, driver: Driver, orgdata: Org
) -> None:
    # The grid is inspector's until Oct 20, then inspector2's. A public report verified true and filed on
    # Oct 15 is a 漏报 of inspector; one filed on Oct 22 is a 漏报 of inspector2 (today's owner of the grid).
    d = driver
    components_service.assign_supervision_area(
        session, code="SA-1", name="一", inspector_id=orgdata.ids["inspector"], grid_codes=[GRID], at=at(1, 1, 0)
    )
    components_service.assign_supervision_area(
        session, code="SA-2", name="二", inspector_id=orgdata.ids["inspector2"], grid_codes=[GRID], at=at(10, 20, 0)
    )
    for day in (15, 22):
        cid = d.new(at(10, day, 9), user="acceptor", action="public_report")
        d.do(cid, "acceptor", "send_verify", at(10, day, 9, 10), inspector_id="inspector2")
        d.do(cid, "inspector2", "verify_true", at(10, day, 9, 40))
        d.do(cid, "shiftlead", "file", at(10, day, 10))
    got = service.count_primitives(session, period=service.parse_period("2026-10"), subject_type="inspector")
    assert got[str(orgdata.ids["inspector"])]["missed"] == 1
    assert got[str(orgdata.ids["inspector2"])]["missed"] == 1


def test_an_admin_registering_a_public_report_is_not_an_acceptor(
    session: Session, driver: Driver, orgdata: Org
) -> None:
    # 受理数 counts public reports registered in the acceptor post (the role recorded on the event).
    driver.new(at(10, 12, 9), user="acceptor", action="public_report")
    driver.new(at(10, 12, 9), user="admin", action="public_report")
    got = service.count_primitives(session, period=service.parse_period("2026-10"), subject_type="acceptor")
    assert got == {str(orgdata.ids["acceptor"]): {"accepted": 1}}


# --------------------------------------------------------------------------------------------------------
# Property: the on-time rule on every timed step, across breaks, nights, weekends, holidays, make-up days

RULES = load_rules()
STEPS = facts.load_step_limits(None)
PATH = [  # (action, from, to, the step the action completes)
    (A.REPORT, S.NEW, S.REPORTED, None),
    (A.FILE, S.REPORTED, S.FILED, "file"),
    (A.DISPATCH, S.FILED, S.DISPATCHED, "dispatch"),
    (A.FEEDBACK, S.DISPATCHED, S.FEEDBACK, "handle"),
    (A.SEND_CHECK, S.FEEDBACK, S.CHECKING, "send_check"),
    (A.CHECK_PASS, S.CHECKING, S.CHECKED, "check"),
    (A.CLOSE, S.CHECKED, S.CLOSED, "close"),
]


def _limit(step: str, urgency: str) -> deadlines.Limit:
    std = RULES.standards.lookup("C0101", urgency)
    if step in ("send_check", "close"):
        return STEPS.family(urgency == "normal")[step]
    lim = std.limit(step)
    assert lim is not None
    return lim


@settings(max_examples=150, deadline=None)
@given(
    start=st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 12, 20)),
    urgency=st.sampled_from(["normal", "normal", "urgent"]),
    choices=st.lists(st.tuples(st.sampled_from(["at", "in_break", "late"]), st.floats(0, 1)), min_size=6, max_size=6),
)
@example(start=dt.datetime(2026, 9, 30, 8, 30), urgency="normal", choices=[("in_break", 0.5)] * 6)
@example(start=dt.datetime(2026, 10, 9, 16, 0), urgency="normal", choices=[("in_break", 0.9)] * 6)
def test_on_time_means_elapsed_time_within_the_limit_on_every_step(
    start: dt.datetime, urgency: str, choices: list[tuple[str, float]]
) -> None:
    cal = RULES.calendar
    t = start.replace(tzinfo=CST).astimezone(dt.UTC)
    events = [facts.LoggedEvent(A.REPORT, S.NEW, S.REPORTED, t, actor_id=1)]
    expected: dict[str, bool] = {}
    for (action, frm, to, step), (how, frac) in zip(PATH[1:], choices, strict=True):
        assert step is not None
        lim = _limit(step, urgency)
        deadline = deadlines.add_limit(cal, t, lim.value, lim.unit).astimezone(dt.UTC)
        # The last on-time instant: the deadline, or for working time the start of the next working period.
        last_ok = deadline
        if lim.unit.counts_working_time and not cal.is_working_time(deadline):
            last_ok = deadlines.add_work_seconds(cal, deadline, 1).astimezone(dt.UTC) - dt.timedelta(seconds=1)
        if how == "at":
            done, ok = deadline, True
        elif how == "in_break":
            done, ok = deadline + (last_ok - deadline) * frac, True
        else:
            done, ok = last_ok + dt.timedelta(seconds=1 + int(frac * 3600)), False
        # Cross-check with the definition itself: elapsed time in the limit's measure vs the limit.
        used = deadlines.limit_elapsed(cal, t, done, lim.unit)
        assert (used <= deadlines.limit_seconds(cal, lim.value, lim.unit) + 1e-6) == ok
        events.append(
            facts.LoggedEvent(
                action, frm, to, done, actor_id=1, department_id=1, data={"department_id": 1, "inspector_id": 1}
            )
        )
        expected[step] = ok
        t = done
    rows = facts.build_facts(facts.CaseInfo(1, "C0101", urgency, GRID), events, RULES, STEPS, t)
    got = {r["stage"]: r["on_time"] for r in rows if r["stage"] in expected}
    assert got == expected
    handling = next(r for r in rows if r["stage"] == "task")  # the department's task: dispatch → accepted fix
    assert handling["on_time"] == expected["handle"]
    for r in rows:
        if r["stage"] in expected:
            # "Overdue by" is working time: 0 when on time; > 0 when late on a working-time limit (a late
            # completion on an elapsed-time limit may fall outside working hours and be 0 working seconds late).
            assert r["on_time"] <= (r["overdue_seconds"] == 0)
            if _limit(r["stage"], urgency).unit.counts_working_time:
                assert (r["overdue_seconds"] == 0) == r["on_time"]
