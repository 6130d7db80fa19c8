"""SQL that differs between PostGIS and SpatiaLite: spatial functions, and the rest (advisory locks, NOTIFY,
upserts, lock timeouts, local dates). Dialect branches live here and only here (the engine's own set-up, its
connection hooks and transaction modes, aside: :mod:`gridcity.database`); ``tests/test_dialect_branches.py``
holds every other module to that."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session


def dialect(session: Session | sa.Connection) -> str:
    """``postgresql`` or ``sqlite``."""
    bind = session.get_bind() if isinstance(session, Session) else session
    return bind.dialect.name


def builds_tiles_in_sql(session: Session | sa.Connection) -> bool:
    """Whether the database builds vector tiles itself (PostGIS ``ST_AsMVT``; SpatiaLite's rows are encoded in
    Python)."""
    return dialect(session) == "postgresql"


def reserve_ids(session: Session, table: sa.Table, n: int) -> list[int]:
    """``n`` ids of ``table``'s integer key that no other row takes, ascending, for rows inserted with them.

    PostgreSQL: values of the column's sequence (``nextval``, safe beside concurrent inserts; unused ones leave
    a gap, as a rolled-back insert does). SQLite: the ids after the largest one, as SQLite itself would assign
    them; a write unit holds the one write lock, so nobody else inserts before the caller does.
    """
    if n <= 0:
        return []
    (col,) = table.primary_key.columns
    if dialect(session) == "postgresql":
        q = sa.text("SELECT nextval(pg_get_serial_sequence(:t, :c)) FROM generate_series(1, :n)")
        quoted = session.get_bind().dialect.identifier_preparer.format_table(table)
        return sorted(session.execute(q, {"t": quoted, "c": col.name, "n": n}).scalars())
    top = session.execute(sa.select(sa.func.coalesce(sa.func.max(col), 0))).scalar_one()
    return list(range(top + 1, top + 1 + n))


def try_singleton_lock(session: Session, key: int) -> bool:
    """Whether this transaction may run a job that one worker at a time must run (held until it ends).

    PostgreSQL: ``pg_try_advisory_xact_lock`` (another worker holding it answers False at once). SQLite:
    always True, since a write unit already holds the database's one write lock (``BEGIN IMMEDIATE``).
    """
    if dialect(session) != "postgresql":
        return True
    return bool(session.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())


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
    """A dialect-specific SQL text with its parameters, runnable as is (:meth:`run`) or under EXPLAIN.

    The SQL is written once with ``:name`` placeholders. :meth:`clause` turns it into a typed ``text()`` clause
    (for EXPLAIN and for callers that want SQLAlchemy rows); :meth:`run` sends the very same text straight to
    the driver cursor of the session's connection, inside the session's transaction. That skips SQLAlchemy's
    per-call compile, cache-key and result machinery (~90 µs of a ~100 µs lookup on SpatiaLite): routing's hot
    path. Binds are either given as ``BindParameter``s (``binds``) or as plain ``params`` with their ``types``.
    """

    __slots__ = ("_binds", "dialect", "params", "result_types", "sql", "types")

    def __init__(
        self,
        sql: str,
        binds: list[sa.BindParameter[Any]] | None = None,
        result_types: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
        types: dict[str, Any] | None = None,
        dialect: str | None = None,
    ) -> None:
        """Keep the SQL and its binds (bind parameters, or plain values with their SQL types)."""
        self.sql = sql
        self._binds = binds
        self.result_types = result_types or {}
        self.params = params if params is not None else {b.key: b.value for b in binds or ()}
        self.types = types or {}
        self.dialect = dialect

    @property
    def binds(self) -> list[sa.BindParameter[Any]]:
        """The typed bind parameters of :meth:`clause`."""
        if self._binds is None:
            self._binds = [sa.bindparam(k, v, type_=self.types.get(k)) for k, v in self.params.items()]
        return self._binds

    def clause(self, prefix: str = "") -> sa.TextClause:
        """The executable clause, optionally prefixed (``EXPLAIN ``, whose rows are plan text)."""
        clause = sa.text(prefix + self.sql).bindparams(*self.binds)
        if self.result_types and not prefix:
            return clause.columns(**self.result_types)  # type: ignore[return-value]
        return clause

    def run(self, session: Session) -> list[tuple[Any, ...]]:
        """Execute on the session's connection through the bare driver cursor; rows as plain tuples.

        Pending ORM changes are flushed first (as an ORM query would), so the lookup sees them. Only for
        statements with plain scalar parameters (no expanding lists) and no result types to convert.
        """
        if session.autoflush:
            session.flush()
        conn = session.connection()
        name = self.dialect or conn.dialect.name
        params = self.params
        if name == "sqlite":  # SQLAlchemy's Date type binds ISO text on SQLite; do the same
            params = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in params.items()}
        cursor = conn.connection.cursor()
        try:
            cursor.execute(_driver_sql(name, self.sql), params)
            return list(cursor.fetchall())
        finally:
            cursor.close()


_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # sa.text()'s own bind syntax
_DRIVER_SQL: dict[tuple[str, str], str] = {}


def _driver_sql(dialect_name: str, sql: str) -> str:
    """``sql`` in the driver's parameter style (psycopg: ``%(name)s``; sqlite3 takes ``:name`` as is)."""
    key = (dialect_name, sql)
    found = _DRIVER_SQL.get(key)
    if found is None:
        found = sql if dialect_name == "sqlite" else _BIND.sub(r"%(\1)s", sql.replace("%", "%%"))
        _DRIVER_SQL[key] = found
    return found


