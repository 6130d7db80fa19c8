"""Fixtures for routing tests: hand-made geometry in metres around a base point, and a city override that
turns on auto-dispatch for street lamps (C0118) and exposed garbage (E0102)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from components.models import Component, Grid
from gridcity import spatial
from gridcity.database import make_session_factory
from gridcity.settings import Settings
from tests.casework.helpers import LAT, LON

M_LAT = 1 / 110_574.0
M_LON = 1 / (111_320.0 * math.cos(math.radians(LAT)))

DISTRICT = "610302"
STREET = DISTRICT + "001"
COMMUNITY = STREET + "002"
GRID_W = COMMUNITY + "001"  # west grid, x in [-100, 20] m: holds the base point
GRID_E = COMMUNITY + "002"  # east grid, x in [20, 120] m
GRID_OTHER_STREET = DISTRICT + "002" + "001" + "001"  # north, in another street: y in [100, 200] m
BORDER_X = 20.0


def at(dx: float, dy: float) -> tuple[float, float]:
    """The lon/lat ``dx`` metres east and ``dy`` metres north of the base point (casework helpers' point)."""
    return LON + dx * M_LON, LAT + dy * M_LAT


def box_wkt(x0: float, y0: float, x1: float, y1: float) -> str:
    (a, b), (c, d) = at(x0, y0), at(x1, y1)
    return f"POLYGON(({a} {b}, {c} {b}, {c} {d}, {a} {d}, {a} {b}))"


def add_grid(s: Session, code: str, x0: float, y0: float, x1: float, y1: float) -> None:
    s.add(
        Grid(
            code=code,
            community_code=code[:12],
            name=code,
            area_m2=abs((x1 - x0) * (y1 - y0)),
            geom=spatial.ewkt(box_wkt(x0, y0, x1, y1)),
        )
    )


def component_code(class_code: str, seq: int, district: str = DISTRICT) -> str:
    return f"{district}{class_code[1:]}{seq:06d}"


def add_component(
    s: Session,
    class_code: str,
    seq: int,
    dx: float,
    dy: float,
    *,
    main: int | None = None,
    maint: int | None = None,
    owner: int | None = None,
    state: str = "完好",
    wkt: str | None = None,
) -> str:
    code = component_code(class_code, seq)
    lon, lat = at(dx, dy)
    s.add(
        Component(
            code=code,
            class_code=class_code,
            name=f"{class_code}-{seq}",
            geom=spatial.ewkt(wkt or f"POINT({lon} {lat})"),
            grid_code=GRID_W,
            main_department_id=main,
            maintainer_department_id=maint,
            owner_department_id=owner,
            state=state,
        )
    )
    return code


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    city = tmp_path / "city"
    city.mkdir()
    (city / "classes.csv").write_text("kind,code,auto_dispatch\ncomponent,0118,1\nevent,0102,1\n", encoding="utf-8")
    return Settings(
        database_url=database_url, data_dir=tmp_path / "data", secret_key="test-secret-" + "x" * 32, city_dir=city
    )


@pytest.fixture
def grids(db: sa.Engine) -> sa.Engine:
    """Two grids side by side (border at x = 20 m) in one community, and one grid in another street."""
    with make_session_factory(db)() as s, s.begin():
        add_grid(s, GRID_W, -100, -100, BORDER_X, 100)
        add_grid(s, GRID_E, BORDER_X, -100, 120, 100)
        add_grid(s, GRID_OTHER_STREET, -100, 100, 120, 200)
    return db


@pytest.fixture
def session(grids: sa.Engine) -> Iterator[Session]:
    """A session on the grid city; tests flush, and the tables are emptied afterwards."""
    with make_session_factory(grids)() as s:
        yield s
