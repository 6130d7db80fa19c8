"""The deadline monitor: raises each yellow (80 % used) and red (overdue) warning exactly once.

``monitor_once(session, now=...)`` is the whole job; a periodic task (see ``casework.live_router``) calls
it in its own transaction. Exactly-once comes from the unique key of ``case_alert`` plus
``INSERT ... ON CONFLICT DO NOTHING``: a restart, a second worker or a re-run at the same instant inserts
nothing new, and a warning the monitor missed while it was down is raised on its next run (a case found
already overdue gets both its yellow and its red warning, yellow first).

The light is the same as the case API's clock (working time, pauses and extensions included): candidates
are chosen in SQL (open timed stage with a deadline and no red warning yet for the run; cases that already
have their yellow warning are only looked at once their deadline has passed), and each candidate's clock is
computed from its log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import service as casework_service
from casework.alerts import CaseAlert
from casework.lifecycle import TERMINAL
from casework.models import Case
from casework.rules import CaseRules, load_rules
from casework.timeline import stage_runs
from gridcity import spatial

# Advisory lock that orders alert commits on PostgreSQL, so that alert ids become visible in increasing
# order (the live stream resumes alerts by id, like events).
ALERT_ORDER_LOCK = 7_301_012


def _has_alert(level: str) -> sa.ColumnElement[bool]:
    return (
        select(CaseAlert.id)
        .where(
            CaseAlert.case_id == Case.id,
            CaseAlert.stage == Case.stage,
            CaseAlert.run_started_at == Case.stage_started_at,
            CaseAlert.level == level,
        )
        .exists()
    )


def _insert_ignore(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    insert = spatial.insert_for(session)
    ids: list[int] = []
    for row in rows:  # one by one: yellow gets the smaller id than red, in the order found
        stmt = insert(CaseAlert).values(**row).on_conflict_do_nothing().returning(CaseAlert.id)
        new_id = session.execute(stmt).scalar_one_or_none()
        if new_id is not None:
            ids.append(new_id)
    return ids


def due_levels(session: Session, case: Case, rules: CaseRules, now: dt.datetime) -> list[str]:
    """The warning levels the case's running stage has reached at ``now`` (``[]``, yellow, yellow+red)."""
    runs = stage_runs(casework_service.event_facts(session, case.id))
    if not runs or runs[-1].ended_at is not None:
        return []
    clock = casework_service.run_clock(rules, case, runs[-1], now)
    if clock is None or clock.paused:
        return []
    if clock.light == "red":
        return ["yellow", "red"]
    if clock.light == "yellow":
        return ["yellow"]
    return []


def monitor_once(session: Session, *, now: dt.datetime, rules: CaseRules | None = None) -> list[CaseAlert]:
    """Raise the warnings due at ``now`` that were not raised before; return the new ones (flushed)."""
    rules = rules or load_rules()
    spatial.transaction_lock(session, ALERT_ORDER_LOCK)
    candidates = session.scalars(
        select(Case)
        .where(
            Case.deadline_at.is_not(None),
            Case.stage.is_not(None),
            Case.stage_started_at.is_not(None),
            Case.stage_started_at <= now,
            Case.status.not_in(TERMINAL),
            sa.not_(_has_alert("red")),
            sa.or_(sa.not_(_has_alert("yellow")), Case.deadline_at <= now),
        )
        .order_by(Case.id)
    ).all()
    rows: list[dict[str, Any]] = []
    for case in candidates:
        for level in due_levels(session, case, rules, now):
            rows.append(
                {
                    "case_id": case.id,
                    "stage": case.stage,
                    "run_started_at": case.stage_started_at,
                    "level": level,
                    "deadline_at": case.deadline_at,
                    "department_id": case.department_id,
                    "created_at": now,
                }
            )
    ids = _insert_ignore(session, rows)
    if not ids:
        return []
    session.info["gridcity_live_dirty"] = True  # wake the live stream after commit
    spatial.notify(session, "gridcity_events", f"a{ids[-1]}")
    return list(session.scalars(select(CaseAlert).where(CaseAlert.id.in_(ids)).order_by(CaseAlert.id)))
