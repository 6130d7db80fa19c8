"""Mapbox Vector Tiles of the city: admin areas, unit grids, components, open cases, hot spots, base map.

Each tile layer is a Core select (``fid``, attributes, ``geom`` or ``lon``/``lat``) limited to the tile and its
buffer through the spatial index, with the tile's coordinates as bind parameters, so the statements of each kind
of tile are built once (:class:`gridcity.spatial.PreparedTile`) and turned into MVT by ST_AsMVT on PostGIS and by
the mapbox-vector-tile encoder on SpatiaLite. The case and hot-spot layers start from
:func:`casework.service.visible_cases`, so a tile shows exactly what the API would show the same user.

Tiles are cached in memory by (layer, z, x, y, audience, data version), so a tile changes as soon as its data
does, and an unchanged tile answers 304 to ``If-None-Match`` without being built. A layer's version is its
revision, bumped by triggers on every write to its tables (:func:`version_expression`; the case layers' by
writes to cases and departments). On PostGIS the version is read in the tile's own
statement, so every tile is one round trip, cold or warm (see :func:`get_tile`); on SpatiaLite the rarely
changing layers reuse theirs for ``STATIC_VERSION_TTL_S`` (per app, in its :class:`TileCache`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors

from casework import service as casework_service
from casework.lifecycle import TERMINAL, CaseStatus
from casework.models import Case
from components.models import Area, Component, Grid
from gis_data.models import BASE_LAYERS, CASES_REVISION, BaseFeature, LayerRevision
from gridcity import coords, spatial
from gridcity.errors import InvalidInput, NotFound
from gridcity.org import Department
from gridcity.roles import Role

MAX_ZOOM = 22
CLUSTER_BELOW_ZOOM = 14
"""Below this zoom the case layer holds clusters (count, worst light) instead of single cases."""
CLUSTER_CELLS = 8
"""Clusters per tile side (a cell of 64 screen pixels on a 512-pixel tile)."""
HOTSPOT_DAYS = 90
Bbox = tuple[float, float, float, float]


@dataclass(frozen=True)
class LayerInfo:
    """One tile layer: its MVT layer names, zoom range, attribute names (TileJSON) and who may read it."""

    name: str
    title_zh: str
    title_en: str
    minzoom: int
    fields: dict[str, str]
    public: bool = False
    per_user: bool = False
    """The features depend on the reader (cases, hot spots)."""
    sublayers: tuple[str, ...] = ()
    """MVT layers inside the tile (default: one, named like the tile layer)."""

    @property
    def mvt_layers(self) -> tuple[str, ...]:
        """The MVT layer names of the tile."""
        return self.sublayers or (self.name,)


LAYERS: dict[str, LayerInfo] = {
    "base": LayerInfo(
        "base", "底图", "Base map", 0, {"name": "名称", "kind": "类别"}, public=True, sublayers=BASE_LAYERS
    ),
    "admin": LayerInfo(
        "admin",
        "行政区划",
        "Admin areas",
        0,
        {"code": "区划代码", "name": "名称", "level": "district | street | community"},
    ),
    "grids": LayerInfo("grids", "单元网格", "Unit grids", 13, {"code": "网格编码", "community_code": "社区代码"}),
    "components": LayerInfo(
        "components",
        "部件",
        "Components",
        15,
        {"code": "部件标识码", "class_code": "小类", "major": "大类", "name": "名称", "state": "状态"},
    ),
    "cases": LayerInfo(
        "cases",
        "案件",
        "Cases",
        0,
        {
            "number": "案卷号",
            "class_code": "小类",
            "major": "大类",
            "status": "状态",
            "light": "red | yellow | green | paused | none",
            "department": "处置部门",
            "department_id": "部门ID",
            "count": "聚合数（缩小时）",
            "cluster": "1 = 聚合点",
        },
        per_user=True,
    ),
    "hotspots": LayerInfo(
        "hotspots",
        "热点",
        "Hot spots",
        0,
        {"grid_code": "网格编码", "count": f"近{HOTSPOT_DAYS}天案件数"},
        per_user=True,
    ),
}


def check_tile(layer: str, z: int, x: int, y: int) -> LayerInfo:
    """The layer's info; 404 ``tile.unknown_layer``, 422 ``tile.out_of_range`` for impossible z/x/y."""
    info = LAYERS.get(layer)
    if info is None:
        raise NotFound(
            f"no tile layer {layer!r} (layers: {', '.join(LAYERS)})", code="tile.unknown_layer", loc=["path", "layer"]
        )
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"z must be between 0 and {MAX_ZOOM}", code="tile.out_of_range", loc=["path", "z"])
    n = 1 << z
    if not 0 <= x < n:
        raise InvalidInput(f"x must be between 0 and {n - 1} at zoom {z}", code="tile.out_of_range", loc=["path", "x"])
    if not 0 <= y < n:
        raise InvalidInput(f"y must be between 0 and {n - 1} at zoom {z}", code="tile.out_of_range", loc=["path", "y"])
    return info


