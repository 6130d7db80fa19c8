"""Evaluation services: periods, counting primitives as SQL aggregates, rankings, evidence, publications.

Every primitive of :data:`evaluation.primitives.PRIMITIVES` is counted inside the database: each *family* of
primitives is one select over ``stage_fact`` (or ``case_event``) that yields one row per counted item with a
0/1 column per primitive and a ``subject`` column (the attribution); the counts are ``SUM`` of those columns
``GROUP BY subject``, and the drill-down evidence is the same select filtered on one subject and one
primitive. So a number and its evidence can never disagree, and no case is loaded into Python to count it.

A period is ``[start, end)`` in the city's local time and is evaluated *as of* ``end`` (scoring's
conventions): an event logged at or after ``end`` does not exist for the period.

Fairness rules (peers.md lesson 4, the issue):
* a department is judged only on its *effective* dispatch (the latest 派遣 not undone by an approved 回退
  before the as-of time); a send-back (mis-dispatch) counts against the dispatcher's 准确派遣 instead;
* suspended (挂账) time never counts as overdue time: the deadlines come from the run clocks, which exclude it;
* voided and merged cases count only where a primitive's definition says so (see :mod:`evaluation.facts`);
* subjects below the indicator set's minimum sample are flagged ``insufficient_data`` and ranked last.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from casework.models import Case, CaseEvent
from components import service as components_service
from components.models import Area, Grid, SupervisionArea, SupervisionGrid, SupervisionHistory
from evaluation import indicator_loader, indicators, primitives, scoring
from evaluation.models import Publication, PublishedResult, RollupCount, RollupDirty, RollupState, StageFact
from gridcity import spatial
from gridcity.database import is_read_only, write_unit_beside
from gridcity.errors import Conflict, InvalidInput, NotFound
from gridcity.org import Department, User
from gridcity.roles import Role
from gridcity.types import MAX_DATE, MIN_DATE, utcnow

DEFAULT_TZ = "Asia/Shanghai"
MAX_RANGE_DAYS = 366
REGION_LEVELS: Mapping[str, int] = {"grid": 15, "community": 12, "street": 9, "district": 6}
POSITION_TYPES: Mapping[str, Role] = {
    "inspector": Role.INSPECTOR,
    "acceptor": Role.ACCEPTOR,
    "shift_leader": Role.SHIFT_LEADER,
    "dispatcher": Role.DISPATCHER,
}
SUBJECT_TYPES: tuple[str, ...] = ("department", *REGION_LEVELS, *POSITION_TYPES)
"""Subject types of the API: departments, the four region levels, the four positions."""

FLAG_NO_PATROL_DATA = "no_patrol_data"
FLAG_NAMES_ZH = {"insufficient_data": "样本不足", FLAG_NO_PATROL_DATA: "无巡查数据"}


# --------------------------------------------------------------------------------------------------------
# Periods


@dataclass(frozen=True)
class Period:
    """An evaluation period ``[start, end)``; ``start``/``end`` are UTC instants of local midnights."""

    label: str
    kind: str  # month | quarter | year | week | range
    first_day: dt.date
    last_day: dt.date  # inclusive
    start: dt.datetime
    end: dt.datetime
    # The as-of time of the computation: ``end`` (the default), or later for the rollup (see refresh_rollup).
    as_of: dt.datetime | None = None

    @property
    def t1(self) -> dt.datetime:
        """The as-of time: only events logged before it exist for the computation."""
        return self.as_of or self.end


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$", re.IGNORECASE)
_YEAR = re.compile(r"^(\d{4})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$", re.IGNORECASE)
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


def _bad_period(text: str) -> InvalidInput:
    return InvalidInput(
        f"无法识别的评价周期 {text!r}（可用格式：2026-10、2026-Q4、2026、2026-W43、2026-10-01..2026-10-15）",
        code="evaluation.bad_period", loc=["period"],
    )


def _add_months(d: dt.date, n: int) -> dt.date:
    y, m = divmod(d.month - 1 + n, 12)
    return dt.date(d.year + y, m + 1, 1)


def parse_period(text: str, *, tz: str = DEFAULT_TZ) -> Period:
    """Parse ``2026-10`` | ``2026-Q4`` | ``2026`` | ``2026-W43`` | ``2026-10-01..2026-10-15`` (inclusive).

    Raises:
        InvalidInput: ``evaluation.bad_period``, ``evaluation.end_before_start``,
            ``evaluation.range_too_long`` (more than 366 days).
    """
    raw = (text or "").strip()
    try:
        if m := _MONTH.match(raw):
            first = dt.date(int(m[1]), int(m[2]), 1)
            kind, last, label = "month", _add_months(first, 1) - dt.timedelta(days=1), f"{first:%Y-%m}"
        elif m := _QUARTER.match(raw):
            first = dt.date(int(m[1]), 3 * int(m[2]) - 2, 1)
            kind, last, label = "quarter", _add_months(first, 3) - dt.timedelta(days=1), f"{m[1]}-Q{m[2]}"
        elif m := _YEAR.match(raw):
            first = dt.date(int(m[1]), 1, 1)
            kind, last, label = "year", dt.date(first.year, 12, 31), m[1]
        elif m := _WEEK.match(raw):
            first = dt.date.fromisocalendar(int(m[1]), int(m[2]), 1)
            kind, last, label = "week", first + dt.timedelta(days=6), f"{m[1]}-W{int(m[2]):02d}"
        elif m := _RANGE.match(raw):
            first, last = dt.date.fromisoformat(m[1]), dt.date.fromisoformat(m[2])
            kind, label = "range", f"{first.isoformat()}..{last.isoformat()}"
        else:
            raise _bad_period(raw)
    except (ValueError, OverflowError):
        raise _bad_period(raw) from None
    if not (MIN_DATE <= first and last <= MAX_DATE):  # year 1 or 9999 would overflow the zone conversion
        raise _bad_period(raw)
    if last < first:
        raise InvalidInput(f"评价周期的结束日期 {last} 早于开始日期 {first}", code="evaluation.end_before_start",
                           loc=["period"])
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(f"评价周期 {label} 超过 {MAX_RANGE_DAYS} 天", code="evaluation.range_too_long",
                           loc=["period"])
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(first, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.UTC)
    return Period(label, kind, first, last, start, end)


# --------------------------------------------------------------------------------------------------------
# Subject types


def check_subject_type(subject_type: str) -> primitives.SubjectType:
    """The scoring subject type of an API subject type.

    Raises:
        InvalidInput: ``evaluation.unknown_subject_type``.
    """
    if subject_type in REGION_LEVELS:
        return primitives.SubjectType.REGION
    if subject_type == "department":
        return primitives.SubjectType.DEPARTMENT
    if subject_type in POSITION_TYPES:
        return primitives.SubjectType(subject_type)
    raise InvalidInput(f"未知的评价对象类型 {subject_type!r}（可用：{', '.join(SUBJECT_TYPES)}）",
                       code="evaluation.unknown_subject_type", loc=["subject_type"])


def indicator_set_for(period: Period, version: str | None, city_dir: Path | None = None) -> indicators.IndicatorSet:
    """The requested indicator set, or the one in effect at the period's start (with the city's own sets
    from ``city_dir``, see :func:`evaluation.indicator_loader.city_registry`).

    Raises:
        InvalidInput: ``evaluation.unknown_version`` / ``evaluation.no_version_in_effect``.
    """
    registry = indicator_loader.city_registry(city_dir)
    return registry.get(version) if version else registry.in_effect(period.first_day)


# --------------------------------------------------------------------------------------------------------
# Primitive families: one select per family, a 0/1 column per primitive


@dataclass(frozen=True)
class Family:
    """Rows of counted items: columns ``subject, case_id, ref_at, deadline_at, completed_at, overdue_seconds``
    plus one 0/1 column per primitive in ``primitives``."""

    name: str
    primitives: tuple[str, ...]
    rows: sa.Select[Any]
    # False when the attribution joins mutable reference data (supervision areas): never rolled up.
    rollup: bool = True
    # Distinct-case families (one primitive, counted once per subject and case in the period): the pairs of
    # the period that also occurred earlier, with columns ``subject, case_id, prev_at`` (the latest earlier
    # occurrence before the period's start); what the rollup needs to stay exact (see RollupCount).
    repeats: sa.Select[Any] | None = None
    # The period's bounds for the bound parameters of ``rows`` / ``repeats`` (the statements are built once
    # per subject type and reused: building them costs far more than running them for one day).
    params: Mapping[str, Any] = field(default_factory=dict)


def _flag(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.case((cond, 1), else_=0)


def _in(col: Any, p: Period) -> sa.ColumnElement[bool]:
    return sa.and_(col >= p.start, col < p.end)


def _before(col: Any, t: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(col.is_not(None), col < t)


def _not_before(col: Any, t: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.or_(col.is_(None), col >= t)


def _effective_dispatch(case_id: Any, as_of: dt.datetime) -> tuple[Any, sa.ColumnElement[bool]]:
    """The handle run of the case's effective dispatch as of ``as_of`` (at most one per case: every earlier
    dispatch was undone by the send-back that allowed the next one)."""
    h = aliased(StageFact, name="eff")
    on = sa.and_(h.case_id == case_id, h.stage == "handle", h.start_action == "dispatch",
                 h.started_at < as_of, _not_before(h.undone_at, as_of))
    return h, on


def _fact_rows(f: Any, subject: Any, ref_at: Any, flags: Mapping[str, sa.ColumnElement[bool]]) -> sa.Select[Any]:
    return select(
        subject.label("subject"), f.case_id.label("case_id"), ref_at.label("ref_at"),
        f.deadline_at.label("deadline_at"), f.completed_at.label("completed_at"),
        f.overdue_seconds.label("overdue_seconds"), f.id.label("fact_id"),
        *(_flag(c).label(name) for name, c in flags.items()),
    )


def _region_subject(f: Any, level: str) -> Any:
    return sa.func.substr(f.grid_code, 1, REGION_LEVELS[level])


def _case_families(subject_type: str, p: Period) -> list[Family]:
    """立案 / 作废 / 监督举报核实 / 漏报 (by first 立案) and 应结案 / 结案 / 按期结案 / 返工 (by determination)."""
    t1 = p.t1
    f = aliased(StageFact, name="f")
    not_voided = _not_before(f.voided_at, t1)
    filed_flags: dict[str, sa.ColumnElement[bool]] = {
        "filed": not_voided,
        "voided": _before(f.voided_at, t1),
    }
    close_flags: dict[str, sa.ColumnElement[bool]] = {
        "should_close": sa.true(),
        "closed": _before(f.completed_at, t1),
        "closed_on_time": f.on_time,
        "rework": _before(f.rework_at, t1),
    }
    if subject_type in REGION_LEVELS:
        filed_flags["public_verified"] = sa.and_(not_voided, f.public_verified)
    if subject_type == "inspector":
        filed_flags["missed"] = sa.and_(not_voided, f.public_verified)

    if subject_type in REGION_LEVELS:
        subject: Any = _region_subject(f, subject_type)
    elif subject_type == "department":
        h, on = _effective_dispatch(f.case_id, t1)
        subject = h.department_id
    elif subject_type == "inspector":
        # The inspector responsible for the grid at the first 立案 (supervision-area history, then today's).
        hist = aliased(SupervisionHistory, name="hist")
        subject = sa.case((hist.id.is_not(None), hist.inspector_id), else_=SupervisionArea.inspector_id)
    elif subject_type == "shift_leader":
        subject = f.start_actor_id
    else:
        return []

    def joined(q: sa.Select[Any]) -> sa.Select[Any]:
        if subject_type in REGION_LEVELS:
            return q.where(f.grid_code.is_not(None))
        if subject_type == "department":
            return q.join(h, on)
        if subject_type == "inspector":
            covering = sa.and_(hist.grid_code == f.grid_code,
                               sa.or_(hist.valid_from.is_(None), hist.valid_from <= f.started_at),
                               hist.valid_to > f.started_at)
            return (q.outerjoin(hist, covering)
                    .outerjoin(SupervisionGrid, sa.and_(hist.id.is_(None), SupervisionGrid.grid_code == f.grid_code))
                    .outerjoin(SupervisionArea, SupervisionArea.id == SupervisionGrid.supervision_area_id)
                    .where(subject.is_not(None)))
        return q

    q1 = joined(_fact_rows(f, subject, f.started_at, filed_flags))
    q2 = joined(_fact_rows(f, subject, f.determined_at, close_flags))
    out: list[Family] = []
    out.append(Family("case_filed", tuple(filed_flags),
                      q1.where(f.stage == "case", _in(f.started_at, p)), rollup=subject_type != "inspector"))
    if subject_type in REGION_LEVELS or subject_type == "department":
        out.append(Family("case_close", tuple(close_flags),
                          q2.where(f.stage == "case", _in(f.determined_at, p), not_voided)))
    return out


def _task_family(name: str, stage: str, subject_col: str, p: Period, flags: Mapping[str, Any],
                 *, by_sender: bool) -> Family:
    """Runs of a timed step determined in the period; ``by_sender``: counted only once sent (attribution =
    who completed it, so unsent overdue runs are attributed to nobody)."""
    f = aliased(StageFact, name="f")
    built = {k: v(f) if callable(v) else v for k, v in flags.items()}
    q = _fact_rows(f, getattr(f, subject_col), f.determined_at, built).where(
        f.stage == stage, _in(f.determined_at, p), getattr(f, subject_col).is_not(None))
    if by_sender:
        q = q.where(f.end_action == _SENDER_ACTION[stage], _before(f.ended_at, p.t1))
    return Family(name, tuple(built), q)


_SENDER_ACTION = {"send_verify": "send_verify", "send_check": "send_check", "close": "close",
                  "dispatch": "dispatch"}


def _event_family(name: str, action: str, primitive: str, p: Period, *, distinct_cases: bool,
                  subject_type: str) -> Family | None:
    e = aliased(CaseEvent, name="e")
    prev = aliased(CaseEvent, name="prev")
    prev_on = sa.and_(prev.case_id == e.case_id, prev.action == action, prev.at < p.start)
    if subject_type == "department":
        h, on = _effective_dispatch(e.case_id, p.t1)
        subject: Any = h.department_id
        q = select(subject.label("subject"), e.case_id.label("case_id"), sa.func.min(e.at).label("ref_at")).join(
            h, on)
        rep = select(subject.label("subject"), e.case_id.label("case_id"), sa.func.max(prev.at).label("prev_at")
                     ).join(h, on).join(prev, prev_on)
    else:
        # Posts as they were at the time: the role recorded on the event, not the user's role today.
        subject = sa.case((e.actor_role == POSITION_TYPES[subject_type], e.actor_id), else_=None)
        q = select(subject.label("subject"), e.case_id.label("case_id"), sa.func.min(e.at).label("ref_at"))
        rep = select(subject.label("subject"), e.case_id.label("case_id"), sa.func.max(prev.at).label("prev_at")
                     ).join(prev, sa.and_(prev_on, prev.actor_id == e.actor_id))
    q = q.where(e.action == action, _in(e.at, p), subject.is_not(None))
    repeats = None
    if distinct_cases:
        q = q.group_by(subject, e.case_id)
        repeats = rep.where(e.action == action, _in(e.at, p), subject.is_not(None)).group_by(subject, e.case_id)
    else:
        q = q.group_by(subject, e.case_id, e.id)
    null_ts = sa.null().cast(sa.DateTime)
    inner = q.subquery(f"{name}_inner")
    rows = select(inner.c.subject, inner.c.case_id, inner.c.ref_at, null_ts.label("deadline_at"),
                  null_ts.label("completed_at"), sa.literal(0.0).label("overdue_seconds"),
                  sa.null().cast(sa.Integer).label("fact_id"), sa.literal(1).label(primitive))
    return Family(name, (primitive,), rows, repeats=repeats)


@dataclass(frozen=True)
class _Bounds:
    """Stand-in for a period inside the family statements: its bounds as bound parameters."""

    start: Any
    end: Any
    t1: Any


_BOUNDS = _Bounds(sa.bindparam("p_start"), sa.bindparam("p_end"), sa.bindparam("p_t1"))


def families(subject_type: str, p: Period) -> list[Family]:
    """The primitive families counted for one API subject type in one period (each with its parameters)."""
    check_subject_type(subject_type)
    params = {"p_start": p.start, "p_end": p.end, "p_t1": p.t1}
    return [dataclasses.replace(fam, params=params) for fam in _family_templates(subject_type)]


@lru_cache(maxsize=32)
def _family_templates(subject_type: str) -> tuple[Family, ...]:
    return tuple(_build_families(subject_type, _BOUNDS))  # type: ignore[arg-type]


def _build_families(subject_type: str, p: Period) -> list[Family]:
    t1 = p.t1
    out = _case_families(subject_type, p)
    if subject_type == "department":
        f = aliased(StageFact, name="f")
        flags = {
            "should_handle": sa.true(),
            "handled": _before(f.completed_at, t1),
            "handled_on_time": f.on_time,
            "overdue_handled": sa.and_(_before(f.completed_at, t1), sa.not_(f.on_time)),
            "overdue_unhandled": _not_before(f.completed_at, t1),
            "extended": _before(f.first_extension_at, t1),
        }
        q = _fact_rows(f, f.department_id, f.determined_at, flags).where(
            f.stage == "task", f.start_action == "dispatch", _in(f.determined_at, p),
            _not_before(f.undone_at, t1), f.department_id.is_not(None))
        out.append(Family("handle", tuple(flags), q))
        fam = _event_family("suspended", "approve_suspension", "suspended", p, distinct_cases=True,
                            subject_type="department")
        if fam:
            out.append(fam)
    elif subject_type == "inspector":
        f = aliased(StageFact, name="f")
        rflags = {"reported": sa.true(),
                  "valid_reported": sa.and_(f.completed_at.is_not(None), _not_before(f.voided_at, t1))}
        q = _fact_rows(f, f.start_actor_id, f.ended_at, rflags).where(
            f.stage == "report", f.start_action.in_(("report", "self_handle")), _in(f.ended_at, p),
            f.start_actor_id.is_not(None))
        out.append(Family("report", tuple(rflags), q))
        out.append(_task_family("verify", "verify", "assignee_id", p,
                                {"should_verify": sa.true(), "verified_on_time": lambda f: f.on_time},
                                by_sender=False))
        out.append(_task_family("check", "check", "assignee_id", p,
                                {"should_check": sa.true(), "checked_on_time": lambda f: f.on_time},
                                by_sender=False))
    elif subject_type == "acceptor":
        fam = _event_family("accepted", "public_report", "accepted", p, distinct_cases=False, subject_type="acceptor")
        if fam:
            out.append(fam)
        out.append(_task_family("send_verify", "send_verify", "end_actor_id", p,
                                {"verify_dispatch_due": sa.true(), "verify_dispatch_on_time": lambda f: f.on_time},
                                by_sender=True))
        out.append(_task_family("send_check", "send_check", "end_actor_id", p,
                                {"check_dispatch_due": sa.true(), "check_dispatch_on_time": lambda f: f.on_time},
                                by_sender=True))
    elif subject_type == "shift_leader":
        f = aliased(StageFact, name="f")
        q = _fact_rows(f, f.end_actor_id, f.ended_at, {"filed_on_time": f.on_time}).where(
            f.stage == "file", f.end_action == "file", _in(f.ended_at, p), f.end_actor_id.is_not(None))
        out.append(Family("file", ("filed_on_time",), q))
        out.append(_task_family("close", "close", "end_actor_id", p,
                                {"close_task_due": sa.true(), "close_task_on_time": lambda f: f.on_time},
                                by_sender=True))
    elif subject_type == "dispatcher":
        out = []
        fam = _event_family("dispatched", "dispatch", "dispatched", p, distinct_cases=True,
                            subject_type="dispatcher")
        if fam:
            out.append(fam)
        out.append(_task_family(
            "dispatch", "dispatch", "end_actor_id", p,
            {"should_dispatch": sa.true(), "dispatched_on_time": lambda f: f.on_time,
             "dispatched_accurately": lambda f: _not_before(f.undone_at, t1)},
            by_sender=True))
    return out


@lru_cache(maxsize=16)
def primitive_names(subject_type: str) -> tuple[str, ...]:
    """Every primitive counted for a subject type (the scoring needs plus informational extras)."""
    p = parse_period("2026-01")
    names = [n for fam in families(subject_type, p) for n in fam.primitives]
    if subject_type == "inspector":
        names.append("patrol_coverage")
    return tuple(dict.fromkeys(names))


def _count_family(session: Session, fam: Family, out: dict[str, dict[str, int]]) -> None:
    sq = fam.rows.subquery(fam.name)
    q = select(sq.c.subject, *(sa.func.sum(sq.c[name]).label(name) for name in fam.primitives)).group_by(
        sq.c.subject)
    for row in session.execute(q, dict(fam.params)):
        counts = out.setdefault(str(row.subject), {})
        for name in fam.primitives:
            counts[name] = counts.get(name, 0) + int(getattr(row, name) or 0)


def count_primitives(session: Session, *, period: Period, subject_type: str) -> dict[str, dict[str, int]]:
    """Counts per subject id (as text) for every primitive of the subject type, by SQL aggregates over the
    raw facts (the exact path: any period, as of its end)."""
    out: dict[str, dict[str, int]] = {}
    for fam in families(subject_type, period):
        _count_family(session, fam, out)
    return out


# --------------------------------------------------------------------------------------------------------
# Daily rollup (G-S1)
#
# ``eval_rollup`` holds, per subject type, family, subject and *local day*, the family's counts of the items
# whose reference time (the ``ref_at`` of the family's rows) falls on that day, computed as of the current
# log (``as_of`` = far future). Summing the days of a period therefore gives exactly the raw computation
# when nothing happened at or after the period's end (the as-of conditions then see the same events):
# ``rollup_is_exact``. That holds for the running month / quarter / year of a dashboard; a period that is
# over and has later events (audit of last year, publication) is computed raw, which is always exact.
#
# Freshness: ``evaluation.facts`` marks the local days touched by a case's old and new fact rows and its
# events dirty (same transaction as the action); the next rollup read refreshes the dirty days first, one
# set-based ``INSERT .. SELECT .. GROUP BY`` per family and subject type. A database whose rollup was never
# built (or whose facts were bulk-loaded) is rebuilt in full on first read or by ``rebuild_rollup``.

ROLLUP_SLOTS = 6
FAR_FUTURE = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)
_ROLLUP_LOCK_KEY = 0x67637275  # pg_advisory_xact_lock key: one rollup writer at a time
_SLOTS = ("n1", "n2", "n3", "n4", "n5", "n6")


def _lock_rollup(session: Session) -> None:
    spatial.transaction_lock(session, _ROLLUP_LOCK_KEY)


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)


def _day_expr(session: Session, col: Any, offset_s: int) -> Any:
    """The local date of a UTC timestamp column under a fixed UTC offset, in SQL."""
    return spatial.local_date(session, col, offset_s)


_ROLLUP_STATEMENTS: dict[tuple[str, str], tuple[Any, Any]] = {}


def _insert_family(session: Session, st: str, fam: Family, day: Any) -> None:
    """One family's rollup rows: ``day`` is a literal date (single-day refresh) or a day expression.

    The single-day statements are built once per subject type and family (the day is a bound parameter):
    building and keying a statement of this size costs more than running it over one day."""
    if callable(day):
        _insert_family_statements(st, fam, day, session)
        return
    key = (st, fam.name)
    if key not in _ROLLUP_STATEMENTS:
        _ROLLUP_STATEMENTS[key] = _family_inserts(st, fam, sa.bindparam("r_day", type_=sa.Date))
    main, repeats = _ROLLUP_STATEMENTS[key]
    params = {**fam.params, "r_day": day}
    session.execute(main, params)
    if repeats is not None:
        session.execute(repeats, params)


def _family_inserts(st: str, fam: Family, day: Any) -> tuple[Any, Any]:
    """The INSERT .. SELECT statements of one family's rows (and its repeat corrections) for one day."""
    sq = fam.rows.subquery(fam.name)
    sums = [sa.func.sum(sq.c[name]) for name in fam.primitives]
    sums += [sa.literal(0)] * (ROLLUP_SLOTS - len(sums))
    sel = (select(sa.literal(st), day, sa.literal(fam.name), sa.cast(sq.c.subject, sa.String), *sums)
           .where(sq.c.subject.is_not(None)).group_by(sq.c.subject))
    cols = ["subject_type", "day", "family", "subject_id", *_SLOTS]
    main = sa.insert(RollupCount.__table__).from_select(cols, sel)
    repeats = None
    if fam.repeats is not None:
        rq = fam.repeats.subquery(f"{fam.name}_repeats")
        rsel = (select(sa.literal(st), day, sa.literal(fam.name), sa.cast(rq.c.subject, sa.String), rq.c.prev_at,
                       -sa.func.count(), *[sa.literal(0)] * (ROLLUP_SLOTS - 1))
                .where(rq.c.subject.is_not(None)).group_by(rq.c.subject, rq.c.prev_at))
        repeats = sa.insert(RollupCount.__table__).from_select(
            ["subject_type", "day", "family", "subject_id", "since_at", *_SLOTS], rsel)
    return main, repeats


