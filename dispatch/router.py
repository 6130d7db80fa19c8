"""HTTP endpoints of routing: recommendation, duplicate proposals, routing rules (thin: one service call)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from casework import service as casework_service
from casework.rules import CaseRules
from dispatch import duplicates, service
from dispatch.schemas import DuplicateRead, RecommendationRead, RoutingRuleIn, RoutingRuleRead
from gridcity.deps import DbSession, SettingsDep, require_roles
from gridcity.org import User
from gridcity.roles import CITYWIDE_ROLES, Role
from gridcity.types import IdPath

router = APIRouter(tags=["dispatch"])

ADVISED_ROLES = (Role.DISPATCHER, Role.SHIFT_LEADER, Role.ACCEPTOR, Role.LEADER, Role.ADMIN)


def _rules(request: Request) -> CaseRules:
    rules: CaseRules = request.app.state.rules
    return rules


@router.get(
    "/cases/{case_id}/recommendation",
    response_model=RecommendationRead,
    summary="Which department should handle the case, and why",
)
def recommendation(
    case_id: IdPath,
    session: DbSession,
    settings: SettingsDep,
    request: Request,
    user: Annotated[User, require_roles(*ADVISED_ROLES)],
) -> RecommendationRead:
    """The responsible department by component ownership or routing rule, with a readable explanation."""
    rec = service.recommend_for_case(
        session, case_id=case_id, actor=casework_service.actor_of(user), rules=_rules(request), settings=settings
    )
    return RecommendationRead.model_validate(rec)


@router.get(
    "/cases/{case_id}/duplicates", response_model=list[DuplicateRead], summary="Open cases that may be the same problem"
)
def case_duplicates(
    case_id: IdPath,
    session: DbSession,
    settings: SettingsDep,
    user: Annotated[User, require_roles(*sorted(CITYWIDE_ROLES))],
) -> list[DuplicateRead]:
    """Open cases of the same class or component nearby and recent, nearest first (merge with `merge`)."""
    found = duplicates.duplicates_for_case(
        session, case_id=case_id, actor=casework_service.actor_of(user), settings=settings
    )
    return [DuplicateRead.model_validate(d) for d in found]


@router.get("/routing-rules", response_model=list[RoutingRuleRead], summary="The routing table")
def list_routing_rules(session: DbSession, user: Annotated[User, require_roles(Role.ADMIN)]) -> list[RoutingRuleRead]:
    """Every routing rule, in id order."""
    return [RoutingRuleRead.model_validate(r) for r in service.list_rules(session)]


@router.post(
    "/routing-rules",
    response_model=list[RoutingRuleRead],
    status_code=201,
    summary="Load routing rules (all or nothing)",
)
def load_routing_rules(
    body: list[RoutingRuleIn],
    session: DbSession,
    user: Annotated[User, require_roles(Role.ADMIN)],
    replace: Annotated[bool, Query(description="replace the whole table instead of adding")] = False,
) -> list[RoutingRuleRead]:
    """Add rules (or replace the table); a conflict or bad row refuses the whole batch with 422."""
    stored = service.load_rules(session, rows=[r.model_dump() for r in body], replace=replace)
    return [RoutingRuleRead.model_validate(r) for r in stored]
