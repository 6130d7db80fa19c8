"""Derive the evaluation fact table (``stage_fact``) from the case event log.

Working-time arithmetic (deadlines on the working calendar, suspensions, extensions) is Python
(:mod:`casework.deadlines`), so it cannot run inside a SQL aggregate. We therefore keep one derived row per
run of every timed step of a case, with its deadline and outcome already computed; the period indicators
are then plain ``GROUP BY`` aggregates over these rows (:mod:`evaluation.service`).

After each action :func:`on_change` (a subscriber of the app's case pipeline, :mod:`casework.pipeline`)
derives the case's rows before and after it from the change, without re-reading the log, and rewrites only
the runs that differ. ``refresh_cases`` recomputes whole cases from the log and ``rebuild_all`` every case
(``gridcity evaluate rebuild-facts``).

Which runs exist (see :class:`evaluation.models.StageFact`):

* the lifecycle stages from :func:`casework.timeline.stage_runs` (verify, file, dispatch, handle, check),
  timed by :func:`casework.service.run_clock` (handling standards, working calendar, suspensions excluded,
  approved extensions added);
* pseudo-stages for the steps the lifecycle does not time: ``send_verify`` (public_report → send_verify),
  ``send_check`` (each feedback → send_check), ``close`` (check_pass → close), with limits from
  ``evaluation/data/step_limits.toml``;
* ``report``: an inspector's report from creation to its filing decision (file / void /
  approve_self_handled), untimed, with ``voided_at`` when the case was voided (also after filing);
* ``case``: a filed case from its first 立案 to 结案 against the overall deadline (the sum of the class's
  dispatch, handle and check limits and the send_check and close step limits, suspensions excluded,
  extensions added), carrying the case-level flags (voided_at, rework_at, public_verified).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import deadlines as casework_deadlines
from casework import legacy_import
from casework import service as casework_service
from casework import timeline as casework_timeline
from casework.lifecycle import CaseAction, CaseStatus, Stage, stage_of
from casework.models import Case, CaseEvent
from casework.rules import CaseRules
from evaluation import service as evaluation_service
from evaluation.models import StageFact
from evaluation.step_limits import StepLimits, load_step_limits
from gridcity import spatial
from gridcity.types import utcnow

A = CaseAction
_RESTARTS = frozenset({A.DISPATCH, A.CHECK_FAIL})  # as in casework.timeline (checked by zipping below)
_COMPLETES: Mapping[Stage, frozenset[CaseAction]] = {
    Stage.VERIFY: frozenset({A.VERIFY_TRUE, A.VERIFY_FALSE}),
    Stage.FILE: frozenset({A.FILE}),
    Stage.DISPATCH: frozenset({A.DISPATCH}),
    Stage.HANDLE: frozenset({A.FEEDBACK}),
    Stage.CHECK: frozenset({A.CHECK_PASS, A.CHECK_FAIL}),
}
_STEP_START = {A.PUBLIC_REPORT: "send_verify", A.FEEDBACK: "send_check", A.CHECK_PASS: "close"}
_STEP_DONE = {"send_verify": A.SEND_VERIFY, "send_check": A.SEND_CHECK, "close": A.CLOSE}


# --------------------------------------------------------------------------------------------------------
# Pure derivation


@dataclass(frozen=True)
class LoggedEvent:
    """One event of the log with what the facts need."""

    action: CaseAction
    from_status: CaseStatus
    to_status: CaseStatus
    at: dt.datetime
    actor_id: int | None = None
    department_id: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseInfo:
    """The case attributes facts carry."""

    id: int
    class_code: str
    urgency: str
    grid_code: str | None


def _is_note(ev: LoggedEvent) -> bool:
    # The merge note on a target case's log changes nothing there.
    return ev.action is A.MERGE and ev.from_status == ev.to_status


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t.astimezone(dt.UTC)


def late_after(cal: casework_deadlines.WorkCalendar, deadline: dt.datetime | None, working: bool) -> dt.datetime | None:
    """The last instant at which completing is still on time: the deadline itself for an elapsed-time limit;
    for a working-time limit the start of the next working period when the deadline falls at the end of
    one (12:00, 18:00, the evening before a weekend or holiday), since no working time elapses in the break.
    """
    if deadline is None or not working:
        return _utc(deadline)
    one = casework_deadlines.add_work_seconds(cal, deadline, 1e-6)  # 1 µs of working time after it
    return _utc(one - dt.timedelta(microseconds=1))


def _outcome(
    completed: dt.datetime | None, clock: casework_deadlines.Clock | None, late: dt.datetime | None
) -> tuple[dt.datetime | None, bool]:
    """(determination time, on time) of a run.

    On time means the *elapsed time in the limit's measure* (working time for a working-time limit,
    suspensions excluded, extensions added) is at most the limit: ``clock.overdue_seconds == 0``, never a
    comparison of wall-clock timestamps. The run is determined at its completion, or at ``late`` (the last
    instant at which completing would still be on time) if that comes first.
    """
    candidates = [t for t in (completed, late) if t is not None]
    determined = min(candidates) if candidates else None
    on_time = completed is not None and (clock is None or clock.overdue_seconds == 0)
    return determined, on_time


def overdue_working_seconds(
    cal: casework_deadlines.WorkCalendar,
    deadline: dt.datetime | None,
    end: dt.datetime,
    pauses: Sequence[casework_deadlines.Pause] = (),
) -> float:
    """How far past ``deadline`` ``end`` is, in *working* seconds (suspensions excluded), whatever the unit
    of the limit: the one unit of every "overdue by" (drill-down, exports)."""
    if deadline is None or end <= deadline:
        return 0.0
    clock = casework_deadlines.stage_clock(
        cal, start=deadline, value=0, unit=casework_deadlines.LimitUnit.WORK_HOUR, now=end, pauses=pauses, end=end
    )
    return clock.overdue_seconds


def _run_bounds(events: Sequence[LoggedEvent]) -> list[tuple[Stage, int, int | None]]:
    bounds: list[tuple[Stage, int, int | None]] = []
    cur: tuple[Stage, int] | None = None
    for i, ev in enumerate(events):
        new_stage = stage_of(ev.to_status)
        if cur is not None and (new_stage != cur[0] or ev.action in _RESTARTS):
            bounds.append((cur[0], cur[1], i))
            cur = None
        if cur is None and new_stage is not None:
            cur = (new_stage, i)
    if cur is not None:
        bounds.append((cur[0], cur[1], None))
    return bounds


def _family_is_working(rules: CaseRules, case: CaseInfo) -> bool:
    lim = rules.standards.lookup(case.class_code, case.urgency).limit("handle")
    return lim is None or lim.unit.counts_working_time


def _overall_clock(
    rules: CaseRules,
    steps: StepLimits,
    case: CaseInfo,
    events: Sequence[LoggedEvent],
    start: dt.datetime,
    end: dt.datetime | None,
    now: dt.datetime,
) -> casework_deadlines.Clock:
    cal = rules.calendar
    std = rules.standards.lookup(case.class_code, case.urgency)
    working = _family_is_working(rules, case)
    unit = casework_deadlines.LimitUnit.WORK_HOUR if working else casework_deadlines.LimitUnit.HOUR
    limits = [std.limit(s) for s in ("dispatch", "handle", "check")]
    limits += [steps.family(working)[s] for s in ("send_check", "close")]
    total = sum(casework_deadlines.limit_seconds(cal, lim.value, lim.unit) for lim in limits if lim is not None)
    ext = 0.0
    for ev in events:
        if ev.action is A.APPROVE_EXTENSION:
            e = ev.data.get("extension") or {}
            ext += casework_deadlines.convert_extension(
                cal, float(e.get("value", 0)), str(e.get("unit", "work_hour")), stage_unit=unit
            )
    return casework_deadlines.stage_clock(
        cal, start=start, value=total / 3600, unit=unit, now=now, pauses=_pauses(events), extension_seconds=ext, end=end
    )


def _pauses(events: Sequence[LoggedEvent]) -> list[casework_deadlines.Pause]:
    out: list[casework_deadlines.Pause] = []
    for ev in events:
        if ev.action is A.APPROVE_SUSPENSION:
            out.append(casework_deadlines.Pause(ev.at, None))
        elif ev.action is A.RESUME and out and out[-1].end is None:
            out[-1] = casework_deadlines.Pause(out[-1].start, ev.at)
    return out


def _handling_tasks(events: Sequence[LoggedEvent]) -> list[tuple[int, int | None, int | None, int | None]]:
    """The department handling tasks of a case: ``(dispatch, fix, accepted, stop)`` event indexes.

    A task starts at a 派遣 and is done by the feedback that the following 核查 *passes* (``fix``, accepted at
    ``accepted``). A feedback that fails its check (核查不通过 → 返工) does not complete the task: the rework
    is the same task continued, so its clock keeps running from the dispatch. ``stop`` is the approved 回退
    that undid the dispatch, if any. Unfinished parts are None.
    """
    tasks = []
    for i, ev in enumerate(events):
        if ev.action is not A.DISPATCH:
            continue
        fix = accepted = stop = None
        last_feedback = None
        for j in range(i + 1, len(events)):
            x = events[j]
            if x.action is A.FEEDBACK:
                last_feedback = j
            elif x.action is A.CHECK_PASS and last_feedback is not None:
                fix, accepted = last_feedback, j
                break
            elif x.action is A.APPROVE_SENDBACK:
                stop = j
                break
            elif x.action is A.DISPATCH:
                break
        tasks.append((i, fix, accepted, stop))
    return tasks


def build_facts(
    case: CaseInfo, events: Sequence[LoggedEvent], rules: CaseRules, steps: StepLimits, now: dt.datetime
) -> list[dict[str, Any]]:
    """All fact rows of one case (dicts of :class:`StageFact` columns), from its ordered log."""
    events = [e for e in events if not _is_note(e)]
    cal = rules.calendar
    rows: list[dict[str, Any]] = []
    run_no: dict[str, int] = {}
    base = {"case_id": case.id, "grid_code": case.grid_code, "class_code": case.class_code}
    all_pauses = _pauses(events)

    def add(
        stage: str,
        start: int,
        end: int | None,
        *,
        clock: casework_deadlines.Clock | None,
        working: bool,
        completed: bool = False,
        **extra: Any,
    ) -> None:
        run_no[stage] = run_no.get(stage, 0) + 1
        s, e = events[start], events[end] if end is not None else None
        completed_at = e.at if (e is not None and completed) else None
        deadline = _utc(clock.deadline) if clock is not None else None
        done = _utc(completed_at)
        # late_after(deadline) >= deadline, so a run completed by its deadline is determined at completion
        # whatever it is: only the others pay for the working-time step.
        late = (
            None
            if done is not None and deadline is not None and done <= deadline
            else late_after(cal, deadline, working)
        )
        determined, on_time = _outcome(done, clock, late)
        horizon = completed_at or (e.at if e is not None else now)
        overdue = 0.0 if on_time else overdue_working_seconds(cal, deadline, horizon, all_pauses)
        rows.append(
            {
                **base,
                "stage": stage,
                "run_no": run_no[stage],
                "started_at": s.at,
                "start_action": s.action.value,
                "start_actor_id": s.actor_id,
                "ended_at": e.at if e else None,
                "end_action": e.action.value if e else None,
                "end_actor_id": e.actor_id if e else None,
                "completed_at": completed_at,
                "deadline_at": deadline,
                "determined_at": determined,
                "on_time": on_time,
                "overdue_seconds": overdue,
                "department_id": None,
                "assignee_id": None,
                "undone_at": None,
                "first_extension_at": None,
                "voided_at": None,
                "rework_at": None,
                "public_verified": False,
                **extra,
            }
        )

    # When each dispatch was undone by an approved send-back (the first approve_sendback after it).
    undone: dict[int, dt.datetime] = {}
    for i, ev in enumerate(events):
        if ev.action is A.DISPATCH:
            nxt = next((x for x in events[i + 1 :] if x.action is A.APPROVE_SENDBACK), None)
            if nxt is not None:
                undone[i] = nxt.at

    # Lifecycle stages.
    bounds = _run_bounds(events)
    runs = casework_timeline.stage_runs(
        casework_timeline.EventFact(e.action, e.from_status, e.to_status, e.at, e.data) for e in events
    )
    if [(r.stage, r.started_at, r.ended_at) for r in runs] != [
        (st, events[a].at, events[b].at if b is not None else None) for st, a, b in bounds
    ]:
        raise RuntimeError(f"case {case.id}: fact run boundaries disagree with casework.timeline")
    std = rules.standards.lookup(case.class_code, case.urgency)
    for (stage, a, b), run in zip(bounds, runs, strict=True):
        clock = casework_service.run_clock(rules, case, run, now)  # type: ignore[arg-type]
        lim = std.limit(stage.value)
        extra: dict[str, Any] = {}
        if stage in (Stage.VERIFY, Stage.CHECK):
            extra["assignee_id"] = events[a].data.get("inspector_id")
        if stage is Stage.HANDLE:
            extra["department_id"] = events[a].department_id
            if events[a].action is A.DISPATCH:
                extra["undone_at"] = undone.get(a)
            stop = b if b is not None else len(events)
            ext = next((x.at for x in events[a:stop] if x.action is A.APPROVE_EXTENSION), None)
            extra["first_extension_at"] = ext
        if stage is Stage.DISPATCH and b is not None and events[b].action is A.DISPATCH:
            extra["undone_at"] = undone.get(b)
            extra["department_id"] = events[b].department_id
        completed = b is not None and events[b].action in _COMPLETES[stage]
        add(
            stage.value,
            a,
            b,
            clock=clock,
            working=lim is None or lim.unit.counts_working_time,
            completed=completed,
            **extra,
        )

    # Department handling tasks (处置 as the department is judged on it; see _handling_tasks).
    handle_lim = std.limit("handle")
    for d, fix, accepted, stop in _handling_tasks(events):
        end = fix if fix is not None else stop
        end_at = events[end].at if end is not None else None
        chain = events[d : (accepted if accepted is not None else (stop if stop is not None else len(events)))]
        clock = None
        if handle_lim is not None:
            ext = sum(
                casework_deadlines.convert_extension(
                    cal,
                    float((x.data.get("extension") or {}).get("value", 0)),
                    str((x.data.get("extension") or {}).get("unit", "work_hour")),
                    stage_unit=handle_lim.unit,
                )
                for x in chain
                if x.action is A.APPROVE_EXTENSION
            )
            clock = casework_deadlines.stage_clock(
                cal,
                start=events[d].at,
                value=handle_lim.value,
                unit=handle_lim.unit,
                now=now,
                pauses=_pauses(chain),
                extension_seconds=ext,
                end=end_at,
            )
        working = handle_lim is None or handle_lim.unit.counts_working_time
        deadline = _utc(clock.deadline) if clock is not None else None
        on_time = fix is not None and (clock is None or clock.overdue_seconds == 0)
        accepted_at = events[accepted].at if accepted is not None else None
        if on_time:
            determined = accepted_at
        else:
            late = late_after(cal, deadline, working)
            determined = min((t for t in (_utc(accepted_at), late) if t is not None), default=None)
        horizon = end_at if end_at is not None else now
        run_no["task"] = run_no.get("task", 0) + 1
        rows.append(
            {
                **base,
                "stage": "task",
                "run_no": run_no["task"],
                "started_at": events[d].at,
                "start_action": A.DISPATCH.value,
                "start_actor_id": events[d].actor_id,
                "ended_at": end_at,
                "end_action": events[end].action.value if end is not None else None,
                "end_actor_id": events[end].actor_id if end is not None else None,
                # completed = the fix was accepted by a passing check (at that check's time)
                "completed_at": accepted_at,
                "deadline_at": deadline,
                "determined_at": determined,
                "on_time": on_time,
                "overdue_seconds": 0.0 if on_time else overdue_working_seconds(cal, deadline, horizon, _pauses(chain)),
                "department_id": events[d].department_id,
                "assignee_id": None,
                "undone_at": events[stop].at if stop is not None else None,
                "first_extension_at": next((x.at for x in chain if x.action is A.APPROVE_EXTENSION), None),
                "voided_at": None,
                "rework_at": next((x.at for x in chain if x.action is A.CHECK_FAIL), None),
                "public_verified": False,
            }
        )

    # Pseudo-stages for the untimed steps.
    working = _family_is_working(rules, case)
    for i, ev in enumerate(events):
        step = _STEP_START.get(ev.action)
        if step is None:
            continue
        lim = steps.family(working)[step]
        end = i + 1 if i + 1 < len(events) else None
        ended_at = events[end].at if end is not None else None
        clock = casework_deadlines.stage_clock(cal, start=ev.at, value=lim.value, unit=lim.unit, now=now, end=ended_at)
        add(
            step,
            i,
            end,
            clock=clock,
            working=lim.unit.counts_working_time,
            completed=end is not None and events[end].action is _STEP_DONE[step],
        )

    # The inspector's report, from creation to its filing decision (untimed).
    if events and events[0].action in (A.REPORT, A.SELF_HANDLE):
        d = next((i for i, x in enumerate(events) if x.action in (A.FILE, A.VOID, A.APPROVE_SELF_HANDLED)), None)
        add(
            "report",
            0,
            d,
            clock=None,
            working=True,
            completed=d is not None and events[d].action is not A.VOID,
            voided_at=next((x.at for x in events if x.action is A.VOID), None),
        )
        rows[-1]["determined_at"] = rows[-1]["ended_at"]  # counted when decided, whatever the decision

    # The whole filed case against its overall deadline.
    first_file = next((i for i, x in enumerate(events) if x.action is A.FILE), None)
    if first_file is not None:
        close = next((i for i, x in enumerate(events) if x.action is A.CLOSE), None)
        start = events[first_file].at
        clock = _overall_clock(rules, steps, case, events, start, events[close].at if close is not None else None, now)
        later = events[first_file + 1 :]
        effective = None
        for x in events:
            if x.action is A.DISPATCH:
                effective = x.department_id
            elif x.action is A.APPROVE_SENDBACK:
                effective = None
        add(
            "case",
            first_file,
            close,
            clock=clock,
            working=_family_is_working(rules, case),
            completed=close is not None,
            department_id=effective,
            voided_at=next((x.at for x in later if x.action is A.VOID), None),
            rework_at=next((x.at for x in events if x.action is A.CHECK_FAIL), None),
            public_verified=events[0].action is A.PUBLIC_REPORT
            and any(x.action is A.VERIFY_TRUE for x in events[:first_file]),
        )
    return rows


# --------------------------------------------------------------------------------------------------------
# Database side


def _load_events(session: Session, case_ids: Sequence[int]) -> dict[int, list[LoggedEvent]]:
    out: dict[int, list[LoggedEvent]] = {cid: [] for cid in case_ids}
    rows = session.execute(
        select(
            CaseEvent.case_id,
            CaseEvent.action,
            CaseEvent.from_status,
            CaseEvent.to_status,
            CaseEvent.at,
            CaseEvent.actor_id,
            CaseEvent.department_id,
            CaseEvent.data,
        )
        .where(CaseEvent.case_id.in_(case_ids))
        .order_by(CaseEvent.case_id, CaseEvent.seq)
    ).all()
    for r in rows:
        out[r.case_id].append(
            LoggedEvent(r.action, r.from_status, r.to_status, r.at, r.actor_id, r.department_id, r.data or {})
        )
    return out


_REF_TIMES = ("started_at", "determined_at", "ended_at")  # every family's ref_at is one of these


def _write(
    session: Session,
    case_ids: Sequence[int],
    rows: Iterable[dict[str, Any]],
    event_times: Sequence[dt.datetime] | None = None,
) -> int:
    batch = list(rows)
    if event_times is not None:
        # The rollup days these cases touch: where their old and new rows and their events are counted.
        old = session.execute(
            select(StageFact.started_at, StageFact.determined_at, StageFact.ended_at).where(
                StageFact.case_id.in_(case_ids)
            )
        ).all()
        times = [t for r in old for t in r] + [r[k] for r in batch for k in _REF_TIMES] + list(event_times)
        evaluation_service.mark_rollup_dirty(session, times, max(event_times, default=None))
    session.execute(sa.delete(StageFact).where(StageFact.case_id.in_(case_ids)))
    if batch:
        # One bulk append (COPY / one prepared executemany): the ORM's bulk insert grouped the rows by which
        # columns are NULL and sent thousands of small statements (400 µs a row on SQLite).
        cols = list(batch[0])
        spatial.bulk_append(session, StageFact.__table__, cols, [[r[c] for c in cols] for r in batch])
    return len(batch)


def refresh_cases(
    session: Session,
    *,
    case_ids: Sequence[int],
    rules: CaseRules,
    steps: StepLimits | None = None,
    now: dt.datetime | None = None,
    mark_rollup: bool = True,
) -> int:
    """Recompute the fact rows of these cases from their logs; returns the number of rows written.

    ``mark_rollup``: mark the rollup days the change touches stale (off for a full rebuild, which rebuilds the
    rollup afterwards)."""
    steps = steps or load_step_limits(rules.city_dir)
    cases = session.execute(
        select(Case.id, Case.class_code, Case.urgency, Case.grid_code).where(Case.id.in_(case_ids))
    ).all()
    logs = _load_events(session, [c.id for c in cases])
    rows: list[dict[str, Any]] = []
    for c in cases:
        # Without an explicit ``now`` a case's facts are as of its last event, so they depend on the log alone
        # (the after-action hook passes that event's time too): live, rebuilt and imported facts agree.
        case_now = now or (logs[c.id][-1].at if logs[c.id] else utcnow())
        rows += build_facts(CaseInfo(c.id, c.class_code, c.urgency, c.grid_code), logs[c.id], rules, steps, case_now)
    times = [e.at for c in cases for e in logs[c.id]] if mark_rollup else None
    return _write(session, list(case_ids), rows, times)


def on_change(session: Session, change: casework_service.CaseChange, pipeline: Any) -> None:
    """Case pipeline subscriber: keep the case's fact rows in step with its log (same transaction).

    The rows are derived from the change (its log, no re-read): the rows of the log before the action and
    after it are compared, and only the runs that differ are rewritten (deleted and inserted again), so an
    action costs one DELETE and one INSERT whatever the length of the case's history.
    """
    case, rules = change.case, change.rules
    steps = load_step_limits(rules.city_dir)
    info = CaseInfo(case.id, case.class_code, case.urgency, case.grid_code)
    events = [
        LoggedEvent(e.action, e.from_status, e.to_status, e.at, e.actor_id, e.department_id, e.data) for e in change.log
    ]
    new = {(r["stage"], r["run_no"]): r for r in build_facts(info, events, rules, steps, change.event.at)}
    old: dict[tuple[str, int], dict[str, Any]] = {}
    if len(events) > 1:  # as written by the previous action, at its time
        old = {(r["stage"], r["run_no"]): r for r in build_facts(info, events[:-1], rules, steps, events[-2].at)}
    changed = [k for k, r in new.items() if old.get(k) != r]
    stale = [k for k in old if k not in new or k in changed]
    # The rollup days this touches: where the old and new rows of the changed runs and the new event count.
    times = [r[k] for key in stale for r in (old[key],) for k in _REF_TIMES]
    times += [new[key][k] for key in changed for k in _REF_TIMES] + [change.event.at]
    evaluation_service.mark_rollup_dirty(session, times, max(e.at for e in change.log))
    # Core statements on the table: no fact row is ever loaded as an object here, so the ORM's bulk paths
    # (synchronising the session by evaluating the DELETE's criteria, grouping the INSERT's rows by their NULL
    # columns) were pure CPU cost on every action (G-P1).
    t = _FACT_TABLE
    if stale:
        session.execute(
            t.delete().where(
                t.c.case_id == case.id, sa.or_(*(sa.and_(t.c.stage == s, t.c.run_no == n) for s, n in stale))
            )
        )
    if changed:
        rows = [new[k] for k in changed]
        cols = list(rows[0])  # every row of build_facts has the same keys: one statement, one executemany
        session.execute(t.insert(), [{c: r[c] for c in cols} for r in rows])


_FACT_TABLE: sa.Table = StageFact.__table__  # type: ignore[assignment]


def rebuild_all(session: Session, *, rules: CaseRules, batch: int = 2000, echo: Any = None) -> int:
    """Recompute every case's facts from the log, then the daily rollup; returns the number of fact rows."""
    session.execute(sa.delete(StageFact))
    total, last = 0, 0
    while True:
        ids = list(session.scalars(select(Case.id).where(Case.id > last).order_by(Case.id).limit(batch)))
        if not ids:
            evaluation_service.rebuild_rollup(session)
            return total
        total += refresh_cases(session, case_ids=ids, rules=rules, mark_rollup=False)
        last = ids[-1]
        if echo:
            echo(f"… {last} cases, {total} fact rows")


