"""GIS imports (areas, grids, components) and the live cases layer of the map.

These live in ``gis_data`` (an edge layer) because they need the loaders and ``casework``, which sit above
``components`` in the layering.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, File, Form, Query, Request, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import service as casework_service
from casework.lifecycle import CaseStatus
from casework.models import Case
from components import service as components_service
from gis_data import loader, readers
from gridcity.deps import CurrentUser, DbSession, SettingsDep, require_roles
from gridcity.errors import BadRequest, InvalidInput, PayloadTooLarge
from gridcity.roles import Role
from gridcity.types import utcnow

router = APIRouter(tags=["map"])

LIGHTS = ("red", "yellow", "green", "paused", "none")


def cases_layer(
    session: Session,
    *,
    actor: casework_service.Actor,
    bbox: tuple[float, float, float, float] | None,
    statuses: list[CaseStatus],
    lights: list[str],
    offset: int,
    limit: int,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The cases the actor may see as points with status and light, newest first."""
    now = now or utcnow()
    for i, light in enumerate(lights):
        if light not in LIGHTS:
            raise InvalidInput(f"light must be one of {', '.join(LIGHTS)}", code="case.bad_light",
                               loc=["query", "light", i])
    q = casework_service.visible_cases(actor)
    if statuses:
        q = q.where(Case.status.in_(statuses))
    if bbox is not None:
        q = q.where(components_service.bbox_clause(session, Case.geom, bbox))
    if lights and set(lights) <= {"red"}:
        q = q.where(Case.stage.is_not(None), Case.deadline_at < now)
    q = q.order_by(Case.id.desc())
    if lights:
        # the light depends on the clock, so we filter in Python and page afterwards
        rows = [c for c in session.scalars(q) if casework_service.light_of(c, now) in lights]
        total = len(rows)
        rows = rows[offset : offset + limit]
    else:
        total = session.scalar(select(sa.func.count()).select_from(q.subquery())) or 0
        rows = list(session.scalars(q.offset(offset).limit(limit)))
    features = [
        {
            "type": "Feature",
            "id": c.id,
            "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
            "properties": {
                "id": c.id, "number": c.number, "status": c.status.value, "class_code": c.class_code,
                "urgency": c.urgency, "grid_code": c.grid_code, "department_id": c.department_id,
                "deadline_at": c.deadline_at.isoformat() if c.deadline_at else None,
                "light": casework_service.light_of(c, now),
            },
        }
        for c in rows
    ]
    return components_service.feature_collection(features, total=total)


@router.get("/map/cases", summary="Cases as points with status and traffic light")
def map_cases(
    session: DbSession,
    user: CurrentUser,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")] = None,
    status: Annotated[list[CaseStatus] | None, Query()] = None,
    light: Annotated[list[str] | None, Query(description="red, yellow, green, paused, none")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """The case layer of the live map (only the cases the user may see)."""
    return cases_layer(session, actor=casework_service.actor_of(user), bbox=components_service.parse_bbox(bbox),
                       statuses=status or [], lights=light or [], offset=offset, limit=limit)


@router.post("/gis/areas", summary="Import districts, streets, communities and unit grids (GeoJSON)",
             dependencies=[require_roles(Role.ADMIN)])
def import_areas(
    session: DbSession,
    settings: SettingsDep,
    body: Annotated[dict[str, Any], Body(description="a GeoJSON FeatureCollection; properties code, name, "
                                                     "region_class (grids: start_date, end_date)")],
    crs: Annotated[str, Query(description="EPSG code of the coordinates")] = readers.WGS84,
) -> dict[str, Any]:
    """Validate and load the areas; 422 ``gis.load_rejected`` with the full report when any row is bad."""
    report = loader.load_areas(session, readers.read_geojson(body, crs=crs), source="import:areas", crs=crs,
                               projected_crs=settings.projected_crs)
    return report.to_dict()


@router.post("/gis/components", summary="Import components (GeoJSON or CSV with x,y / lon,lat)",
             dependencies=[require_roles(Role.ADMIN)])
def import_components(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=".geojson / .json or .csv")],
    crs: Annotated[str, Form(description="EPSG code of the coordinates, e.g. EPSG:4545")] = readers.WGS84,
) -> dict[str, Any]:
    """Validate and upsert components by ID; 422 ``gis.load_rejected`` with the report when any row is bad."""
    data = file.file.read(settings.max_upload_bytes * 10 + 1)
    if len(data) > settings.max_upload_bytes * 10:
        raise PayloadTooLarge("the file is too large", code="gis.too_large", loc=["body", "file"])
    name = (file.filename or "").lower()
    readers.parse_crs(crs)
    if name.endswith(".csv"):
        rows = readers.read_csv_points(data, crs=crs)
    elif name.endswith((".geojson", ".json")):
        rows = readers.read_geojson(data, crs=crs)
    else:
        raise BadRequest("upload a .geojson, .json or .csv file", code="gis.bad_file_type", loc=["body", "file"])
    report = loader.load_components(session, rows, source=f"import:{file.filename}"[:100], crs=crs,
                                    catalog=request.app.state.rules.catalog)
    return report.to_dict()