def _insert_family_statements(st: str, fam: Family, day: Any, session: Session) -> None:
    """A multi-day refresh: ``day`` maps the reference time to its local date in SQL."""
    assert fam.repeats is None, "distinct-case families are refreshed day by day"
    sq = fam.rows.subquery(fam.name)
    day_col = day(sq.c.ref_at)
    sums = [sa.func.sum(sq.c[name]) for name in fam.primitives]
    sums += [sa.literal(0)] * (ROLLUP_SLOTS - len(sums))
    sel = (select(sa.literal(st), day_col, sa.literal(fam.name), sa.cast(sq.c.subject, sa.String), *sums)
           .where(sq.c.subject.is_not(None)).group_by(sq.c.subject, day_col))
    cols = ["subject_type", "day", "family", "subject_id", *_SLOTS]
    session.execute(sa.insert(RollupCount.__table__).from_select(cols, sel), dict(fam.params))


def _day_period(first: dt.date, last: dt.date, zone: ZoneInfo) -> Period:
    start, end = _local_midnight(first, zone), _local_midnight(last + dt.timedelta(days=1), zone)
    return Period(f"{first}..{last}", "range", first, last, start, end, as_of=FAR_FUTURE)


def _insert_days(session: Session, first: dt.date, last: dt.date, zone: ZoneInfo, offset_s: int | None) -> None:
    """Rewrite the rollup rows of ``[first, last]``: one ``INSERT .. SELECT .. GROUP BY subject, day`` per
    family and subject type. ``offset_s`` is the zone's constant UTC offset over the range (None for a single
    day, whose date is then a literal). Distinct-case families are not additive within a statement's range,
    so a multi-day refresh runs them day by day."""
    session.execute(sa.delete(RollupCount).where(RollupCount.day >= first, RollupCount.day <= last))
    p = _day_period(first, last, zone)
    for st in SUBJECT_TYPES:
        for fam in families(st, p):
            if not fam.rollup or (fam.repeats is not None and first != last):
                continue
            if first == last:
                _insert_family(session, st, fam, first)
            else:
                off = offset_s or 0
                _insert_family(session, st, fam, lambda col, off=off: _day_expr(session, col, off))
    if first == last:
        return
    distinct_types = [st for st in SUBJECT_TYPES if any(f.repeats is not None for f in families(st, p))]
    for k in range((last - first).days + 1):
        day = first + dt.timedelta(days=k)
        for st in distinct_types:
            for fam in families(st, _day_period(day, day, zone)):
                if fam.rollup and fam.repeats is not None:
                    _insert_family(session, st, fam, day)


