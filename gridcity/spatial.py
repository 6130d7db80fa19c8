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
