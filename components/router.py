"""Map layers (areas, unit grids, components) and component look-ups, as GeoJSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from components import service
from components.schemas import ComponentHistoryRead, ComponentRead, FeatureCollection
from gridcity.deps import CurrentUser, DbSession
from gridcity.types import OffsetQuery

router = APIRouter(tags=["map"])

MAX_FEATURES = 5000
Bbox = Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")]
Offset = OffsetQuery
Limit = Annotated[int, Query(ge=1, le=MAX_FEATURES, description=f"at most {MAX_FEATURES} features")]


@router.get("/map/areas", response_model=FeatureCollection, summary="Districts, streets and communities")
def map_areas(session: DbSession, user: CurrentUser, bbox: Bbox = None, level: str | None = None,
              offset: Offset = 0, limit: Limit = 1000) -> dict[str, Any]:
    """The area layer in a bbox, optionally one level (district / street / community)."""
    return service.areas_layer(session, bbox=service.parse_bbox(bbox), level=level, offset=offset, limit=limit)


@router.get("/map/grids", response_model=FeatureCollection, summary="Unit grids")
def map_grids(session: DbSession, user: CurrentUser, bbox: Bbox = None, community_code: str | None = None,
              offset: Offset = 0, limit: Limit = 1000) -> dict[str, Any]:
    """The unit-grid layer in a bbox."""
    return service.grids_layer(session, bbox=service.parse_bbox(bbox), community_code=community_code,
                               offset=offset, limit=limit)


@router.get("/map/components", response_model=FeatureCollection, summary="Components")
def map_components(session: DbSession, user: CurrentUser, bbox: Bbox = None,
                   class_code: Annotated[list[str] | None, Query()] = None,
                   offset: Offset = 0, limit: Limit = 1000) -> dict[str, Any]:
    """The component layer in a bbox, optionally some classes (``class_code=C0101&class_code=C0118``)."""
    return service.components_layer(session, bbox=service.parse_bbox(bbox), class_codes=class_code or [],
                                    offset=offset, limit=limit)


@router.get("/components/export.geojson", response_model=FeatureCollection, summary="Export components")
def export_components(session: DbSession, user: CurrentUser, bbox: Bbox = None,
                      class_code: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
    """Every component as GeoJSON in the import format (departments by code)."""
    return service.export_components(session, bbox=service.parse_bbox(bbox), class_codes=class_code)


@router.get("/components/{code}", response_model=ComponentRead, summary="One component with its history")
def get_component(code: str, session: DbSession, user: CurrentUser) -> ComponentRead:
    """A component (部件) by its identifier, and every recorded change."""
    comp, history = service.get_component(session, code)
    return ComponentRead(feature=service.component_feature(comp),
                         history=[ComponentHistoryRead.model_validate(h) for h in history])