def refresh_rollup_days(session: Session, days: Sequence[dt.date], *, tz: str = DEFAULT_TZ) -> None:
    """Recompute the rollup rows of these local days from the facts (runs of days share statements)."""
    zone = ZoneInfo(tz)
    todo = sorted(set(days))
    i = 0
    while i < len(todo):
        first = todo[i]
        off = _local_midnight(first, zone) - dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
        j = i
        # Extend the run while days are consecutive and the zone's offset stays the same (no DST change).
        while (j + 1 < len(todo) and todo[j + 1] == todo[j] + dt.timedelta(days=1)
               and _local_midnight(todo[j + 1] + dt.timedelta(days=1), zone)
               - dt.datetime.combine(todo[j + 1] + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) == off):
            j += 1
        single = i == j
        _insert_days(session, first, todo[j], zone, None if single else -int(off.total_seconds()))
        i = j + 1


def rebuild_rollup(session: Session, *, tz: str = DEFAULT_TZ) -> int:
    """Rebuild the whole rollup from the facts and the log; returns the number of rollup rows."""
    _lock_rollup(session)
    zone = ZoneInfo(tz)
    session.execute(sa.delete(RollupDirty))
    session.execute(sa.delete(RollupCount))
    lo, hi = session.execute(select(sa.func.min(StageFact.started_at), sa.func.max(StageFact.determined_at))).one()
    ev_lo, ev_hi = session.execute(select(sa.func.min(CaseEvent.at), sa.func.max(CaseEvent.at))).one()
    ends = session.scalar(select(sa.func.max(StageFact.ended_at)))
    times = [t for t in (lo, hi, ev_lo, ev_hi, ends) if t is not None]
    if times:
        first = min(times).astimezone(zone).date()
        last = max(times).astimezone(zone).date()
        refresh_rollup_days(session, [first + dt.timedelta(days=k) for k in range((last - first).days + 1)], tz=tz)
    state = session.get(RollupState, 1) or RollupState(id=1)
    state.latest_event_at = ev_hi
    state.rebuilt_at = utcnow()
    state.tz = tz
    session.add(state)
    session.flush()
    return int(session.scalar(select(sa.func.count()).select_from(RollupCount)) or 0)


