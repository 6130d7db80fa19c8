"""The demo street network: named, Chinese, on the grid lattice, bounding every community, deterministic."""

from __future__ import annotations

import re

import pytest
from shapely.geometry import MultiLineString
from shapely.ops import unary_union

from gis_data import demo_city, demo_streets

CJK = re.compile(r"^[\u4e00-\u9fff]+$")


@pytest.mark.parametrize("scale", [0.05, 1.0])
def test_streets_lie_on_the_grid_lattice_and_bound_every_community(scale: float) -> None:
    rows, _cells, _ = demo_city.build_areas(scale)
    streets = demo_streets.build_streets(scale)
    corners = {
        (round(x, 9), round(y, 9))
        for r in rows
        if len(str(r.properties["code"])) == 15
        for x, y in r.geom.exterior.coords
    }
    for s in streets:
        assert CJK.match(s.name), s.name
        assert s.kind in demo_streets.KINDS
        assert len(s.line.coords) == s.end - s.start + 1
        for x, y in s.line.coords:  # every vertex is a corner of a unit grid
            assert (round(x, 9), round(y, 9)) in corners, (s.name, x, y)
    names = [s.name for s in streets]
    assert len(set(names)) == len(names)
    assert len({s.code for s in streets}) == len(streets)
    # arterials and secondaries together draw every community's boundary
    main = unary_union([s.line for s in streets if s.kind != demo_streets.BRANCH]).buffer(1e-7)
    communities = [r for r in rows if len(str(r.properties["code"])) == 12]
    assert len(communities) == 60
    for c in communities:
        assert main.contains(c.geom.boundary), c.properties["name"]
    # the streets span the whole city and no further
    city = unary_union([r.geom for r in rows if len(str(r.properties["code"])) == 6])
    net = MultiLineString([s.line for s in streets])
    assert city.buffer(1e-7).contains(net)
    assert net.envelope.buffer(1e-7).contains(city.envelope)
    kinds = {k: sum(s.kind == k for s in streets) for k in demo_streets.KINDS}
    assert kinds[demo_streets.ARTERIAL] == 10 and kinds[demo_streets.SECONDARY] == 8
    if scale == 1.0:  # 100 m cells, branch roads every 400 m inside communities
        assert kinds[demo_streets.BRANCH] == 90


def test_streets_are_deterministic_and_names_stay_unique_at_the_largest_scale() -> None:
    a = demo_streets.build_streets(0.05)
    b = demo_streets.build_streets(0.05)
    assert [(s.code, s.name, s.line.wkt) for s in a] == [(s.code, s.name, s.line.wkt) for s in b]
    big = demo_streets.build_streets(10)
    names = [s.name for s in big]
    assert len(big) > 300 and len(set(names)) == len(names)
    rows = demo_streets.street_rows(0.05)
    assert rows[0].properties == {"code": "DL0001", "name": "北坡路", "kind": "主干路"}
    assert rows[0].geom is not None and rows[0].geom.geom_type == "LineString"
