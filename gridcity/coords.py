"""Pure coordinate helpers: WGS-84 ⇄ GCJ-02, great-circle distance and lon/lat validation.

Chinese web maps (Amap/高德, Tencent, Google Maps inside China) and most Chinese mobile SDKs report
positions in **GCJ-02**, the state-mandated obfuscation of WGS-84 that shifts points by roughly
100–700 m depending on location. GPS receivers, EXIF GPS tags and PostGIS data in EPSG:4326 are
**WGS-84**. Everything stored by gridcity is WGS-84; convert on the way in with :func:`to_wgs84`.

The forward transform is the widely reimplemented public formula (Krasovsky 1940 ellipsoid,
``a = 6378245``, ``ee = 0.00669342162296594323``), identical to the ``coordtransform`` /
``eviltransform`` libraries. There is no closed-form inverse, so :func:`gcj02_to_wgs84` refines an
estimate iteratively until the forward transform reproduces the input to better than 1e-9 degrees
(about 0.1 mm).

Coordinates are always passed in ``(lon, lat)`` order, matching GeoJSON and PostGIS.
"""

from __future__ import annotations

import math
from enum import StrEnum

from gridcity.errors import InvalidInput

__all__ = [
    "CoordSystem",
    "EARTH_RADIUS_M",
    "check_lonlat",
    "gcj02_to_wgs84",
    "haversine_m",
    "out_of_china",
    "to_wgs84",
    "wgs84_to_gcj02",
]

#: Mean Earth radius (IUGG) used by :func:`haversine_m`, in metres.
EARTH_RADIUS_M = 6_371_008.8

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 algorithm.
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323

# Rectangle outside which the GCJ-02 algorithm leaves points unchanged (the customary bounds).
_CHINA_MIN_LON = 72.004
_CHINA_MAX_LON = 137.8347
_CHINA_MIN_LAT = 0.8293
_CHINA_MAX_LAT = 55.8271

_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_ITERATIONS = 30


class CoordSystem(StrEnum):
    """Geodetic datum a client's coordinates are expressed in."""

    wgs84 = "wgs84"
    gcj02 = "gcj02"


def out_of_china(lon: float, lat: float) -> bool:
    """Tell whether a point lies outside the rectangle where GCJ-02 applies.

    Args:
        lon: Longitude in degrees.
        lat: Latitude in degrees.

    Returns:
        True if the point is outside the customary China bounding rectangle, in which case the
        GCJ-02 transforms return it unchanged.
    """
    return not (_CHINA_MIN_LON <= lon <= _CHINA_MAX_LON and _CHINA_MIN_LAT <= lat <= _CHINA_MAX_LAT)


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def _gcj02_offset(lon: float, lat: float) -> tuple[float, float]:
    """Return the GCJ-02 shift ``(dlon, dlat)`` in degrees for a WGS-84 point (no bounds check)."""
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    rad_lat = lat / 180.0 * math.pi
    magic = math.sin(rad_lat)
    magic = 1.0 - _KRASOVSKY_EE * magic * magic
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_KRASOVSKY_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert a WGS-84 point to GCJ-02.

    Args:
        lon: WGS-84 longitude in degrees.
        lat: WGS-84 latitude in degrees.

    Returns:
        ``(lon, lat)`` in GCJ-02; the input unchanged if it is outside China (:func:`out_of_china`).
    """
    if out_of_china(lon, lat):
        return lon, lat
    dlon, dlat = _gcj02_offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert a GCJ-02 point to WGS-84 by iterative refinement.

    Starting from the GCJ-02 point itself, the estimate is corrected by the residual of the forward
    transform until that residual is below 1e-9 degrees. The offset field is smooth and varies by
    far less than one part in a thousand over the few hundred metres of the shift, so this
    converges in three or four steps.

    Args:
        lon: GCJ-02 longitude in degrees.
        lat: GCJ-02 latitude in degrees.

    Returns:
        ``(lon, lat)`` in WGS-84; the input unchanged if it is outside China (:func:`out_of_china`).
    """
    if out_of_china(lon, lat):
        return lon, lat
    w_lon, w_lat = lon, lat
    for _ in range(_INVERSE_MAX_ITERATIONS):
        dlon, dlat = _gcj02_offset(w_lon, w_lat)
        err_lon = w_lon + dlon - lon
        err_lat = w_lat + dlat - lat
        w_lon -= err_lon
        w_lat -= err_lat
        if abs(err_lon) < _INVERSE_TOLERANCE_DEG and abs(err_lat) < _INVERSE_TOLERANCE_DEG:
            break
    return w_lon, w_lat


def to_wgs84(lon: float, lat: float, system: CoordSystem | str) -> tuple[float, float]:
    """Convert a point given in ``system`` to WGS-84.

    Args:
        lon: Longitude in degrees.
        lat: Latitude in degrees.
        system: The datum of the input (a :class:`CoordSystem` or its string value).

    Returns:
        ``(lon, lat)`` in WGS-84.

    Raises:
        ValueError: ``system`` is not a known coordinate system.
    """
    match CoordSystem(system):
        case CoordSystem.wgs84:
            return lon, lat
        case CoordSystem.gcj02:
            return gcj02_to_wgs84(lon, lat)


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance between two points on a spherical Earth.

    Good to about 0.5 % against the ellipsoid, which is plenty for plausibility checks and radii
    of a few kilometres.

    Args:
        lon1: Longitude of the first point in degrees.
        lat1: Latitude of the first point in degrees.
        lon2: Longitude of the second point in degrees.
        lat2: Latitude of the second point in degrees.

    Returns:
        The distance in metres.
    """
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2.0) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def check_lonlat(lon: float, lat: float, *, loc: list[str | int] | None = None) -> tuple[float, float]:
    """Validate a longitude/latitude pair.

    Args:
        lon: Longitude in degrees; must be finite and within [-180, 180].
        lat: Latitude in degrees; must be finite and within [-90, 90].
        loc: Where in the request the pair came from, for the error (e.g. ``["body", "location"]``).

    Returns:
        ``(lon, lat)`` as floats.

    Raises:
        InvalidInput: Code ``geo.invalid_coordinates`` if either value is not a real number, NaN,
            infinite or out of range.
    """
    if any(isinstance(v, (bool, str, bytes)) for v in (lon, lat)):
        raise InvalidInput(
            f"coordinates must be numbers, got lon={lon!r}, lat={lat!r}",
            code="geo.invalid_coordinates",
            loc=loc,
        )
    try:
        flon = float(lon)
        flat = float(lat)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(
            f"coordinates must be numbers, got lon={lon!r}, lat={lat!r}",
            code="geo.invalid_coordinates",
            loc=loc,
        ) from None
    if not (math.isfinite(flon) and math.isfinite(flat)):
        raise InvalidInput(
            f"coordinates must be finite, got lon={flon!r}, lat={flat!r}",
            code="geo.invalid_coordinates",
            loc=loc,
        )
    if not (-180.0 <= flon <= 180.0 and -90.0 <= flat <= 90.0):
        raise InvalidInput(
            f"coordinates out of range: lon={flon} must be in [-180, 180], lat={flat} in [-90, 90]",
            code="geo.invalid_coordinates",
            loc=loc,
        )
    return flon, flat
