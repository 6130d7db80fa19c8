"""Primitive families: one select per family over ``stage_fact`` (or ``case_event``) with a 0/1 column per
primitive and a ``subject`` column, counted by SQL aggregates (the exact, raw path)."""

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from casework.models import CaseEvent
from components.models import SupervisionArea, SupervisionGrid, SupervisionHistory
from evaluation.models import StageFact
from evaluation.service.periods import POSITION_TYPES, REGION_LEVELS, Period, check_subject_type, parse_period
from gridcity import spatial

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
    on = sa.and_(
        h.case_id == case_id,
        h.stage == "handle",
        h.start_action == "dispatch",
        h.started_at < as_of,
        _not_before(h.undone_at, as_of),
    )
    return h, on


def _fact_rows(f: Any, subject: Any, ref_at: Any, flags: Mapping[str, sa.ColumnElement[bool]]) -> sa.Select[Any]:
    return select(
        subject.label("subject"),
        f.case_id.label("case_id"),
        ref_at.label("ref_at"),
        f.deadline_at.label("deadline_at"),
        f.completed_at.label("completed_at"),
        f.overdue_seconds.label("overdue_seconds"),
        f.id.label("fact_id"),
        *(_flag(c).label(name) for name, c in flags.items()),
    )


def _region_subject(f: Any, level: str) -> Any:
    return sa.func.substr(f.grid_code, 1, REGION_LEVELS[level])


def _case_flags(
    f: Any, subject_type: str, p: Period
) -> tuple[dict[str, sa.ColumnElement[bool]], list[Any], dict[str, sa.ColumnElement[bool]], list[Any]]:
    """The 立案 and 结案 families' flags and filters over the case facts ``f`` (without the attribution):
    ``(filed flags, filed filters, close flags, close filters)``."""
    t1 = p.t1
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
    filed_where = [f.stage == "case", _in(f.started_at, p)]
    close_where = [f.stage == "case", _in(f.determined_at, p), not_voided]
    return filed_flags, filed_where, close_flags, close_where


def _case_families(subject_type: str, p: Period) -> list[Family]:
    """立案 / 作废 / 监督举报核实 / 漏报 (by first 立案) and 应结案 / 结案 / 按期结案 / 返工 (by determination)."""
    t1 = p.t1
    f = aliased(StageFact, name="f")
    filed_flags, filed_where, close_flags, close_where = _case_flags(f, subject_type, p)

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
            covering = sa.and_(
                hist.grid_code == f.grid_code,
                sa.or_(hist.valid_from.is_(None), hist.valid_from <= f.started_at),
                hist.valid_to > f.started_at,
            )
            return (
                q.outerjoin(hist, covering)
                .outerjoin(SupervisionGrid, sa.and_(hist.id.is_(None), SupervisionGrid.grid_code == f.grid_code))
                .outerjoin(SupervisionArea, SupervisionArea.id == SupervisionGrid.supervision_area_id)
                .where(subject.is_not(None))
            )
        return q

    q1 = joined(_fact_rows(f, subject, f.started_at, filed_flags))
    q2 = joined(_fact_rows(f, subject, f.determined_at, close_flags))
    out: list[Family] = []
    out.append(Family("case_filed", tuple(filed_flags), q1.where(*filed_where), rollup=subject_type != "inspector"))
    if subject_type in REGION_LEVELS or subject_type == "department":
        out.append(Family("case_close", tuple(close_flags), q2.where(*close_where)))
    return out


@dataclass(frozen=True)
class _Merged:
    """Families counted by one statement: columns ``family`` (an index into ``names``), ``subject`` and the
    sums of every primitive of ``primitives`` (each family's own primitives; the others are 0 in its rows)."""

    names: tuple[str, ...]
    primitives: tuple[tuple[str, ...], ...]
    counts: sa.Select[Any]


