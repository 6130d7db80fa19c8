"""Inspectors' supervision areas (监督员责任区): which unit grids each inspector patrols."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from components import service as components_service
from components.models import Grid, SupervisionArea, SupervisionGrid
from gridcity.errors import Conflict, InvalidInput, NotFound
from gridcity.org import User
from gridcity.roles import Role
from gridcity.types import utcnow


def _check_inspector(session: Session, inspector_id: int | None) -> None:
    if inspector_id is None:
        return
    user = session.get(User, inspector_id)
    if user is None or user.role is not Role.INSPECTOR or not user.active:
        raise InvalidInput(
            f"user {inspector_id} is not an active inspector", code="user.not_inspector", loc=["inspector_id"]
        )


def _check_grids(session: Session, grid_codes: Sequence[str]) -> list[str]:
    codes = list(dict.fromkeys(grid_codes))
    known = set(session.scalars(select(Grid.code).where(Grid.code.in_(codes)))) if codes else set()
    for i, c in enumerate(codes):
        if c not in known:
            raise InvalidInput(f"unknown grid {c}", code="supervision_area.unknown_grid", loc=["grid_codes", i])
    return codes


def _assign(
    session: Session, area_code: str, name: str, inspector_id: int | None, grid_codes: Sequence[str]
) -> SupervisionArea:
    # Through the one function that keeps the area history, so that inspectors' evaluations attribute earlier
    # cases to whoever was responsible at their time (issue 14), whichever screen made the change.
    return components_service.assign_supervision_area(
        session, code=area_code, name=name, inspector_id=inspector_id, grid_codes=grid_codes, at=utcnow()
    )


def area_dict(session: Session, area: SupervisionArea) -> dict[str, Any]:
    """An area with its grids."""
    grids = list(
        session.scalars(
            select(SupervisionGrid.grid_code)
            .where(SupervisionGrid.supervision_area_id == area.id)
            .order_by(SupervisionGrid.grid_code)
        )
    )
    return {"id": area.id, "code": area.code, "name": area.name, "inspector_id": area.inspector_id, "grid_codes": grids}


def list_areas(session: Session) -> list[dict[str, Any]]:
    """Every supervision area with its grids."""
    areas = session.scalars(select(SupervisionArea).order_by(SupervisionArea.code)).all()
    grids: dict[int, list[str]] = {}
    for aid, code in session.execute(
        select(SupervisionGrid.supervision_area_id, SupervisionGrid.grid_code).order_by(SupervisionGrid.grid_code)
    ):
        grids.setdefault(aid, []).append(code)
    return [
        {"id": a.id, "code": a.code, "name": a.name, "inspector_id": a.inspector_id, "grid_codes": grids.get(a.id, [])}
        for a in areas
    ]


def create_area(
    session: Session, *, code: str, name: str, inspector_id: int | None, grid_codes: Sequence[str]
) -> SupervisionArea:
    """A new supervision area."""
    if session.scalars(select(SupervisionArea.id).where(SupervisionArea.code == code)).first() is not None:
        raise Conflict(f"supervision area {code} exists", code="supervision_area.exists", loc=["code"])
    _check_inspector(session, inspector_id)
    return _assign(session, code, name, inspector_id, _check_grids(session, grid_codes))


def update_area(
    session: Session,
    area_id: int,
    *,
    name: str | None,
    inspector_id: int | None,
    clear_inspector: bool,
    grid_codes: Sequence[str] | None,
) -> SupervisionArea:
    """Rename an area, give it to another inspector, or change its grids."""
    area = session.get(SupervisionArea, area_id)
    if area is None:
        raise NotFound(f"supervision area {area_id} not found", code="supervision_area.not_found")
    if inspector_id is not None:
        _check_inspector(session, inspector_id)
    new_inspector = inspector_id if inspector_id is not None else (None if clear_inspector else area.inspector_id)
    if grid_codes is not None:
        codes = _check_grids(session, grid_codes)
    else:
        codes = list(
            session.scalars(select(SupervisionGrid.grid_code).where(SupervisionGrid.supervision_area_id == area.id))
        )
    return _assign(session, area.code, name if name is not None else area.name, new_inspector, codes)