def overdue_as_of(
    session: Session, *, fact_ids: Sequence[int], as_of: dt.datetime, rules: CaseRules | None = None
) -> dict[int, float]:
    """Working seconds past the deadline as of ``as_of`` for these fact rows (from their cases' logs up to
    ``as_of``: what the drill-down shows for items still open then)."""
    from casework.rules import load_rules  # noqa: PLC0415

    rules = rules or load_rules()
    steps = load_step_limits(rules.city_dir)
    wanted = session.execute(
        select(StageFact.id, StageFact.case_id, StageFact.stage, StageFact.run_no).where(StageFact.id.in_(fact_ids))
    ).all()
    by_case: dict[int, list[Any]] = {}
    for w in wanted:
        by_case.setdefault(w.case_id, []).append(w)
    cases = session.execute(
        select(Case.id, Case.class_code, Case.urgency, Case.grid_code).where(Case.id.in_(list(by_case)))
    ).all()
    logs = _load_events(session, [c.id for c in cases])
    out: dict[int, float] = {}
    for c in cases:
        events = [e for e in logs[c.id] if e.at < as_of]
        rows = build_facts(CaseInfo(c.id, c.class_code, c.urgency, c.grid_code), events, rules, steps, as_of)
        index = {(r["stage"], r["run_no"]): r for r in rows}
        for w in by_case[c.id]:
            r = index.get((w.stage, w.run_no))
            if r is not None:
                out[w.id] = float(r["overdue_seconds"])
    return out