def _department_case_counts(p: Period) -> _Merged:
    """The department's 立案 and 结案 counts in one statement: the ``UNION ALL`` of both families' case facts,
    joined once to the effective-dispatch runs (the same rows, flags and attribution as the two families)."""
    f = aliased(StageFact, name="f")
    filed_flags, filed_where, close_flags, close_where = _case_flags(f, "department", p)
    every = (*filed_flags, *close_flags)

    def branch(index: int, flags: Mapping[str, sa.ColumnElement[bool]], where: list[Any]) -> sa.Select[Any]:
        cols = (_flag(flags[n]).label(n) if n in flags else sa.literal_column("0").label(n) for n in every)
        return select(sa.literal_column(str(index)).label("family"), f.case_id.label("case_id"), *cols).where(*where)

    rows = sa.union_all(branch(0, filed_flags, filed_where), branch(1, close_flags, close_where)).subquery("fc")
    h, on = _effective_dispatch(rows.c.case_id, p.t1)
    counts = (
        select(rows.c.family, h.department_id.label("subject"), *(sa.func.sum(rows.c[n]).label(n) for n in every))
        .join_from(rows, h, on)
        .group_by(rows.c.family, h.department_id)
    )
    return _Merged(("case_filed", "case_close"), (tuple(filed_flags), tuple(close_flags)), counts)


@lru_cache(maxsize=4)
def _merged_template(subject_type: str) -> _Merged | None:
    return _department_case_counts(_BOUNDS) if subject_type == "department" else None  # type: ignore[arg-type]


def _task_family(
    name: str, stage: str, subject_col: str, p: Period, flags: Mapping[str, Any], *, by_sender: bool
) -> Family:
    """Runs of a timed step determined in the period; ``by_sender``: counted only once sent (attribution =
    who completed it, so unsent overdue runs are attributed to nobody)."""
    f = aliased(StageFact, name="f")
    built = {k: v(f) if callable(v) else v for k, v in flags.items()}
    q = _fact_rows(f, getattr(f, subject_col), f.determined_at, built).where(
        f.stage == stage, _in(f.determined_at, p), getattr(f, subject_col).is_not(None)
    )
    if by_sender:
        q = q.where(f.end_action == _SENDER_ACTION[stage], _before(f.ended_at, p.t1))
    return Family(name, tuple(built), q)


_SENDER_ACTION = {"send_verify": "send_verify", "send_check": "send_check", "close": "close", "dispatch": "dispatch"}


