"""Duplicate proposals: open cases of the same class or component near a case, reported recently.

Proposals are computed on demand (when a report arrives and when a case is filed the console asks
``GET /cases/{id}/duplicates``); confirming one is the lifecycle's ``merge`` action, which attaches the
report to the existing case (peers.md lesson 6: one case counted, every reporter sees the outcome).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from casework import service as casework_service
from casework.lifecycle import TERMINAL, Actor
from casework.models import Case
from dispatch.service import RoutingSettings
from gridcity import spatial
from gridcity.settings import Settings
from gridcity.types import utcnow

OPEN_EXCLUDED = tuple(sorted(s.value for s in TERMINAL))  # closed, merged, voided


@dataclass(frozen=True)
class DuplicateProposal:
    """A case that may be the same problem."""

    case_id: int
    number: str
    class_code: str
    component_id: str | None
    status: str
    created_at: dt.datetime
    distance_m: float
    age_hours: float
    same: str  # "component" | "class"


def duplicates_statement(session: Session, case: Case, cfg: RoutingSettings, now: dt.datetime) -> spatial.Statement:
    """The bounded lookup of open cases near ``case`` (the plan test EXPLAINs this very statement)."""
    return spatial.cases_near_statement(
        spatial.dialect(session),
        lon=case.lon,
        lat=case.lat,
        radius_m=cfg.duplicate_radius_m,
        since=now - dt.timedelta(days=cfg.duplicate_days),
        class_code=case.class_code,
        component_code=case.component_id,
        exclude_id=case.id,
        exclude_statuses=OPEN_EXCLUDED,
    )


def find_duplicates(
    session: Session, *, case: Case, settings: Settings | RoutingSettings, now: dt.datetime | None = None
) -> list[DuplicateProposal]:
    """Open cases within ``duplicate_radius_m`` metres and ``duplicate_days`` days of the same class or the
    same component as ``case``, nearest first."""
    now = now or utcnow()
    cfg = RoutingSettings.of(settings)
    rows = session.execute(duplicates_statement(session, case, cfg, now).clause()).all()
    return [
        DuplicateProposal(
            case_id=r.id,
            number=r.number,
            class_code=r.class_code,
            component_id=r.component_id,
            status=str(r.status),
            created_at=r.created_at,
            distance_m=round(float(r.distance_m), 1),
            age_hours=round((now - r.created_at).total_seconds() / 3600, 1),
            same="component" if case.component_id and r.component_id == case.component_id else "class",
        )
        for r in rows
    ]


def duplicates_for_case(
    session: Session, *, case_id: int, actor: Actor, settings: Settings | RoutingSettings
) -> list[DuplicateProposal]:
    """Duplicate proposals for a case the actor may see."""
    case = casework_service.get_case(session, case_id, actor=actor)
    return find_duplicates(session, case=case, settings=settings)