def ensure_rollup(session: Session, *, tz: str = DEFAULT_TZ) -> RollupState:
    """Bring the rollup up to date: a full build if it was never built, else refresh the dirty days.

    In a read unit (a GET request, see ``gridcity.database``) the refresh runs in a write unit of its own:
    the read is ended first (nothing to commit; its connection goes back to the pool), the refresh commits,
    and the caller's session then reads on a fresh snapshot that includes it.
    """
    state = session.get(RollupState, 1)
    if state is not None and state.tz == tz and session.scalar(select(RollupDirty.id).limit(1)) is None:
        return state
    if is_read_only(session):
        session.commit()
        with write_unit_beside(session) as ws, ws.begin():
            ensure_rollup(ws, tz=tz)
        fresh = session.get(RollupState, 1, populate_existing=True)
        assert fresh is not None
        return fresh
    _lock_rollup(session)
    state = session.get(RollupState, 1)
    if state is None or state.tz != tz:  # never built, or built on another zone's days
        rebuild_rollup(session, tz=tz)
        state = session.get(RollupState, 1)
        assert state is not None
        return state
    claimed = session.execute(sa.delete(RollupDirty).returning(RollupDirty.day, RollupDirty.latest_event_at)).all()
    if claimed:
        refresh_rollup_days(session, [r.day for r in claimed], tz=tz)
        latest = [t for t in [state.latest_event_at, *(r.latest_event_at for r in claimed)] if t is not None]
        state.latest_event_at = max(latest) if latest else None
        session.flush()
    return state


