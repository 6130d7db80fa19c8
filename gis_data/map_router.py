"""GIS imports (areas, grids, components) and the live cases layer of the map.

These live in ``gis_data`` (an edge layer) because they need the loaders and ``casework``, which sit above
``components`` in the layering.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
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
from gridcity.settings import Settings
from gridcity.types import BoundedDatetime, OffsetQuery, localize, utcnow

router = APIRouter(tags=["map"])

LIGHTS = ("red", "yellow", "green", "paused", "none")
# Colours of the major classes on the map and the dashboard (by position in the sorted list of majors).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
)
MAX_HOTSPOT_CELLS = 20_000


def major_of(class_code: str | None) -> str:
    """The major class (大类) of a class key: kind letter and 2-digit major code (``C0101`` → ``C01``)."""
    return class_code[:3] if class_code and len(class_code) >= 3 else "—"


def legend(catalog: Any) -> list[dict[str, Any]]:
    """Every major class of the catalog with its Chinese name and map colour, sorted by key."""
    names: dict[str, str] = {}
    for info in catalog:
        names.setdefault(major_of(info.key), info.major_name_zh)
    return [{"major": m, "name": names[m], "color": PALETTE[i % len(PALETTE)]} for i, m in enumerate(sorted(names))]


def hotspots(
    session: Session,
    *,
    actor: casework_service.Actor,
    created_from: dt.datetime | None,
    created_to: dt.datetime | None,
    major: str | None = None,
) -> dict[str, Any]:
    """Case counts by unit grid and major class for a period, as GeoJSON points (one per grid).

    Each grid's point is the mean position of its cases (no dialect-specific SQL); ``properties.classes``
    has the count per major class. Also the totals per major class and per grid, largest first.
    """
    if created_from is not None and created_to is not None and created_from >= created_to:
        raise InvalidInput(
            "created_from must be before created_to", code="map.bad_period", loc=["query", "created_from"]
        )
    visible = (
        casework_service.visible_cases(actor)
        .with_only_columns(Case.grid_code, Case.class_code, Case.lon, Case.lat)
        .where(Case.merged_into_id.is_(None))
    )
    if created_from is not None:
        visible = visible.where(Case.created_at >= created_from)
    if created_to is not None:
        visible = visible.where(Case.created_at < created_to)
    if major is not None:
        visible = visible.where(Case.class_code.like(major.replace("%", "").replace("_", "") + "%"))
    sub = visible.subquery()
    maj = sa.func.substr(sub.c.class_code, 1, 3)
    q = (
        select(
            sub.c.grid_code,
            maj.label("major"),
            sa.func.count().label("n"),
            sa.func.sum(sub.c.lon).label("slon"),
            sa.func.sum(sub.c.lat).label("slat"),
        )
        .group_by(sub.c.grid_code, maj)
        .limit(MAX_HOTSPOT_CELLS)
    )
    grids: dict[str, dict[str, Any]] = {}
    by_class: dict[str, int] = {}
    total = 0
    for r in session.execute(q):
        code = r.grid_code or "—"
        g = grids.setdefault(code, {"n": 0, "slon": 0.0, "slat": 0.0, "classes": {}})
        g["n"] += r.n
        g["slon"] += float(r.slon or 0)
        g["slat"] += float(r.slat or 0)
        g["classes"][r.major or "—"] = r.n
        by_class[r.major or "—"] = by_class.get(r.major or "—", 0) + r.n
        total += r.n
    features = [
        {
            "type": "Feature",
            "id": code,
            "geometry": {"type": "Point", "coordinates": [round(g["slon"] / g["n"], 6), round(g["slat"] / g["n"], 6)]},
            "properties": {
                "grid_code": code,
                "count": g["n"],
                "classes": dict(sorted(g["classes"].items(), key=lambda kv: (-kv[1], kv[0]))),
            },
        }
        for code, g in sorted(grids.items(), key=lambda kv: (-kv[1]["n"], kv[0]))
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "total": total,
        "max_count": max((f["properties"]["count"] for f in features), default=0),
        "by_class": [{"major": m, "count": n} for m, n in sorted(by_class.items(), key=lambda kv: (-kv[1], kv[0]))],
        "period": {
            "from": created_from.isoformat() if created_from else None,
            "to": created_to.isoformat() if created_to else None,
        },
    }


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
            raise InvalidInput(
                f"light must be one of {', '.join(LIGHTS)}", code="case.bad_light", loc=["query", "light", i]
            )
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
                "id": c.id,
                "number": c.number,
                "status": c.status.value,
                "class_code": c.class_code,
                "urgency": c.urgency,
                "grid_code": c.grid_code,
                "department_id": c.department_id,
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
    offset: OffsetQuery = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """The case layer of the live map (only the cases the user may see)."""
    return cases_layer(
        session,
        actor=casework_service.actor_of(user),
        bbox=components_service.parse_bbox(bbox),
        statuses=status or [],
        lights=light or [],
        offset=offset,
        limit=limit,
    )


@router.get("/map/hotspots", summary="Case counts by unit grid and major class for a period (GeoJSON)")
def map_hotspots(
    request: Request,
    session: DbSession,
    user: CurrentUser,
    created_from: Annotated[BoundedDatetime | None, Query(description="date or datetime; no zone: the city's")] = None,
    created_to: Annotated[BoundedDatetime | None, Query(description="date or datetime; no zone: the city's")] = None,
    major: Annotated[str | None, Query(pattern=r"^[CE]\d{2}$", description="one major class, e.g. C01")] = None,
) -> dict[str, Any]:
    """The dashboard's hot-spot map, aggregated in the database (only the cases the user may see)."""
    tz = request.app.state.rules.calendar.timezone
    out = hotspots(
        session,
        actor=casework_service.actor_of(user),
        created_from=localize(created_from, tz),
        created_to=localize(created_to, tz),
        major=major,
    )
    names = {e["major"]: e for e in legend(request.app.state.rules.catalog)}
    for row in out["by_class"]:
        row["name"] = names.get(row["major"], {}).get("name", "")
        row["color"] = names.get(row["major"], {}).get("color", "#7f7f7f")
    return out


