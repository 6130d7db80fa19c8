"""Map layers (areas, unit grids, components) and component look-ups, as GeoJSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from components import addresses, service, supervision
from components.schemas import (
    AddressList,
    AddressRead,
    ComponentHistoryRead,
    ComponentRead,
    FeatureCollection,
    SupervisionAreaCreate,
    SupervisionAreaRead,
    SupervisionAreaReassign,
    SupervisionAreaUpdate,
)
from gridcity.deps import CurrentUser, DbSession, require_roles
from gridcity.roles import Role
from gridcity.types import IdPath, OffsetQuery, localize, utcnow

router = APIRouter(tags=["map"])

MAX_FEATURES = 5000
Bbox = Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")]
Offset = OffsetQuery
Limit = Annotated[int, Query(ge=1, le=MAX_FEATURES, description=f"at most {MAX_FEATURES} features")]


@router.get("/map/areas", response_model=FeatureCollection, summary="Districts, streets and communities")
def map_areas(
    session: DbSession,
    user: CurrentUser,
    bbox: Bbox = None,
    level: str | None = None,
    offset: Offset = 0,
    limit: Limit = 1000,
) -> dict[str, Any]:
    """The area layer in a bbox, optionally one level (district / street / community)."""
    return service.areas_layer(session, bbox=service.parse_bbox(bbox), level=level, offset=offset, limit=limit)


@router.get("/map/grids", response_model=FeatureCollection, summary="Unit grids")
def map_grids(
    session: DbSession,
    user: CurrentUser,
    bbox: Bbox = None,
    community_code: str | None = None,
    offset: Offset = 0,
    limit: Limit = 1000,
) -> dict[str, Any]:
    """The unit-grid layer in a bbox."""
    return service.grids_layer(
        session, bbox=service.parse_bbox(bbox), community_code=community_code, offset=offset, limit=limit
    )


@router.get("/map/components", response_model=FeatureCollection, summary="Components")
def map_components(
    session: DbSession,
    user: CurrentUser,
    bbox: Bbox = None,
    class_code: Annotated[list[str] | None, Query()] = None,
    offset: Offset = 0,
    limit: Limit = 1000,
) -> dict[str, Any]:
    """The component layer in a bbox, optionally some classes (``class_code=C0101&class_code=C0118``)."""
    return service.components_layer(
        session, bbox=service.parse_bbox(bbox), class_codes=class_code or [], offset=offset, limit=limit
    )


@router.get("/components/export.geojson", response_model=FeatureCollection, summary="Export components")
def export_components(
    session: DbSession, user: CurrentUser, bbox: Bbox = None, class_code: Annotated[list[str] | None, Query()] = None
) -> dict[str, Any]:
    """Every component as GeoJSON in the import format (departments by code)."""
    return service.export_components(session, bbox=service.parse_bbox(bbox), class_codes=class_code)


@router.get("/components/{code}", response_model=ComponentRead, summary="One component with its history")
def get_component(code: str, session: DbSession, user: CurrentUser) -> ComponentRead:
    """A component (部件) by its identifier, and every recorded change."""
    comp, history = service.get_component(session, code)
    return ComponentRead(
        feature=service.component_feature(comp), history=[ComponentHistoryRead.model_validate(h) for h in history]
    )


@router.get("/addresses", response_model=AddressList, tags=["addresses"], summary="Find a standard address")
def find_addresses(
    session: DbSession,
    user: CurrentUser,
    q: Annotated[str, Query(min_length=1, max_length=100, description="partial address, e.g. 经二路12")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> AddressList:
    """Standard addresses (门牌, places, roads) matching partial input, best first, with grid and community."""
    hits = addresses.lookup(session, q, limit=limit)
    return AddressList(q=q, items=[AddressRead(**addresses.hit_dict(h)) for h in hits])


@router.get("/addresses/{address_id}", response_model=AddressRead, tags=["addresses"], summary="One standard address")
def get_address(address_id: IdPath, session: DbSession, user: CurrentUser) -> AddressRead:
    """A standard address by id."""
    addr = addresses.read_address(session, address_id)
    hit = addresses.Hit(addr, 0, None, None)
    return AddressRead(**addresses.hit_dict(hit))


AREA_READERS = [require_roles(Role.ADMIN, Role.ACCEPTOR, Role.SHIFT_LEADER, Role.DISPATCHER, Role.LEADER)]


@router.get(
    "/supervision-areas",
    response_model=list[SupervisionAreaRead],
    tags=["organisation"],
    dependencies=AREA_READERS,
    summary="Inspectors' supervision areas",
)
def list_supervision_areas(session: DbSession) -> list[dict[str, Any]]:
    """Every supervision area (监督员责任区) with its inspector and unit grids."""
    return supervision.list_areas(session)


@router.post(
    "/supervision-areas",
    response_model=SupervisionAreaRead,
    status_code=201,
    tags=["organisation"],
    dependencies=[require_roles(Role.ADMIN)],
    summary="Add a supervision area",
)
def create_supervision_area(body: SupervisionAreaCreate, session: DbSession) -> dict[str, Any]:
    """A new supervision area (admin)."""
    area = supervision.create_area(session, **body.model_dump())
    return supervision.area_dict(session, area)


@router.patch(
    "/supervision-areas/{area_id}",
    response_model=SupervisionAreaRead,
    tags=["organisation"],
    dependencies=[require_roles(Role.ADMIN)],
    summary="Change a supervision area",
)
def update_supervision_area(area_id: IdPath, body: SupervisionAreaUpdate, session: DbSession) -> dict[str, Any]:
    """Give an area to another inspector, rename it or change its grids (admin)."""
    area = supervision.update_area(session, area_id, **body.model_dump())
    return supervision.area_dict(session, area)


@router.post(
    "/supervision-areas/{area_id}/reassign",
    response_model=SupervisionAreaRead,
    tags=["organisation"],
    dependencies=[require_roles(Role.ADMIN, Role.SHIFT_LEADER)],
    summary="Give a supervision area to another inspector from a given time on",
    responses={
        404: {"description": "supervision_area.not_found"},
        409: {"description": "supervision_area.effective_before_last_change"},
        422: {"description": "supervision_area.effective_in_future, user.not_inspector"},
    },
)
def reassign_supervision_area(
    area_id: IdPath, body: SupervisionAreaReassign, session: DbSession, request: Request
) -> dict[str, Any]:
    """Reassign an area (监督员责任区调整) as of ``effective_at`` (admin or shift leader).

    The area history records the change: cases, inspections and patrol coverage before ``effective_at`` stay
    with the previous inspector, later ones go to the new one. ``effective_at`` may be in the past (a change
    entered late) but not before the area's last recorded change, and not in the future.
    """
    tz = request.app.state.rules.calendar.timezone
    effective_at = localize(body.effective_at, tz)
    assert effective_at is not None
    area = service.reassign_supervision_area(
        session, area_id=area_id, inspector_id=body.inspector_id, effective_at=effective_at, now=utcnow()
    )
    return supervision.area_dict(session, area)
