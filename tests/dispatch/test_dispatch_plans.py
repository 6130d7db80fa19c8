"""G-R5 plan stability: every spatial statement routing issues is driven by the spatial index, on both DBs.

performance.md §2.2 measured the cliffs these guard against: an unbounded KNN (7–40×), SQLite driving from a
column index and probing the R*Tree per row (~1,800×), no spatial index at all (550×), and PostgreSQL picking a
btree on the class column at scale (12× on p99). The statements are taken from the same functions the service
executes, with a few thousand synthetic rows and fresh statistics (ANALYZE) so the planner has real choices:
a btree on ``component.class_code``, ``case.status`` and ``case.created_at`` exists next to the spatial index.
Class codes are strings ("C0101"), so psycopg's int2-parameter trap (btree_gist on int4) cannot occur here.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from casework.models import Case
from casework.rules import load_rules as load_case_rules
from components.models import Component, Grid
from dispatch import duplicates, service
from dispatch.service import RoutingSettings
from gridcity import spatial
from gridcity.database import make_session_factory
from tests.dispatch.conftest import at, box_wkt

N_COMPONENTS = 3000
N_CASES = 1500
GRID_SIDE = 20  # 20 × 20 grids of 100 m
CLASSES = [f"C01{i:02d}" for i in range(1, 30)]
RARE = "C0130"  # three components in the whole city


@pytest.fixture
def city(db: sa.Engine) -> Iterator[Session]:
    rnd = random.Random(7)
    with make_session_factory(db)() as s:
        with s.begin():
            s.execute(
                sa.insert(Grid),
                [
                    {
                        "code": f"610302001{gx + 1:03d}{gy + 1:03d}",
                        "community_code": f"610302001{gx + 1:03d}",
                        "name": None,
                        "area_m2": 10_000.0,
                        "region_class": "class1",
                        "geom": spatial.ewkt(box_wkt(gx * 100 - 1000, gy * 100 - 1000, gx * 100 - 900, gy * 100 - 900)),
                    }
                    for gx in range(GRID_SIDE)
                    for gy in range(GRID_SIDE)
                ],
            )
            comps = []
            for i in range(N_COMPONENTS):
                cls = RARE if i < 3 else CLASSES[i % len(CLASSES)]
                lon, lat = at(rnd.uniform(-1000, 1000), rnd.uniform(-1000, 1000))
                comps.append(
                    {
                        "code": f"610302{cls[1:]}{i:06d}",
                        "class_code": cls,
                        "name": None,
                        "geom": spatial.ewkt(f"POINT({lon} {lat})"),
                        "state": "完好",
                    }
                )
            s.execute(sa.insert(Component), comps)
            now = dt.datetime.now(dt.UTC)
            cases = []
            for i in range(N_CASES):
                lon, lat = at(rnd.uniform(-1000, 1000), rnd.uniform(-1000, 1000))
                created = now - dt.timedelta(hours=rnd.uniform(0, 24 * 60))
                cases.append(
                    {
                        "number": f"2026-{i:06d}",
                        "source": "inspector",
                        "class_code": CLASSES[i % 7],
                        "kind": "component",
                        "urgency": "normal",
                        "status": rnd.choice(["reported", "filed", "closed", "closed", "closed"]),
                        "version": 1,
                        "lon": lon,
                        "lat": lat,
                        "geom": spatial.ewkt(f"POINT({lon} {lat})"),
                        "created_at": created,
                        "updated_at": created,
                    }
                )
            s.execute(sa.insert(Case), cases)
        with s.begin():
            s.execute(sa.text("ANALYZE"))
        yield s


def _probe_case(s: Session, class_code: str) -> Case:
    lon, lat = at(15.0, -20.0)
    return Case(id=10**9, class_code=class_code, kind="component", lon=lon, lat=lat, grid_code=None, component_id=None)


def _statements(s: Session) -> list[tuple[str, str, spatial.Statement]]:
    """(label, table, statement) for every spatial statement the routing service issues, and the grid lookup
    of every new case."""
    cfg = RoutingSettings()
    on = service.city_today(load_case_rules())
    common, rare = _probe_case(s, CLASSES[0]), _probe_case(s, RARE)
    by_id = _probe_case(s, CLASSES[0])
    by_id.component_id = f"610302{CLASSES[0][1:]}{3:06d}"
    return [
        ("snap, common class", "component", service.component_statement(s, common, cfg)),
        ("snap, rare class", "component", service.component_statement(s, rare, cfg)),
        ("snap, wide tolerance", "component", service.snap_statement(s, common, RoutingSettings(snap_tolerance_m=300))),
        ("grid at point", "grid", service.grid_statement(s, common, on)),
        # not routing, but asked by every report and new case (components.service.locate_point)
        ("locate a grid", "grid", spatial.grid_at_statement(spatial.dialect(s), lon=common.lon, lat=common.lat)),
        ("duplicates", "case", duplicates.duplicates_statement(s, common, cfg, dt.datetime.now(dt.UTC))),
        ("component by id", "component", service.component_statement(s, by_id, cfg)),
    ]


def assert_spatial_plan(plan: list[str], table: str, backend: str, label: str) -> None:
    """The plan reaches ``table`` through its spatial index first, never by a scan or a column index."""
    text = "\n".join(plan)
    quoted = f'"{table}"' if table == "case" else table
    if backend == "postgis":
        assert f"idx_{table}_geom" in text, f"{label}: GiST not used\n{text}"
        assert f"Seq Scan on {quoted}" not in text, f"{label}\n{text}"
        return
    assert any(line.startswith(f"SCAN idx_{table}_geom VIRTUAL TABLE") for line in plan), f"{label}\n{text}"
    # the table is reached only by the row ids the R*Tree returned, never by a scan or a column index
    assert any(line.startswith(f"SEARCH {table} USING INTEGER PRIMARY KEY (rowid=?)") for line in plan), (
        f"{label}\n{text}"
    )
    assert not any(line.startswith(f"SCAN {table}") for line in plan), f"{label}\n{text}"
    assert not any(line.startswith(f"SEARCH {table} USING INDEX") for line in plan), f"{label}\n{text}"


def test_every_routing_statement_is_driven_by_the_spatial_index(city: Session, backend: str) -> None:
    for label, table, stmt in _statements(city):
        plan = spatial.explain(city, stmt)
        if label == "component by id":
            # not spatial: the unique index on the code, never a scan
            text = "\n".join(plan)
            assert "Seq Scan on component" not in text and "SCAN component" not in text, text
            assert ("uq_component_code" in text) if backend == "postgis" else ("USING INDEX" in text), text
            continue
        assert_spatial_plan(plan, table, backend, label)


@pytest.mark.parametrize(
    "sql",
    [
        # the unbounded KNN / no-spatial-index trap
        "SELECT id FROM component WHERE class_code = :c ORDER BY ST_Distance(geom, geom) LIMIT 1",
        # the join-order trap: a column index drives and the R*Tree / GiST is never reached
        "SELECT id FROM component WHERE class_code = :c",
    ],
)
def test_the_plan_assertion_catches_non_spatial_plans(city: Session, backend: str, sql: str) -> None:
    stmt = spatial.Statement(sql, [sa.bindparam("c", RARE, type_=sa.String())])
    with pytest.raises(AssertionError):
        assert_spatial_plan(spatial.explain(city, stmt), "component", backend, "trap")


def test_the_statements_return_what_the_service_expects(city: Session) -> None:
    """Sanity: the planned statements run and find rows in this synthetic city."""
    stmts = {label: stmt for label, _, stmt in _statements(city)}
    assert city.execute(stmts["grid at point"].clause()).all()
    wide = city.execute(stmts["snap, wide tolerance"].clause()).all()
    assert wide and all(r.class_code == CLASSES[0] and r.distance_m <= 300 for r in wide)
    assert [r.distance_m for r in wide] == sorted(r.distance_m for r in wide)