def mark_rollup_dirty(session: Session, times: Sequence[dt.datetime | None], latest_event_at: dt.datetime | None
                      ) -> None:
    """Mark the local days (in the rollup's zone) of these reference times stale (no-op while the rollup was
    never built)."""
    state = session.get(RollupState, 1)
    if state is None:
        return
    zone = ZoneInfo(state.tz)
    days = sorted({t.astimezone(zone).date() for t in times if t is not None})
    if days:
        session.execute(sa.insert(RollupDirty), [{"day": d, "latest_event_at": latest_event_at} for d in days])


def rollup_is_exact(state: RollupState | None, period: Period) -> bool:
    """Whether the rollup sums equal the raw computation for the period (built, and no event at or after
    the period's end)."""
    if state is None or state.rebuilt_at is None or period.as_of is not None:
        return False
    return state.latest_event_at is None or state.latest_event_at < period.end


def count_primitives_rollup(session: Session, *, period: Period, subject_type: str) -> dict[str, dict[str, int]]:
    """The counts of :func:`count_primitives` summed from the daily rollup (families that are not rolled up
    are counted raw). Equal to the raw counts when :func:`rollup_is_exact`; the caller checks."""
    out: dict[str, dict[str, int]] = {}
    # As of the current log, like the rollup rows (also for the families counted raw here).
    fams = {fam.name: fam for fam in families(subject_type, dataclasses.replace(period, as_of=FAR_FUTURE))}
    r = RollupCount
    q = (select(r.family, r.subject_id, *(sa.func.sum(getattr(r, n)).label(n) for n in _SLOTS))
         .where(r.subject_type == subject_type, r.day >= period.first_day, r.day <= period.last_day,
                sa.or_(r.since_at.is_(None), r.since_at >= period.start))
         .group_by(r.family, r.subject_id))
    for row in session.execute(q):
        fam = fams.get(row.family)
        if fam is None or not fam.rollup:
            continue
        counts = out.setdefault(row.subject_id, {})
        for name, slot in zip(fam.primitives, _SLOTS, strict=False):
            counts[name] = counts.get(name, 0) + int(getattr(row, slot) or 0)
    for fam in fams.values():
        if not fam.rollup:
            _count_family(session, fam, out)
    return out


