"""Kernel database behaviour that only shows in a whole process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_process_using_spatialite_and_pyproj_exits_cleanly(tmp_path):
    # Two copies of PROJ (pyproj's and SpatiaLite's) used to abort the interpreter at exit (code 134).
    script = textwrap.dedent(f"""
        from gridcity.database import make_engine
        engine = make_engine("sqlite:///{tmp_path / "x.sqlite"}")
        with engine.connect() as c:
            assert c.exec_driver_sql("SELECT spatialite_version()").scalar()
        import pyproj
        x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:4545", always_xy=True).transform(107.1, 34.3)
        assert 400_000 < x < 450_000
        engine.dispose()
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout.strip() == "ok"


def _backend_pid(engine):
    with engine.connect() as c:
        return c.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def test_a_pooled_connection_the_server_dropped_is_replaced_after_an_idle_spell(backend, database_url):
    """Pings only after idleness (G-P1), yet a connection the server closed while idle never reaches a request."""
    import time

    import pytest
    import sqlalchemy as sa

    from gridcity.database import make_engine

    if backend != "postgis":
        pytest.skip("only a server can drop a pooled connection")
    engine = make_engine(database_url, pool_size=1)
    pings: list[int] = []
    dialect_ping = engine.dialect.do_ping
    engine.dialect.do_ping = lambda conn: pings.append(1) or dialect_ping(conn)  # type: ignore[method-assign]
    try:
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first and pings == []  # used just now: no ping, same connection
        admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            assert c.exec_driver_sql("SELECT pg_terminate_backend(%(p)s)", {"p": first}).scalar()
        admin.dispose()
        time.sleep(2.2)  # longer than PING_AFTER_IDLE_SECONDS
        second = _backend_pid(engine)  # pinged, found dead, replaced: the statement itself succeeds
        assert pings == [1] and second != first
    finally:
        engine.dispose()


def test_a_request_whose_connection_the_server_drops_gets_a_503_to_retry_then_the_next_one_works(
    backend, database_url, db, client, orgdata
):
    """A database restart within the ping window costs one request a retryable 503, never a 500."""
    import pytest
    import sqlalchemy as sa

    if backend != "postgis":
        pytest.skip("only a server can drop a pooled connection")
    headers = orgdata.headers("dispatcher")
    assert client.get("/api/v1/cases?limit=5", headers=headers).status_code == 200  # a pooled, just-used connection
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:  # what a restart does to the app's connections
        dropped = c.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar()
    admin.dispose()
    assert dropped >= 1
    r = client.get("/api/v1/cases?limit=5", headers=headers)  # used under 2 s ago: not pinged, so it fails
    assert r.status_code == 503, r.text
    assert r.json()["detail"][0]["type"] == "database.unavailable"
    assert r.headers["Retry-After"] == "1"
    assert client.get("/api/v1/cases?limit=5", headers=headers).status_code == 200  # the pool started over
    db.dispose()  # the tests' own engine lost its connections too


def test_postgresql_plans_a_prepared_statement_for_its_own_values(backend, db):
    """psycopg prepares a statement on its 5th run on a connection; PostgreSQL would then switch to a generic
    plan (made without the values: the department scorecard 3-5x slower). The engine forbids that plan."""
    import pytest

    if backend != "postgis":
        pytest.skip("SQLite has no server-side plan cache")
    statement = "SELECT count(*) FROM stage_fact WHERE stage = %(s)s AND started_at >= %(a)s"
    with db.connect() as c:
        for _ in range(15):
            c.exec_driver_sql(statement, {"s": "case", "a": "2026-01-01"}).scalar()
        plans = c.exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %(q)s",
            {"q": "SELECT count(*) FROM stage_fact WHERE stage = $1%"},
        ).one()
    assert plans.custom_plans >= 10  # prepared, and planned for its values at every run after that
    assert plans.generic_plans == 0
