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
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import deadlines as casework_deadlines
from casework import legacy_import
from casework import service as casework_service
from casework import timeline as casework_timeline
from casework.lifecycle import CaseAction, CaseStatus, Stage
from casework.models import Case, CaseEvent
from casework.rules import CaseRules
from evaluation import service as evaluation_service
from evaluation.models import StageFact
from evaluation.step_limits import StepLimits, load_step_limits
from gridcity import spatial
from gridcity.types import utcnow

A = CaseAction
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


# The facts compute on the integer time line of casework.deadlines (epoch microseconds): about one stage clock
# per event, so instants are converted once per event and the clocks never build a datetime.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


def _at(t_us: int | None) -> dt.datetime | None:
    return None if t_us is None else _EPOCH + dt.timedelta(microseconds=t_us)


class _Lim(NamedTuple):
    """A limit as the clocks use it: its value and unit, whether it counts working time, and its microseconds
    without extensions."""

    value: float
    unit: casework_deadlines.LimitUnit
    working: bool
    us: int

    def with_extensions(self, cal: casework_deadlines.WorkCalendar, ext_seconds: float) -> int:
        """The limit plus approved extensions (seconds of its measure), as :func:`stage_clock` rounds it."""
        return self.us if not ext_seconds else casework_deadlines.limit_us(cal, self.value, self.unit, ext_seconds)


def _lim(cal: casework_deadlines.WorkCalendar, value: float, unit: casework_deadlines.LimitUnit) -> _Lim:
    return _Lim(value, unit, unit.counts_working_time, casework_deadlines.limit_us(cal, value, unit))


class _ClassLimits(NamedTuple):
    """The limits of one (class, urgency), computed once per rules and step limits."""

    stages: Mapping[Stage, _Lim | None]
    working: bool  # the family of the untimed steps and of the whole case (the handle limit's measure)
    steps: Mapping[str, _Lim]  # send_verify, send_check, close, in that family
    overall: _Lim  # the whole filed case (dispatch + handle + check + send_check + close)


class _LimitCache:
    """Per (class, urgency): the stage, step and overall limits (standards lookups and unit conversions)."""

    def __init__(self, rules: CaseRules, steps: StepLimits) -> None:
        self.rules, self.steps = rules, steps
        self.by_class: dict[tuple[str, str], _ClassLimits] = {}

    def get(self, class_code: str, urgency: str) -> _ClassLimits:
        got = self.by_class.get((class_code, urgency))
        if got is None:
            got = self.by_class[(class_code, urgency)] = self._compute(class_code, urgency)
        return got

    def _compute(self, class_code: str, urgency: str) -> _ClassLimits:
        cal = self.rules.calendar
        std = self.rules.standards.lookup(class_code, urgency)
        stages = {s: (None if (x := std.limit(s.value)) is None else _lim(cal, x.value, x.unit)) for s in Stage}
        handle = std.limit("handle")
        working = handle is None or handle.unit.counts_working_time
        family = self.steps.family(working)
        step_lims = {name: _lim(cal, family[name].value, family[name].unit) for name in _STEP_DONE}
        parts = [std.limit(s) for s in ("dispatch", "handle", "check")]
        parts += [family[s] for s in ("send_check", "close")]
        total = sum(casework_deadlines.limit_seconds(cal, p.value, p.unit) for p in parts if p is not None)
        unit = casework_deadlines.LimitUnit.WORK_HOUR if working else casework_deadlines.LimitUnit.HOUR
        return _ClassLimits(stages, working, step_lims, _lim(cal, total / 3600, unit))


_LIMIT_CACHES: list[_LimitCache] = []


def _limit_cache(rules: CaseRules, steps: StepLimits) -> _LimitCache:
    for c in _LIMIT_CACHES:
        if c.rules is rules and c.steps is steps:
            return c
    cache = _LimitCache(rules, steps)
    _LIMIT_CACHES[:] = [cache, *_LIMIT_CACHES[:3]]  # a handful of rule sets (tests, a city's overrides)
    return cache


