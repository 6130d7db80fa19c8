"""Routing latency: our ``dispatch.service.recommend`` against the raw index lookups, in the same process.

On N synthetic components (default 100,000; ``--n 800000`` for the 10× run) over ~1,000 components/km²
(Baoji: 81,429 components on ~50 km²) and N/10 unit grids of 100 m:

* component snap — ``recommend()`` for a component case (bounded KNN of the class within 30 m, ownership,
  department name, explanation) vs the raw KNN (PostGIS: ``geom && box AND class_code = $1 ORDER BY geom <-> p
  LIMIT 1`` on the bare driver connection; SpatiaLite: the R*Tree ``ROWID IN`` query with ``ST_Distance``);
* event routing — ``recommend()`` for an event case (grid containing the point, routing rules of its five
  scopes, choice, explanation) vs the raw point-in-polygon lookup;
* both against the goals' yardsticks measured in the same run: PostGIS the A3 anchor's one-statement grid +
  nearest component + department query (G-R1: ≤ 2×), SpatiaLite the A6c form, the same as three statements
  (G-R4: ≤ 3×).

    .venv/bin/python -m bench.bench_routing                  # both back ends, 100k components
    .venv/bin/python -m bench.bench_routing --n 800000 --write
    .venv/bin/python -m bench.bench_routing --backends spatialite --n 20000

PostGIS uses a scratch database (``--pg-url``; dropped and recreated).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.scratch import recreate_postgis_database
from casework.rules import load_rules as load_case_rules
from components import catalog_loader, codes
from components.models import Component, Grid
from dispatch import service
from gridcity import migrate, org, spatial
from gridcity.database import make_engine, make_session_factory

BASE_LON, BASE_LAT = 107.10, 34.33
M_LAT = 1 / 110_574.0
M_LON = 1 / (111_320.0 * math.cos(math.radians(BASE_LAT)))
GRID_M = 100.0
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/gc_bench_routing"


@dataclass(frozen=True)
class Probe:
    """A case as routing sees it."""

    class_code: str
    kind: str
    lon: float
    lat: float
    grid_code: str | None = None
    component_id: str | None = None


def _fresh_engine(backend: str, pg_url: str) -> sa.Engine:
    if backend == "spatialite":
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench_routing.sqlite'}"
    else:
        url = recreate_postgis_database(pg_url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    return engine


def _xy(x_m: float, y_m: float) -> tuple[float, float]:
    return BASE_LON + x_m * M_LON, BASE_LAT + y_m * M_LAT


def _grid_code(gx: int, gy: int) -> str:
    return f"610302{gx // 20 + 1:03d}{gy // 20 + 1:03d}{(gx % 20) * 20 + gy % 20 + 1:03d}"


def build_city(engine: sa.Engine, n: int, rnd: random.Random) -> dict[str, Any]:
    """Departments, grids, components (Zipf-like class mix) and routing rules; returns what the probes need."""
    side = max(10, math.ceil(math.sqrt(max(100, n // 10))))
    extent = side * GRID_M
    classes = [
        c.key for c in catalog_loader.default_catalog() if c.kind is codes.ClassKind.COMPONENT and len(c.code) == 4
    ]
    weights = [1 / (i + 1) for i in range(len(classes))]
    factory = make_session_factory(engine)
    with factory() as s, s.begin():
        depts = [org.create_department(s, code=f"D{i:02d}", name=f"专业部门{i:02d}").id for i in range(50)]
    t0 = time.perf_counter()
    with engine.begin() as c:
        rows = []
        for gx in range(side):
            for gy in range(side):
                (a, b), (cc, d) = _xy(gx * GRID_M, gy * GRID_M), _xy((gx + 1) * GRID_M, (gy + 1) * GRID_M)
                code = _grid_code(gx, gy)
                rows.append(
                    {
                        "code": code,
                        "community_code": code[:12],
                        "name": None,
                        "region_class": "class1",
                        "area_m2": GRID_M * GRID_M,
                        "geom": spatial.ewkt(f"POLYGON(({a} {b}, {cc} {b}, {cc} {d}, {a} {d}, {a} {b}))"),
                    }
                )
        for i in range(0, len(rows), 20_000):
            c.execute(sa.insert(Grid), rows[i : i + 20_000])
    comps: list[tuple[str, float, float]] = []
    with engine.begin() as c:
        batch = []
        for i in range(n):
            cls = rnd.choices(classes, weights)[0]
            x, y = rnd.uniform(0, extent), rnd.uniform(0, extent)
            lon, lat = _xy(x, y)
            comps.append((cls, x, y))
            batch.append(
                {
                    "code": f"610302{cls[1:]}{i:06d}",
                    "class_code": cls,
                    "name": None,
                    "geom": spatial.ewkt(f"POINT({lon} {lat})"),
                    "state": "完好",
                    "main_department_id": depts[i % len(depts)] if i % 10 else None,
                    "maintainer_department_id": depts[(i * 7) % len(depts)],
                }
            )
            if len(batch) == 20_000:
                c.execute(sa.insert(Component), batch)
                batch = []
        if batch:
            c.execute(sa.insert(Component), batch)
    load_s = time.perf_counter() - t0
    with factory() as s, s.begin():
        rules = [
            {
                "class_code": "*",
                "scope_level": "city",
                "scope_code": "",
                "department_id": depts[0],
                "valid_from": "2020-01-01",
            }
        ]
        rules += [
            {
                "class_code": f"E{m:02d}*",
                "scope_level": "district",
                "scope_code": "610302",
                "department_id": depts[m],
                "valid_from": "2020-01-01",
            }
            for m in range(1, 9)
        ]
        streets = sorted({_grid_code(gx, 0)[:9] for gx in range(0, side, 20)})
        rules += [
            {
                "class_code": "E0102",
                "scope_level": "street",
                "scope_code": st,
                "department_id": depts[10 + k % 30],
                "valid_from": "2020-01-01",
            }
            for k, st in enumerate(streets)
        ]
        rules += [
            {
                "class_code": "E0102",
                "scope_level": "grid",
                "scope_code": _grid_code(gx, gx),
                "department_id": depts[40],
                "valid_from": "2020-01-01",
            }
            for gx in range(0, side, 3)
        ]
        service.load_rules(s, rows=rules)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("ANALYZE")
    return {"comps": comps, "extent": extent, "load_s": load_s, "grids": side * side, "rules": len(rules)}


def _pct(xs: list[float]) -> tuple[float, float]:
    return statistics.median(xs), statistics.quantiles(xs, n=100)[98]


def _time(fns: dict[str, Callable[[int], Any]], q: int, warm: int = 200) -> dict[str, list[float]]:
    """Time each function on lookups 0..q-1, interleaved: for every lookup all of them run back to back in an
    order that rotates, so that machine load and page-cache warmth fall on every column alike."""
    names = list(fns)
    for i in range(warm):
        for name in names:
            fns[name](q + i)
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(q):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            t = time.perf_counter()
            fns[name](i)
            out[name].append((time.perf_counter() - t) * 1000)
    return out


def run(backend: str, n: int, q: int, pg_url: str) -> dict[str, Any]:
    """Build the city on ``backend`` and time the five paths; returns ms percentiles."""
    rnd = random.Random(20260301)
    engine = _fresh_engine(backend, pg_url)
    city = build_city(engine, n, rnd)
    comps, extent = city["comps"], city["extent"]
    # probes: near a random component of its class (offset ≤ 20 m), and random points for events
    snaps = []
    for _ in range(q + 200):
        cls, x, y = comps[rnd.randrange(len(comps))]
        lon, lat = _xy(x + rnd.uniform(-14, 14), y + rnd.uniform(-14, 14))
        snaps.append(Probe(cls, "component", lon, lat))
    events = [Probe("E0102", "event", *_xy(rnd.uniform(0, extent), rnd.uniform(0, extent))) for _ in range(q + 200)]
    rules = load_case_rules()
    cfg = service.RoutingSettings(snap_tolerance_m=30.0)
    on = dt.date(2026, 3, 1)
    factory = make_session_factory(engine)
    found = {"snap": 0, "event": 0}
    with factory() as s:

        def ours_snap(i: int) -> None:
            rec = service.recommend(s, case=snaps[i], rules=rules, settings=cfg, on=on)
            found["snap"] += rec.method == "component"

        def ours_event(i: int) -> None:
            rec = service.recommend(s, case=events[i], rules=rules, settings=cfg, on=on)
            found["event"] += rec.department_id is not None

        raw = engine.raw_connection()
        cur = raw.cursor()
        if backend == "postgis":
            knn = (
                "SELECT id, main_department_id FROM component WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) "
                "AND class_code = %s ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1"
            )
            pip = "SELECT code FROM grid WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) LIMIT 1"
            # the A3 anchor's form: grid + nearest component of the class + its department, one round trip
            route = (
                "SELECT g.code, c.id, d.name FROM (SELECT code FROM grid WHERE ST_Intersects(geom, "
                "ST_SetSRID(ST_MakePoint(%s, %s), 4326)) LIMIT 1) g LEFT JOIN LATERAL (SELECT id, "
                "main_department_id FROM component WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) AND "
                "class_code = %s ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1) c ON true "
                "LEFT JOIN department d ON d.id = c.main_department_id"
            )
        else:
            knn = (
                "SELECT id, main_department_id FROM component WHERE ROWID IN (SELECT pkid FROM idx_component_geom "
                "WHERE xmin <= ? AND xmax >= ? AND ymin <= ? AND ymax >= ?) AND +class_code = ? "
                "ORDER BY ST_Distance(geom, MakePoint(?, ?, 4326)) LIMIT 1"
            )
            pip = (
                "SELECT code FROM grid WHERE ROWID IN (SELECT pkid FROM idx_grid_geom WHERE xmin <= ? AND xmax >= ? "
                "AND ymin <= ? AND ymax >= ?) AND ST_Intersects(geom, MakePoint(?, ?, 4326)) = 1 LIMIT 1"
            )
            # the A6c anchor's form: grid, component, department as three statements
            dept = "SELECT name FROM department WHERE id = ?"

        def raw_route(i: int) -> None:
            p = snaps[i]
            x0, y0, x1, y1 = spatial.degree_box(p.lon, p.lat, 30.0)
            if backend == "postgis":
                cur.execute(route, (p.lon, p.lat, x0, y0, x1, y1, p.class_code, p.lon, p.lat))
                cur.fetchall()
                return
            cur.execute(pip, (p.lon, p.lon, p.lat, p.lat, p.lon, p.lat))
            cur.fetchall()
            cur.execute(knn, (x1, x0, y1, y0, p.class_code, p.lon, p.lat))
            rows = cur.fetchall()
            if rows and rows[0][1] is not None:
                cur.execute(dept, (rows[0][1],))
                cur.fetchall()

        def raw_snap(i: int) -> None:
            p = snaps[i]
            x0, y0, x1, y1 = spatial.degree_box(p.lon, p.lat, 30.0)
            args = (x0, y0, x1, y1) if backend == "postgis" else (x1, x0, y1, y0)
            cur.execute(knn, (*args, p.class_code, p.lon, p.lat))
            cur.fetchall()

        def raw_pip(i: int) -> None:
            p = events[i]
            args = (p.lon, p.lat) if backend == "postgis" else (p.lon, p.lon, p.lat, p.lat, p.lon, p.lat)
            cur.execute(pip, args)
            cur.fetchall()

        t = _time({"ours_snap": ours_snap, "raw_snap": raw_snap, "raw_route": raw_route}, q)
        t.update(_time({"ours_event": ours_event, "raw_pip": raw_pip}, q))
        raw.close()
    engine.dispose()
    return {
        "backend": backend,
        "n": n,
        "q": q,
        **{k: city[k] for k in ("load_s", "grids", "rules")},
        **{k: _pct(v) for k, v in t.items()},
        "snap_hit": found["snap"] / (q + 200),
        "event_hit": found["event"] / (q + 200),
    }


def _rows(r: dict[str, Any]) -> list[str]:
    def row(label: str, ours: tuple[float, float], raw: tuple[float, float], raw_label: str) -> str:
        return (
            f"| {r['backend']} | {label} | {ours[0]:.3f} / {ours[1]:.3f} | {raw_label} | {raw[0]:.3f} / "
            f"{raw[1]:.3f} | {ours[0] / raw[0]:.1f}× / {ours[1] / raw[1]:.1f}× |"
        )

    combined = "raw A3 form: one statement" if r["backend"] == "postgis" else "raw A6c form: 3 statements"
    return [
        row("component snap: `recommend()`", r["ours_snap"], r["raw_snap"], "raw bounded KNN"),
        row("event: grid + rules `recommend()`", r["ours_event"], r["raw_pip"], "raw point-in-polygon"),
        row("component snap: `recommend()`", r["ours_snap"], r["raw_route"], f"{combined} grid + KNN + department"),
        row(
            "event: grid + rules `recommend()`", r["ours_event"], r["raw_route"], f"{combined} grid + KNN + department"
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="synthetic components")
    ap.add_argument("--q", type=int, default=10_000, help="timed lookups per path (after 200 warm-up)")
    ap.add_argument("--backends", default="spatialite,postgis")
    ap.add_argument("--pg-url", default=DEFAULT_PG, help="scratch PostgreSQL database (dropped and recreated)")
    ap.add_argument("--write", action="store_true", help="write the section into docs/performance.md")
    ap.add_argument(
        "--section",
        default=None,
        help="docs/performance.md section to write (default: bench_routing for 100k components, "
        "bench_routing_<n/1000>k otherwise, so the 10x run does not replace the demo-scale one)",
    )
    args = ap.parse_args()
    section = args.section or ("bench_routing" if args.n == 100_000 else f"bench_routing_{args.n // 1000}k")
    load_before = os.getloadavg()[0]
    results = [run(b, args.n, args.q, args.pg_url) for b in args.backends.split(",")]
    load = f"1-min load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end on {os.cpu_count()} CPUs"
    print(load)
    lines = [line for r in results for line in _rows(r)]
    for r in results:
        print(
            f"{r['backend']}: {r['n']:,} components, {r['grids']:,} grids, {r['rules']} rules, loaded in "
            f"{r['load_s']:.1f} s; snaps that found a component {r['snap_hit']:.0%}, events routed "
            f"{r['event_hit']:.0%}"
        )
    print("\n".join(lines))
    if args.write:
        from bench.perfdoc import DOC, write_section

        cmd = (
            f".venv/bin/python -m bench.bench_routing --n {args.n} --q {args.q} --backends {args.backends} --write"
            + (f" --section {args.section}" if args.section else "")
        )
        title = "" if section == "bench_routing" else f" at {args.n:,} components"
        facts = "; ".join(
            f"{r['backend']}: {r['grids']:,} grids, {r['rules']} rules, {r['snap_hit']:.0%} of snaps found a component"
            for r in results
        )
        write_section(
            section,
            f"""## Routing: recommendation vs raw index lookups{title}