def after_import(
    session: Session,
    cases: Sequence[legacy_import.ImportedCase],
    *,
    rules: CaseRules,
    batch: int = 2000,
    echo: Any = None,
) -> int:
    """The facts of freshly imported cases (``casework.legacy_import``), then the rollup if one was built.

    The logs come from the import's replay (``cases``), as written, instead of being read back: the same
    rows as :func:`refresh_cases` derives from the stored log (the import tests compare both)."""
    with legacy_import.gc_paused():
        return _after_import(session, cases, rules=rules, batch=batch, echo=echo)


def _after_import(
    session: Session, cases: Sequence[legacy_import.ImportedCase], *, rules: CaseRules, batch: int, echo: Any
) -> int:
    steps = load_step_limits(rules.city_dir)
    f = {name: i for i, name in enumerate(legacy_import.EVENT_FIELDS)}
    ia, i_from, i_to, i_at, i_actor, i_dept, i_data = (
        f[k] for k in ("action", "from_status", "to_status", "at", "actor_id", "department_id", "data")
    )
    total = 0
    for k in range(0, len(cases), batch):
        part = cases[k : k + batch]
        rows: list[dict[str, Any]] = []
        for c in part:
            events = [
                LoggedEvent(
                    e[ia], e[i_from], e[i_to], e[i_at].astimezone(dt.UTC), e[i_actor], e[i_dept], e[i_data] or {}
                )
                for e in c.events
            ]
            case_now = events[-1].at if events else utcnow()
            rows += build_facts(CaseInfo(c.id, c.class_code, c.urgency, c.grid_code), events, rules, steps, case_now)
        total += _write(session, [c.id for c in part], rows)
        if echo:
            echo(f"evaluation facts: {min(k + batch, len(cases))}/{len(cases)} cases")
    if session.get(evaluation_service.RollupState, 1) is not None:
        state = session.get(evaluation_service.RollupState, 1)
        evaluation_service.rebuild_rollup(session, tz=state.tz if state else evaluation_service.DEFAULT_TZ)
    return total
