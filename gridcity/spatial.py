"""Spatial SQL that differs between PostGIS and SpatiaLite. Dialect branches live here and only here."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session


def dialect(session: Session | sa.Connection) -> str:
    """``postgresql`` or ``sqlite``."""
    bind = session.get_bind() if isinstance(session, Session) else session
    return bind.dialect.name


def envelope(session: Session | sa.Connection, bbox: tuple[float, float, float, float]) -> Any:
    """A WGS84 rectangle from (minlon, minlat, maxlon, maxlat)."""
    x0, y0, x1, y1 = bbox
    if dialect(session) == "postgresql":
        return sa.func.ST_MakeEnvelope(x0, y0, x1, y1, 4326)
    return sa.func.BuildMbr(x0, y0, x1, y1, 4326)


def bbox_filter(
    session: Session | sa.Connection, geom_col: Any, bbox: tuple[float, float, float, float]
) -> sa.ColumnElement[bool]:
    """Rows whose geometry intersects the bbox, through the spatial index on both back ends."""
    env = envelope(session, bbox)
    if dialect(session) == "postgresql":
        return sa.and_(geom_col.op("&&")(env), sa.func.ST_Intersects(geom_col, env))
    table = geom_col.table.name
    col = geom_col.name
    x0, y0, x1, y1 = bbox
    rtree = sa.text(
        f"SELECT pkid FROM idx_{table}_{col} WHERE xmin <= :bx1 AND xmax >= :bx0 AND ymin <= :by1 AND ymax >= :by0"
    ).bindparams(bx0=x0, by0=y0, bx1=x1, by1=y1)
    pk = geom_col.table.primary_key.columns.values()[0]
    return sa.and_(pk.in_(rtree.columns(sa.column("pkid", sa.Integer))), sa.func.ST_Intersects(geom_col, env) == 1)


# ---- point lookups and geometry I/O (components / gis_data) ---------------------------------------------


def point(session: Session | sa.Connection, lon: float, lat: float) -> Any:
    """A WGS84 point expression."""
    if dialect(session) == "postgresql":
        return sa.func.ST_SetSRID(sa.func.ST_MakePoint(lon, lat), 4326)
    return sa.func.MakePoint(lon, lat, 4326)


def covers_point(session: Session | sa.Connection, geom_col: Any, lon: float, lat: float) -> sa.ColumnElement[bool]:
    """Rows whose geometry contains the point or has it on its boundary, through the spatial index."""
    pt = point(session, lon, lat)
    if dialect(session) == "postgresql":
        return sa.and_(geom_col.op("&&")(pt), sa.func.ST_Intersects(geom_col, pt))
    table = geom_col.table.name
    col = geom_col.name
    rtree = sa.text(
        f"SELECT pkid FROM idx_{table}_{col} WHERE xmin <= :px AND xmax >= :px AND ymin <= :py AND ymax >= :py"
    ).bindparams(px=lon, py=lat)
    pk = geom_col.table.primary_key.columns.values()[0]
    return sa.and_(pk.in_(rtree.columns(sa.column("pkid", sa.Integer))), sa.func.ST_Intersects(geom_col, pt) == 1)


def ewkt(wkt: str, srid: int = 4326) -> str:
    """Extended WKT for a geometry column bind (GeoAlchemy2 turns it into a geometry on both back ends)."""
    return f"SRID={srid};{wkt}"


# ---- routing and duplicate lookups (dispatch) -----------------------------------------------------------
# Every statement below is bounded by a box around the point (never an unbounded ORDER BY distance over the
# table: performance.md §2.2 measured that at 7–550× slower) and is written so that the spatial index drives
# the plan: PostGIS probes GiST with ``&&`` inside a MATERIALIZED CTE, so a btree on class_code / status /
# created_at cannot take over for rare values (the 12× p99 cliff); SpatiaLite takes row ids from the R*Tree
# (``ROWID IN (SELECT pkid FROM idx_<table>_geom ...)``) and its other predicates carry a unary ``+`` so that
# SQLite never drives from a column index and probes the R*Tree per row (the ~1,800× cliff).
# Class codes are strings ("C0101"), so psycopg's int2 parameter trap (btree_gist on int4) does not apply.
# tests/dispatch/test_dispatch_plans.py runs EXPLAIN on each of these statements on both back ends.

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQUATOR = 111_320.0


def degree_box(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """A lon/lat box that contains every point within ``radius_m`` metres (with a 2 % margin)."""
    import math  # noqa: PLC0415

    dy = radius_m / _M_PER_DEG_LAT * 1.02
    dx = radius_m / (_M_PER_DEG_LON_EQUATOR * max(math.cos(math.radians(lat)), 0.01)) * 1.02
    return lon - dx, lat - dy, lon + dx, lat + dy


class Statement:
    """A dialect-specific SQL text with its typed binds, runnable as is or under EXPLAIN."""

    __slots__ = ("binds", "result_types", "sql")

    def __init__(self, sql: str, binds: list[sa.BindParameter[Any]],
                 result_types: dict[str, Any] | None = None) -> None:
        """Keep the SQL, its bind parameters (values included) and the types of result columns to convert."""
        self.sql = sql
        self.binds = binds
        self.result_types = result_types or {}

    def clause(self, prefix: str = "") -> sa.TextClause:
        """The executable clause, optionally prefixed (``EXPLAIN ``, whose rows are plan text)."""
        clause = sa.text(prefix + self.sql).bindparams(*self.binds)
        if self.result_types and not prefix:
            return clause.columns(**self.result_types)  # type: ignore[return-value]
        return clause


def _pt(dialect_name: str) -> str:
    if dialect_name == "postgresql":
        return "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
    return "MakePoint(:lon, :lat, 4326)"


def _box_binds(box: tuple[float, float, float, float]) -> list[sa.BindParameter[Any]]:
    return [sa.bindparam(n, v, type_=sa.Float()) for n, v in zip(("x0", "y0", "x1", "y1"), box, strict=True)]


def _rtree_ids(table: str) -> str:
    return f"SELECT pkid FROM idx_{table}_geom WHERE xmin <= :x1 AND xmax >= :x0 AND ymin <= :y1 AND ymax >= :y0"


_COMPONENT_COLUMNS = (
    "id, code, class_code, name, main_department_id, maintainer_department_id, owner_department_id, state"
)


def nearest_components_statement(
    dialect_name: str, *, lon: float, lat: float, class_code: str, radius_m: float,
    exclude_states: tuple[str, ...], limit: int = 5,
) -> Statement:
    """Components of one class within ``radius_m`` metres of the point, nearest first, with ``distance_m``."""
    pt = _pt(dialect_name)
    if dialect_name == "postgresql":
        sql = (
            f"WITH near AS MATERIALIZED (SELECT {_COMPONENT_COLUMNS}, geom FROM component "
            "WHERE geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)) "
            f"SELECT {_COMPONENT_COLUMNS}, ST_Distance(geom::geography, {pt}::geography) AS distance_m FROM near "
            "WHERE class_code = :class_code AND state NOT IN :exclude_states "
            f"AND ST_DWithin(geom::geography, {pt}::geography, :radius_m) "
            "ORDER BY distance_m, code LIMIT :lim"
        )
    else:
        sql = (
            f"SELECT * FROM (SELECT {_COMPONENT_COLUMNS}, ST_Distance(geom, {pt}, 1) AS distance_m "
            f"FROM component WHERE ROWID IN ({_rtree_ids('component')}) "
            "AND +class_code = :class_code AND +state NOT IN :exclude_states) "
            "WHERE distance_m <= :radius_m ORDER BY distance_m, code LIMIT :lim"
        )
    binds = [
        *_box_binds(degree_box(lon, lat, radius_m)),
        sa.bindparam("lon", lon, type_=sa.Float()), sa.bindparam("lat", lat, type_=sa.Float()),
        sa.bindparam("class_code", class_code, type_=sa.String()),
        sa.bindparam("exclude_states", list(exclude_states), type_=sa.String(), expanding=True),
        sa.bindparam("radius_m", radius_m, type_=sa.Float()), sa.bindparam("lim", limit, type_=sa.Integer()),
    ]
    return Statement(sql, binds)


def component_by_code_statement(dialect_name: str, *, code: str, lon: float, lat: float) -> Statement:
    """One component by its identifier, with its distance in metres from the point."""
    pt = _pt(dialect_name)
    dist = (f"ST_Distance(geom::geography, {pt}::geography)" if dialect_name == "postgresql"
            else f"ST_Distance(geom, {pt}, 1)")
    sql = f"SELECT {_COMPONENT_COLUMNS}, {dist} AS distance_m FROM component WHERE code = :code"
    return Statement(sql, [sa.bindparam("code", code, type_=sa.String()),
                           sa.bindparam("lon", lon, type_=sa.Float()), sa.bindparam("lat", lat, type_=sa.Float())])


def grids_at_point_statement(dialect_name: str, *, lon: float, lat: float, on: Any) -> Statement:
    """Codes of the unit grids in force on ``on`` that contain the point or have it on their border."""
    pt = _pt(dialect_name)
    valid = "(start_date IS NULL OR start_date <= :on) AND (end_date IS NULL OR end_date > :on)"
    if dialect_name == "postgresql":
        sql = f"SELECT code FROM grid WHERE geom && {pt} AND ST_Intersects(geom, {pt}) AND {valid} ORDER BY code"
        binds: list[sa.BindParameter[Any]] = []
    else:
        sql = (f"SELECT code FROM grid WHERE ROWID IN ({_rtree_ids('grid')}) AND ST_Intersects(geom, {pt}) = 1 "
               f"AND {valid.replace('start_date', '+start_date').replace('end_date', '+end_date')} ORDER BY +code")
        binds = _box_binds((lon, lat, lon, lat))
    binds += [sa.bindparam("lon", lon, type_=sa.Float()), sa.bindparam("lat", lat, type_=sa.Float()),
              sa.bindparam("on", on, type_=sa.Date())]
    return Statement(sql, binds)


def cases_near_statement(
    dialect_name: str, *, lon: float, lat: float, radius_m: float, since: Any, class_code: str,
    component_code: str | None, exclude_id: int | None, exclude_statuses: tuple[str, ...], limit: int = 20,
) -> Statement:
    """Cases within ``radius_m`` metres created since ``since`` of the class or about the component.

    Returns rows (id, number, class_code, component_id, status, created_at, distance_m), nearest first.
    """
    from gridcity.types import UTCDateTime  # noqa: PLC0415

    pt = _pt(dialect_name)
    cols = "id, number, class_code, component_id, status, created_at"
    if dialect_name == "postgresql":
        sql = (
            f'WITH near AS MATERIALIZED (SELECT {cols}, geom FROM "case" '
            "WHERE geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)) "
            f"SELECT {cols}, ST_Distance(geom::geography, {pt}::geography) AS distance_m FROM near "
            "WHERE id <> :exclude_id AND status NOT IN :exclude_statuses AND created_at >= :since "
            "AND (class_code = :class_code OR component_id = :component_code) "
            f"AND ST_DWithin(geom::geography, {pt}::geography, :radius_m) "
            "ORDER BY distance_m, id LIMIT :lim"
        )
    else:
        sql = (
            f'SELECT * FROM (SELECT {cols}, ST_Distance(geom, {pt}, 1) AS distance_m FROM "case" '
            f"WHERE ROWID IN ({_rtree_ids('case')}) AND +id <> :exclude_id "
            "AND +status NOT IN :exclude_statuses AND +created_at >= :since "
            "AND (+class_code = :class_code OR +component_id = :component_code)) "
            "WHERE distance_m <= :radius_m ORDER BY distance_m, id LIMIT :lim"
        )
    binds = [
        *_box_binds(degree_box(lon, lat, radius_m)),
        sa.bindparam("lon", lon, type_=sa.Float()), sa.bindparam("lat", lat, type_=sa.Float()),
        sa.bindparam("exclude_id", exclude_id if exclude_id is not None else -1, type_=sa.Integer()),
        sa.bindparam("exclude_statuses", list(exclude_statuses), type_=sa.String(), expanding=True),
        sa.bindparam("since", since, type_=UTCDateTime()),
        sa.bindparam("class_code", class_code, type_=sa.String()),
        sa.bindparam("component_code", component_code, type_=sa.String()),
        sa.bindparam("radius_m", radius_m, type_=sa.Float()), sa.bindparam("lim", limit, type_=sa.Integer()),
    ]
    return Statement(sql, binds, {"created_at": UTCDateTime()})


def explain(session: Session | sa.Connection, statement: Statement) -> list[str]:
    """The plan of a statement as text lines (PostgreSQL ``EXPLAIN``, SQLite ``EXPLAIN QUERY PLAN``)."""
    if dialect(session) == "postgresql":
        return [str(r[0]) for r in session.execute(statement.clause("EXPLAIN "))]
    return [str(r[-1]) for r in session.execute(statement.clause("EXPLAIN QUERY PLAN "))]


def geom_from_wkt(session: Session | sa.Connection, param: str, srid: int = 4326) -> Any:
    """A geometry built from the plain WKT bound as ``param`` (for bulk executemany inserts/updates)."""
    fn = sa.func.ST_GeomFromText if dialect(session) == "postgresql" else sa.func.GeomFromText
    return fn(sa.bindparam(param, type_=sa.String()), srid)