`{cmd}`
— {dt.date.today()}, {platform.machine()}, Python {platform.python_version()}; {args.n:,} synthetic components
(~1,000/km², Zipf-like class mix), 100 m unit grids; {facts}. Serial, one session, {args.q:,} timed lookups per
path after 200 warm-up, ours and raw interleaved lookup by lookup; {load}
(other work on the machine inflates both columns; compare the ratios). "Ours" is
`dispatch.service.recommend()` end to end (one bounded, index-driven statement from `gridcity.spatial` per
recommendation — component snap with the responsible department's name, or grid + the rules of its scopes
with their departments' names — run on the session's driver cursor; ownership/rule choice in Python; Chinese
explanation); "raw" is the bare index query on the driver connection in the same process. The "raw A3/A6c
form" rows are the goals' own yardsticks measured here: G-R1 (PostGIS ≤ 2× A3, the one-statement grid +
component + department query), G-R4 (SpatiaLite ≤ 3× A6c, the same as three statements), G-R5 (plans:
`tests/dispatch/test_dispatch_plans.py`).

| back end | path | ours p50 / p99 ms | limit | raw p50 / p99 ms | ratio p50 / p99 |
|---|---|---|---|---|---|
{chr(10).join(lines)}
""",
        )
        print(f"written to {DOC} (section {section})")


if __name__ == "__main__":
    main()
