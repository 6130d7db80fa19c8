"""Derive the evaluation fact table (``stage_fact``) from the case event log.

Working-time arithmetic (deadlines on the working calendar, suspensions, extensions) is Python
(:mod:`casework.deadlines`), so it cannot run inside a SQL aggregate. We therefore keep one derived row per
run of every timed step of a case, with its deadline and outcome already computed; the period indicators
are then plain ``GROUP BY`` aggregates over these rows (:mod:`evaluation.service`).

Rows are rebuilt for a whole case after each of its actions (:func:`on_change`, a subscriber of the app's
case pipeline, :mod:`casework.pipeline`): a case's log is short, so recomputing all its runs is cheaper and simpler than
patching the changed one, and it can never leave a stale row behind. ``rebuild_all`` recomputes every case
from the log (``gridcity evaluate rebuild-facts``).

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
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import deadlines as casework_deadlines
from casework import service as casework_service
from casework import timeline as casework_timeline
from casework.lifecycle import CaseAction, CaseStatus, Stage, stage_of
from casework.models import Case, CaseEvent
from casework.rules import CaseRules
from evaluation import service as evaluation_service
from evaluation.models import StageFact
from gridcity.errors import InvalidInput
from gridcity.types import utcnow

A = CaseAction
STEP_NAMES = ("send_verify", "send_check", "close")
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
# Step limits (data)


@dataclass(frozen=True)
class StepLimits:
    """Limits of the untimed steps, per family (``working`` or ``elapsed``)."""

    working: Mapping[str, casework_deadlines.Limit]
    elapsed: Mapping[str, casework_deadlines.Limit]

    def family(self, working: bool) -> Mapping[str, casework_deadlines.Limit]:
        """The limits of one family."""
        return self.working if working else self.elapsed


def _parse_limits(doc: Mapping[str, Any], base: StepLimits | None) -> StepLimits:
    out: dict[str, dict[str, casework_deadlines.Limit]] = {}
    for fam in ("working", "elapsed"):
        table = doc.get(fam, {})
        if not isinstance(table, dict):
            raise InvalidInput(f"[{fam}] must be a table", code="evaluation.invalid_step_limits", loc=[fam])
        limits = dict(base.family(fam == "working")) if base else {}
        for name, raw in table.items():
            if name not in STEP_NAMES:
                raise InvalidInput(f"unknown step {name!r}", code="evaluation.invalid_step_limits",
                                   loc=[fam, name])
            try:
                value = float(raw["value"])
                unit = casework_deadlines.LimitUnit(raw["unit"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInput(f"{fam}.{name} must be {{value, unit}}", code="evaluation.invalid_step_limits",
                                   loc=[fam, name]) from exc
            if value < 0 or unit.counts_working_time != (fam == "working"):
                raise InvalidInput(f"{fam}.{name}: a non-negative {fam} limit is needed",
                                   code="evaluation.invalid_step_limits", loc=[fam, name])
            limits[name] = casework_deadlines.Limit(value, unit)
        missing = [n for n in STEP_NAMES if n not in limits]
        if missing:
            raise InvalidInput(f"[{fam}] lacks {', '.join(missing)}", code="evaluation.invalid_step_limits",
                               loc=[fam])
        out[fam] = limits
    return StepLimits(out["working"], out["elapsed"])


@lru_cache(maxsize=8)
@lru_cache(maxsize=8)
def load_step_limits(city_dir: Path | None = None) -> StepLimits:
    """The shipped step limits, overridden key by key by ``<city_dir>/step_limits.toml`` if present."""
    text = (resources.files("evaluation") / "data" / "step_limits.toml").read_text("utf-8")
    limits = _parse_limits(tomllib.loads(text), None)
    if city_dir is not None and (city_dir / "step_limits.toml").exists():
        limits = _parse_limits(tomllib.loads((city_dir / "step_limits.toml").read_text("utf-8")), limits)
    return limits


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


def _outcome(completed: dt.datetime | None, deadline: dt.datetime | None) -> tuple[dt.datetime | None, bool]:
    """(determination time, on time) of a run."""
    candidates = [t for t in (completed, deadline) if t is not None]
    determined = min(candidates) if candidates else None
    on_time = completed is not None and (deadline is None or completed <= deadline)
    return determined, on_time


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


def _overall_deadline(
    rules: CaseRules, steps: StepLimits, case: CaseInfo, events: Sequence[LoggedEvent], start: dt.datetime,
    end: dt.datetime | None, now: dt.datetime,
) -> tuple[dt.datetime | None, float]:
    cal = rules.calendar
    std = rules.standards.lookup(case.class_code, case.urgency)
    working = _family_is_working(rules, case)
    unit = casework_deadlines.LimitUnit.WORK_HOUR if working else casework_deadlines.LimitUnit.HOUR
    limits = [std.limit(s) for s in ("dispatch", "handle", "check")]
    limits += [steps.family(working)[s] for s in ("send_check", "close")]
    total = sum(casework_deadlines.limit_seconds(cal, lim.value, lim.unit) for lim in limits if lim is not None)
    ext = 0.0
    pauses: list[casework_deadlines.Pause] = []
    for ev in events:
        if ev.action is A.APPROVE_EXTENSION:
            e = ev.data.get("extension") or {}
            ext += casework_deadlines.convert_extension(cal, float(e.get("value", 0)), str(e.get("unit", "work_hour")),
                                                        stage_unit=unit)
        elif ev.action is A.APPROVE_SUSPENSION:
            pauses.append(casework_deadlines.Pause(ev.at, None))
        elif ev.action is A.RESUME and pauses and pauses[-1].end is None:
            pauses[-1] = casework_deadlines.Pause(pauses[-1].start, ev.at)
    clock = casework_deadlines.stage_clock(cal, start=start, value=total / 3600, unit=unit, now=now, pauses=pauses,
                                           extension_seconds=ext, end=end)
    return _utc(clock.deadline), clock.overdue_seconds


def build_facts(
    case: CaseInfo, events: Sequence[LoggedEvent], rules: CaseRules, steps: StepLimits, now: dt.datetime
) -> list[dict[str, Any]]:
    """All fact rows of one case (dicts of :class:`StageFact` columns), from its ordered log."""
    events = [e for e in events if not _is_note(e)]
    rows: list[dict[str, Any]] = []
    run_no: dict[str, int] = {}
    base = {"case_id": case.id, "grid_code": case.grid_code, "class_code": case.class_code}

    def add(stage: str, start: int, end: int | None, *, deadline: dt.datetime | None = None,
            completed: bool = False, overdue: float = 0.0, **extra: Any) -> None:
        run_no[stage] = run_no.get(stage, 0) + 1
        s, e = events[start], events[end] if end is not None else None
        completed_at = e.at if (e is not None and completed) else None
        determined, on_time = _outcome(_utc(completed_at), deadline)
        rows.append({
            **base, "stage": stage, "run_no": run_no[stage], "started_at": s.at,
            "start_action": s.action.value, "start_actor_id": s.actor_id,
            "ended_at": e.at if e else None, "end_action": e.action.value if e else None,
            "end_actor_id": e.actor_id if e else None, "completed_at": completed_at,
            "deadline_at": deadline, "determined_at": determined, "on_time": on_time,
            "overdue_seconds": overdue, "department_id": None, "assignee_id": None, "undone_at": None,
            "first_extension_at": None, "voided_at": None, "rework_at": None, "public_verified": False,
            **extra,
        })

    # When each dispatch was undone by an approved send-back (the first approve_sendback after it).
    undone: dict[int, dt.datetime] = {}
    for i, ev in enumerate(events):
        if ev.action is A.DISPATCH:
            nxt = next((x for x in events[i + 1:] if x.action is A.APPROVE_SENDBACK), None)
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
    for (stage, a, b), run in zip(bounds, runs, strict=True):
        clock = casework_service.run_clock(rules, case, run, now)  # type: ignore[arg-type]
        deadline = _utc(clock.deadline) if clock else None
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
        add(stage.value, a, b, deadline=deadline, completed=completed,
            overdue=clock.overdue_seconds if clock else 0.0, **extra)

    # Pseudo-stages for the untimed steps.
    working = _family_is_working(rules, case)
    for i, ev in enumerate(events):
        step = _STEP_START.get(ev.action)
        if step is None:
            continue
        lim = steps.family(working)[step]
        end = i + 1 if i + 1 < len(events) else None
        ended_at = events[end].at if end is not None else None
        clock = casework_deadlines.stage_clock(rules.calendar, start=ev.at, value=lim.value, unit=lim.unit,
                                               now=now, end=ended_at)
        add(step, i, end, deadline=_utc(clock.deadline),
            completed=end is not None and events[end].action is _STEP_DONE[step], overdue=clock.overdue_seconds)

    # The inspector's report, from creation to its filing decision (untimed).
    if events and events[0].action in (A.REPORT, A.SELF_HANDLE):
        d = next((i for i, x in enumerate(events) if x.action in (A.FILE, A.VOID, A.APPROVE_SELF_HANDLED)), None)
        add("report", 0, d, completed=d is not None and events[d].action is not A.VOID,
            voided_at=next((x.at for x in events if x.action is A.VOID), None))
        rows[-1]["determined_at"] = rows[-1]["ended_at"]  # counted when decided, whatever the decision

    # The whole filed case against its overall deadline.
    first_file = next((i for i, x in enumerate(events) if x.action is A.FILE), None)
    if first_file is not None:
        close = next((i for i, x in enumerate(events) if x.action is A.CLOSE), None)
        start = events[first_file].at
        deadline, overdue = _overall_deadline(rules, steps, case, events, start,
                                              events[close].at if close is not None else None, now)
        later = events[first_file + 1:]
        effective = None
        for x in events:
            if x.action is A.DISPATCH:
                effective = x.department_id
            elif x.action is A.APPROVE_SENDBACK:
                effective = None
        add("case", first_file, close, deadline=deadline, completed=close is not None, overdue=overdue,
            department_id=effective,
            voided_at=next((x.at for x in later if x.action is A.VOID), None),
            rework_at=next((x.at for x in events if x.action is A.CHECK_FAIL), None),
            public_verified=events[0].action is A.PUBLIC_REPORT
            and any(x.action is A.VERIFY_TRUE for x in events[:first_file]))
    return rows


# --------------------------------------------------------------------------------------------------------
# Database side


def _load_events(session: Session, case_ids: Sequence[int]) -> dict[int, list[LoggedEvent]]:
    out: dict[int, list[LoggedEvent]] = {cid: [] for cid in case_ids}
    rows = session.execute(
        select(CaseEvent.case_id, CaseEvent.action, CaseEvent.from_status, CaseEvent.to_status, CaseEvent.at,
               CaseEvent.actor_id, CaseEvent.department_id, CaseEvent.data)
        .where(CaseEvent.case_id.in_(case_ids))
        .order_by(CaseEvent.case_id, CaseEvent.seq)
    ).all()
    for r in rows:
        out[r.case_id].append(LoggedEvent(r.action, r.from_status, r.to_status, r.at, r.actor_id,
                                          r.department_id, r.data or {}))
    return out


_REF_TIMES = ("started_at", "determined_at", "ended_at")  # every family's ref_at is one of these


def _write(session: Session, case_ids: Sequence[int], rows: Iterable[dict[str, Any]],
           event_times: Sequence[dt.datetime] | None = None) -> int:
    batch = list(rows)
    if event_times is not None:
        # The rollup days these cases touch: where their old and new rows and their events are counted.
        old = session.execute(select(StageFact.started_at, StageFact.determined_at, StageFact.ended_at)
                              .where(StageFact.case_id.in_(case_ids))).all()
        times = [t for r in old for t in r] + [r[k] for r in batch for k in _REF_TIMES] + list(event_times)
        evaluation_service.mark_rollup_dirty(session, times, max(event_times, default=None))
    session.execute(sa.delete(StageFact).where(StageFact.case_id.in_(case_ids)))
    if batch:
        session.execute(sa.insert(StageFact), batch)
    return len(batch)


def refresh_cases(
    session: Session, *, case_ids: Sequence[int], rules: CaseRules, steps: StepLimits | None = None,
    now: dt.datetime | None = None, mark_rollup: bool = True,
) -> int:
    """Recompute the fact rows of these cases from their logs; returns the number of rows written.

    ``mark_rollup``: mark the rollup days the change touches stale (off for a full rebuild, which rebuilds the
    rollup afterwards)."""
    steps = steps or load_step_limits(rules.city_dir)
    now = now or utcnow()
    cases = session.execute(
        select(Case.id, Case.class_code, Case.urgency, Case.grid_code).where(Case.id.in_(case_ids))
    ).all()
    logs = _load_events(session, [c.id for c in cases])
    rows: list[dict[str, Any]] = []
    for c in cases:
        rows += build_facts(CaseInfo(c.id, c.class_code, c.urgency, c.grid_code), logs[c.id], rules, steps, now)
    times = [e.at for c in cases for e in logs[c.id]] if mark_rollup else None
    return _write(session, list(case_ids), rows, times)


def on_change(session: Session, change: casework_service.CaseChange, pipeline: Any) -> None:
    """Case pipeline subscriber: keep the case's facts in step with its log (same transaction)."""
    session.flush()
    refresh_cases(session, case_ids=[change.case.id], rules=change.rules, now=change.event.at)


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