def audience(actor: casework_service.Actor | None) -> str:
    """Who a per-user tile is for: everyone who sees all cases shares one key."""
    if actor is None:
        return "anon"
    if actor.role is Role.DEPARTMENT:
        return f"dept:{actor.department_id}"
    if actor.role is Role.INSPECTOR:
        return f"user:{actor.user_id}"
    return "all"


STATIC_VERSION_TTL_S = 2.0
"""How long the data version of a rarely changing layer (areas, grids, components, base map) is reused."""


def data_version(session: Session, cache: TileCache, layer: str, now: dt.datetime) -> str:
    """A short text that changes whenever the layer's data (or, for lights, the clock's minute) changes.

    Case layers ask the database every time; the rarely changing layers reuse their version for
    ``STATIC_VERSION_TTL_S`` per database in ``cache`` (the app's own), which saves a round trip on most
    tiles (PostGIS reads it in the tile's statement instead, see :func:`get_tile`)."""
    if layer not in ("cases", "hotspots"):
        key = (id(session.get_bind()), layer)
        hit = cache.static_versions.get(key)
        clock = time.monotonic()
        if hit is not None and clock - hit[0] < STATIC_VERSION_TTL_S:
            return hit[1]
        version = _data_version(session, layer, now)
        cache.static_versions[key] = (clock, version)
        return version
    return _data_version(session, layer, now)


def revision_name(layer: str) -> str:
    """The row of :class:`LayerRevision` that versions ``layer`` (the case layers share one)."""
    return CASES_REVISION if layer in ("cases", "hotspots") else layer


def version_expression(layer: str) -> Any:
    """The layer's data version as SQL text (without the clock part of the case layers, see :func:`_bucket`):
    its revision (0 before the first write), which triggers bump on every insert, update and delete of its
    tables in the writer's own transaction (migration 0007; for the case and hot-spot layers the case and
    department tables, 0008), so a snapshot holds a layer's data and its revision together."""
    rev = sa.select(LayerRevision.rev).where(LayerRevision.layer == revision_name(layer)).scalar_subquery()
    return sa.cast(sa.func.coalesce(rev, 0), sa.String)


def _data_version(session: Session, layer: str, now: dt.datetime) -> str:
    version = str(session.scalar(sa.select(version_expression(layer))))
    return f"{version}:{_bucket(layer, now)}" if layer in ("cases", "hotspots") else version


_NOW = sa.bindparam("now", type_=Case.deadline_at.type)


def _bucket(layer: str, now: dt.datetime) -> str:
    """The clock part of a case layer's version: lights change with the minute, hot spots with the day."""
    return now.strftime("%Y%m%d%H%M") if layer == "cases" else now.strftime("%Y%m%d")


def _light_rank() -> Any:
    """The case's traffic light as a rank (red 3, yellow 2, green 1, paused/none 0), like ``light_from``."""
    return sa.case(
        (Case.stage.is_(None), 0),
        (Case.deadline_at.is_(None), 0),
        (Case.deadline_at < _NOW, 3),
        (sa.and_(Case.warn_at.is_not(None), Case.warn_at <= _NOW), 2),
        else_=1,
    )


def _light_of_rank(rank: Any) -> Any:
    return sa.case((rank == 3, "red"), (rank == 2, "yellow"), (rank == 1, "green"), else_="none")


def _light() -> Any:
    return sa.case(
        (Case.stage.is_(None), "none"),
        (Case.deadline_at.is_(None), sa.case((Case.status == CaseStatus.SUSPENDED, "paused"), else_="none")),
        (Case.deadline_at < _NOW, "red"),
        (sa.and_(Case.warn_at.is_not(None), Case.warn_at <= _NOW), "yellow"),
        else_="green",
    )


def _major(col: Any) -> Any:
    return sa.func.substr(col, 1, 3)


def _admin_levels(z: int) -> tuple[str, ...]:
    return ("district",) if z < 11 else ("district", "street") if z < 13 else ("district", "street", "community")


def variant(info: LayerInfo, z: int, actor: casework_service.Actor | None) -> tuple[Any, ...] | None:
    """What distinguishes the statements of this layer's tiles at zoom ``z`` for ``actor``; None: no features."""
    if z < info.minzoom:
        return None
    if info.name == "base":
        return (z >= 14,)
    if info.name == "admin":
        return _admin_levels(z)
    if info.name in ("cases", "hotspots"):
        return (z < CLUSTER_BELOW_ZOOM and info.name == "cases", audience(actor))
    return ()


