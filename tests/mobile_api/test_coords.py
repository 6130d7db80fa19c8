"""Tests of the pure coordinate helpers (GCJ-02 ⇄ WGS-84, haversine, validation)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcity.coords import (
    CoordSystem,
    check_lonlat,
    gcj02_to_wgs84,
    haversine_m,
    out_of_china,
    to_wgs84,
    wgs84_to_gcj02,
)
from gridcity.errors import InvalidInput

# Published reference pairs, (wgs_lon, wgs_lat) → (gcj_lon, gcj_lat):
#  * the coordtransform (wandergis) README example: wgs84togcj02(116.404, 39.915);
#  * the test vectors of googollee/eviltransform (Shanghai, Shenzhen, Beijing), repeated by its
#    Go/Python/C#/Ruby/Haskell ports.
REFERENCE_PAIRS = [
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
]


@pytest.mark.parametrize(("wgs", "gcj"), REFERENCE_PAIRS)
def test_forward_reproduces_published_pairs(wgs: tuple[float, float], gcj: tuple[float, float]) -> None:
    lon, lat = wgs84_to_gcj02(*wgs)
    assert lon == pytest.approx(gcj[0], abs=1e-9)
    assert lat == pytest.approx(gcj[1], abs=1e-9)


@pytest.mark.parametrize(("wgs", "gcj"), REFERENCE_PAIRS)
def test_inverse_recovers_published_pairs(wgs: tuple[float, float], gcj: tuple[float, float]) -> None:
    lon, lat = gcj02_to_wgs84(*gcj)
    assert lon == pytest.approx(wgs[0], abs=1e-7)
    assert lat == pytest.approx(wgs[1], abs=1e-7)


def test_inverse_is_more_exact_than_the_one_step_approximation() -> None:
    # coordtransform's README gives gcj02towgs84(116.404, 39.915) = (116.39775550083061,
    # 39.91359571849836), a single-step estimate ~5 cm off; the iterative inverse must land on a
    # point whose forward transform is (116.404, 39.915) itself.
    lon, lat = gcj02_to_wgs84(116.404, 39.915)
    assert lon == pytest.approx(116.39775550083061, abs=1e-6)
    assert lat == pytest.approx(39.91359571849836, abs=1e-6)
    back = wgs84_to_gcj02(lon, lat)
    assert back[0] == pytest.approx(116.404, abs=1e-9)
    assert back[1] == pytest.approx(39.915, abs=1e-9)


def test_offset_in_beijing_is_a_few_hundred_metres() -> None:
    wgs = (116.397128, 39.916527)
    gcj = wgs84_to_gcj02(*wgs)
    shift = haversine_m(*wgs, *gcj)
    assert 100 < shift < 700


@pytest.mark.parametrize("point", [(-0.1278, 51.5074), (-74.006, 40.7128), (151.2093, -33.8688)])
def test_points_outside_china_are_unchanged(point: tuple[float, float]) -> None:
    assert out_of_china(*point)
    assert wgs84_to_gcj02(*point) == point
    assert gcj02_to_wgs84(*point) == point


@settings(max_examples=300, deadline=None)
@given(
    lon=st.floats(min_value=73.5, max_value=134.8, allow_nan=False),
    lat=st.floats(min_value=18.0, max_value=53.5, allow_nan=False),
)
def test_round_trip_over_china(lon: float, lat: float) -> None:
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert abs(back_lon - lon) < 1e-6
    assert abs(back_lat - lat) < 1e-6


def test_to_wgs84_dispatches_on_system() -> None:
    gcj = REFERENCE_PAIRS[0][1]
    assert to_wgs84(*gcj, CoordSystem.wgs84) == gcj
    lon, lat = to_wgs84(*gcj, "gcj02")
    assert (lon, lat) == pytest.approx(REFERENCE_PAIRS[0][0], abs=1e-7)
    with pytest.raises(ValueError):
        to_wgs84(*gcj, "bd09")


def test_haversine_known_distances() -> None:
    assert haversine_m(116.4, 39.9, 116.4, 39.9) == 0.0
    # One degree of latitude on the mean sphere.
    assert haversine_m(0, 0, 0, 1) == pytest.approx(111_195, rel=1e-4)
    # Shanghai to Beijing (eviltransform's fixture: 1,078,164 m on its 6,378,137 m sphere).
    d = haversine_m(121.531541859215, 31.17530398364597, 116.38404722455657, 39.91334545536069)
    assert d == pytest.approx(1_078_164 * 6_371_008.8 / 6_378_137, rel=1e-4)


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        (math.nan, 30.0),
        (120.0, math.inf),
        (-math.inf, 0.0),
        (180.0001, 30.0),
        (120.0, -90.5),
        ("120", 30.0),
        (True, 30.0),
        (None, 30.0),
    ],
)
def test_check_lonlat_rejects(lon: object, lat: object) -> None:
    with pytest.raises(InvalidInput) as err:
        check_lonlat(lon, lat, loc=["body", "location"])  # type: ignore[arg-type]
    assert err.value.code == "geo.invalid_coordinates"
    assert err.value.loc == ["body", "location"]


def test_check_lonlat_accepts_edges() -> None:
    assert check_lonlat(-180, 90) == (-180.0, 90.0)
    assert check_lonlat(116.4, 39.9) == (116.4, 39.9)