# --------------------------------------------------------------------------------------------------------
# Subjects


@dataclass(frozen=True)
class Subject:
    """A subject to rank."""

    id: str
    name: str
    region_class: str | None = None


def list_subjects(session: Session, subject_type: str, seen: Sequence[str] = ()) -> list[Subject]:
    """Every known subject of the type, plus any subject id that appears in the counts."""
    subjects: dict[str, Subject] = {}
    if subject_type == "department":
        for d in session.execute(select(Department.id, Department.name).where(Department.active)):
            subjects[str(d.id)] = Subject(str(d.id), d.name)
        missing = [int(s) for s in seen if s not in subjects]
        for d in session.execute(select(Department.id, Department.name).where(Department.id.in_(missing))):
            subjects[str(d.id)] = Subject(str(d.id), d.name)
    elif subject_type in POSITION_TYPES:
        role = POSITION_TYPES[subject_type]
        for u in session.execute(select(User.id, User.display_name).where(User.role == role, User.active)):
            subjects[str(u.id)] = Subject(str(u.id), u.display_name)
        missing = [int(s) for s in seen if s not in subjects]
        for u in session.execute(select(User.id, User.display_name).where(User.id.in_(missing))):
            subjects[str(u.id)] = Subject(str(u.id), u.display_name)
    else:
        if subject_type == "grid":
            for g in session.execute(select(Grid.code, Grid.name, Grid.region_class)):
                subjects[g.code] = Subject(g.code, g.name or g.code, g.region_class)
        else:
            for a in session.execute(select(Area.code, Area.name, Area.region_class).where(Area.level == subject_type)):
                subjects[a.code] = Subject(a.code, a.name, a.region_class)
        for s in seen:
            subjects.setdefault(s, Subject(s, s, None))
    return sorted(subjects.values(), key=lambda s: s.id)


