"""Readers for GIS input: GeoJSON feature collections and CSV point tables, in any EPSG CRS.

Readers only parse and reproject; they never touch the database. Every parsed row keeps its 1-based
position (``row``) so that a load report can name it. A row whose geometry cannot be read is returned
with ``geom=None`` and a reason, so that the loader reports it with all the other rows.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from gridcity.errors import BadRequest, InvalidInput

WGS84 = "EPSG:4326"


@dataclass
class RawRow:
    """One input feature: its position, properties and WGS84 geometry (None when unreadable)."""

    row: int
    properties: dict[str, Any]
    geom: BaseGeometry | None
    problems: list[tuple[str, str]] = field(default_factory=list)


def parse_crs(crs: str | None) -> CRS:
    """A CRS from ``EPSG:4545``-style text (or a bare EPSG number); 422 ``geo.unknown_crs`` otherwise."""
    text = (crs or WGS84).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        parsed = CRS.from_user_input(text)
    except (CRSError, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.to_epsg() is None:
        raise InvalidInput(
            f"unknown coordinate reference system {crs!r} (give an EPSG code such as EPSG:4545)",
            code="geo.unknown_crs",
            loc=["body", "crs"],
        )
    return parsed


@lru_cache(maxsize=32)
def _transformer(src_epsg: int, dst_epsg: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{src_epsg}", f"EPSG:{dst_epsg}", always_xy=True)


def transformer(src: str | CRS, dst: str | CRS) -> Transformer | None:
    """An x/y (lon/lat order) transformer between two EPSG CRSs, or None when they are the same."""
    s = src if isinstance(src, CRS) else parse_crs(src)
    d = dst if isinstance(dst, CRS) else parse_crs(dst)
    se, de = s.to_epsg(), d.to_epsg()
    assert se is not None and de is not None
    if se == de:
        return None
    return _transformer(se, de)


def reproject(geom: BaseGeometry, tr: Transformer | None) -> BaseGeometry:
    """Apply ``tr`` to every vertex of ``geom`` (identity when ``tr`` is None)."""
    if tr is None:
        return geom

    def _apply(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, _apply)


def reproject_many(geoms: list[BaseGeometry], tr: Transformer | None) -> list[BaseGeometry]:
    """:func:`reproject` of many geometries with one call of the transformer."""
    if tr is None or not geoms:
        return list(geoms)
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = geoms
    return shapely.transform(arr, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1]))).tolist()


def _finite(geom: BaseGeometry) -> bool:
    coords = shapely.get_coordinates(geom)
    return bool(len(coords)) and bool(np.isfinite(coords).all())


def _in_wgs84_range(geom: BaseGeometry) -> bool:
    x0, y0, x1, y1 = geom.bounds
    return -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90


def _finish(rows: list[RawRow], tr: Transformer | None) -> list[RawRow]:
    """Reproject every geometry to WGS84 and refuse non-finite or out-of-range coordinates, all rows at once."""
    idx = [i for i, r in enumerate(rows) if r.geom is not None]
    if not idx:
        return rows
    geoms = np.empty(len(idx), dtype=object)
    geoms[:] = [rows[i].geom for i in idx]
    try:
        if tr is not None:
            geoms = shapely.transform(geoms, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))
        coords, which = shapely.get_coordinates(geoms, return_index=True)
    except Exception:  # noqa: BLE001  (pyproj raises several kinds for bad input): we go row by row
        return _finish_each(rows, tr)
    ncoords = np.bincount(which, minlength=len(idx))
    bad = np.bincount(which, weights=~np.isfinite(coords).all(axis=1), minlength=len(idx)) > 0
    x0, y0, x1, y1 = shapely.bounds(geoms).T
    with np.errstate(invalid="ignore"):
        in_range = (-180 <= x0) & (x0 <= x1) & (x1 <= 180) & (-90 <= y0) & (y0 <= y1) & (y1 <= 90)
    ok = (ncoords > 0) & ~bad & in_range
    for i, g, good in zip(idx, geoms.tolist(), ok.tolist(), strict=True):
        r = rows[i]
        if good:
            r.geom = g
        else:
            r.problems.append(("geo.bad_coordinates", "coordinates cannot be placed in the source CRS"))
            r.geom = None
    return rows


def _finish_each(rows: list[RawRow], tr: Transformer | None) -> list[RawRow]:
    for r in rows:
        if r.geom is None:
            continue
        try:
            g = reproject(r.geom, tr)
        except Exception:  # noqa: BLE001  (pyproj raises several kinds for bad input)
            g = None
        if g is None or not _finite(g) or not _in_wgs84_range(g):
            r.problems.append(("geo.bad_coordinates", "coordinates cannot be placed in the source CRS"))
            r.geom = None
        else:
            r.geom = g
    return rows


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GB 18030 (common for Chinese GIS exports)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise BadRequest("the file is neither UTF-8 nor GB18030 text", code="gis.bad_encoding") from exc


def read_geojson(data: bytes | str | dict[str, Any], *, crs: str | None = None) -> list[RawRow]:
    """Read a GeoJSON FeatureCollection (or one Feature) whose coordinates are in ``crs`` (default WGS84)."""
    tr = transformer(parse_crs(crs), WGS84)
    if isinstance(data, bytes):
        data = decode_text(data)
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise BadRequest(
                f"not valid JSON: {exc.msg} at line {exc.lineno}", code="gis.bad_geojson", loc=["body"]
            ) from exc
    if not isinstance(data, dict):
        raise BadRequest("GeoJSON must be an object", code="gis.bad_geojson", loc=["body"])
    if data.get("type") == "Feature":
        data = {"type": "FeatureCollection", "features": [data]}
    features = data.get("features")
    if data.get("type") != "FeatureCollection" or not isinstance(features, list):
        raise BadRequest("expected a GeoJSON FeatureCollection", code="gis.bad_geojson", loc=["body"])
    rows: list[RawRow] = []
    points: list[tuple[int, tuple[float, float]]] = []
    for i, feat in enumerate(features, start=1):
        if not isinstance(feat, dict):
            rows.append(RawRow(i, {}, None, [("gis.bad_feature", "a feature must be an object")]))
            continue
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            props = {}
        if "code" not in props and feat.get("id") is not None:
            props = {**props, "code": str(feat["id"])}
        gj = feat.get("geometry")
        xy = _plain_point(gj)
        if xy is not None:  # the common case, built in bulk below
            rows.append(RawRow(i, props, None))
            points.append((len(rows) - 1, xy))
            continue
        try:
            geom = shape(gj) if gj else None
        except Exception as exc:  # noqa: BLE001  (shapely raises many kinds for malformed geometry)
            rows.append(RawRow(i, props, None, [("geom.unreadable", f"unreadable geometry: {exc}")]))
            continue
        if geom is None or geom.is_empty:
            rows.append(RawRow(i, props, None, [("geom.missing", "the feature has no geometry")]))
            continue
        rows.append(RawRow(i, props, geom))
    if points:
        built = shapely.points(np.array([xy for _, xy in points], dtype=float)).tolist()
        for (k, _), pt in zip(points, built, strict=True):
            rows[k].geom = pt
    return _finish(rows, tr)


def _plain_point(gj: Any) -> tuple[float, float] | None:
    """The x/y of a GeoJSON ``Point`` with exactly two plain numbers, else None (``shape`` handles the rest)."""
    if type(gj) is not dict or gj.get("type") != "Point":
        return None
    c = gj.get("coordinates")
    if type(c) is not list or len(c) != 2:
        return None
    x, y = c
    if (type(x) is float or type(x) is int) and (type(y) is float or type(y) is int) and math.isfinite(x + y):
        return x, y
    return None


_X_NAMES = ("x", "lon", "lng", "longitude", "经度")
_Y_NAMES = ("y", "lat", "latitude", "纬度")


def read_csv_points(data: bytes | str, *, crs: str | None = None) -> list[RawRow]:
    """Read a CSV table with coordinate columns ``x,y`` or ``lon,lat`` (any case) in ``crs``."""
    tr = transformer(parse_crs(crs), WGS84)
    text = decode_text(data) if isinstance(data, bytes) else data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise BadRequest("the CSV file is empty", code="gis.bad_csv") from None
    except csv.Error as exc:
        raise BadRequest(f"unreadable CSV: {exc}", code="gis.bad_csv") from exc
    names = [h.strip() for h in header]
    lower = [n.lower() for n in names]
    xi = next((lower.index(n) for n in _X_NAMES if n in lower), None)
    yi = next((lower.index(n) for n in _Y_NAMES if n in lower), None)
    if xi is None or yi is None:
        raise BadRequest("the CSV needs coordinate columns x,y or lon,lat", code="gis.bad_csv", loc=["body", "file"])
    rows: list[RawRow] = []
    try:
        for i, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                continue
            props = {n: (cells[k].strip() if k < len(cells) else "") for k, n in enumerate(names) if k not in (xi, yi)}
            try:
                x, y = float(cells[xi]), float(cells[yi])
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError
            except (ValueError, IndexError):
                rows.append(RawRow(i, props, None, [("geo.bad_coordinates", "x/y must be numbers")]))
                continue
            rows.append(RawRow(i, props, Point(x, y)))
    except csv.Error as exc:
        raise BadRequest(f"unreadable CSV: {exc}", code="gis.bad_csv") from exc
    return _finish(rows, tr)


def read_shapefile(data: bytes, *, crs: str | None = None) -> list[RawRow]:
    """Read a zipped Shapefile (.shp, .shx, .dbf, optional .prj and .cpg). The CRS is the ``.prj``'s when it
    names an EPSG code, else ``crs`` (default WGS84). Attribute text is UTF-8, else GB 18030."""
    import zipfile  # noqa: PLC0415

    import shapefile  # noqa: PLC0415  (pyshp)

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = {n.lower().rsplit(".", 1)[-1]: n for n in zf.namelist() if "." in n and not n.endswith("/")}
    except zipfile.BadZipFile as exc:
        raise BadRequest(
            "a Shapefile must be uploaded as a .zip of .shp, .shx and .dbf",
            code="gis.bad_shapefile",
            loc=["body", "file"],
        ) from exc
    if not {"shp", "dbf"} <= names.keys():
        raise BadRequest("the .zip holds no .shp and .dbf", code="gis.bad_shapefile", loc=["body", "file"])
    if "prj" in names:
        try:
            epsg = CRS.from_wkt(decode_text(zf.read(names["prj"]))).to_epsg(min_confidence=70)
        except (CRSError, BadRequest):
            epsg = None
        if epsg is not None:
            crs = f"EPSG:{epsg}"
    tr = transformer(parse_crs(crs), WGS84)
    encoding = "utf-8"
    if "cpg" in names:
        encoding = zf.read(names["cpg"]).decode("ascii", "replace").strip() or "utf-8"
    try:
        reader = shapefile.Reader(
            shp=io.BytesIO(zf.read(names["shp"])),
            dbf=io.BytesIO(zf.read(names["dbf"])),
            shx=io.BytesIO(zf.read(names["shx"])) if "shx" in names else None,
            encoding=encoding,
            encodingErrors="strict",
        )
        records = reader.shapeRecords()
    except UnicodeDecodeError:
        reader = shapefile.Reader(
            shp=io.BytesIO(zf.read(names["shp"])),
            dbf=io.BytesIO(zf.read(names["dbf"])),
            encoding="gb18030",
            encodingErrors="replace",
        )
        records = reader.shapeRecords()
    except Exception as exc:  # noqa: BLE001  (pyshp raises several kinds for damaged files)
        raise BadRequest(f"unreadable Shapefile: {exc}", code="gis.bad_shapefile", loc=["body", "file"]) from exc
    rows: list[RawRow] = []
    for i, sr in enumerate(records, start=1):
        props = dict(sr.record.as_dict())
        try:
            geom = shape(sr.shape.__geo_interface__) if sr.shape.shapeType != 0 else None
        except Exception as exc:  # noqa: BLE001
            rows.append(RawRow(i, props, None, [("geom.unreadable", f"unreadable geometry: {exc}")]))
            continue
        if geom is None or geom.is_empty:
            rows.append(RawRow(i, props, None, [("geom.missing", "the feature has no geometry")]))
            continue
        rows.append(RawRow(i, props, geom))
    return _finish(rows, tr)
