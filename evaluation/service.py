"""Evaluation services: periods, counting primitives as SQL aggregates, rankings, evidence, publications.

Every primitive of :data:`evaluation.scoring.PRIMITIVES` is counted inside the database: each *family* of
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
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from casework.models import Case, CaseEvent
from components import service as components_service
from components.models import Area, Grid, SupervisionArea, SupervisionGrid
from evaluation import scoring
from evaluation.models import Publication, PublishedResult, StageFact
from gridcity.errors import Conflict, InvalidInput, NotFound
from gridcity.org import Department, User
from gridcity.roles import Role
from gridcity.types import utcnow

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
    except ValueError:
        raise _bad_period(raw) from None
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


def check_subject_type(subject_type: str) -> scoring.SubjectType:
    """The scoring subject type of an API subject type.

    Raises:
        InvalidInput: ``evaluation.unknown_subject_type``.
    """
    if subject_type in REGION_LEVELS:
        return scoring.SubjectType.REGION
    if subject_type == "department":
        return scoring.SubjectType.DEPARTMENT
    if subject_type in POSITION_TYPES:
        return scoring.SubjectType(subject_type)
    raise InvalidInput(f"未知的评价对象类型 {subject_type!r}（可用：{', '.join(SUBJECT_TYPES)}）",
                       code="evaluation.unknown_subject_type", loc=["subject_type"])


def indicator_set_for(period: Period, version: str | None) -> scoring.IndicatorSet:
    """The requested indicator set, or the one in effect at the period's start.

    Raises:
        InvalidInput: ``evaluation.unknown_version`` / ``evaluation.no_version_in_effect``.
    """
    registry = scoring.default_registry()
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
        f.overdue_seconds.label("overdue_seconds"),
        *(_flag(c).label(name) for name, c in flags.items()),
    )


def _region_subject(f: Any, level: str) -> Any:
    return sa.func.substr(f.grid_code, 1, REGION_LEVELS[level])


def _case_families(subject_type: str, p: Period) -> list[Family]:
    """立案 / 作废 / 监督举报核实 / 漏报 (by first 立案) and 应结案 / 结案 / 按期结案 / 返工 (by determination)."""
    t1 = p.end
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
        subject = SupervisionArea.inspector_id
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
            return (q.join(SupervisionGrid, SupervisionGrid.grid_code == f.grid_code)
                    .join(SupervisionArea, SupervisionArea.id == SupervisionGrid.supervision_area_id)
                    .where(SupervisionArea.inspector_id.is_not(None)))
        return q

    q1 = joined(_fact_rows(f, subject, f.started_at, filed_flags))
    q2 = joined(_fact_rows(f, subject, f.determined_at, close_flags))
    out: list[Family] = []
    out.append(Family("case_filed", tuple(filed_flags),
                      q1.where(f.stage == "case", _in(f.started_at, p))))
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
        q = q.where(f.end_action == _SENDER_ACTION[stage], _before(f.ended_at, p.end))
    return Family(name, tuple(built), q)


_SENDER_ACTION = {"send_verify": "send_verify", "send_check": "send_check", "close": "close",
                  "dispatch": "dispatch"}


def _event_family(name: str, action: str, primitive: str, p: Period, *, distinct_cases: bool,
                  subject_type: str) -> Family | None:
    e = aliased(CaseEvent, name="e")
    if subject_type == "department":
        h, on = _effective_dispatch(e.case_id, p.end)
        subject: Any = h.department_id
        q = select(subject.label("subject"), e.case_id.label("case_id"), sa.func.min(e.at).label("ref_at")).join(
            h, on)
    else:
        subject = e.actor_id
        q = select(subject.label("subject"), e.case_id.label("case_id"), sa.func.min(e.at).label("ref_at"))
    q = q.where(e.action == action, _in(e.at, p), subject.is_not(None))
    if distinct_cases:
        q = q.group_by(subject, e.case_id)
    else:
        q = q.group_by(subject, e.case_id, e.id)
    null_ts = sa.null().cast(sa.DateTime)
    inner = q.subquery(f"{name}_inner")
    rows = select(inner.c.subject, inner.c.case_id, inner.c.ref_at, null_ts.label("deadline_at"),
                  null_ts.label("completed_at"), sa.literal(0.0).label("overdue_seconds"),
                  sa.literal(1).label(primitive))
    return Family(name, (primitive,), rows)


def families(subject_type: str, p: Period) -> list[Family]:
    """The primitive families counted for one API subject type in one period."""
    check_subject_type(subject_type)
    t1 = p.end
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
            f.stage == "handle", f.start_action == "dispatch", _in(f.determined_at, p),
            _not_before(f.undone_at, t1), f.department_id.is_not(None))
        out.append(Family("handle", tuple(flags), q))
        fam = _event_family("suspended", "approve_suspension", "suspended", p, distinct_cases=True,
                            subject_type="department")
        if fam:
            out.append(fam)
    elif subject_type == "inspector":
        f = aliased(StageFact, name="f")
        rflags = {"reported": sa.true(), "valid_reported": f.completed_at.is_not(None)}
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


def count_primitives(session: Session, *, period: Period, subject_type: str) -> dict[str, dict[str, int]]:
    """Counts per subject id (as text) for every primitive of the subject type, by SQL aggregates."""
    out: dict[str, dict[str, int]] = {}
    for fam in families(subject_type, period):
        sq = fam.rows.subquery(fam.name)
        q = select(sq.c.subject, *(sa.func.sum(sq.c[name]).label(name) for name in fam.primitives)).group_by(
            sq.c.subject)
        for row in session.execute(q):
            counts = out.setdefault(str(row.subject), {})
            for name in fam.primitives:
                counts[name] = counts.get(name, 0) + int(getattr(row, name) or 0)
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
    indicator_set: scoring.IndicatorSet
    rows: list[SubjectResult] = field(default_factory=list)


def compute(
    session: Session, *, period: Period | str, subject_type: str, indicator_version: str | None = None,
    tz: str = DEFAULT_TZ,
) -> Ranking:
    """Count, score and rank every subject of a type for a period (ties share a competition rank).

    Raises:
        InvalidInput: bad period, unknown subject type, unknown indicator version.
    """
    p = parse_period(period, tz=tz) if isinstance(period, str) else period
    st = check_subject_type(subject_type)
    iset = indicator_set_for(p, indicator_version)
    iset.subject(st)  # raises when the set does not define the type
    counted = count_primitives(session, period=p, subject_type=subject_type)
    subjects = list_subjects(session, subject_type, list(counted))
    scores: list[scoring.SubjectScore] = []
    extra: dict[str, tuple[Subject, dict[str, int | float], tuple[str, ...]]] = {}
    names = primitive_names(subject_type)
    memo: dict[Any, scoring.SubjectScore] = {}
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
        if st is scoring.SubjectType.REGION:
            region_class = subj.region_class or iset.region_classes[0].key
        # Scoring is exact (Fraction) Python, ~1 ms a subject: many subjects (grids) share the same counts.
        key = (region_class, tuple(sorted(counts.items())))
        if key not in memo:
            memo[key] = scoring.score_subject(st, counts, iset, region_class)
        score = dataclasses.replace(memo[key], subject_id=subj.id)
        scores.append(score)
        extra[subj.id] = (subj, counts, flags)
    rows = []
    for r in scoring.rank(scores):
        subj, counts, flags = extra[r.subject_id]
        all_flags = tuple(sorted({str(f) for f in r.score.flags} | set(flags)))
        rows.append(SubjectResult(r.subject_id, subj.name, counts, r.score, r.rank, r.tied, all_flags))
    return Ranking(p, subject_type, iset.version, iset, rows)


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


def evidence(
    session: Session, *, period: Period | str, subject_type: str, subject_id: str, primitive: str,
    tz: str = DEFAULT_TZ, limit: int = 1000,
) -> list[EvidenceItem]:
    """The cases behind one primitive of one subject (same selects as the counts).

    ``overdue_seconds`` is the stored overrun in the limit's measure for completed items, and the elapsed
    time past the deadline as of ``min(period end, now)`` for items still open.

    Raises:
        InvalidInput: ``evaluation.unknown_primitive`` when the primitive is not counted for the type.
    """
    p = parse_period(period, tz=tz) if isinstance(period, str) else period
    fams = [fam for fam in families(subject_type, p) if primitive in fam.primitives]
    if not fams:
        raise InvalidInput(f"{subject_type} 不统计 {primitive!r}（可用：{', '.join(primitive_names(subject_type))}）",
                           code="evaluation.unknown_primitive", loc=["primitive"])
    as_of = min(p.end, utcnow())
    items: list[EvidenceItem] = []
    for fam in fams:
        sq = fam.rows.subquery(fam.name)
        subject_match = sa.cast(sq.c.subject, sa.String) == subject_id
        q = (select(sq.c.case_id, Case.number, sq.c.ref_at, sq.c.deadline_at, sq.c.completed_at,
                    sq.c.overdue_seconds)
             .join(Case, Case.id == sq.c.case_id)
             .where(subject_match, sq.c[primitive] == 1)
             .order_by(sq.c.ref_at, sq.c.case_id).limit(limit))
        for r in session.execute(q):
            overdue = float(r.overdue_seconds or 0)
            if r.completed_at is None and r.deadline_at is not None and r.deadline_at < as_of:
                overdue = (as_of - r.deadline_at).total_seconds()
            items.append(EvidenceItem(r.case_id, r.number, r.ref_at, r.deadline_at, r.completed_at, overdue))
    return items


# --------------------------------------------------------------------------------------------------------
# Publications


def publish(
    session: Session, *, period: Period | str, version: str | None = None, created_by: int | None = None,
    tz: str = DEFAULT_TZ, subject_types: Sequence[str] = SUBJECT_TYPES,
) -> Publication:
    """Freeze the period's results of every subject type under one indicator-set version.

    Raises:
        Conflict: ``evaluation.already_published`` for a period and version already published.
    """
    p = parse_period(period, tz=tz) if isinstance(period, str) else period
    iset = indicator_set_for(p, version)
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
        ranking = compute(session, period=p, subject_type=st, indicator_version=iset.version)
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