def layer_selects(
    dialect_name: str, info: LayerInfo, var: tuple[Any, ...], actor: casework_service.Actor | None
) -> list[tuple[str, sa.Select[Any]]]:
    """The (MVT layer name, select) pairs of a kind of tile, with the tile's and layer's values as binds."""

    def box(col: Any) -> Any:
        return spatial.tile_box_filter(dialect_name, col)

    if info.name == "base":
        t = BaseFeature
        return [
            (sub, sa.select(t.id.label("fid"), t.name, t.kind, t.geom).where(box(t.geom), t.layer == sub))
            for sub in info.mvt_layers
            if sub != "building" or var[0]
        ]
    if info.name == "admin":
        return [
            (
                "admin",
                sa.select(Area.id.label("fid"), Area.code, Area.name, Area.level, Area.geom).where(
                    box(Area.geom), Area.level.in_(var)
                ),
            )
        ]
    if info.name == "grids":
        return [
            ("grids", sa.select(Grid.id.label("fid"), Grid.code, Grid.community_code, Grid.geom).where(box(Grid.geom)))
        ]
    if info.name == "components":
        c = Component
        return [
            (
                "components",
                sa.select(
                    c.id.label("fid"),
                    c.code,
                    c.class_code,
                    _major(c.class_code).label("major"),
                    c.name,
                    c.state,
                    c.geom,
                ).where(box(c.geom)),
            )
        ]
    assert actor is not None
    visible = casework_service.visible_cases(actor).where(Case.merged_into_id.is_(None))
    if info.name == "hotspots":
        sub = (
            visible.with_only_columns(Case.id, Case.grid_code, Case.lon, Case.lat)
            .where(box(Case.geom), Case.created_at >= sa.bindparam("since", type_=Case.created_at.type))
            .subquery()
        )
        return [
            (
                "hotspots",
                sa.select(
                    sa.func.min(sub.c.id).label("fid"),
                    sub.c.grid_code,
                    sa.func.count().label("count"),
                    sa.func.avg(sub.c.lon).label("lon"),
                    sa.func.avg(sub.c.lat).label("lat"),
                )
                .where(sub.c.grid_code.is_not(None))
                .group_by(sub.c.grid_code),
            )
        ]
    open_cases = visible.where(Case.status.not_in(list(TERMINAL)), box(Case.geom))
    if var[0]:  # clusters: cells of the tile by the position of their cases
        f = {k: sa.bindparam(k, type_=sa.Float()) for k in ("cx0", "cy1", "ckx", "cky")}
        # times cells per degree, not divided by a cell's width: SQLAlchemy casts a divisor to NUMERIC, which
        # turned the cell arithmetic of every case into slow decimal arithmetic on PostgreSQL
        cx = sa.func.floor((Case.lon - f["cx0"]) * f["ckx"])
        cy = sa.func.floor((f["cy1"] - Case.lat) * f["cky"])
        sub = open_cases.with_only_columns(
            Case.id, Case.lon, Case.lat, cx.label("cx"), cy.label("cy"), _light_rank().label("rank")
        ).subquery()
        return [
            (
                "cases",
                sa.select(
                    sa.func.min(sub.c.id).label("fid"),
                    sa.func.count().label("count"),
                    _light_of_rank(sa.func.max(sub.c.rank)).label("light"),
                    sa.literal(1).label("cluster"),
                    sa.func.avg(sub.c.lon).label("lon"),
                    sa.func.avg(sub.c.lat).label("lat"),
                ).group_by(sub.c.cx, sub.c.cy),
            )
        ]
    q = open_cases.with_only_columns(
        Case.id.label("fid"),
        Case.number,
        Case.class_code,
        _major(Case.class_code).label("major"),
        Case.status,
        _light().label("light"),
        Department.name.label("department"),
        Case.department_id,
        Case.lon,
        Case.lat,
    ).outerjoin(Department, Department.id == Case.department_id)
    return [("cases", q)]


def layer_params(info: LayerInfo, z: int, x: int, y: int, now: dt.datetime) -> dict[str, Any]:
    """The layer's own bind values for one tile (the tile's z/x/y and box are added by the statement)."""
    if info.name == "hotspots":
        return {"since": now - dt.timedelta(days=HOTSPOT_DAYS)}
    if info.name != "cases":
        return {}
    p: dict[str, Any] = {"now": now}
    if z < CLUSTER_BELOW_ZOOM:
        x0, y0, x1, y1 = spatial.tile_bbox_wgs84(z, x, y, buffer=0)
        p.update(cx0=x0, cy1=y1, ckx=CLUSTER_CELLS / (x1 - x0), cky=CLUSTER_CELLS / (y1 - y0))
    return p


def gcj02_shift(z: int, x: int, y: int) -> tuple[float, float]:
    """The WGS-84 → GCJ-02 offset at the tile's centre (degrees). Within one tile it varies by centimetres."""
    x0, y0, x1, y1 = spatial.tile_bbox_wgs84(z, x, y, buffer=0)
    lon, lat = (x0 + x1) / 2, (y0 + y1) / 2
    glon, glat = coords.wgs84_to_gcj02(lon, lat)
    return glon - lon, glat - lat