def _event_family(
    name: str, action: str, primitive: str, p: Period, *, distinct_cases: bool, subject_type: str
) -> Family | None:
    e = aliased(CaseEvent, name="e")
    prev = aliased(CaseEvent, name="prev")
    prev_on = sa.and_(prev.case_id == e.case_id, prev.action == action, prev.at < p.start)
    if subject_type == "department":
        h, on = _effective_dispatch(e.case_id, p.t1)
        subject: Any = h.department_id
        q = select(subject.label("subject"), e.case_id.label("case_id"), sa.func.min(e.at).label("ref_at")).join(h, on)
        rep = (
            select(subject.label("subject"), e.case_id.label("case_id"), sa.func.max(prev.at).label("prev_at"))
            .join(h, on)
            .join(prev, prev_on)
        )
    else:
        # Posts as they were at the time: the role recorded on the event, not the user's role today.
        subject = sa.case((e.actor_role == POSITION_TYPES[subject_type], e.actor_id), else_=None)
        q = select(subject.label("subject"), e.case_id.label("case_id"), sa.func.min(e.at).label("ref_at"))
        rep = select(subject.label("subject"), e.case_id.label("case_id"), sa.func.max(prev.at).label("prev_at")).join(
            prev, sa.and_(prev_on, prev.actor_id == e.actor_id)
        )
    q = q.where(e.action == action, _in(e.at, p), subject.is_not(None))
    repeats = None
    if distinct_cases:
        q = q.group_by(subject, e.case_id)
        repeats = rep.where(e.action == action, _in(e.at, p), subject.is_not(None)).group_by(subject, e.case_id)
    else:
        q = q.group_by(subject, e.case_id, e.id)
    null_ts = sa.null().cast(sa.DateTime)
    inner = q.subquery(f"{name}_inner")
    rows = select(
        inner.c.subject,
        inner.c.case_id,
        inner.c.ref_at,
        null_ts.label("deadline_at"),
        null_ts.label("completed_at"),
        sa.literal(0.0).label("overdue_seconds"),
        sa.null().cast(sa.Integer).label("fact_id"),
        sa.literal(1).label(primitive),
    )
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
            f.stage == "task",
            f.start_action == "dispatch",
            _in(f.determined_at, p),
            _not_before(f.undone_at, t1),
            f.department_id.is_not(None),
        )
        out.append(Family("handle", tuple(flags), q))
        fam = _event_family(
            "suspended", "approve_suspension", "suspended", p, distinct_cases=True, subject_type="department"
        )
        if fam:
            out.append(fam)
    elif subject_type == "inspector":
        f = aliased(StageFact, name="f")
        rflags = {
            "reported": sa.true(),
            "valid_reported": sa.and_(f.completed_at.is_not(None), _not_before(f.voided_at, t1)),
        }
        q = _fact_rows(f, f.start_actor_id, f.ended_at, rflags).where(
            f.stage == "report",
            f.start_action.in_(("report", "self_handle")),
            _in(f.ended_at, p),
            f.start_actor_id.is_not(None),
        )
        out.append(Family("report", tuple(rflags), q))
        out.append(
            _task_family(
                "verify",
                "verify",
                "assignee_id",
                p,
                {"should_verify": sa.true(), "verified_on_time": lambda f: f.on_time},
                by_sender=False,
            )
        )
        out.append(
            _task_family(
                "check",
                "check",
                "assignee_id",
                p,
                {"should_check": sa.true(), "checked_on_time": lambda f: f.on_time},
                by_sender=False,
            )
        )
    elif subject_type == "acceptor":
        fam = _event_family("accepted", "public_report", "accepted", p, distinct_cases=False, subject_type="acceptor")
        if fam:
            out.append(fam)
        out.append(
            _task_family(
                "send_verify",
                "send_verify",
                "end_actor_id",
                p,
                {"verify_dispatch_due": sa.true(), "verify_dispatch_on_time": lambda f: f.on_time},
                by_sender=True,
            )
        )
        out.append(
            _task_family(
                "send_check",
                "send_check",
                "end_actor_id",
                p,
                {"check_dispatch_due": sa.true(), "check_dispatch_on_time": lambda f: f.on_time},
                by_sender=True,
            )
        )
    elif subject_type == "shift_leader":
        f = aliased(StageFact, name="f")
        q = _fact_rows(f, f.end_actor_id, f.ended_at, {"filed_on_time": f.on_time}).where(
            f.stage == "file", f.end_action == "file", _in(f.ended_at, p), f.end_actor_id.is_not(None)
        )
        out.append(Family("file", ("filed_on_time",), q))
        out.append(
            _task_family(
                "close",
                "close",
                "end_actor_id",
                p,
                {"close_task_due": sa.true(), "close_task_on_time": lambda f: f.on_time},
                by_sender=True,
            )
        )
    elif subject_type == "dispatcher":
        out = []
        fam = _event_family("dispatched", "dispatch", "dispatched", p, distinct_cases=True, subject_type="dispatcher")
        if fam:
            out.append(fam)
        out.append(
            _task_family(
                "dispatch",
                "dispatch",
                "end_actor_id",
                p,
                {
                    "should_dispatch": sa.true(),
                    "dispatched_on_time": lambda f: f.on_time,
                    "dispatched_accurately": lambda f: _not_before(f.undone_at, t1),
                },
                by_sender=True,
            )
        )
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
    q = select(sq.c.subject, *(sa.func.sum(sq.c[name]).label(name) for name in fam.primitives)).group_by(sq.c.subject)
    for row in session.execute(q, dict(fam.params)):
        _add(out, row.subject, fam.primitives, row)


def _add(out: dict[str, dict[str, int]], subject: Any, primitives: tuple[str, ...], row: Any) -> None:
    counts = out.setdefault(str(subject), {})
    for name in primitives:
        counts[name] = counts.get(name, 0) + int(getattr(row, name) or 0)


def count_primitives(
    session: Session, *, period: Period, subject_type: str, merge: bool | None = None
) -> dict[str, dict[str, int]]:
    """Counts per subject id (as text) for every primitive of the subject type, by SQL aggregates over the
    raw facts (the exact path: any period, as of its end).

    ``merge``: count the department's 立案 and 结案 families in one statement (one join to the effective
    dispatch instead of two); by default where the database joins by hashing (:func:`gridcity.spatial.
    joins_by_hashing`: PostgreSQL). Both ways give the same counts.
    """
    out: dict[str, dict[str, int]] = {}
    fams = families(subject_type, period)
    merged = _merged_template(subject_type)
    if merge is None:
        merge = spatial.joins_by_hashing(session)
    done: set[str] = set()
    if merged is not None and merge:
        for row in session.execute(merged.counts, dict(fams[0].params) if fams else {}):
            _add(out, row.subject, merged.primitives[row.family], row)
        done = set(merged.names)
    for fam in fams:
        if fam.name not in done:
            _count_family(session, fam, out)
    return out