def _pt(dialect_name: str) -> str:
    if dialect_name == "postgresql":
        return "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
    return "MakePoint(:lon, :lat, 4326)"


def _box_binds(box: tuple[float, float, float, float]) -> list[sa.BindParameter[Any]]:
    return [sa.bindparam(n, v, type_=sa.Float()) for n, v in zip(("x0", "y0", "x1", "y1"), box, strict=True)]


def _rtree_ids(table: str) -> str:
    return f"SELECT pkid FROM idx_{table}_geom WHERE xmin <= :x1 AND xmax >= :x0 AND ymin <= :y1 AND ymax >= :y0"


def _sql_list(values: tuple[str, ...]) -> str:
    """A literal SQL list of strings (fixed sets such as excluded states: no expanding bind per call)."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


_F, _S, _D = sa.Float(), sa.String(), sa.Date()

COMPONENT_ROW = (
    "id",
    "code",
    "class_code",
    "name",
    "main_department_id",
    "maintainer_department_id",
    "owner_department_id",
    "state",
    "distance_m",
    "department_name",
)
"""Columns of the component lookups, in order. ``department_name`` is the name of the responsible department
(主管, else 养护, else 权属), so routing needs no second statement for it."""

_COMPONENT_COLUMNS = ", ".join(COMPONENT_ROW[:8])
_RESPONSIBLE_NAME = (
    "(SELECT d.name FROM department d WHERE d.id = "
    "COALESCE(n.main_department_id, n.maintainer_department_id, n.owner_department_id))"
)


@functools.lru_cache(maxsize=16)
def _nearest_components_sql(dialect_name: str, exclude_states: tuple[str, ...], limit: int) -> str:
    # The limit is a literal too: SQLite 3.50 runs this statement ~2× slower with ``LIMIT ?`` (measured).
    pt = _pt(dialect_name)
    lim = int(limit)
    gone = _sql_list(exclude_states) if exclude_states else "('')"
    if dialect_name == "postgresql":
        # the MATERIALIZED CTE makes GiST (&&) the only way in; the distance is computed once, in ``hit``
        return (
            f"WITH near AS MATERIALIZED (SELECT {_COMPONENT_COLUMNS}, geom FROM component "
            "WHERE geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)), "
            f"hit AS (SELECT {_COMPONENT_COLUMNS}, ST_Distance(geom::geography, {pt}::geography) AS distance_m "
            f"FROM near WHERE class_code = :class_code AND state NOT IN {gone} "
            f"AND ST_DWithin(geom::geography, {pt}::geography, :radius_m) ORDER BY distance_m, code LIMIT {lim}) "
            f"SELECT n.*, {_RESPONSIBLE_NAME} AS department_name FROM hit n ORDER BY n.distance_m, n.code"
        )
    # ``LIMIT -1`` keeps SQLite from flattening the subquery (both levels have a LIMIT), so the ellipsoidal
    # distance is computed once per candidate instead of once each for WHERE, ORDER BY and the output.
    return (
        f"SELECT n.*, {_RESPONSIBLE_NAME} AS department_name FROM (SELECT {_COMPONENT_COLUMNS}, "
        f"ST_Distance(geom, {pt}, 1) AS distance_m FROM component WHERE ROWID IN ({_rtree_ids('component')}) "
        f"AND +class_code = :class_code AND +state NOT IN {gone} LIMIT -1) n "
        f"WHERE n.distance_m <= :radius_m ORDER BY n.distance_m, n.code LIMIT {lim}"
    )


_NEAREST_TYPES = {"x0": _F, "y0": _F, "x1": _F, "y1": _F, "lon": _F, "lat": _F, "class_code": _S, "radius_m": _F}


def nearest_components_statement(
    dialect_name: str,
    *,
    lon: float,
    lat: float,
    class_code: str,
    radius_m: float,
    exclude_states: tuple[str, ...],
    limit: int = 5,
) -> Statement:
    """Components of one class within ``radius_m`` metres of the point, nearest first (:data:`COMPONENT_ROW`).

    ``exclude_states`` and ``limit`` are fixed per caller (written into the SQL as literals, one cached text
    each).
    """
    x0, y0, x1, y1 = degree_box(lon, lat, radius_m)
    params = {
        "x0": x0,
        "y0": y0,
        "x1": x1,
        "y1": y1,
        "lon": lon,
        "lat": lat,
        "class_code": class_code,
        "radius_m": radius_m,
    }
    return Statement(
        _nearest_components_sql(dialect_name, tuple(exclude_states), limit),
        params=params,
        types=_NEAREST_TYPES,
        dialect=dialect_name,
    )


_BY_CODE_SQL = {
    name: f"SELECT n.*, {_RESPONSIBLE_NAME} AS department_name FROM (SELECT {_COMPONENT_COLUMNS}, "
    f"{dist} AS distance_m FROM component WHERE code = :code) n"
    for name, dist in (
        ("postgresql", f"ST_Distance(geom::geography, {_pt('postgresql')}::geography)"),
        ("sqlite", f"ST_Distance(geom, {_pt('sqlite')}, 1)"),
    )
}


def component_by_code_statement(dialect_name: str, *, code: str, lon: float, lat: float) -> Statement:
    """One component by its identifier, with its distance in metres from the point (:data:`COMPONENT_ROW`)."""
    return Statement(
        _BY_CODE_SQL[dialect_name],
        params={"code": code, "lon": lon, "lat": lat},
        types={"code": _S, "lon": _F, "lat": _F},
        dialect=dialect_name,
    )


# Grid at the point and the routing rules of its five scopes, in one statement. Rows are
# (kind, code, rule id, class pattern, scope level, department id, valid_from, valid_to, department name):
# kind 'g' for each grid in force containing the point (code set, the rest NULL), kind 'r' for each rule of
# the lowest such grid's scopes (grid, community, street, district by code prefix, and the city) whose class
# pattern could match and which is in force on :on (scope_code in ``code``). The caller picks with
# dispatch.rules.choose, which re-checks every condition.
_RULE_SCOPES = (
    "k AS (SELECT min(code) AS code FROM g), "
    "s(lvl, code) AS ("
    "SELECT 'grid', code FROM k WHERE length(code) = 15 "
    "UNION ALL SELECT 'community', substr(code, 1, 12) FROM k WHERE length(code) = 15 "
    "UNION ALL SELECT 'street', substr(code, 1, 9) FROM k WHERE length(code) = 15 "
    "UNION ALL SELECT 'district', substr(code, 1, 6) FROM k WHERE length(code) = 15 "
    "UNION ALL SELECT 'city', '') "
    "SELECT 'g' AS kind, code, NULL AS id, NULL AS class_code, NULL AS scope_level, NULL AS department_id, "
    "NULL AS valid_from, NULL AS valid_to, NULL AS department_name FROM g "
    "UNION ALL SELECT 'r', r.scope_code, r.id, r.class_code, r.scope_level, r.department_id, r.valid_from, "
    "r.valid_to, (SELECT d.name FROM department d WHERE d.id = r.department_id) "
    "FROM s JOIN routing_rule r ON r.scope_level = s.lvl AND r.scope_code = s.code "
    "WHERE r.class_code IN (:class_code, :class_major, '*') AND r.valid_from <= :on "
    "AND (r.valid_to IS NULL OR r.valid_to > :on)"
)
_GRID_VALID = "(start_date IS NULL OR start_date <= :on) AND (end_date IS NULL OR end_date > :on)"
_GRID_RULES_SQL = {
    "postgresql": (
        f"WITH g AS MATERIALIZED (SELECT code FROM grid WHERE geom && {_pt('postgresql')} AND "
        f"ST_Intersects(geom, {_pt('postgresql')}) AND {_GRID_VALID}), {_RULE_SCOPES}"
    ),
    "sqlite": (
        f"WITH g AS MATERIALIZED (SELECT code FROM grid WHERE ROWID IN ({_rtree_ids('grid')}) AND "
        f"ST_Intersects(geom, {_pt('sqlite')}) = 1 AND "
        f"{_GRID_VALID.replace('start_date', '+start_date').replace('end_date', '+end_date')}), "
        f"{_RULE_SCOPES}"
    ),
}
_KNOWN_GRID_RULES_SQL = f"WITH g AS (SELECT CAST(:grid_code AS VARCHAR(15)) AS code), {_RULE_SCOPES}"
_GRID_RULES_TYPES = {
    "x0": _F,
    "y0": _F,
    "x1": _F,
    "y1": _F,
    "lon": _F,
    "lat": _F,
    "on": _D,
    "class_code": _S,
    "class_major": _S,
    "grid_code": _S,
}


_GRID_AT_SQL = {
    "postgresql": f"SELECT code FROM grid WHERE geom && {_pt('postgresql')} "
    f"AND ST_Intersects(geom, {_pt('postgresql')}) ORDER BY code LIMIT 1",
    "sqlite": "SELECT code FROM grid WHERE id IN (SELECT pkid FROM idx_grid_geom WHERE xmin <= :lon AND xmax >= :lon "
    f"AND ymin <= :lat AND ymax >= :lat) AND ST_Intersects(geom, {_pt('sqlite')}) = 1 ORDER BY code LIMIT 1",
}


def grid_at_statement(dialect_name: str, *, lon: float, lat: float) -> Statement:
    """The code of the unit grid that contains the point or has it on its border (the lowest code on a shared
    border), through the spatial index: every report and every new case asks it, so it goes to the driver
    cursor (:meth:`Statement.run`) rather than through SQLAlchemy's per-call compile and cache key."""
    return Statement(_GRID_AT_SQL[dialect_name], params={"lon": lon, "lat": lat}, types={"lon": _F, "lat": _F})