@dataclass
class _Kind:
    """The statements of a kind of tile, and (PostGIS) the one statement that also reads the version, as a
    statement and, once compiled on the first tile, as driver SQL (see :func:`_driver_sql`)."""

    tile: spatial.PreparedTile
    versioned: Any | None
    versioned_sql: str | None = None
    compiled: bool = False


TILE_PARAMS = frozenset(spatial.TILE_BINDS) | {"now", "since", "cx0", "cy1", "ckx", "cky", "known"}
"""The bind parameters whose values change from tile to tile; every other value of a tile statement is fixed."""


def _driver_sql(stmt: Any, dialect: sa.Dialect) -> str | None:
    """``stmt`` as PostgreSQL text with its fixed values written in and only :data:`TILE_PARAMS` as (typed)
    parameters, for the driver cursor; None when a fixed value cannot be written as a literal.

    A case tile statement holds some fifty fixed values (SRIDs, extents, the light names, the closed statuses,
    the audience's department); sent as parameters, binding and planning them cost more than running the
    statement on a near-empty tile (0.27 ms against 0.13 ms written in, the raw query 0.09 ms)."""

    def swap(el: Any, **_kw: Any) -> Any:
        if isinstance(el, sa.BindParameter) and el.key in TILE_PARAMS:
            return sa.literal_column(f"%({el.key})s::{el.type.compile(dialect=dialect)}")
        return None

    opts: dict[str, Any] = {}
    try:
        swapped: Any = visitors.replacement_traverse(stmt, opts, swap)
        sql = str(swapped.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except (sa.exc.CompileError, NotImplementedError):
        return None
    for key in TILE_PARAMS:  # the compiler escaped our placeholders' % for the driver's paramstyle
        sql = sql.replace(f"%%({key})s", f"%({key})s")
    return sql


_PREPARED: OrderedDict[tuple[Any, ...], _Kind] = OrderedDict()
_PREPARED_LOCK = threading.Lock()


def _versioned_statement(tile: spatial.PreparedTile, layer: str) -> Any | None:
    """``SELECT rev, same, CASE WHEN same THEN NULL ELSE <tile> END FROM layer_revision WHERE layer = …``: the
    layer's version and its tile.

    ``rev`` is the layer's revision (:func:`version_expression`) and ``same`` says whether it equals the bind
    ``known`` (the revision of the tile the caller already holds, -1 for none); PostgreSQL evaluates the tile's
    sub-selects only in the ELSE branch, so a warm tile costs the index look-up of the version alone. A tile of
    several MVT layers (the base map) is their ST_AsMVT sub-selects concatenated, still one row. Version and
    tile come from one snapshot, so a tile is never filed under a version it does not show. The revision is
    read as a plain row (no sub-select: planning one around every small tile cost more than the look-up), so
    before the layer's first write there is no row and the caller falls back to two statements. None when the
    tile is not built by ST_AsMVT (SpatiaLite, or the Python encoder on PostGIS)."""
    if tile.mode != "mvt" or not tile.statements:
        return None
    r = LayerRevision.__table__
    same = r.c.rev == sa.bindparam("known", type_=sa.BigInteger())
    parts = [stmt.scalar_subquery() for _, stmt in tile.statements]
    body: Any = parts[0]
    if len(parts) > 1:  # an empty layer's ST_AsMVT is NULL, which would swallow the others
        empty = sa.literal_column("''::bytea")
        body = sa.func.coalesce(parts[0], empty)
        for part in parts[1:]:
            body = body.op("||")(sa.func.coalesce(part, empty))
    return sa.select(r.c.rev, same.label("same"), sa.case((same, sa.null()), else_=body).label("mvt")).where(
        r.c.layer == revision_name(layer)
    )


def prepared(
    dialect_name: str,
    info: LayerInfo,
    var: tuple[Any, ...],
    actor: casework_service.Actor | None,
    *,
    shift: bool,
    encoder: bool,
) -> _Kind:
    """The statements of a kind of tile, built once (an LRU of a few hundred kinds: layers × audiences)."""
    key = (dialect_name, info.name, var, shift, encoder)
    with _PREPARED_LOCK:
        found = _PREPARED.get(key)
        if found is not None:
            _PREPARED.move_to_end(key)
            return found
    tile = spatial.PreparedTile(
        dialect_name, layer_selects(dialect_name, info, var, actor), shift=shift, encoder=encoder
    )
    built = _Kind(tile, _versioned_statement(tile, info.name))
    with _PREPARED_LOCK:
        _PREPARED[key] = built
        while len(_PREPARED) > 512:
            _PREPARED.popitem(last=False)
    return built


def build_tile(
    session: Session,
    info: LayerInfo,
    z: int,
    x: int,
    y: int,
    *,
    actor: casework_service.Actor | None,
    now: dt.datetime,
    gcj02: bool = False,
    encoder: bool = False,
) -> bytes:
    """The MVT bytes of one tile (empty bytes for an empty tile); ``gcj02`` shifts it onto a GCJ-02 basemap."""
    var = variant(info, z, actor)
    if var is None:
        return b""
    shift = gcj02 and z >= 6
    kind = prepared(spatial.dialect(session), info, var, actor, shift=shift, encoder=encoder)
    params = layer_params(info, z, x, y, now)
    if shift:
        params["_sdx"], params["_sdy"] = gcj02_shift(z, x, y)
    return kind.tile.run(session, z, x, y, params)


def _build_versioned(
    session: Session,
    info: LayerInfo,
    z: int,
    x: int,
    y: int,
    *,
    actor: casework_service.Actor | None,
    now: dt.datetime,
    gcj02: bool,
    known: str,
) -> tuple[str, bytes | None] | None:
    """(data version, tile bytes) in one statement; bytes None when the version is ``known``.

    None when this kind of tile has no such statement (the caller asks for the version on its own)."""
    var = variant(info, z, actor)
    if var is None:
        return None
    shift = gcj02 and z >= 6
    kind = prepared(spatial.dialect(session), info, var, actor, shift=shift, encoder=False)
    if kind.versioned is None:
        return None
    p = layer_params(info, z, x, y, now)
    p.update(spatial.tile_params(z, x, y, gcj02_shift(z, x, y) if shift else None), known=int(known or -1))
    conn = session.connection()
    if not kind.compiled:  # a race compiles it twice, to the same text
        kind.versioned_sql = _driver_sql(kind.versioned, conn.dialect) if conn.dialect.driver == "psycopg" else None
        kind.compiled = True
    if kind.versioned_sql is not None:
        row = _run_driver_sql(conn, kind.versioned_sql, p)
    else:
        row = conn.execute(kind.versioned, p).first()
    if row is None:  # the layer was never written: no revision row yet
        return None
    last, same, mvt = row
    return str(last), None if same else bytes(mvt or b"")


def _run_driver_sql(conn: sa.Connection, sql: str, params: dict[str, Any]) -> Any:
    """The row of ``sql`` (psycopg text; None when it has none) on the session's psycopg connection, in one
    round trip.

    The tile is the request's hot statement, so it skips what a statement through SQLAlchemy costs around the
    driver cursor (execution context, result object and its column map: some 0.05 ms a tile). When no
    transaction is open on the connection yet (a tile request's user look-up commits its own read unit), the
    statement runs on its own, without the ``BEGIN`` psycopg would otherwise send and wait for first (0.1 ms,
    and a ``ROLLBACK`` when the session closes): it is one statement, so version and tile still come from one
    snapshot, and under READ COMMITTED the next statement of the session takes a new snapshot either way.
    The engine's ``before_cursor_execute`` listeners (the NUL guard, tests' statement counts) still see the
    statement; psycopg prepares it on the server after a few tiles and keeps it while no ROLLBACK empties its
    cache (PostgreSQL then skips parsing it; it still plans it each time, ``plan_cache_mode``)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    conn.dispatch.before_cursor_execute(conn, None, sql, params, None, False)
    alone = (
        not raw.autocommit
        and raw.info.transaction_status == 0  # IDLE: nothing of this transaction has reached the server yet
        and getattr(raw.isolation_level, "name", "READ_COMMITTED") == "READ_COMMITTED"  # None: server default
        and not raw.read_only
    )
    try:
        if not alone:
            return raw.execute(sql, params).fetchone()
        raw.autocommit = True
        try:
            return raw.execute(sql, params).fetchone()
        finally:
            raw.autocommit = False
    except Exception as exc:
        if getattr(raw, "broken", False):  # a lost server: the pool must not hand this connection out again
            conn.invalidate(exc)
        raise


class TileCache:
    """A thread-safe LRU of built tiles, bounded by total bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.last_seen: dict[tuple[int, str], str] = {}
        """Per database and layer: the data version this app last read (PostGIS), the candidate version of a
        warm tile. Only a guess that saves building the tile: the database confirms it in the tile's own
        statement, so a change made through another worker process is seen by the next tile here just the
        same."""
        self.static_versions: dict[tuple[int, str], tuple[float, str]] = {}
        """Per database and rarely changing layer: (monotonic time read, data version), reused for
        ``STATIC_VERSION_TTL_S`` (see :func:`data_version`)."""

    def forget_versions(self) -> None:
        """Drop the reused versions (after an import through this app replaced a layer)."""
        self.static_versions.clear()

    def get(self, key: str) -> bytes | None:
        """The cached tile, refreshed as most recently used."""
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        """Keep a tile, dropping the least recently used ones beyond ``max_bytes``."""
        with self._lock:
            old = self._items.pop(key, None)
            self._size -= len(old) if old is not None else 0
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


def tile_key(layer: str, z: int, x: int, y: int, who: str, version: str) -> str:
    """The cache key, which is also the ETag's seed."""
    return f"{layer}/{z}/{x}/{y}/{who}/{version}"


def etag_of(key: str) -> str:
    """A strong ETag for a tile key."""
    return '"' + hashlib.sha1(key.encode()).hexdigest()[:24] + '"'


def get_tile(
    session: Session,
    cache: TileCache,
    info: LayerInfo,
    z: int,
    x: int,
    y: int,
    *,
    actor: casework_service.Actor | None,
    now: dt.datetime,
    gcj02: bool = False,
    if_none_match: str | None = None,
) -> tuple[bytes | None, str]:
    """(tile bytes, ETag); bytes None when ``if_none_match`` already names the current tile (304).

    On PostGIS a tile is one statement (:func:`_get_versioned_tile`); a tile below the layer's first zoom is
    empty whatever the data, and needs none."""
    who = audience(actor) if info.per_user else "all"
    if variant(info, z, actor) is None:
        version = "none"
    else:
        if spatial.builds_tiles_in_sql(session):
            found = _get_versioned_tile(
                session, cache, info, z, x, y, actor=actor, now=now, gcj02=gcj02, if_none_match=if_none_match
            )
            if found is not None:
                return found
        version = data_version(session, cache, info.name, now)
    key = tile_key(info.name, z, x, y, who, version) + (":gcj02" if gcj02 else "")
    etag = etag_of(key)
    if if_none_match and etag in {t.strip() for t in if_none_match.split(",")}:
        return None, etag
    data = cache.get(key)
    if data is None:
        data = build_tile(session, info, z, x, y, actor=actor, now=now, gcj02=gcj02)
        cache.put(key, data)
    return data, etag


def _get_versioned_tile(
    session: Session,
    cache: TileCache,
    info: LayerInfo,
    z: int,
    x: int,
    y: int,
    *,
    actor: casework_service.Actor | None,
    now: dt.datetime,
    gcj02: bool,
    if_none_match: str | None,
) -> tuple[bytes | None, str] | None:
    """:func:`get_tile` on PostGIS: the version and (unless the tile held is current) the tile in one
    statement. None when the tile has no such statement."""
    who = audience(actor) if info.per_user else "all"
    bucket = ":" + _bucket(info.name, now) if info.per_user else ""
    suffix = ":gcj02" if gcj02 else ""
    wanted = {t.strip() for t in if_none_match.split(",")} if if_none_match else set()

    def key_of(last: str) -> str:
        return tile_key(info.name, z, x, y, who, last + bucket) + suffix

    seen = (id(session.get_bind()), info.name)
    guess = cache.last_seen.get(seen)
    known, held = "", None
    if guess is not None:
        key = key_of(guess)
        if etag_of(key) in wanted:
            known = guess
        else:
            held = cache.get(key)
            known = guess if held is not None else ""
    built = _build_versioned(session, info, z, x, y, actor=actor, now=now, gcj02=gcj02, known=known)
    if built is None:
        return None
    last, data = built
    etag = etag_of(key_of(last))
    if data is None:  # the tile the client or the cache holds is current
        if held is not None or etag in wanted:
            return (None if etag in wanted else held), etag
        # the cache dropped it since we looked: build it for real
        built = _build_versioned(session, info, z, x, y, actor=actor, now=now, gcj02=gcj02, known="")
        if built is None:
            return None
        last, data = built
        etag = etag_of(key_of(last))
    assert data is not None
    cache.last_seen[seen] = last
    cache.put(key_of(last), data)
    return (None if etag in wanted else data), etag


def city_bounds(session: Session) -> Bbox | None:
    """The WGS84 bounds of the city's districts (else of its grids), or None for an empty city."""
    import shapely  # noqa: PLC0415

    for stmt in (
        sa.select(sa.func.ST_AsBinary(Area.geom)).where(Area.level == "district"),
        sa.select(sa.func.ST_AsBinary(Grid.geom)).limit(100_000),
    ):
        wkbs = [bytes(w) for w in session.scalars(stmt) if w is not None]
        if wkbs:
            x0, y0, x1, y1 = shapely.total_bounds(shapely.from_wkb(wkbs))
            return float(x0), float(y0), float(x1), float(y1)
    return None


def tilejson(
    info: LayerInfo, *, base_url: str, bounds: Bbox | None, lang: str = "zh", query: str = ""
) -> dict[str, Any]:
    """The TileJSON 3.0 document of a layer."""
    b = bounds or (-180.0, -85.0511, 180.0, 85.0511)
    centre = [round((b[0] + b[2]) / 2, 6), round((b[1] + b[3]) / 2, 6), 13 if bounds else 2]
    return {
        "tilejson": "3.0.0",
        "name": info.title_zh if lang == "zh" else info.title_en,
        "scheme": "xyz",
        "tiles": [f"{base_url}/tiles/{info.name}/{{z}}/{{x}}/{{y}}.mvt{query}"],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "bounds": [round(v, 6) for v in b],
        "center": centre,
        "vector_layers": [
            {"id": sub, "fields": info.fields, "minzoom": info.minzoom, "maxzoom": MAX_ZOOM} for sub in info.mvt_layers
        ],
    }


LIGHT_COLOURS = {"red": "#d62728", "yellow": "#f2b701", "green": "#2ca02c", "paused": "#7f7f7f", "none": "#1f77b4"}


def style(
    *,
    base_url: str,
    legend: list[dict[str, Any]],
    external: dict[str, Any] | None = None,
    lang: str = "zh",
    bounds: Bbox | None = None,
) -> dict[str, Any]:
    """The MapLibre style of the live map: base map, areas, grids, components, heat, cases (by light)."""
    zh = lang == "zh"
    font = ["Noto Sans Regular"]
    sources: dict[str, Any] = {name: {"type": "vector", "url": f"{base_url}/tiles/{name}.json"} for name in LAYERS}
    major_colour: list[Any] = ["match", ["get", "major"]]
    for e in legend:
        major_colour += [e["major"], e["color"]]
    major_colour.append("#7f7f7f")
    light_colour: list[Any] = ["match", ["get", "light"]]
    for k, v in LIGHT_COLOURS.items():
        light_colour += [k, v]
    light_colour.append("#1f77b4")
    layers: list[dict[str, Any]] = [
        {"id": "background", "type": "background", "paint": {"background-color": "#f4f1ea"}}
    ]
    if external:
        sources["external"] = {
            "type": "raster",
            "tiles": external["tiles"],
            "tileSize": 256,
            "attribution": external.get("attribution", ""),
        }
        layers.append({"id": "external", "type": "raster", "source": "external"})
    layers += [
        {
            "id": "base-green",
            "type": "fill",
            "source": "base",
            "source-layer": "green",
            "paint": {"fill-color": "#cfe8c0"},
        },
        {
            "id": "base-water",
            "type": "fill",
            "source": "base",
            "source-layer": "water",
            "filter": ["in", ["geometry-type"], ["literal", ["Polygon", "MultiPolygon"]]],
            "paint": {"fill-color": "#a9d3f2"},
        },
        {
            "id": "base-building",
            "type": "fill",
            "source": "base",
            "source-layer": "building",
            "minzoom": 14,
            "paint": {"fill-color": "#e0d8cc", "fill-outline-color": "#c9bfb0"},
        },
        {
            "id": "base-road-casing",
            "type": "line",
            "source": "base",
            "source-layer": "road",
            "layout": {"line-cap": "round", "line-join": "round"},
            "paint": {
                "line-color": "#c8bca8",
                "line-width": [
                    "interpolate",
                    ["linear"],
                    ["zoom"],
                    11,
                    ["match", ["get", "kind"], "主干路", 3, "次干路", 2, 0.5],
                    17,
                    ["match", ["get", "kind"], "主干路", 20, "次干路", 14, 8],
                ],
            },
        },
        {
            "id": "base-road",
            "type": "line",
            "source": "base",
            "source-layer": "road",
            "layout": {"line-cap": "round", "line-join": "round"},
            "paint": {
                "line-color": ["match", ["get", "kind"], "主干路", "#fbd38d", "#ffffff"],
                "line-width": [
                    "interpolate",
                    ["linear"],
                    ["zoom"],
                    11,
                    ["match", ["get", "kind"], "主干路", 2, "次干路", 1, 0.3],
                    17,
                    ["match", ["get", "kind"], "主干路", 16, "次干路", 11, 6],
                ],
            },
        },
        {
            "id": "admin-line",
            "type": "line",
            "source": "admin",
            "source-layer": "admin",
            "paint": {
                "line-color": ["match", ["get", "level"], "district", "#6a3d9a", "street", "#9e7bb5", "#c2a5cf"],
                "line-width": ["match", ["get", "level"], "district", 2.5, "street", 1.5, 1],
                "line-dasharray": [3, 2],
            },
        },
        {
            "id": "grids-line",
            "type": "line",
            "source": "grids",
            "source-layer": "grids",
            "minzoom": 14,
            "paint": {"line-color": "#8aa1b1", "line-width": 0.6},
        },
        # The heat map is the costliest layer to draw (every point a blurred disc in an off-screen pass: a
        # third of a frame in the browser bench); it is for the city and district view, so it stops at zoom 15,
        # where the cases themselves are drawn one by one, and fades out on the way.
        {
            "id": "heat",
            "type": "heatmap",
            "source": "hotspots",
            "source-layer": "hotspots",
            "maxzoom": 15,
            "paint": {
                "heatmap-weight": ["interpolate", ["linear"], ["get", "count"], 0, 0, 20, 1],
                "heatmap-radius": ["interpolate", ["linear"], ["zoom"], 10, 12, 14, 28],
                "heatmap-opacity": ["interpolate", ["linear"], ["zoom"], 13.5, 0.6, 15, 0],
            },
        },
        {
            "id": "components",
            "type": "circle",
            "source": "components",
            "source-layer": "components",
            "minzoom": 15,
            "filter": ["==", ["geometry-type"], "Point"],
            "paint": {
                "circle-color": major_colour,
                "circle-radius": 3,
                "circle-stroke-color": "#fff",
                "circle-stroke-width": 0.5,
            },
        },
        {
            "id": "components-shape",
            "type": "line",
            "source": "components",
            "source-layer": "components",
            "minzoom": 15,
            "filter": ["!=", ["geometry-type"], "Point"],
            "paint": {"line-color": major_colour, "line-width": 2},
        },
        {
            "id": "cases-cluster",
            "type": "circle",
            "source": "cases",
            "source-layer": "cases",
            "filter": ["==", ["get", "cluster"], 1],
            "paint": {
                "circle-color": light_colour,
                "circle-opacity": 0.85,
                "circle-stroke-color": "#fff",
                "circle-stroke-width": 1.5,
                "circle-radius": ["interpolate", ["linear"], ["get", "count"], 1, 6, 10, 12, 100, 20, 1000, 30],
            },
        },
        {
            "id": "cases",
            "type": "circle",
            "source": "cases",
            "source-layer": "cases",
            "filter": ["!", ["has", "cluster"]],
            "paint": {
                "circle-color": light_colour,
                "circle-radius": 6,
                "circle-stroke-color": "#fff",
                "circle-stroke-width": 1.5,
            },
        },
    ]
    labels: list[dict[str, Any]] = [
        {
            "id": "base-road-label",
            "type": "symbol",
            "source": "base",
            "source-layer": "road",
            "minzoom": 13,
            "layout": {"symbol-placement": "line", "text-field": ["get", "name"], "text-font": font, "text-size": 12},
            "paint": {"text-color": "#555", "text-halo-color": "#fff", "text-halo-width": 1.5},
        },
        {
            "id": "admin-label",
            "type": "symbol",
            "source": "admin",
            "source-layer": "admin",
            "layout": {
                "text-field": ["get", "name"],
                "text-font": font,
                "text-size": ["match", ["get", "level"], "district", 16, "street", 13, 11],
            },
            "paint": {"text-color": "#4a2c6a", "text-halo-color": "#fff", "text-halo-width": 1.5},
        },
        {
            "id": "grids-label",
            "type": "symbol",
            "source": "grids",
            "source-layer": "grids",
            "minzoom": 16,
            "layout": {"text-field": ["get", "code"], "text-font": font, "text-size": 10},
            "paint": {"text-color": "#5b7083", "text-halo-color": "#fff", "text-halo-width": 1},
        },
        {
            "id": "components-label",
            "type": "symbol",
            "source": "components",
            "source-layer": "components",
            "minzoom": 17,
            "layout": {
                "text-field": ["get", "name"],
                "text-font": font,
                "text-size": 10,
                "text-offset": [0, 1.1],
                "text-optional": True,
            },
            "paint": {"text-color": "#333", "text-halo-color": "#fff", "text-halo-width": 1},
        },
        {
            "id": "cases-cluster-count",
            "type": "symbol",
            "source": "cases",
            "source-layer": "cases",
            "filter": ["all", ["==", ["get", "cluster"], 1], [">", ["get", "count"], 1]],
            "layout": {
                "text-field": ["to-string", ["get", "count"]],
                "text-font": font,
                "text-size": 11,
                "text-allow-overlap": True,
            },
            "paint": {"text-color": "#fff"},
        },
    ]
    b = bounds or (107.1, 34.33, 107.19, 34.41)
    return {
        "version": 8,
        "name": "gridcity 城市运行图" if zh else "gridcity live map",
        "center": [round((b[0] + b[2]) / 2, 6), round((b[1] + b[3]) / 2, 6)],
        "zoom": 12,
        "glyphs": f"{base_url}/tiles/fonts/{{fontstack}}/{{range}}.pbf",
        "sources": sources,
        "layers": layers + labels,
        "metadata": {
            "gridcity:layers": {name: (i.title_zh if zh else i.title_en) for name, i in LAYERS.items()},
            "gridcity:light_colours": LIGHT_COLOURS,
        },
    }
