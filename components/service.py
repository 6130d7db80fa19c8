"""Grid and component services: where a point falls, whether it is in the city, component look-ups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from shapely.geometry import mapping
from sqlalchemy import select
from sqlalchemy.orm import Session

from components import catalog_loader, codes
from components.models import (
    Area,
    Component,
    ComponentHistory,
    Grid,
    PatrolPoint,
    SupervisionArea,
    SupervisionGrid,
    SupervisionHistory,
)
from gridcity import spatial
from gridcity.errors import Conflict, InvalidInput, NotFound
from gridcity.org import User
from gridcity.roles import Role
from gridcity.types import UTCDateTime


@dataclass(frozen=True)
class Located:
    """Where a point falls."""

    grid_code: str | None
    inside_city: bool


def _has_districts(session: Session) -> bool:
    return session.scalars(select(Area.id).where(Area.level == "district").limit(1)).first() is not None


def grid_at(session: Session, *, lon: float, lat: float) -> str | None:
    """The code of the unit grid containing the point; on a shared border the lowest code wins."""
    rows = spatial.grid_at_statement(spatial.dialect(session), lon=lon, lat=lat).run(session)
    return str(rows[0][0]) if rows else None


def district_at(session: Session, *, lon: float, lat: float) -> str | None:
    """The code of the district containing the point (lowest code on a shared border)."""
    return session.scalars(
        select(Area.code)
        .where(Area.level == "district", spatial.covers_point(session, Area.geom, lon, lat))
        .order_by(Area.code)
        .limit(1)
    ).first()


def locate_point(session: Session, *, lon: float, lat: float) -> Located:
    """The unit grid containing the point, and whether the point is inside the city.

    While no district is loaded every point counts as inside (the city is not on the map yet).
    """
    grid = grid_at(session, lon=lon, lat=lat)
    if grid is not None or not _has_districts(session):
        return Located(grid_code=grid, inside_city=True)
    return Located(grid_code=None, inside_city=district_at(session, lon=lon, lat=lat) is not None)


def locate_points(session: Session, points: Sequence[tuple[float, float]]) -> list[Located]:
    """:func:`locate_point` for many points at once (bulk imports): the grids and districts are read once
    and searched in memory (shapely STRtree, the same ``intersects`` test and lowest-code rule)."""
    import shapely  # noqa: PLC0415

    def tree(stmt: sa.Select[Any]) -> tuple[list[str], Any]:
        rows = session.execute(stmt).all()
        geoms = shapely.from_wkb([bytes(r[1]) for r in rows]) if rows else []
        return [r[0] for r in rows], shapely.STRtree(geoms)

    codes_, grids = tree(select(Grid.code, sa.func.ST_AsBinary(Grid.geom)))
    has_districts = _has_districts(session)
    dcodes: list[str] = []
    dtree = None
    if has_districts:
        dcodes, dtree = tree(select(Area.code, sa.func.ST_AsBinary(Area.geom)).where(Area.level == "district"))
    pts = shapely.points(list(points)) if points else []
    out: list[Located] = []
    for pt in pts:
        hits = grids.query(pt, predicate="intersects") if codes_ else []
        if len(hits):
            out.append(Located(grid_code=min(codes_[i] for i in hits), inside_city=True))
        elif not has_districts:
            out.append(Located(grid_code=None, inside_city=True))
        else:
            inside = dtree is not None and len(dtree.query(pt, predicate="intersects")) > 0
            out.append(Located(grid_code=None, inside_city=inside))
    return out


def check_point_in_city(session: Session, *, lon: float, lat: float, located: Located | None = None) -> str | None:
    """Refuse points outside the city; return the grid code of the point (None between grids).

    ``located`` is the point's :func:`locate_point` when the caller has it already (not looked up again).
    """
    if located is None:
        located = locate_point(session, lon=lon, lat=lat)
    if not located.inside_city:
        raise InvalidInput(
            f"the point ({lon}, {lat}) is outside the city", code="geo.outside_city", loc=["body", "lon"]
        )
    return located.grid_code


def _canonical_class(key: str) -> str:
    """A CJ/T 214 key mapped to the GB/T 47678 key that replaces it (when the catalog knows one)."""
    try:
        if codes.parse_class_key(key).generation is codes.Generation.CJT214:
            return catalog_loader.default_catalog().mapping_old_to_new(key) or key
    except InvalidInput:
        pass
    return key


def _same_class(a: str, b: str) -> bool:
    return a == b or _canonical_class(a) == _canonical_class(b)


def check_component_for_case(session: Session, *, component_id: str, class_code: str) -> None:
    """Check that a reported component exists and is of the case's class."""
    loc = ["body", "component_id"]
    codes.parse_component_id(component_id, loc=loc)
    comp_class = session.scalars(select(Component.class_code).where(Component.code == component_id)).first()
    if comp_class is None:
        raise InvalidInput(f"unknown component {component_id}", code="component.unknown", loc=loc)
    if not _same_class(comp_class, class_code):
        raise InvalidInput(
            f"component {component_id} is of class {comp_class}, not {class_code}",
            code="component.class_mismatch",
            loc=loc,
        )