# --------------------------------------------------------------------------------------------------------
# Rankings


@dataclass(frozen=True)
class SubjectResult:
    """One ranked subject."""

    subject_id: str
    name: str
    counts: dict[str, int | float]
    score: scoring.SubjectScore
    rank: int
    tied: bool
    flags: tuple[str, ...]

    @property
    def explanation(self) -> dict[str, Any]:
        """The scoring's explanation as JSON-able data."""
        s = self.score
        return {
            "lines": list(s.explanation),
            "rates": [{"key": r.key, "name_zh": r.name_zh, "numerator": r.numerator, "denominator": r.denominator,
                       "value": r.value} for r in s.rates],
            "components": [{"key": c.key, "name_zh": c.name_zh, "input_value": c.input_value, "score": c.score,
                            "weight": c.weight, "contribution": c.contribution} for c in s.components],
        }


@dataclass(frozen=True)
class Ranking:
    """The ranked results of one subject type in one period under one indicator set."""

    period: Period
    subject_type: str
    version: str
    indicator_set: indicators.IndicatorSet
    rows: list[SubjectResult] = field(default_factory=list)
    source: str = "raw"  # where the counts came from: "raw" (facts) or "rollup" (daily rollup)


def compute(
    session: Session, *, period: Period | str, subject_type: str, indicator_version: str | None = None,
    tz: str = DEFAULT_TZ, source: str = "auto", city_dir: Path | None = None,
) -> Ranking:
    """Count, score and rank every subject of a type for a period (ties share a competition rank).

    ``source``: ``"auto"`` serves the counts from the daily rollup when that is exact for the period (see
    :func:`rollup_is_exact`; refreshing stale days first) and from the raw facts otherwise; ``"raw"`` always
    recomputes from the facts (audit, publication).

    Raises:
        InvalidInput: bad period, unknown subject type, unknown indicator version, unknown source.
    """
    p = parse_period(period, tz=tz) if isinstance(period, str) else period
    st = check_subject_type(subject_type)
    iset = indicator_set_for(p, indicator_version, city_dir)
    iset.subject(st)  # raises when the set does not define the type
    if source not in ("auto", "raw"):
        raise InvalidInput(f"未知的数据来源 {source!r}（可用：auto、raw）", code="evaluation.unknown_source",
                           loc=["source"])
    used = "raw"
    if source == "auto" and rollup_is_exact(ensure_rollup(session, tz=tz), p):
        counted = count_primitives_rollup(session, period=p, subject_type=subject_type)
        used = "rollup"
    else:
        counted = count_primitives(session, period=p, subject_type=subject_type)
    subjects = list_subjects(session, subject_type, list(counted))
    scores: list[scoring.SubjectScore] = []
    extra: dict[str, tuple[Subject, dict[str, int | float], tuple[str, ...]]] = {}
    names = primitive_names(subject_type)
    memo: dict[Any, scoring.SubjectScore] = {}
    # Count bands are calibrated for the indicator set's band period; other periods scale proportionally.
    scale = scoring.band_scale(p.kind, (p.last_day - p.first_day).days + 1, iset.band_period)
    coverage = (components_service.coverage_by_inspector(session, start=p.start, end=p.end)
                if subject_type == "inspector" else {})
    for subj in subjects:
        counts: dict[str, int | float] = dict.fromkeys(names, 0)
        counts.update(counted.get(subj.id, {}))
        flags: tuple[str, ...] = ()
        if subject_type == "inspector":
            # Patrol coverage: share of the inspector's supervision-area grids with a GPS breadcrumb in the
            # period. An inspector without a supervision area has no coverage to judge, and the result says so.
            total, seen = coverage.get(int(subj.id), (0, 0))
            counts["patrol_coverage"] = round(100.0 * seen / total, 2) if total else 0
            flags = () if total else (FLAG_NO_PATROL_DATA,)
        region_class = None
        if st is primitives.SubjectType.REGION:
            region_class = subj.region_class or iset.region_classes[0].key
        # Scoring is exact (Fraction) Python, ~1 ms a subject: many subjects (grids) share the same counts.
        key = (region_class, tuple(sorted(counts.items())))
        if key not in memo:
            memo[key] = scoring.score_subject(st, counts, iset, region_class, period_scale=scale)
        score = dataclasses.replace(memo[key], subject_id=subj.id)
        scores.append(score)
        extra[subj.id] = (subj, counts, flags)
    rows = []
    for r in scoring.rank(scores):
        subj, counts, flags = extra[r.subject_id]
        all_flags = tuple(sorted({str(f) for f in r.score.flags} | set(flags)))
        rows.append(SubjectResult(r.subject_id, subj.name, counts, r.score, r.rank, r.tied, all_flags))
    return Ranking(p, subject_type, iset.version, iset, rows, used)


