"""The demo city at a small scale: counts, codes, owners, inspectors, determinism and idempotence."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import func, select

from components import catalog_loader, codes
from components import service as components_service
from components.models import Area, Component, ComponentHistory, Grid, SupervisionArea, SupervisionGrid
from gis_data import demo_city
from gridcity import org
from gridcity.database import make_session_factory
from gridcity.roles import Role
from tests.casework.helpers import LAT, LON

SCALE = 0.05


def _count(s, stmt) -> int:  # type: ignore[no-untyped-def]
    return s.scalar(select(func.count()).select_from(stmt)) or 0


def test_demo_city_small_scale(db: sa.Engine) -> None:
    factory = make_session_factory(db)
    lines: list[str] = []
    with factory() as s, s.begin():
        logins = demo_city.load(s, scale=SCALE, echo=lines.append)
    assert [lg.username for lg in logins] == ["jdy01"]
    cw, ch = demo_city._dims(SCALE)
    with factory() as s:
        levels = dict(s.execute(select(Area.level, func.count()).group_by(Area.level)).all())
        assert levels == {"district": 3, "street": 15, "community": 60}
        assert set(s.scalars(select(Area.code).where(Area.level == "district"))) == {"610302", "610303", "610304"}
        n_grids = _count(s, Grid)
        assert n_grids == 60 * cw * ch
        areas = s.scalars(select(Grid.area_m2)).all()
        assert min(areas) > 9_900 and max(areas) < 10_100
        n = _count(s, Component)
        assert n == round(demo_city.BASE_COMPONENTS * SCALE)
        assert _count(s, ComponentHistory) == n
        # every component: valid ID for its class and district, in a grid, with departments
        catalog = catalog_loader.default_catalog()
        rows = s.execute(
            select(
                Component.code,
                Component.class_code,
                Component.grid_code,
                Component.main_department_id,
                Component.maintainer_department_id,
            )
        ).all()
        for code, cls, grid, main, maint in rows:
            assert grid is not None and main is not None and maint is not None
            codes.check_component_id(code, class_key=cls, admin_code=grid)
            assert catalog.get(cls).kind is codes.ClassKind.COMPONENT
        mix = dict(s.execute(select(Component.class_code, func.count()).group_by(Component.class_code)).all())
        assert mix["C0402"] > mix["C0301"] and len(mix) > 40
        # departments: the owner kind of each component's class matches its main department's
        kinds = dict(s.execute(select(org.Department.id, org.Department.owner_kind)).all())
        assert 45 <= len(kinds) <= 60
        for code, cls, _grid, main, _ in rows[:500]:
            assert kinds[main] == catalog.get(cls).owner_kind, code
        # inspectors with supervision areas that cover every grid once
        assert _count(s, select(org.User).where(org.User.role == Role.INSPECTOR).subquery()) == 50
        assert _count(s, SupervisionArea) == 50
        assert _count(s, SupervisionGrid) == n_grids
        assert s.scalar(select(func.count(func.distinct(SupervisionGrid.grid_code)))) == n_grids
        # the casework tests' point is in 渭滨区
        grid = components_service.check_point_in_city(s, lon=LON, lat=LAT)
        assert grid is not None and grid.startswith("610302")
        codes_before = s.scalars(select(Component.code).order_by(Component.code).limit(50)).all()
    with factory() as s, s.begin():
        demo_city.load(s, scale=SCALE, echo=lines.append)
    assert lines[-1] == "the demo city exists already; nothing loaded"
    with factory() as s:
        assert _count(s, Component) == n
        assert s.scalars(select(Component.code).order_by(Component.code).limit(50)).all() == codes_before


def test_demo_city_is_deterministic() -> None:
    rows_a, cells_a, _ = demo_city.build_areas(SCALE)
    rows_b, cells_b, _ = demo_city.build_areas(SCALE)
    assert cells_a == cells_b
    assert [r.geom.wkt for r in rows_a[:20]] == [r.geom.wkt for r in rows_b[:20]]
    # grids are numbered west→east, then north→south within a community
    cw, _ = demo_city._dims(SCALE)
    first = "610304001001"
    c1, r1 = cells_a[f"{first}001"]
    assert cells_a[f"{first}002"] == (c1 + 1, r1)
    assert cells_a[f"{first}{cw + 1:03d}"] == (c1, r1 + 1)
