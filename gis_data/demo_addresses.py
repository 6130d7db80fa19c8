"""Standard addresses of the demo city: door plates (门牌) along its named streets, and the streets themselves.

Along every street of :mod:`gis_data.demo_streets` a pair of plates stands every ``SPACING_M`` metres, odd
numbers on the north (east-west streets) or west (north-south streets) side and even numbers opposite,
``OFFSET_M`` from the centre line, so each plate lies inside the unit grid on its side of the road. Each
street is also an address of kind ``road`` at its middle door plate. Loaded through
:func:`gis_data.addresses.load_addresses` (the same path as a city's own address file), so the look-up finds
``经二路12号`` in the demo.
"""

from __future__ import annotations

import numpy as np
from shapely.geometry import Point

from gis_data import demo_city, demo_streets
from gis_data.readers import WGS84, RawRow, transformer

SPACING_M = 50.0
OFFSET_M = 8.0


def address_rows(scale: float = 1.0) -> list[RawRow]:
    """Door plates and roads of the demo city at ``scale``."""
    to_proj = transformer(WGS84, demo_city.PROJECTED_CRS)
    to_wgs = transformer(demo_city.PROJECTED_CRS, WGS84)
    assert to_proj is not None and to_wgs is not None
    fr = demo_streets.frame(scale)
    rows: list[RawRow] = []
    numbers: dict[str, int] = {}  # a road name split in stretches continues its numbers

    def add(props: dict[str, str], lon: float, lat: float) -> None:
        rows.append(RawRow(len(rows) + 1, props, Point(lon, lat)))

    for st in demo_streets.build_streets(scale):
        xy = np.asarray(st.line.coords)
        x, y = to_proj.transform(xy[:, 0], xy[:, 1])
        x0, y0, x1, y1 = float(x[0]), float(y[0]), float(x[-1]), float(y[-1])
        length = float(np.hypot(x1 - x0, y1 - y0))
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        # left of the direction of travel: north for west→east streets, east for north→south ones; odd numbers
        # go north (ew) or west (ns), as the module says
        nx, ny = -uy, ux
        if st.axis == "ns":
            nx, ny = -nx, -ny
        stations = np.arange(SPACING_M / 2, length, SPACING_M)
        px, py = x0 + stations * ux, y0 + stations * uy
        edge = fr.nrows if st.axis == "ew" else fr.ncols
        for side, sign in ((1, 1.0), (0, -1.0)):
            if (side and st.index == 0) or (not side and st.index == edge):
                continue  # the city edge: no plates on the outer side
            lon, lat = to_wgs.transform(px + sign * OFFSET_M * nx, py + sign * OFFSET_M * ny)
            first = numbers.get(st.name, 0)
            for k in range(len(stations)):
                n = 2 * (first + k) + (1 if side else 2)
                add(
                    {
                        "code": f"{st.code}-{n:04d}",
                        "kind": "door_plate",
                        "name": f"{st.name}{n}号",
                        "road": st.name,
                        "number": str(n),
                    },
                    float(lon[k]),
                    float(lat[k]),
                )
        numbers[st.name] = numbers.get(st.name, 0) + len(stations)
        # the road's own point: its middle door plate (inside the city even for a road on the city edge)
        mid = rows[-(len(stations) // 2 + 1)].geom
        assert mid is not None
        add(
            {"code": st.code, "kind": "road", "name": st.name, "road": st.name, "aliases": st.kind},
            float(mid.x),
            float(mid.y),
        )
    return rows
