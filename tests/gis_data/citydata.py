"""Hand-made geometry for the GIS tests: a tiny city built from exact 100 m squares in EPSG:4545."""

from __future__ import annotations

from typing import Any

import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, mapping

TO_LONLAT = Transformer.from_crs("EPSG:4545", "EPSG:4326", always_xy=True)
TO_GK = Transformer.from_crs("EPSG:4326", "EPSG:4545", always_xy=True)
X0, Y0 = 420_000.0, 3_805_000.0  # north-west corner of the test city (near 107.14 E, 34.37 N)
CELL = 100.0
DISTRICT, STREET, COMMUNITY = "610302", "610302001", "610302001001"


def lonlat(x: float, y: float) -> tuple[float, float]:
    return TO_LONLAT.transform(x, y)


def cell(col: int, row: int, size: float = CELL) -> Polygon:
    """The square of column ``col`` (west→east), row ``row`` (north→south), in lon/lat."""
    x, y = X0 + col * CELL, Y0 - row * CELL
    ring = [(x, y), (x + size, y), (x + size, y - size), (x, y - size)]
    return Polygon([lonlat(*p) for p in ring])


def grid_code(seq: int, community: str = COMMUNITY) -> str:
    return f"{community}{seq:03d}"


def feature(code: str, geom: Any, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": mapping(geom), "properties": {"code": code, "name": code, **props}}


def city(nx: int = 2, ny: int = 2, *, skip: set[int] | None = None) -> dict[str, Any]:
    """District → street → community → nx × ny grids numbered west→east, north→south (FeatureCollection)."""
    cells = {r * nx + c + 1: cell(c, r) for r in range(ny) for c in range(nx)}
    whole = shapely.union_all(list(cells.values()))
    feats = [
        feature(DISTRICT, MultiPolygon([whole]), name="渭滨区"),
        feature(STREET, MultiPolygon([whole]), name="经二路街道"),
        feature(COMMUNITY, MultiPolygon([whole]), name="测试社区"),
    ]
    feats += [feature(grid_code(seq), poly) for seq, poly in cells.items() if seq not in (skip or set())]
    return {"type": "FeatureCollection", "features": feats}


def centre(col: int, row: int) -> tuple[float, float]:
    """Lon/lat of the centre of a cell."""
    return lonlat(X0 + (col + 0.5) * CELL, Y0 - (row + 0.5) * CELL)
