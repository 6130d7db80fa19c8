"""Component import throughput: ``gis_data.loader`` against a raw bulk load of the same rows, in one run.

On the demo city scaled to ``--n`` components (default 100,000; Baoji is 81,429), the components are written
to a GeoJSON file and then

* **ours** — read back with :func:`gis_data.readers.read_geojson` and loaded with
  :func:`gis_data.loader.load_components` (every row validated: ID, class, departments, state, dates, geometry,
  point-in-city and grid assignment, ID/district consistency; upsert by ID; one history row per component),
  committed;
* **raw** — the same rows (ID, class, grid, departments, state, geometry as WKT) bulk-loaded into a bare
  table with a spatial index: PostGIS ``COPY ... FROM STDIN`` (GiST index present), SpatiaLite one
  ``executemany`` of ``INSERT ... GeomFromText(?, 4326)`` in one transaction (R*Tree kept by its triggers),
  committed.

Goal G-L1: ours ≤ 3× raw.

    .venv/bin/python -m bench.bench_import                       # both back ends, 100k components
    .venv/bin/python -m bench.bench_import --backends spatialite --n 20000
    .venv/bin/python -m bench.bench_import --write               # also write docs/performance.md

PostGIS uses a scratch database (``--pg-url``; dropped and recreated, dropped again at the end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import shapely
import sqlalchemy as sa
from shapely.geometry import mapping

from bench.scratch import recreate_postgis_database
from components import catalog_loader
from components.models import Component
from gis_data import demo_city, loader, readers
from gridcity import migrate, org
from gridcity.database import make_engine, make_session_factory

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/gc_bench_import"
RAW_COLUMNS = (
    "code",
    "class_code",
    "grid_code",
    "main_department_id",
    "owner_department_id",
    "maintainer_department_id",
    "state",
)


def _fresh_engine(backend: str, pg_url: str, tmp: Path) -> sa.Engine:
    if backend == "spatialite":
        url = f"sqlite:///{tmp / 'bench_import.sqlite'}"
    else:
        url = recreate_postgis_database(pg_url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    return engine


def _drop_pg(pg_url: str) -> None:
    base, name = pg_url.rsplit("/", 1)
    admin = sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _city(engine: sa.Engine, scale: float) -> list[readers.RawRow]:
    """Load the demo city's areas and departments; return its component rows (not loaded)."""
    catalog = catalog_loader.default_catalog()
    with make_session_factory(engine)() as s, s.begin():
        area_rows, cells, to_wgs = demo_city.build_areas(scale)
        loader.load_areas(s, area_rows, source="bench", projected_crs=demo_city.PROJECTED_CRS)
        city, branches, streets = demo_city._departments(s, catalog)
        dept_codes = dict(s.execute(sa.select(org.Department.id, org.Department.code)).all())
        return demo_city.build_components(scale, cells, to_wgs, catalog, dept_codes, city, branches, streets)


def _raw_table(conn: sa.Connection, backend: str) -> None:
    cols = (
        "id integer primary key, code varchar(17) unique, class_code varchar(12), grid_code varchar(15), "
        "main_department_id integer, owner_department_id integer, maintainer_department_id integer, "
        "state varchar(8)"
    )
    if backend == "postgis":
        pg_cols = cols.replace("integer primary key", "serial primary key")
        conn.exec_driver_sql(f"CREATE TABLE raw_component ({pg_cols}, geom geometry(Geometry, 4326))")
        conn.exec_driver_sql("CREATE INDEX raw_component_geom ON raw_component USING gist (geom)")
    else:
        conn.exec_driver_sql(f"CREATE TABLE raw_component ({cols})")
        conn.exec_driver_sql("SELECT AddGeometryColumn('raw_component', 'geom', 4326, 'GEOMETRY', 'XY')")
        conn.exec_driver_sql("SELECT CreateSpatialIndex('raw_component', 'geom')")