def bbox_clause(session: Session, geom_col: Any, bbox: tuple[float, float, float, float]) -> sa.ColumnElement[bool]:
    """A spatially indexed bbox filter on ``geom_col``."""
    return spatial.bbox_filter(session, geom_col, bbox)


# ---- reads for the API ---------------------------------------------------------------------------------


def _json_value(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return v


COMPONENT_PROPERTIES = (
    "code",
    "class_code",
    "name",
    "grid_code",
    "main_department_id",
    "owner_department_id",
    "maintainer_department_id",
    "state",
    "initial_date",
    "change_date",
    "data_source",
    "address",
    "note",
)


def component_feature(c: Component) -> dict[str, Any]:
    """A component as a GeoJSON feature (WGS84)."""
    return {
        "type": "Feature",
        "id": c.code,
        "geometry": mapping(to_shape(c.geom)),
        "properties": {k: _json_value(getattr(c, k)) for k in COMPONENT_PROPERTIES},
    }


def get_component(session: Session, code: str) -> tuple[Component, list[ComponentHistory]]:
    """A component and its change history (oldest first), or 404."""
    comp = session.scalars(select(Component).where(Component.code == code)).first()
    if comp is None:
        raise NotFound(f"component {code} not found", code="component.not_found")
    history = list(
        session.scalars(
            select(ComponentHistory)
            .where(ComponentHistory.component_code == code)
            .order_by(ComponentHistory.at, ComponentHistory.id)
        )
    )
    return comp, history


def layer_page(
    session: Session,
    model: Any,
    *,
    bbox: tuple[float, float, float, float] | None,
    where: list[sa.ColumnElement[bool]],
    order: Any,
    offset: int,
    limit: int,
) -> tuple[list[Any], int]:
    """One page of a map layer: rows of ``model`` in the bbox (spatially indexed), and how many match."""
    conds = list(where)
    if bbox is not None:
        conds.append(bbox_clause(session, model.geom, bbox))
    total = session.scalar(select(sa.func.count()).select_from(model).where(*conds)) or 0
    rows = list(session.scalars(select(model).where(*conds).order_by(order).offset(offset).limit(limit)))
    return rows, total


def feature_collection(features: list[dict[str, Any]], *, total: int) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with OGC API paging counts."""
    return {
        "type": "FeatureCollection",
        "numberMatched": total,
        "numberReturned": len(features),
        "features": features,
    }


def area_feature(a: Area) -> dict[str, Any]:
    """An area as a GeoJSON feature."""
    return {
        "type": "Feature",
        "id": a.code,
        "geometry": mapping(to_shape(a.geom)),
        "properties": {
            "code": a.code,
            "level": a.level,
            "name": a.name,
            "parent_code": a.parent_code,
            "region_class": a.region_class,
        },
    }


def grid_feature(g: Grid) -> dict[str, Any]:
    """A unit grid as a GeoJSON feature."""
    return {
        "type": "Feature",
        "id": g.code,
        "geometry": mapping(to_shape(g.geom)),
        "properties": {
            "code": g.code,
            "community_code": g.community_code,
            "name": g.name,
            "region_class": g.region_class,
            "area_m2": round(g.area_m2, 1),
            "start_date": _json_value(g.start_date),
            "end_date": _json_value(g.end_date),
        },
    }


def areas_layer(
    session: Session, *, bbox: tuple[float, float, float, float] | None, level: str | None, offset: int, limit: int
) -> dict[str, Any]:
    """The areas layer (optionally one level)."""
    if level is not None and level not in ("district", "street", "community"):
        raise InvalidInput("level must be district, street or community", code="area.bad_level", loc=["query", "level"])
    where = [Area.level == level] if level else []
    rows, total = layer_page(session, Area, bbox=bbox, where=where, order=Area.code, offset=offset, limit=limit)
    return feature_collection([area_feature(a) for a in rows], total=total)


def grids_layer(
    session: Session,
    *,
    bbox: tuple[float, float, float, float] | None,
    community_code: str | None,
    offset: int,
    limit: int,
) -> dict[str, Any]:
    """The unit-grid layer."""
    where = [Grid.community_code == community_code] if community_code else []
    rows, total = layer_page(session, Grid, bbox=bbox, where=where, order=Grid.code, offset=offset, limit=limit)
    return feature_collection([grid_feature(g) for g in rows], total=total)


def components_layer(
    session: Session, *, bbox: tuple[float, float, float, float] | None, class_codes: list[str], offset: int, limit: int
) -> dict[str, Any]:
    """The component layer (optionally some classes)."""
    for i, key in enumerate(class_codes):
        codes.parse_class_key(key, loc=["query", "class_code", i])
    where = [Component.class_code.in_(class_codes)] if class_codes else []
    rows, total = layer_page(
        session, Component, bbox=bbox, where=where, order=Component.code, offset=offset, limit=limit
    )
    return feature_collection([component_feature(c) for c in rows], total=total)


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """Parse ``minlon,minlat,maxlon,maxlat`` (OGC order); 422 when malformed."""
    if text is None or not text.strip():
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise InvalidInput(
            "bbox must be minlon,minlat,maxlon,maxlat", code="bbox.malformed", loc=["query", "bbox"]
        ) from exc
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise InvalidInput("bbox corners out of order or range", code="bbox.invalid", loc=["query", "bbox"])
    return x0, y0, x1, y1


def export_components(
    session: Session, *, bbox: tuple[float, float, float, float] | None = None, class_codes: list[str] | None = None
) -> dict[str, Any]:
    """Every component (optionally in a bbox / of some classes) as GeoJSON that the importer reads back.

    Departments are named by code (``main_department`` etc.), so the file can be loaded into another city
    database with the same department codes.
    """
    from gridcity.org import Department  # noqa: PLC0415

    dept_codes = dict(session.execute(select(Department.id, Department.code)).all())
    conds: list[sa.ColumnElement[bool]] = []
    if bbox is not None:
        conds.append(bbox_clause(session, Component.geom, bbox))
    if class_codes:
        conds.append(Component.class_code.in_(class_codes))
    features = []
    for c in session.scalars(select(Component).where(*conds).order_by(Component.code)).yield_per(2000):
        props = {
            "code": c.code,
            "class_code": c.class_code,
            "name": c.name,
            "grid_code": c.grid_code,
            "state": c.state,
            "main_department": dept_codes.get(c.main_department_id),  # type: ignore[arg-type]
            "owner_department": dept_codes.get(c.owner_department_id),  # type: ignore[arg-type]
            "maintainer_department": dept_codes.get(c.maintainer_department_id),  # type: ignore[arg-type]
            "initial_date": _json_value(c.initial_date),
            "change_date": _json_value(c.change_date),
            "data_source": c.data_source,
            "address": c.address,
            "note": c.note,
        }
        features.append({"type": "Feature", "id": c.code, "geometry": mapping(to_shape(c.geom)), "properties": props})
    return {"type": "FeatureCollection", "features": features}


def assignment_intervals(start: dt.datetime, end: dt.datetime, *, inspector_id: int | None = None) -> Any:
    """Who was responsible for which grid during ``[start, end)``: a subquery of ``grid_code, inspector_id,
    lo, hi``, one row per stretch ``[lo, hi)`` (clipped to the window) during which ``inspector_id`` held the grid.

    The stretches come from ``supervision_history`` (closed assignments) and the current assignment, which
    holds since the grid's last recorded change (``valid_from`` None: since always). So a grid moved from one
    inspector to another in the middle of the window appears twice, once for each, each with its own part.
    """
    h = SupervisionHistory
    since = select(h.grid_code, sa.func.max(h.valid_to).label("since")).group_by(h.grid_code).subquery("since")
    current = (
        select(
            SupervisionGrid.grid_code.label("grid_code"),
            SupervisionArea.inspector_id.label("inspector_id"),
            since.c.since.label("valid_from"),
            sa.cast(sa.null(), UTCDateTime()).label("valid_to"),
        )
        .join(SupervisionArea, SupervisionArea.id == SupervisionGrid.supervision_area_id)
        .outerjoin(since, since.c.grid_code == SupervisionGrid.grid_code)
    )
    past = select(h.grid_code, h.inspector_id, h.valid_from, h.valid_to)
    u = sa.union_all(current, past).subquery("held")
    t0, t1 = sa.literal(start, UTCDateTime()), sa.literal(end, UTCDateTime())
    lo = sa.case((sa.or_(u.c.valid_from.is_(None), u.c.valid_from < start), t0), else_=u.c.valid_from)
    hi = sa.case((sa.or_(u.c.valid_to.is_(None), u.c.valid_to > end), t1), else_=u.c.valid_to)
    q = select(u.c.grid_code, u.c.inspector_id, lo.label("lo"), hi.label("hi")).where(
        u.c.inspector_id.is_not(None),
        sa.or_(u.c.valid_from.is_(None), u.c.valid_from < end),
        sa.or_(u.c.valid_to.is_(None), u.c.valid_to > start),
        sa.or_(u.c.valid_from.is_(None), u.c.valid_to.is_(None), u.c.valid_from < u.c.valid_to),
    )
    if inspector_id is not None:
        q = q.where(u.c.inspector_id == inspector_id)
    return q.subquery("held_in_window")


def _visited_while_held(iv: Any) -> sa.ColumnElement[bool]:
    """A breadcrumb of the stretch's inspector in the stretch's grid during the stretch."""
    return sa.exists().where(
        PatrolPoint.inspector_id == iv.c.inspector_id,
        PatrolPoint.grid_code == iv.c.grid_code,
        PatrolPoint.at >= iv.c.lo,
        PatrolPoint.at < iv.c.hi,
    )


def coverage_by_inspector(
    session: Session, *, start: dt.datetime, end: dt.datetime, inspector_id: int | None = None
) -> dict[int, tuple[int, int]]:
    """Per inspector: (grids they were responsible for during ``[start, end)``, of those visited while held).

    Areas as they were at the time (issue 14): a grid counts for the inspectors who held it at some time in
    the window (:func:`assignment_intervals`), and as visited for one of them only by that inspector's own
    breadcrumb while they held it. One grouped SQL statement (usable for all inspectors at once, e.g. by
    evaluation); the visit test is an ``EXISTS`` on the ``(inspector_id, at)`` index.
    """
    iv = assignment_intervals(start, end, inspector_id=inspector_id)
    q = select(
        iv.c.inspector_id,
        sa.func.count(sa.distinct(iv.c.grid_code)),
        sa.func.count(sa.distinct(sa.case((_visited_while_held(iv), iv.c.grid_code)))),
    ).group_by(iv.c.inspector_id)
    return {int(i): (int(total), int(seen)) for i, total, seen in session.execute(q)}


def missed_grids(session: Session, *, inspector_id: int, start: dt.datetime, end: dt.datetime) -> list[str]:
    """The grids the inspector held during ``[start, end)`` but did not visit while holding them, sorted."""
    iv = assignment_intervals(start, end, inspector_id=inspector_id)
    held = set(session.scalars(select(iv.c.grid_code)))
    seen = set(session.scalars(select(iv.c.grid_code).where(_visited_while_held(iv))))
    return sorted(held - seen)


def reassign_supervision_area(
    session: Session, *, area_id: int, inspector_id: int | None, effective_at: dt.datetime, now: dt.datetime
) -> SupervisionArea:
    """Give a supervision area (all its grids) to another inspector, or to nobody, as of ``effective_at``.

    The previous holder keeps the grids up to ``effective_at`` in the area history, the new one holds them
    from then on (:func:`assign_supervision_area`). ``effective_at`` may lie in the past (a change recorded
    late), but not before the last recorded change of any of the area's grids (the history is append-only:
    rewriting it would change evaluations already published) and not in the future (no scheduled changes).

    Raises:
        NotFound: ``supervision_area.not_found``.
        InvalidInput: ``supervision_area.effective_in_future``, ``supervision_area.naive_time``,
            ``user.not_inspector``.
        Conflict: ``supervision_area.effective_before_last_change``.
    """
    area = session.get(SupervisionArea, area_id)
    if area is None:
        raise NotFound(f"supervision area {area_id} not found", code="supervision_area.not_found", loc=["area_id"])
    if effective_at.tzinfo is None:
        raise InvalidInput(
            "effective_at needs a time zone", code="supervision_area.naive_time", loc=["body", "effective_at"]
        )
    if effective_at > now:
        raise InvalidInput(
            f"effective_at {effective_at.isoformat()} is in the future",
            code="supervision_area.effective_in_future",
            loc=["body", "effective_at"],
        )
    if inspector_id is not None:
        user = session.get(User, inspector_id)
        if user is None or user.role is not Role.INSPECTOR or not user.active:
            raise InvalidInput(
                f"user {inspector_id} is not an active inspector",
                code="user.not_inspector",
                loc=["body", "inspector_id"],
            )
    codes = list(
        session.scalars(
            select(SupervisionGrid.grid_code)
            .where(SupervisionGrid.supervision_area_id == area.id)
            .order_by(SupervisionGrid.grid_code)
        )
    )
    last = session.scalar(
        select(sa.func.max(SupervisionHistory.valid_to)).where(SupervisionHistory.grid_code.in_(codes or [""]))
    )
    if last is not None and effective_at < last:
        raise Conflict(
            f"effective_at is before the last recorded change of this area's grids ({last.isoformat()})",
            code="supervision_area.effective_before_last_change",
            loc=["body", "effective_at"],
            extra={"last_change_at": last.isoformat()},
        )
    return assign_supervision_area(
        session, code=area.code, name=area.name, inspector_id=inspector_id, grid_codes=codes, at=effective_at
    )


def assign_supervision_area(
    session: Session, *, code: str, name: str, inspector_id: int | None, grid_codes: Sequence[str], at: dt.datetime
) -> SupervisionArea:
    """Create or change an inspector's supervision area (责任区) as of ``at``, keeping its history.

    Every grid whose responsible inspector changes (it joins or leaves the area, or the area changes hands)
    gets its previous assignment closed at ``at`` in ``supervision_history``, so that evaluations attribute
    earlier cases to the inspector responsible at their time.
    """
    area = session.scalars(select(SupervisionArea).where(SupervisionArea.code == code)).one_or_none()
    old_grids: set[str] = set()
    if area is None:
        area = SupervisionArea(code=code, name=name, inspector_id=inspector_id)
        session.add(area)
        session.flush()
    else:
        old_grids = set(
            session.scalars(select(SupervisionGrid.grid_code).where(SupervisionGrid.supervision_area_id == area.id))
        )
    new_grids = set(grid_codes)
    touched = sorted(old_grids | new_grids)
    before: dict[str, int | None] = {}
    for chunk in (touched[i : i + 900] for i in range(0, len(touched), 900)):
        before.update(
            dict(
                session.execute(
                    select(SupervisionGrid.grid_code, SupervisionArea.inspector_id)
                    .join(SupervisionArea, SupervisionArea.id == SupervisionGrid.supervision_area_id)
                    .where(SupervisionGrid.grid_code.in_(chunk))
                ).all()
            )
        )
    since = dict(
        session.execute(
            select(SupervisionHistory.grid_code, sa.func.max(SupervisionHistory.valid_to))
            .where(SupervisionHistory.grid_code.in_(touched or [""]))
            .group_by(SupervisionHistory.grid_code)
        ).all()
    )
    for g in touched:
        was = before.get(g)
        now = inspector_id if g in new_grids else (None if g in old_grids else was)
        if was != now:
            session.add(
                SupervisionHistory(
                    grid_code=g,
                    supervision_area_id=area.id if g in old_grids else None,
                    inspector_id=was,
                    valid_from=since.get(g),
                    valid_to=at,
                )
            )
    area.name, area.inspector_id = name, inspector_id
    session.execute(sa.delete(SupervisionGrid).where(SupervisionGrid.supervision_area_id == area.id))
    if new_grids:
        session.execute(
            sa.insert(SupervisionGrid), [{"supervision_area_id": area.id, "grid_code": g} for g in sorted(new_grids)]
        )
    # A grid belongs to one area: moving it here takes it out of any other.
    session.execute(
        sa.delete(SupervisionGrid).where(
            SupervisionGrid.grid_code.in_(sorted(new_grids)), SupervisionGrid.supervision_area_id != area.id
        )
    )
    session.flush()
    return area