def _late_after(cal: casework_deadlines.WorkCalendar, deadline: int | None, working: bool) -> int | None:
    """The last instant at which completing is still on time: the deadline itself for an elapsed-time limit;
    for a working-time limit the start of the next working period when the deadline falls at the end of
    one (12:00, 18:00, the evening before a weekend or holiday), since no working time elapses in the break.
    """
    if deadline is None or not working:
        return deadline
    return casework_deadlines.add_work_us(cal, deadline, 1) - 1  # 1 µs of working time after it, less 1 µs


def _overdue_seconds(
    cal: casework_deadlines.WorkCalendar, deadline: int | None, end: int, pauses: Sequence[tuple[int, int | None]]
) -> float:
    """How far past ``deadline`` ``end`` is, in *working* seconds (suspensions excluded), whatever the unit
    of the limit: the one unit of every "overdue by" (drill-down, exports)."""
    if deadline is None or end <= deadline:
        return 0.0
    clock = casework_deadlines.stage_clock_us(
        cal, start=deadline, limit=0, working=True, now=end, pauses=pauses, end=end
    )
    return clock.used / 1_000_000


def _extension_seconds(
    cal: casework_deadlines.WorkCalendar, events: Sequence[LoggedEvent], idx: Iterable[int], unit: str
) -> float:
    """The approved extensions at these event positions, in seconds of the measure of ``unit``."""
    total = 0.0
    for i in idx:
        value, ext_unit = casework_timeline.extension_of(events[i].data)
        total += casework_deadlines.convert_extension(cal, value, ext_unit, stage_unit=unit)
    return total