# --------------------------------------------------------------------------------------------------------
# Evidence


@dataclass(frozen=True)
class EvidenceItem:
    """One case behind a number."""

    case_id: int
    number: str
    at: dt.datetime | None
    deadline_at: dt.datetime | None
    completed_at: dt.datetime | None
    overdue_seconds: float
    # "overdue by" is always working time (seconds of the working calendar past the deadline, suspensions
    # excluded), for open and completed items alike, whatever the unit of the limit.
    overdue_measure: str = "working_seconds"


def evidence(
    session: Session, *, period: Period | str, subject_type: str, subject_id: str, primitive: str,
    tz: str = DEFAULT_TZ, limit: int = 1000, rules: Any = None,
) -> list[EvidenceItem]:
    """The cases behind one primitive of one subject (same selects as the counts).

    ``overdue_seconds`` is working time past the deadline (suspensions excluded): up to the completion for
    completed items, up to ``min(period end, now)`` for items still open at that time (recomputed from the
    log as of that instant).

    Raises:
        InvalidInput: ``evaluation.unknown_primitive`` when the primitive is not counted for the type.
    """
    p = parse_period(period, tz=tz) if isinstance(period, str) else period
    fams = [fam for fam in families(subject_type, p) if primitive in fam.primitives]
    if not fams:
        raise InvalidInput(f"{subject_type} 不统计 {primitive!r}（可用：{', '.join(primitive_names(subject_type))}）",
                           code="evaluation.unknown_primitive", loc=["primitive"])
    as_of = min(p.end, utcnow())
    found: list[Any] = []
    for fam in fams:
        sq = fam.rows.subquery(fam.name)
        subject_match = sa.cast(sq.c.subject, sa.String) == subject_id
        q = (select(sq.c.case_id, Case.number, sq.c.ref_at, sq.c.deadline_at, sq.c.completed_at,
                    sq.c.overdue_seconds, sq.c.fact_id)
             .join(Case, Case.id == sq.c.case_id)
             .where(subject_match, sq.c[primitive] == 1)
             .order_by(sq.c.ref_at, sq.c.case_id).limit(limit))
        found += session.execute(q, dict(fam.params)).all()
    # Items still open at the as-of time: their overrun grows until then, so recompute it from the log.
    open_ids = [r.fact_id for r in found if r.fact_id is not None and r.deadline_at is not None
                and r.deadline_at < as_of and (r.completed_at is None or r.completed_at >= as_of)]
    fresh: dict[int, float] = {}
    if open_ids:
        from evaluation import facts as evaluation_facts  # noqa: PLC0415  (facts imports this module)

        fresh = evaluation_facts.overdue_as_of(session, fact_ids=open_ids, as_of=as_of, rules=rules)
    return [EvidenceItem(r.case_id, r.number, r.ref_at, r.deadline_at, r.completed_at,
                         fresh.get(r.fact_id, float(r.overdue_seconds or 0))) for r in found]


# --------------------------------------------------------------------------------------------------------
# Publications


def publish(
    session: Session, *, period: Period | str, version: str | None = None, created_by: int | None = None,
    tz: str = DEFAULT_TZ, subject_types: Sequence[str] = SUBJECT_TYPES, city_dir: Path | None = None,
) -> Publication:
    """Freeze the period's results of every subject type under one indicator-set version.

    Raises:
        Conflict: ``evaluation.already_published`` for a period and version already published.
    """
    p = parse_period(period, tz=tz) if isinstance(period, str) else period
    iset = indicator_set_for(p, version, city_dir)
    exists = session.scalar(select(Publication.id).where(Publication.period == p.label,
                                                         Publication.version == iset.version))
    if exists is not None:
        raise Conflict(f"{p.label} 已按指标体系 {iset.version} 发布（发布 #{exists}）",
                       code="evaluation.already_published", loc=["period"], extra={"publication_id": exists})
    pub = Publication(period=p.label, period_start=p.start, period_end=p.end, version=iset.version,
                      indicator_set_sha=iset.sha256, created_at=utcnow(), created_by=created_by)
    session.add(pub)
    session.flush()
    for st in subject_types:
        # Published numbers always come from the exact raw computation as of the period's end.
        ranking = compute(session, period=p, subject_type=st, indicator_version=iset.version, source="raw",
                          city_dir=city_dir)
        session.add_all(
            PublishedResult(publication_id=pub.id, subject_type=st, subject_id=r.subject_id,
                            subject_name=r.name, counts=dict(r.counts), composite=r.score.composite,
                            grade=r.score.grade, rank=r.rank, flags=list(r.flags), explanation=r.explanation)
            for r in ranking.rows
        )
    session.flush()
    return pub


def get_publication(session: Session, publication_id: int) -> Publication:
    """A publication.

    Raises:
        NotFound: ``evaluation.publication_not_found``.
    """
    pub = session.get(Publication, publication_id)
    if pub is None:
        raise NotFound(f"发布 #{publication_id} 不存在", code="evaluation.publication_not_found",
                       loc=["publication_id"])
    return pub


def published_results(session: Session, *, publication_id: int, subject_type: str | None = None
                      ) -> list[PublishedResult]:
    """The frozen rows of a publication, in rank order per subject type."""
    q = select(PublishedResult).where(PublishedResult.publication_id == publication_id)
    if subject_type is not None:
        check_subject_type(subject_type)
        q = q.where(PublishedResult.subject_type == subject_type)
    return list(session.scalars(q.order_by(PublishedResult.subject_type, PublishedResult.rank,
                                           PublishedResult.subject_id)))


def as_decimal(value: Any) -> Decimal:
    """A composite value as a two-decimal Decimal."""
    return Decimal(str(value)).quantize(Decimal("0.01"))


Echo = Callable[[str], Any]
