"""The demo city's door plates (门牌) along its named streets: each in a grid beside its street, numbered
odd on one side and even on the other, and found by the standard-address look-up."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import func, select

from components import addresses
from components.models import Address, Grid
from gis_data import addresses as gis_addresses
from gis_data import demo_addresses, demo_city, demo_streets, loader
from gridcity.database import make_session_factory

SCALE = 0.05


def test_door_plates_are_numbered_along_the_streets() -> None:
    rows = demo_addresses.address_rows(SCALE)
    names = {r.properties["name"] for r in rows}
    streets = demo_streets.build_streets(SCALE)
    assert {s.name for s in streets} <= names  # every road is an address too
    plates = [r for r in rows if r.properties["kind"] == "door_plate"]
    assert len(plates) > 10 * len(streets)
    assert len({r.properties["code"] for r in rows}) == len(rows)
    jing2 = sorted(int(r.properties["number"]) for r in plates if r.properties["road"] == "经二路")
    assert jing2[:4] == [1, 2, 3, 4] and len(set(jing2)) == len(jing2)
    edge = [r for r in plates if r.properties["road"] == "北坡路"]  # the northern city edge: one side only
    assert edge and all(int(r.properties["number"]) % 2 == 0 for r in edge)


def test_demo_door_plates_lie_in_grids_and_the_lookup_finds_them(db: sa.Engine) -> None:
    # The demo's areas and grids, then its addresses through the same loader demo_city.load uses (the rest
    # of the demo city is not needed here).
    factory = make_session_factory(db)
    with factory() as s, s.begin():
        area_rows, _, _ = demo_city.build_areas(SCALE)
        loader.load_areas(s, area_rows, source="demo", projected_crs=demo_city.PROJECTED_CRS)
        gis_addresses.load_addresses(s, demo_addresses.address_rows(SCALE), source="demo")
    with factory() as s:
        total = s.scalar(select(func.count()).select_from(Address))
        assert total == len(demo_addresses.address_rows(SCALE))
        assert s.scalar(select(func.count()).select_from(Address).where(Address.grid_code.is_(None))) == 0
        hits = addresses.lookup(s, "经二路12")
        assert hits[0].address.name == "经二路12号" and hits[0].community_name
        g = s.scalars(select(Grid.community_code).where(Grid.code == hits[0].address.grid_code)).one()
        assert g == hits[0].address.community_code
        assert addresses.lookup(s, "经二路")[0].address.kind == "road"