def _raw_load(engine: sa.Engine, backend: str, rows: list[tuple[Any, ...]]) -> float:
    """Bulk-load the prepared rows into the bare table; seconds including commit."""
    with engine.begin() as conn:
        _raw_table(conn, backend)
    raw = engine.raw_connection()
    try:
        t0 = time.perf_counter()
        cur = raw.cursor()
        if backend == "postgis":
            names = ", ".join((*RAW_COLUMNS, "geom"))
            with cur.copy(f"COPY raw_component ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for r in rows:
                    copy.write_row((*r[:-1], f"SRID=4326;{r[-1]}"))
        else:
            cur.execute("BEGIN")  # the engine's connections are in autocommit mode outside SQLAlchemy's begin
            marks = ", ".join("?" for _ in RAW_COLUMNS)
            cur.executemany(
                f"INSERT INTO raw_component ({', '.join(RAW_COLUMNS)}, geom) VALUES ({marks}, GeomFromText(?, 4326))",
                rows,
            )
        raw.commit()
        return time.perf_counter() - t0
    finally:
        raw.close()


def _floor_load(engine: sa.Engine, backend: str) -> float:
    """The schema's own floor: the rows ours stored (components and history), emptied and bulk-loaded again
    into the real tables (their foreign keys, btree indexes and spatial index) with no validation at all;
    seconds including commit."""
    comp_cols = [c.name for c in Component.__table__.columns if c.name not in ("id", "geom")]
    hist_cols = ["component_code", "at", "action", "changes", "source"]
    pg = backend == "postgis"
    geom = "encode(ST_AsEWKB(geom), 'hex')" if pg else "AsBinary(geom)"
    changes = "changes::text" if pg else "changes"
    with engine.connect() as conn:
        comps = [
            tuple(r) for r in conn.exec_driver_sql(f"SELECT {', '.join(comp_cols)}, {geom} FROM component ORDER BY id")
        ]
        hist = [
            tuple(r)
            for r in conn.exec_driver_sql(
                f"SELECT {', '.join(hist_cols[:3])}, {changes}, source FROM component_history ORDER BY id"
            )
        ]
    with engine.begin() as conn:
        if pg:
            conn.exec_driver_sql("TRUNCATE component, component_history")
        else:
            conn.exec_driver_sql("DELETE FROM component_history")
            conn.exec_driver_sql("DELETE FROM component")
    if not pg:  # a clean file, as ours had, and no checkpoint of the DELETE inside the timed load
        plain = engine.raw_connection()
        try:
            plain.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
            plain.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            plain.close()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if not pg:
            cur.execute("PRAGMA cache_size = -262144")  # as ours has during its bulk append
        t0 = time.perf_counter()
        if not pg:
            cur.execute("BEGIN")  # one transaction (the engine's sqlite3 connections are in autocommit mode)
        for table, cols, rows, has_geom in (
            ("component", comp_cols, comps, True),
            ("component_history", hist_cols, hist, False),
        ):
            names = ", ".join([*cols, "geom"] if has_geom else cols)
            if pg:
                with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for r in rows:
                        copy.write_row(r)
            else:
                marks = ", ".join(["?"] * len(cols) + (["GeomFromWKB(?, 4326)"] if has_geom else []))
                cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        raw.commit()
        return time.perf_counter() - t0
    finally:
        raw.close()


def run(backend: str, n: int, pg_url: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench_import_"))
    engine = _fresh_engine(backend, pg_url, tmp)
    try:
        scale = n / demo_city.BASE_COMPONENTS
        comp_rows = _city(engine, scale)
        path = tmp / "components.geojson"
        path.write_text(
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        {"type": "Feature", "geometry": mapping(r.geom), "properties": r.properties} for r in comp_rows
                    ],
                },
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
        size_mb = path.stat().st_size / 1e6

        factory = make_session_factory(engine)
        t0, c0 = time.perf_counter(), time.process_time()
        rows = readers.read_geojson(path.read_bytes())
        t_read = time.perf_counter() - t0
        with factory() as s, s.begin():
            rep = loader.load_components(s, rows, source="bench")
        ours = time.perf_counter() - t0
        ours_cpu = time.process_time() - c0
        assert rep.counts["created"] == len(comp_rows), rep.counts

        # The raw rows: what the loader stored, minus the validation (IDs, departments, grids precomputed).
        with engine.connect() as conn:
            stored = conn.execute(
                sa.text(f"SELECT {', '.join(RAW_COLUMNS)}, ST_AsBinary(geom) FROM component ORDER BY id")
            ).all()
        raw_rows = [(*r[:-1], shapely.to_wkt(shapely.from_wkb(bytes(r[-1])), rounding_precision=-1)) for r in stored]
        c1 = time.process_time()
        raw = _raw_load(engine, backend, raw_rows)
        raw_cpu = time.process_time() - c1
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM raw_component").scalar() == len(comp_rows)
        floor = _floor_load(engine, backend)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM component").scalar() == len(comp_rows)
        return {
            "backend": backend,
            "n": len(comp_rows),
            "size_mb": size_mb,
            "read_s": t_read,
            "ours_s": ours,
            "ours_cpu": ours_cpu,
            "raw_s": raw,
            "raw_cpu": raw_cpu,
            "floor_s": floor,
        }
    finally:
        engine.dispose()
        if backend == "postgis":
            _drop_pg(pg_url)


NOTE = """How ours writes (since 2026-11-21): rows are validated in Python with per-key-set property lookup,
memoised class checks, one vectorised `shapely.is_valid` and one STRtree query for grid and district; the new
components and their history rows then go through `gridcity.spatial.bulk_append` on the session's own
connection and transaction (PostGIS `COPY FROM STDIN` with the geometry as hex EWKB; SpatiaLite one prepared
`executemany` with `GeomFromWKB` on the raw sqlite3 connection, page cache raised to 256 MB for the
duration, as the schema floor below has too, but not the raw column). Changed components are still updated
with one Core `executemany`. The reader builds plain GeoJSON points in one `shapely.points` call and checks every row's
coordinates at once.

"Schema floor" is the same stored rows (components *and* their history) emptied and bulk-loaded again with the
same driver call into the real `component` / `component_history` tables, without any validation: what
the schema itself costs (three foreign keys to `department`, btree indexes on code, class and grid, the
history table). On PostGIS the floor alone is ~3× raw: in a separate test on this machine (load ~5), a
100,000-row COPY into a table with the same three foreign keys took 5.0 s against 1.6 s without them (the
per-row RI checks). So G-L1 (≤ 3× raw) is out of reach on PostGIS without bypassing the foreign-key triggers,
which this loader does not do; what is left on top of the floor is ours: parsing the GeoJSON (the "read"
figure), per-row validation and building the COPY rows in Python (about half the process CPU). The last column
is ours without reading, over the floor. Before 2026-11-21 the SpatiaLite raw column ran each INSERT as its own
transaction (the engine's sqlite3 connections are in autocommit mode outside SQLAlchemy's BEGIN), which made
raw slower and the earlier SpatiaLite ratios look better than they were; raw and floor now run in one
explicit transaction."""


def _row(r: dict[str, Any]) -> str:
    load_only = r["ours_s"] - r["read_s"]
    return (
        f"| {r['backend']} | {r['n']:,} | {r['ours_s']:.1f} s ({r['n'] / r['ours_s']:,.0f}/s; read "
        f"{r['read_s']:.1f} s, CPU {r['ours_cpu']:.1f} s) | {r['raw_s']:.1f} s ({r['n'] / r['raw_s']:,.0f}/s) | "
        f"{r['ours_s'] / r['raw_s']:.1f}× ({load_only / r['raw_s']:.1f}× without reading the file) | "
        f"{r['floor_s']:.1f} s ({r['floor_s'] / r['raw_s']:.1f}× raw) | {load_only / r['floor_s']:.1f}× |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="components (the demo city is scaled to fit)")
    ap.add_argument("--backends", default="spatialite,postgis")
    ap.add_argument("--pg-url", default=DEFAULT_PG, help="scratch PostgreSQL database (dropped and recreated)")
    ap.add_argument("--write", action="store_true", help="write the section into docs/performance.md")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    results = []
    for b in args.backends.split(","):
        r = run(b, args.n, args.pg_url)
        print(_row(r), flush=True)
        results.append(r)
    load = f"1-min load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end on {os.cpu_count()} CPUs"
    print(load)
    if args.write:
        from bench.perfdoc import DOC, write_section  # noqa: PLC0415

        cmd = f".venv/bin/python -m bench.bench_import --n {args.n} --backends {args.backends} --write"
        verdict = "; ".join(f"{r['backend']} {r['ours_s'] / r['raw_s']:.1f}×" for r in results)
        write_section(
            "bench_import",
            f"""## Component import: gis_data.loader vs raw bulk load

`{cmd}`
— {dt.date.today()}, {platform.machine()}, Python {platform.python_version()}; the demo city scaled to
{args.n:,} components (GeoJSON of {results[0]["size_mb"]:.0f} MB), imported into an empty component table with
its spatial index; {load} (other work on the machine inflates both columns; compare the ratios). "Ours" is
`readers.read_geojson` + `loader.load_components` end to end (validation of every row, point-in-city and grid
assignment from the loaded unit grids, upsert by ID, one history row per component, commit); "raw" is the same
stored rows bulk-loaded into a bare table with a spatial index (PostGIS `COPY FROM STDIN` with a GiST index;
SpatiaLite one `executemany` with `GeomFromText` in one transaction, R*Tree kept by its triggers). Goal G-L1:
ours ≤ 3× raw — measured {verdict}.

| back end | components | ours (rate; reading; CPU) | raw (rate) | ours / raw | schema floor | ours − read / floor |
|---|---|---|---|---|---|---|
{chr(10).join(_row(r) for r in results)}

{NOTE}
""",
        )
        print(f"written to {DOC}")


if __name__ == "__main__":
    main()