def _pauses(events: Sequence[LoggedEvent], ts: Sequence[int]) -> list[tuple[int, int | None]]:
    out: list[tuple[int, int | None]] = []
    for ev, t in zip(events, ts, strict=True):
        if ev.action is A.APPROVE_SUSPENSION:
            out.append((t, None))
        elif ev.action is A.RESUME and out and out[-1][1] is None:
            out[-1] = (out[-1][0], t)
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
    """All fact rows of one case (dicts of :class:`StageFact` columns), from its ordered log.

    Every clock is :func:`casework.deadlines.stage_clock_us` on the event times in epoch microseconds, with
    the limits of the case's class computed once per rules (:class:`_LimitCache`); the lifecycle runs are
    :func:`casework.timeline.run_spans`, the one derivation of stage runs.
    """
    events = [e for e in events if not _is_note(e)]
    cal = rules.calendar
    limits = _limit_cache(rules, steps).get(case.class_code, case.urgency)
    ts = [(e.at - _EPOCH) // _US for e in events]
    now_us = (now - _EPOCH) // _US
    rows: list[dict[str, Any]] = []
    run_no: dict[str, int] = {}
    base = {"case_id": case.id, "grid_code": case.grid_code, "class_code": case.class_code}
    all_pauses = _pauses(events, ts)

    def clock(
        start: int, end: int | None, lim: _Lim, pauses: Sequence[tuple[int, int | None]] = (), ext: float = 0.0
    ) -> casework_deadlines.UsClock:
        return casework_deadlines.stage_clock_us(
            cal,
            start=ts[start],
            limit=lim.with_extensions(cal, ext),
            working=lim.working,
            now=now_us,
            pauses=pauses,
            end=None if end is None else ts[end],
        )

    def add(
        stage: str,
        start: int,
        end: int | None,
        *,
        clock: casework_deadlines.UsClock | None,
        working: bool,
        completed: bool = False,
        **extra: Any,
    ) -> None:
        run_no[stage] = run_no.get(stage, 0) + 1
        s, e = events[start], events[end] if end is not None else None
        deadline = clock.deadline if clock is not None else None
        done = ts[end] if end is not None and completed else None
        # The run is determined at its completion, or at the last instant at which completing would still be
        # on time if that comes first. That instant is >= the deadline, so a run completed by its deadline is
        # determined at completion whatever it is: only the others pay for the working-time step.
        late = (
            None
            if done is not None and deadline is not None and done <= deadline
            else _late_after(cal, deadline, working)
        )
        determined = late if done is None else (done if late is None or done <= late else late)
        # On time means the *elapsed time in the limit's measure* (suspensions excluded, extensions added) is
        # at most the limit, never a comparison of wall-clock timestamps.
        on_time = done is not None and (clock is None or clock.overdue == 0)
        horizon = ts[end] if end is not None else now_us
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
                "completed_at": e.at if e is not None and completed else None,
                "deadline_at": _at(deadline),
                # the completion's own datetime when determined then (bulk_append converts each object once)
                "determined_at": e.at if e is not None and determined == done else _at(determined),
                "on_time": on_time,
                "overdue_seconds": 0.0 if on_time else _overdue_seconds(cal, deadline, horizon, all_pauses),
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
    for run in casework_timeline.run_spans(events):
        stage, a, b = run.stage, run.start, run.end
        lim = limits.stages[stage]
        run_clock = None
        if lim is not None:
            pauses = [(ts[p], ts[q] if q is not None else (None if b is None else ts[b])) for p, q in run.pauses]
            ext = _extension_seconds(cal, events, run.extensions, lim.unit) if run.extensions else 0.0
            run_clock = clock(a, b, lim, pauses, ext)
        extra: dict[str, Any] = {}
        if stage in (Stage.VERIFY, Stage.CHECK):
            extra["assignee_id"] = events[a].data.get("inspector_id")
        if stage is Stage.HANDLE:
            extra["department_id"] = events[a].department_id
            if events[a].action is A.DISPATCH:
                extra["undone_at"] = undone.get(a)
            stop = b if b is not None else len(events)
            extra["first_extension_at"] = next((x.at for x in events[a:stop] if x.action is A.APPROVE_EXTENSION), None)
        if stage is Stage.DISPATCH and b is not None and events[b].action is A.DISPATCH:
            extra["undone_at"] = undone.get(b)
            extra["department_id"] = events[b].department_id
        completed = b is not None and events[b].action in _COMPLETES[stage]
        add(
            stage.value,
            a,
            b,
            clock=run_clock,
            working=lim is None or lim.working,
            completed=completed,
            **extra,
        )

    # Department handling tasks (处置 as the department is judged on it; see _handling_tasks).
    handle_lim = limits.stages[Stage.HANDLE]
    for d, fix, accepted, stop in _handling_tasks(events):
        end = fix if fix is not None else stop
        last = accepted if accepted is not None else (stop if stop is not None else len(events))
        chain = events[d:last]
        task_pauses = _pauses(chain, ts[d:last])
        task_clock = None
        if handle_lim is not None:
            extensions = [i for i in range(d, last) if events[i].action is A.APPROVE_EXTENSION]
            ext = _extension_seconds(cal, events, extensions, handle_lim.unit) if extensions else 0.0
            task_clock = clock(d, end, handle_lim, task_pauses, ext)
        working = handle_lim is None or handle_lim.working
        deadline = task_clock.deadline if task_clock is not None else None
        on_time = fix is not None and (task_clock is None or task_clock.overdue == 0)
        accepted_us = ts[accepted] if accepted is not None else None
        if on_time:
            determined = accepted_us
        else:
            late = _late_after(cal, deadline, working)
            determined = min((t for t in (accepted_us, late) if t is not None), default=None)
        horizon = ts[end] if end is not None else now_us
        run_no["task"] = run_no.get("task", 0) + 1
        rows.append(
            {
                **base,
                "stage": "task",
                "run_no": run_no["task"],
                "started_at": events[d].at,
                "start_action": A.DISPATCH.value,
                "start_actor_id": events[d].actor_id,
                "ended_at": events[end].at if end is not None else None,
                "end_action": events[end].action.value if end is not None else None,
                "end_actor_id": events[end].actor_id if end is not None else None,
                # completed = the fix was accepted by a passing check (at that check's time)
                "completed_at": events[accepted].at if accepted is not None else None,
                "deadline_at": _at(deadline),
                "determined_at": events[accepted].at
                if accepted is not None and determined == accepted_us
                else _at(determined),
                "on_time": on_time,
                "overdue_seconds": 0.0 if on_time else _overdue_seconds(cal, deadline, horizon, task_pauses),
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
    for i, ev in enumerate(events):
        step = _STEP_START.get(ev.action)
        if step is None:
            continue
        lim = limits.steps[step]
        end = i + 1 if i + 1 < len(events) else None
        add(
            step,
            i,
            end,
            clock=clock(i, end, lim),
            working=lim.working,
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

    # The whole filed case against its overall deadline (suspensions excluded, every extension added).
    first_file = next((i for i, x in enumerate(events) if x.action is A.FILE), None)
    if first_file is not None:
        close = next((i for i, x in enumerate(events) if x.action is A.CLOSE), None)
        extensions = [i for i, x in enumerate(events) if x.action is A.APPROVE_EXTENSION]
        ext = _extension_seconds(cal, events, extensions, limits.overall.unit) if extensions else 0.0
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
            clock=clock(first_file, close, limits.overall, all_pauses, ext),
            working=limits.working,
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
    if any(
        r["stage"] == "handle" and r["start_action"] == "dispatch"
        for key in (*stale, *changed)
        for r in (old.get(key), new.get(key))
        if r is not None
    ):
        # The case's dispatch changed (a new one, or one undone by a send-back): what the case counts for the
        # department of its effective dispatch (its case-level rows, and events such as 挂账 counted on their own
        # day) may move between departments on days where nothing of the case changed. Every day of the case's
        # rows and events is refreshed.
        times += [r[k] for rows in (old, new) for r in rows.values() for k in _REF_TIMES]
        times += [e.at for e in change.log]
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


class ImportFacts:
    """The evaluation facts of freshly imported cases (``casework.legacy_import``'s ``after`` hooks): each
    written batch's facts, then the rollup once, if one was built.

    The logs come from the import's replay, as written, instead of being read back: the same rows as
    :func:`refresh_cases` derives from the stored log (the import tests compare both)."""

    def __init__(self, *, rules: CaseRules, echo: Any = None) -> None:
        self.rules, self.echo = rules, echo
        self.steps = load_step_limits(rules.city_dir)
        self.done = 0
        self.rows = 0

    def derive(self, cases: Sequence[legacy_import.ImportedCase]) -> tuple[int, list[dict[str, Any]]]:
        with legacy_import.gc_paused():
            return len(cases), _import_facts(cases, rules=self.rules, steps=self.steps)

    def written(self, session: Session, derived: tuple[int, list[dict[str, Any]]]) -> int:
        n_cases, rows = derived
        if rows:
            # brand-new cases have no facts to replace: one bulk append (COPY / one prepared executemany)
            cols = list(rows[0])
            spatial.bulk_append(session, StageFact.__table__, cols, [[r[c] for c in cols] for r in rows])
        self.done += n_cases
        self.rows += len(rows)
        if self.echo:
            self.echo(f"evaluation facts: {self.done} cases ({self.rows} rows)")
        return len(rows)

    def finished(self, session: Session) -> None:
        state = session.get(evaluation_service.RollupState, 1)
        if state is not None:
            evaluation_service.rebuild_rollup(session, tz=state.tz)


_EF = {name: i for i, name in enumerate(legacy_import.EVENT_FIELDS)}
_LOGGED = operator.itemgetter(
    *(_EF[k] for k in ("action", "from_status", "to_status", "at", "actor_id", "department_id", "data"))
)


def _import_facts(
    cases: Sequence[legacy_import.ImportedCase], *, rules: CaseRules, steps: StepLimits
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for c in cases:
        events = []
        for e in c.events:
            action, from_s, to_s, at, actor, dept, data = _LOGGED(e)
            events.append(LoggedEvent(action, from_s, to_s, at.astimezone(dt.UTC), actor, dept, data or {}))
        case_now = events[-1].at if events else utcnow()
        rows += build_facts(CaseInfo(c.id, c.class_code, c.urgency, c.grid_code), events, rules, steps, case_now)
    return rows
