"""The daily rollup of the primitive counts (G-S1): refresh of dirty days, full rebuild, and counting a period
from the rollup."""

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.models import CaseEvent
from evaluation.models import RollupCount, RollupDirty, RollupState, StageFact
from evaluation.service.families import Family, _count_family, families
from evaluation.service.periods import DEFAULT_TZ, SUBJECT_TYPES, Period
from gridcity import spatial
from gridcity.database import is_read_only, write_unit_beside
from gridcity.types import utcnow

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


def _family_selects(st: str, fam: Family, day: Any) -> tuple[Any, Any]:
    """The SELECTs of one family's rollup rows for one day (columns as :data:`_COLS`) and of its repeat
    corrections (None for families without repeats)."""
    sq = fam.rows.subquery(fam.name)
    sums = [sa.func.sum(sq.c[name]) for name in fam.primitives]
    sums += [sa.literal(0)] * (ROLLUP_SLOTS - len(sums))
    no_since = sa.cast(sa.null(), RollupCount.__table__.c.since_at.type)
    main = (
        select(sa.literal(st), day, sa.literal(fam.name), sa.cast(sq.c.subject, sa.String), no_since, *sums)
        .where(sq.c.subject.is_not(None))
        .group_by(sq.c.subject)
    )
    repeats = None
    if fam.repeats is not None:
        rq = fam.repeats.subquery(f"{fam.name}_repeats")
        repeats = (
            select(
                sa.literal(st),
                day,
                sa.literal(fam.name),
                sa.cast(rq.c.subject, sa.String),
                rq.c.prev_at,
                -sa.func.count(),
                *[sa.literal(0)] * (ROLLUP_SLOTS - 1),
            )
            .where(rq.c.subject.is_not(None))
            .group_by(rq.c.subject, rq.c.prev_at)
        )
    return main, repeats


_COLS = ["subject_type", "day", "family", "subject_id", "since_at", *_SLOTS]


def _family_inserts(st: str, fam: Family, day: Any) -> tuple[Any, Any]:
    """The INSERT .. SELECT statements of one family's rows (and its repeat corrections) for one day."""
    main, repeats = _family_selects(st, fam, day)
    table = RollupCount.__table__
    return (
        sa.insert(table).from_select(_COLS, main),
        None if repeats is None else sa.insert(table).from_select(_COLS, repeats),
    )


_DAY_STATEMENT: list[Any] = []


def _day_statement() -> Any:
    """One ``INSERT .. SELECT .. UNION ALL ..`` of every subject type's and family's rows of one day (the day and
    the period bounds are bound parameters), built once: a one-day refresh is then two statements (this and the
    DELETE) instead of one per family and subject type, whose round trips and per-statement work were most of
    its time."""
    if not _DAY_STATEMENT:
        p = _day_period(dt.date(2026, 1, 1), dt.date(2026, 1, 1), ZoneInfo("UTC"))  # values are bound later
        day = sa.bindparam("r_day", type_=sa.Date)
        selects = []
        for st in SUBJECT_TYPES:
            for fam in families(st, p):
                if fam.rollup:
                    selects += [q for q in _family_selects(st, fam, day) if q is not None]
        _DAY_STATEMENT.append(sa.insert(RollupCount.__table__).from_select(_COLS, sa.union_all(*selects)))
    return _DAY_STATEMENT[0]


def _insert_family_statements(st: str, fam: Family, day: Any, session: Session) -> None:
    """A multi-day refresh: ``day`` maps the reference time to its local date in SQL."""
    assert fam.repeats is None, "distinct-case families are refreshed day by day"
    sq = fam.rows.subquery(fam.name)
    day_col = day(sq.c.ref_at)
    sums = [sa.func.sum(sq.c[name]) for name in fam.primitives]
    sums += [sa.literal(0)] * (ROLLUP_SLOTS - len(sums))
    sel = (
        select(sa.literal(st), day_col, sa.literal(fam.name), sa.cast(sq.c.subject, sa.String), *sums)
        .where(sq.c.subject.is_not(None))
        .group_by(sq.c.subject, day_col)
    )
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
    # subject_type IN (every type): the rows are found through ix_eval_rollup_read (subject_type, day, ...)
    # instead of a scan of the whole rollup (which grows with the years of history).
    session.execute(
        sa.delete(RollupCount).where(
            RollupCount.subject_type.in_(SUBJECT_TYPES), RollupCount.day >= first, RollupCount.day <= last
        )
    )
    p = _day_period(first, last, zone)
    if first == last:  # one day's facts: index look-ups, never a merge or hash join over all the runs
        with spatial.joins_by_index_lookups(session, generic_plan=True):
            spatial.execute_prepared(
                session,
                _day_statement(),
                {"r_day": first, "p_start": p.start, "p_end": p.end, "p_t1": p.t1},
            )
        return
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
        while (
            j + 1 < len(todo)
            and todo[j + 1] == todo[j] + dt.timedelta(days=1)
            and _local_midnight(todo[j + 1] + dt.timedelta(days=1), zone)
            - dt.datetime.combine(todo[j + 1] + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
            == off
        ):
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


def mark_rollup_dirty(
    session: Session, times: Sequence[dt.datetime | None], latest_event_at: dt.datetime | None
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
    q = (
        select(r.family, r.subject_id, *(sa.func.sum(getattr(r, n)).label(n) for n in _SLOTS))
        .where(
            r.subject_type == subject_type,
            r.day >= period.first_day,
            r.day <= period.last_day,
            sa.or_(r.since_at.is_(None), r.since_at >= period.start),
        )
        .group_by(r.family, r.subject_id)
    )
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