@router.get("/map/legend", summary="Major classes with their names and map colours")
def map_legend(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The colour key of the component layer and the hot-spot map."""
    return {"majors": legend(request.app.state.rules.catalog)}


@router.post(
    "/gis/areas",
    summary="Import districts, streets, communities and unit grids (GeoJSON)",
    dependencies=[require_roles(Role.ADMIN)],
)
def import_areas(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    body: Annotated[
        dict[str, Any],
        Body(
            description="a GeoJSON FeatureCollection; properties code, name, region_class (grids: start_date, end_date)"
        ),
    ],
    crs: Annotated[str, Query(description="EPSG code of the coordinates")] = readers.WGS84,
) -> dict[str, Any]:
    """Validate and load the areas; 422 ``gis.load_rejected`` with the full report when any row is bad."""
    report = loader.load_areas(
        session,
        readers.read_geojson(body, crs=crs),
        source="import:areas",
        crs=crs,
        projected_crs=settings.projected_crs,
    )
    session.flush()
    request.app.state.tile_cache.forget_versions()
    return report.to_dict()


def read_layer_upload(
    file: UploadFile, *, settings: Settings, crs: str, readers_by_suffix: dict[str, Callable[..., Any]]
) -> Any:
    """An admin's GIS upload read (at most 10 × the photo limit) by the reader its file suffix names.

    413 ``gis.too_large`` above the limit; 400 ``gis.bad_file_type`` for a suffix no reader takes.
    """
    data = file.file.read(settings.max_upload_bytes * 10 + 1)
    if len(data) > settings.max_upload_bytes * 10:
        raise PayloadTooLarge("the file is too large", code="gis.too_large", loc=["body", "file"])
    name = (file.filename or "").lower()
    readers.parse_crs(crs)
    for suffix, read in readers_by_suffix.items():
        if name.endswith(suffix):
            return read(data, crs=crs)
    raise BadRequest(f"upload a {', '.join(readers_by_suffix)} file", code="gis.bad_file_type", loc=["body", "file"])


@router.post(
    "/gis/components",
    summary="Import components (GeoJSON or CSV with x,y / lon,lat)",
    dependencies=[require_roles(Role.ADMIN)],
)
def import_components(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=".geojson / .json or .csv")],
    crs: Annotated[str, Form(description="EPSG code of the coordinates, e.g. EPSG:4545")] = readers.WGS84,
) -> dict[str, Any]:
    """Validate and upsert components by ID; 422 ``gis.load_rejected`` with the report when any row is bad."""
    rows = read_layer_upload(
        file,
        settings=settings,
        crs=crs,
        readers_by_suffix={
            ".csv": readers.read_csv_points,
            ".geojson": readers.read_geojson,
            ".json": readers.read_geojson,
        },
    )
    report = loader.load_components(
        session, rows, source=f"import:{file.filename}"[:100], crs=crs, catalog=request.app.state.rules.catalog
    )
    session.flush()
    request.app.state.tile_cache.forget_versions()
    return report.to_dict()