def grid_rules_statement(
    dialect_name: str, *, lon: float, lat: float, on: Any, class_code: str, grid_code: str | None = None
) -> Statement:
    """The unit grids in force on ``on`` that contain the point (or have it on their border) and the routing
    rules that could apply at the lowest of them, in one round trip (rows: see ``_RULE_SCOPES``).

    With ``grid_code`` the grid is taken as known (a case's stored grid) and only the rules are looked up.
    """
    params: dict[str, Any] = {"on": on, "class_code": class_code, "class_major": class_code[:3] + "*"}
    if grid_code is not None:
        return Statement(
            _KNOWN_GRID_RULES_SQL,
            params={**params, "grid_code": grid_code},
            types=_GRID_RULES_TYPES,
            dialect=dialect_name,
        )
    params.update(lon=lon, lat=lat)
    if dialect_name == "sqlite":
        params.update(x0=lon, y0=lat, x1=lon, y1=lat)
    return Statement(_GRID_RULES_SQL[dialect_name], params=params, types=_GRID_RULES_TYPES, dialect=dialect_name)


def cases_near_statement(
    dialect_name: str,
    *,
    lon: float,
    lat: float,
    radius_m: float,
    since: Any,
    class_code: str,
    component_code: str | None,
    exclude_id: int | None,
    exclude_statuses: tuple[str, ...],
    limit: int = 20,
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
        sa.bindparam("lon", lon, type_=sa.Float()),
        sa.bindparam("lat", lat, type_=sa.Float()),
        sa.bindparam("exclude_id", exclude_id if exclude_id is not None else -1, type_=sa.Integer()),
        sa.bindparam("exclude_statuses", list(exclude_statuses), type_=sa.String(), expanding=True),
        sa.bindparam("since", since, type_=UTCDateTime()),
        sa.bindparam("class_code", class_code, type_=sa.String()),
        sa.bindparam("component_code", component_code, type_=sa.String()),
        sa.bindparam("radius_m", radius_m, type_=sa.Float()),
        sa.bindparam("lim", limit, type_=sa.Integer()),
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


# ---- bulk append (gis_data.loader) ----------------------------------------------------------------------


def bulk_append(
    session: Session,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    geoms: Any = None,
    *,
    geom_column: str = "geom",
    srid: int = 4326,
) -> None:
    """Append ``rows`` (Python values in ``columns`` order) to ``table`` in one bulk operation.

    ``geoms``, when given, is a sequence of shapely geometries (one per row) for ``geom_column``. Runs on the
    session's own connection and inside its transaction, so a rollback undoes it. Values go through each
    column type's bind processor first, so they are stored exactly as an ORM or Core insert would store them.
    PostGIS: ``COPY ... FROM STDIN`` with the geometry as hex EWKB (parsed by the server's input function);
    SpatiaLite: one prepared ``executemany`` with ``GeomFromWKB(?, srid)`` on the raw sqlite3 connection.
    """
    if not rows:
        return
    dialect_obj = session.get_bind().dialect
    postgres = dialect_obj.name == "postgresql"
    # (column index, bind processor, its cache): columns of one type share a cache keyed by the value's
    # identity (a fact row's start, end and completion are often the very same datetime object), so each
    # object is converted once; identity, not equality, so the stored values are exactly the processor's.
    procs: list[tuple[int, Any, dict[int, tuple[Any, Any]]]] = []
    caches: dict[tuple[type, str], dict[int, tuple[Any, Any]]] = {}
    for i, c in enumerate(columns):
        ctype = table.c[c].type
        proc: Any
        if postgres and isinstance(ctype, sa.JSON):
            proc = json.dumps  # text COPY into a json column
        else:
            proc = ctype.dialect_impl(dialect_obj).bind_processor(dialect_obj)
        if proc is not None:
            procs.append((i, proc, caches.setdefault((type(ctype), repr(ctype)), {})))
    if procs:
        processed: list[Sequence[Any]] = []
        for r in rows:
            r = list(r)
            for i, p, cache in procs:
                v = r[i]
                if v is not None:
                    hit = cache.get(id(v))
                    if hit is not None and hit[0] is v:
                        r[i] = hit[1]
                    else:
                        r[i] = out = p(v)
                        cache[id(v)] = (v, out)  # holds v, so its id is not reused during the load
            processed.append(r)
        rows = processed
    names = list(columns)
    if geoms is not None:
        names.append(geom_column)
        garr = np.asarray(geoms, dtype=object)
        if postgres:
            gvals = shapely.to_wkb(shapely.set_srid(garr, srid), hex=True, include_srid=True).tolist()
        else:
            gvals = shapely.to_wkb(garr).tolist()
        rows = [(*r, g) for r, g in zip(rows, gvals, strict=True)]
    raw = session.connection().connection.driver_connection
    assert raw is not None
    quote = dialect_obj.identifier_preparer
    target = f"{quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)})"  # "case" is a keyword
    if postgres:
        # Binary COPY with the column types set when every column has a plain type (integers, text, booleans,
        # floats, timestamptz): psycopg then dumps each column with one fixed dumper instead of looking one up
        # per value and formatting text (3 to 8 times less client time for the evaluation facts' rows).
        types = None if geoms is not None else _binary_copy_types(table, tuple(names), dialect_obj)
        fmt = " (FORMAT BINARY)" if types is not None else ""
        with raw.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN{fmt}") as copy:
            if types is not None:
                copy.set_types(types)
            for r in rows:
                copy.write_row(r)
        return
    marks = ["?"] * len(columns) + ([f"GeomFromWKB(?, {int(srid)})"] if geoms is not None else [])
    cur = raw.cursor()
    # a page cache big enough for the table's indexes while they grow (SQLite's default is 2 MB, which makes
    # random inserts into several b-trees and the R*Tree spill dirty pages to the WAL again and again)
    old_cache = int(cur.execute("PRAGMA cache_size").fetchone()[0])
    try:
        if len(rows) > 10_000 and old_cache > -BULK_CACHE_KIB:
            cur.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        cur.executemany(f"INSERT INTO {target} VALUES ({', '.join(marks)})", rows)
    finally:
        cur.execute(f"PRAGMA cache_size = {old_cache}")
        cur.close()


_BINARY_COPY = {
    "SMALLINT": "int2",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "BOOLEAN": "bool",
    "REAL": "float4",
    "FLOAT": "float8",
    "DOUBLE PRECISION": "float8",
    "TEXT": "text",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}
"""PostgreSQL column types (as SQLAlchemy compiles them) that a binary COPY fills from the bound Python values."""


@functools.lru_cache(maxsize=64)
def _binary_copy_types(table: sa.Table, names: tuple[str, ...], dialect: sa.Dialect) -> list[str] | None:
    """The PostgreSQL type of each column for a binary COPY, or None when one is not a plain type (JSON,
    NUMERIC, geometry, …: those tables keep the text COPY)."""
    out: list[str] = []
    for name in names:
        ctype = table.c[name].type
        if isinstance(ctype, sa.JSON):
            return None
        try:
            ddl = ctype.compile(dialect)
        except sa.exc.CompileError:
            return None
        if re.fullmatch(r"VARCHAR(\(\d+\))?", ddl):
            out.append("varchar")
        elif ddl in _BINARY_COPY:
            out.append(_BINARY_COPY[ddl])
        else:
            return None
    return out


BULK_CACHE_KIB = 256 * 1024
"""The SQLite page cache during :func:`bulk_append` of many rows (an upper bound: pages are allocated as used)."""


# ---- vector tiles (gis_data.tiles) ----------------------------------------------------------------------
# A tile layer is a Core select whose columns are ``fid`` (integer feature id), the attributes, and either a
# WGS84 ``geom`` or ``lon``/``lat`` columns (points). PostGIS turns it into MVT in the database with
# ST_AsMVTGeom/ST_AsMVT; SpatiaLite returns the rows and :func:`encode_mvt` clips, snaps and encodes them with
# the mapbox-vector-tile encoder, to the same extent, buffer and snapping, so both give the same features.

MVT_EXTENT = 4096
MVT_BUFFER = 64
_R = 6378137.0
_HALF = math.pi * _R


def tile_bounds_3857(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The Web Mercator bounds (minx, miny, maxx, maxy) of tile z/x/y (y from the north, XYZ scheme)."""
    size = 2 * _HALF / (1 << z)
    return -_HALF + x * size, _HALF - (y + 1) * size, -_HALF + (x + 1) * size, _HALF - y * size


def tile_bbox_wgs84(z: int, x: int, y: int, *, buffer: int = MVT_BUFFER) -> tuple[float, float, float, float]:
    """The WGS84 box of the tile with its buffer (``buffer`` pixels of the ``MVT_EXTENT`` grid) around it."""
    x0, y0, x1, y1 = tile_bounds_3857(z, x, y)
    pad = (x1 - x0) * buffer / MVT_EXTENT
    x0, y0, x1, y1 = max(x0 - pad, -_HALF), max(y0 - pad, -_HALF), min(x1 + pad, _HALF), min(y1 + pad, _HALF)

    def lat(my: float) -> float:
        return math.degrees(2 * math.atan(math.exp(my / _R)) - math.pi / 2)

    return math.degrees(x0 / _R), lat(y0), math.degrees(x1 / _R), lat(y1)


TILE_BINDS = ("tz", "tx", "ty", "tx0", "ty0", "tx1", "ty1", "sdx", "sdy")
"""The bind parameters of a prepared tile statement: tile z/x/y, its buffered WGS84 box, the display shift."""


def tile_params(z: int, x: int, y: int, shift: tuple[float, float] | None = None) -> dict[str, Any]:
    """The values of :data:`TILE_BINDS` for one tile."""
    x0, y0, x1, y1 = tile_bbox_wgs84(z, x, y)
    dx, dy = shift or (0.0, 0.0)
    return {"tz": z, "tx": x, "ty": y, "tx0": x0, "ty0": y0, "tx1": x1, "ty1": y1, "sdx": dx, "sdy": dy}


def tile_box_filter(dialect_name: str, geom_col: Any) -> sa.ColumnElement[bool]:
    """Rows whose bounding box meets the tile's buffered box (binds ``tx0``…``ty1``), through the spatial index.

    Only the index test: what lies in the box but outside the tile is clipped away to nothing and dropped by
    ST_AsMVTGeom, and by :func:`encode_mvt` alike, so both back ends keep the same features."""
    b = {k: sa.bindparam(k, type_=sa.Float()) for k in ("tx0", "ty0", "tx1", "ty1")}
    if dialect_name == "postgresql":
        overlaps: sa.ColumnElement[bool] = geom_col.op("&&")(
            sa.func.ST_MakeEnvelope(b["tx0"], b["ty0"], b["tx1"], b["ty1"], 4326)
        )
        return overlaps
    table, col = geom_col.table.name, geom_col.name
    rtree = sa.text(
        f"SELECT pkid FROM idx_{table}_{col} WHERE xmin <= :tx1 AND xmax >= :tx0 AND ymin <= :ty1 AND ymax >= :ty0"
    ).bindparams(*b.values())
    pk = geom_col.table.primary_key.columns.values()[0]
    in_rtree: sa.ColumnElement[bool] = pk.in_(rtree.columns(sa.column("pkid", sa.Integer)))
    return in_rtree


def _mvt_select(select: sa.Select[Any], shift: bool) -> sa.Select[Any]:
    """``select`` with its geometry (``geom`` or ``lon``/``lat``) replaced by ST_AsMVTGeom in tile space."""
    sub = select.subquery("src")
    g: Any
    if "geom" in sub.c:
        g = sub.c.geom
    else:
        g = sa.func.ST_SetSRID(sa.func.ST_MakePoint(sub.c.lon, sub.c.lat), 4326)
    if shift:
        g = sa.func.ST_Translate(g, sa.bindparam("sdx", type_=sa.Float()), sa.bindparam("sdy", type_=sa.Float()))
    env = sa.func.ST_TileEnvelope(
        sa.bindparam("tz", type_=sa.Integer()),
        sa.bindparam("tx", type_=sa.Integer()),
        sa.bindparam("ty", type_=sa.Integer()),
    )
    mvt_geom = sa.func.ST_AsMVTGeom(sa.func.ST_Transform(g, 3857), env, MVT_EXTENT, MVT_BUFFER, True).label("mvtgeom")
    cols = [c for c in sub.c if c.name not in ("geom", "lon", "lat")]
    return sa.select(mvt_geom, *cols)


class PreparedTile:
    """The statements of one kind of tile, built once and run for every tile of that kind with its binds.

    PostGIS (``mode="mvt"``): one ST_AsMVT statement per MVT layer, run in the database. Otherwise
    (``mode="rows"``, SpatiaLite, or PostGIS to compare): the rows, encoded by :func:`encode_mvt`."""

    def __init__(
        self,
        dialect_name: str,
        layers: Sequence[tuple[str, sa.Select[Any]]],
        *,
        shift: bool = False,
        encoder: bool = False,
    ) -> None:
        self.mode = "mvt" if dialect_name == "postgresql" and not encoder else "rows"
        self.shift = shift
        self.statements: list[tuple[str, Any]] = []
        for name, select in layers:
            if self.mode == "mvt":
                inner = _mvt_select(select, shift).subquery("q")
                stmt: Any = (
                    sa.select(sa.func.ST_AsMVT(sa.literal_column("q"), name, MVT_EXTENT, "mvtgeom", "fid"))
                    .select_from(inner)
                    .where(inner.c.mvtgeom.is_not(None))
                )
            else:
                sub = select.subquery("src")
                stmt = sa.select(*[sa.func.ST_AsBinary(c).label("geom") if c.name == "geom" else c for c in sub.c])
            self.statements.append((name, stmt))

    def run(self, session: Session, z: int, x: int, y: int, params: dict[str, Any]) -> bytes:
        """The MVT bytes of tile z/x/y (``params``: the layer's own binds; the tile binds are added here)."""
        shift = (params.pop("_sdx"), params.pop("_sdy")) if "_sdx" in params else None
        p = {**params, **tile_params(z, x, y, shift)}
        if self.mode == "mvt":
            return b"".join(bytes(session.scalar(stmt, p) or b"") for _, stmt in self.statements)
        layers = [(name, [dict(r._mapping) for r in session.execute(stmt, p)]) for name, stmt in self.statements]
        return encode_mvt(layers, z, x, y, shift=shift)


def encode_mvt(
    layers: Sequence[tuple[str, list[dict[str, Any]]]],
    z: int,
    x: int,
    y: int,
    *,
    shift: tuple[float, float] | None = None,
) -> bytes:
    """Encode rows (from :func:`tile_rows`) as MVT like ST_AsMVTGeom + ST_AsMVT: Web Mercator, the tile's
    ``MVT_EXTENT`` grid with y down, clipped to ``MVT_BUFFER`` around the tile, snapped to integers, features
    that collapse dropped, null attributes left out."""
    import mapbox_vector_tile  # noqa: PLC0415

    x0, y0, x1, y1 = tile_bounds_3857(z, x, y)
    sx, sy = MVT_EXTENT / (x1 - x0), MVT_EXTENT / (y1 - y0)

    dx, dy = shift or (0.0, 0.0)

    def to_tile(coords: np.ndarray) -> np.ndarray:
        coords = coords + (dx, dy) if shift else coords
        lon, lat = np.radians(coords[:, 0]), np.radians(np.clip(coords[:, 1], -85.0511287798, 85.0511287798))
        mx, my = _R * lon, _R * np.log(np.tan(math.pi / 4 + lat / 2))
        return np.column_stack([(mx - x0) * sx, (y1 - my) * sy])

    out = []
    lo, hi = -MVT_BUFFER, MVT_EXTENT + MVT_BUFFER
    for name, rows in layers:
        features = []
        for r in rows:
            if "geom" in r:
                if r["geom"] is None:
                    continue
                geom = shapely.from_wkb(bytes(r["geom"]))
            else:
                geom = shapely.Point(float(r["lon"]), float(r["lat"]))
            geom = shapely.transform(geom, to_tile)
            if geom.geom_type == "Point":
                px, py = round(geom.x), round(geom.y)
                if not (lo <= px <= hi and lo <= py <= hi):  # ST_AsMVTGeom drops points outside the buffer
                    continue
                geom = shapely.Point(px, py)
            else:
                geom = shapely.clip_by_rect(geom, lo, lo, hi, hi)
                geom = shapely.set_precision(geom, 1.0)
                if geom.is_empty:
                    continue
            props = {k: v for k, v in r.items() if k not in ("fid", "geom", "lon", "lat") and v is not None}
            features.append({"geometry": geom, "properties": props, "id": int(r["fid"])})
        if features:
            out.append({"name": name, "features": features})
    if not out:
        return b""
    return bytes(mapbox_vector_tile.encode(out, default_options={"extents": MVT_EXTENT, "y_coord_down": True}))


# ---- text prefixes (standard-address look-up) -------------------------------------------------------------


def prefix_collation_sql(dialect_name: str, column: str) -> str:
    """``column`` in the byte-order collation a prefix range needs (PostgreSQL's database collation may
    order CJK text so that one prefix's strings are not contiguous; SQLite's default BINARY already is)."""
    return f'{column} COLLATE "C"' if dialect_name == "postgresql" else column


def prefix_index_sql(dialect_name: str, *, index: str, table: str, column: str) -> str:
    """DDL of a B-tree index that serves :func:`prefix_range_sql` on both back ends."""
    return f"CREATE INDEX {index} ON {table} ({prefix_collation_sql(dialect_name, column)})"


def prefix_range_sql(dialect_name: str, column: str, lo: str, hi: str) -> str:
    """A predicate ``lo <= column < hi`` (binds ``:lo``/``:hi`` named by the caller) that uses the prefix index."""
    col = prefix_collation_sql(dialect_name, column)
    return f"{col} >= :{lo} AND {col} < :{hi}"


def xact_lock(session: Session | sa.Connection, key: int) -> sa.ColumnElement[Any] | None:
    """An expression that takes the transaction-scoped advisory lock ``key`` when evaluated (PostgreSQL), to be
    added to a statement the transaction runs anyway; None on SQLite, whose writers are serialised already."""
    if dialect(session) != "postgresql":
        return None
    return sa.func.pg_advisory_xact_lock(key)


# --------------------------------------------------------------------------------------------------------
# Non-spatial differences between the back ends (locks, notifications, upserts, date arithmetic)


def is_postgres_url(database_url: str) -> bool:
    """Whether a database URL names PostgreSQL (then workers can share LISTEN/NOTIFY)."""
    return database_url.startswith("postgresql")


def inserts_by_dialect() -> dict[str, Any]:
    """Each back end's ``insert`` construct by dialect name (see :func:`insert_for`), for statements built once
    per back end at import and picked per session with :func:`dialect`."""
    from sqlalchemy.dialects import postgresql, sqlite  # noqa: PLC0415

    return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def insert_for(session: Session | sa.Connection) -> Any:
    """The back end's ``insert`` construct, which has ``on_conflict_do_nothing`` and ``returning``."""
    from sqlalchemy.dialects import postgresql, sqlite  # noqa: PLC0415

    return postgresql.insert if dialect(session) == "postgresql" else sqlite.insert


def transaction_lock(session: Session, key: int) -> None:
    """Serialise this transaction with every other one taking the same ``key`` (held until it ends).

    PostgreSQL: ``pg_advisory_xact_lock``. SQLite: nothing to do, since a write unit already holds the
    database's one write lock (``BEGIN IMMEDIATE``).
    """
    if dialect(session) == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def notify(session: Session, channel: str, payload: str) -> None:
    """Tell every listening worker at commit (PostgreSQL ``pg_notify``; never for a rolled-back transaction).

    SQLite has no such channel: its one process wakes its own listeners after commit, so nothing is sent.
    """
    if dialect(session) == "postgresql":
        session.execute(sa.text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})


def joins_by_hashing(session: Session | sa.Connection) -> bool:
    """Whether a join of many rows to another table is a hash join that builds its table per statement.

    PostgreSQL joins a year of facts to the effective-dispatch runs by hashing those runs, once per statement:
    two statements that join to the same runs build that hash twice, one statement over the ``UNION ALL`` of
    their rows builds it once (``evaluation.service.count_primitives``). SQLite joins by a nested loop of index
    look-ups (no table built), where each statement keeps its own covering-index plan (G-S3): False there.
    """
    return dialect(session) == "postgresql"


_PG_PARAM = re.compile(r"%\(([^)]+)\)s|__\[POSTCOMPILE_([^\]]+)\]")


@functools.lru_cache(maxsize=16)
def _prepared_form(stmt: Any, dialect_obj: sa.Dialect) -> tuple[str, Any, tuple[tuple[str, int, Any], ...]]:
    """A Core statement for PostgreSQL with its bound parameters as ``$n``, the compiled statement (to fill in
    its constants) and, per ``$n``, the parameter's name, its index in an IN list (-1 for a plain parameter; an
    IN list of constants becomes one ``$n`` per element) and its type's bind processor."""
    compiled = stmt.compile(dialect=dialect_obj)
    order: list[tuple[str, int, Any]] = []
    slots: dict[tuple[str, int], int] = {}

    def slot(n: str, i: int) -> str:
        if (n, i) not in slots:
            slots[(n, i)] = len(order) + 1
            t = compiled.binds[n].type
            order.append((n, i, t.dialect_impl(dialect_obj).bind_processor(dialect_obj)))
        return f"${slots[(n, i)]}"

    def number(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return slot(m.group(1), -1)
        return ", ".join(slot(m.group(2), i) for i in range(len(compiled.binds[m.group(2)].value)))

    return _PG_PARAM.sub(number, compiled.string).replace("%%", "%"), compiled, tuple(order)


def execute_prepared(session: Session, stmt: Any, params: dict[str, Any]) -> None:
    """Run a long Core statement that runs often with the same shape (the one-day rollup refresh).

    PostgreSQL: psycopg sends it as a prepared statement, converted to ``$n`` placeholders once per process
    (a raw cursor). Sent through SQLAlchemy, a statement of some 40,000 characters and ~200 parameters costs
    psycopg ~5 ms of Python per run to convert its placeholders (its query cache takes statements up to 4 KB and
    50 parameters). The prepared statement follows the connection's ``plan_cache_mode``
    (:func:`joins_by_index_lookups` can ask for its generic plan). SQLite caches compiled statements itself."""
    if dialect(session) != "postgresql":
        session.execute(stmt, params)
        return
    import psycopg

    sql, compiled, order = _prepared_form(stmt, session.get_bind().dialect)
    values = compiled.construct_params(params)
    args = []
    for n, i, proc in order:
        v = values[n] if i < 0 else values[n][i]
        args.append(proc(v) if proc is not None and v is not None else v)
    raw = session.connection().connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    with psycopg.RawCursor(raw) as cur:
        cur.execute(sql, args, prepare=True)


@contextlib.contextmanager
def joins_by_index_lookups(session: Session, *, generic_plan: bool = False) -> Iterator[None]:
    """Within the block, join by nested loops of index look-ups only: for statements that join a few rows (one
    day's facts) to a large table that has an index on the join key.

    PostgreSQL under-estimates the effective-dispatch runs (a fact's stage and start action are correlated and
    the planner multiplies their selectivities) and joins one day's facts to them by a merge join that walks
    the runs' index from its start, some 12 ms a family on 800,000 facts where the look-ups take 0.4 ms:
    ``enable_mergejoin`` and ``enable_hashjoin`` are off for the block (``set_config(…, true)``: this
    transaction only) and restored after it. With ``generic_plan`` a prepared statement run in the block
    (:func:`execute_prepared`) keeps the plan it was given once, without the values, instead of being planned
    again for each run (``plan_cache_mode``; ~5 ms for the one-day rollup statement, whose parameters are
    one day's bounds and constants: the same joins suit every day). SQLite joins by index look-ups anyway and
    caches its plans: nothing to do."""
    if dialect(session) != "postgresql":
        yield
        return
    mode = "force_generic_plan" if generic_plan else None
    before = session.execute(
        sa.text(
            "SELECT current_setting('enable_mergejoin'), current_setting('enable_hashjoin'), "
            "current_setting('plan_cache_mode'), set_config('enable_mergejoin', 'off', true), "
            "set_config('enable_hashjoin', 'off', true), "
            "set_config('plan_cache_mode', coalesce(:mode, current_setting('plan_cache_mode')), true)"
        ),
        {"mode": mode},
    ).one()
    yield  # on an error the transaction is rolled back, which restores the settings
    session.execute(
        sa.text(
            "SELECT set_config('enable_mergejoin', :m, true), set_config('enable_hashjoin', :h, true), "
            "set_config('plan_cache_mode', :p, true)"
        ),
        {"m": before[0], "h": before[1], "p": before[2]},
    )


def local_date(session: Session, col: Any, offset_s: int) -> Any:
    """The local date of a UTC timestamp column under a fixed UTC offset of ``offset_s`` seconds, in SQL."""
    if dialect(session) == "postgresql":
        shifted = sa.func.timezone("UTC", col) + sa.literal_column(f"interval '{int(offset_s)} seconds'")
        return sa.cast(shifted, sa.Date)
    return sa.func.date(col, f"{int(offset_s):+d} seconds")


class LockTimeout(Exception):
    """A statement waited longer than its bound for a row lock held by another transaction."""


_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_not_available (lock_timeout expired)


def scalar_with_lock_timeout(
    session: Session, stmt: Any, wait_seconds: float, params: dict[str, Any] | None = None
) -> Any:
    """Run ``stmt`` (with ``params``) and return its scalar (or None), waiting at most ``wait_seconds`` for
    another transaction's row lock; :class:`LockTimeout` when that expires.

    PostgreSQL: a transaction-local ``lock_timeout`` inside a savepoint, so that a timeout leaves the outer
    transaction usable. SQLite: a write unit already holds the one write lock, so the statement never waits on
    another transaction's row; it simply runs.
    """
    if dialect(session) != "postgresql":
        return session.execute(stmt, params).scalar_one_or_none()
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    savepoint = session.begin_nested()
    try:
        previous = session.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one()
        session.execute(
            sa.text("SELECT set_config('lock_timeout', :v, true)"), {"v": f"{max(1, int(wait_seconds * 1000))}ms"}
        )
        value = session.execute(stmt, params).scalar_one_or_none()
        session.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"), {"v": previous})
    except OperationalError as exc:
        savepoint.rollback()
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise LockTimeout(str(exc.orig)) from exc
        raise
    savepoint.commit()
    return value
