"""Fixtures: one real database per test session (SpatiaLite file or a fresh PostGIS database).

Choose the back end with ``--db=spatialite`` (default) or ``--db=postgis`` (or ``GRIDCITY_TEST_DB``).
The schema is built by the Alembic migrations, so every run also tests them. Tests commit for real
(threads, websockets and browsers need that); after each test every table is emptied.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from gridcity import migrate, org, security
from gridcity.database import make_engine, make_session_factory
from gridcity.roles import Role
from gridcity.root.metadata import all_metadata
from gridcity.settings import Settings

PG_ADMIN_URL = os.environ.get("GRIDCITY_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


pytest_plugins = ["tests.browser_fixtures"]  # server, browser, artifacts: one Chromium for every folder


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default=os.environ.get("GRIDCITY_TEST_DB", "spatialite"),
        choices=["spatialite", "postgis"],
        help="database back end for the tests",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"gridcity test database: {config.getoption('--db')}"


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if backend == "spatialite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"
        return
    name = f"gridcity_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    e = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with e.connect() as c:
        c.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
    e.dispose()
    yield url
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(database_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def _empty_all_tables(eng: sa.Engine) -> None:
    # layer_revision keeps its rows, as a database does: they exist from the migration on and only grow, so a
    # tile cached by one test is never filed under a revision another test reaches again
    tables = [t for t in reversed(all_metadata().sorted_tables) if t.name != "layer_revision"]
    with eng.begin() as conn:
        if eng.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            for t in tables:
                conn.execute(t.delete())
            conn.exec_driver_sql("DELETE FROM sqlite_sequence") if _has_sqlite_sequence(conn) else None


def _has_sqlite_sequence(conn: sa.Connection) -> bool:
    return (
        conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type='table' AND name='sqlite_sequence'").first()
        is not None
    )


@pytest.fixture
def db(engine: sa.Engine) -> Iterator[sa.Engine]:
    """The test database, emptied after the test."""
    yield engine
    _empty_all_tables(engine)


@pytest.fixture
def session_factory(db: sa.Engine):  # type: ignore[no-untyped-def]
    return make_session_factory(db)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The deadline monitor's background task is off in tests; they call monitor_once with explicit times.
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-" + "x" * 32,
        monitor_interval_seconds=0,
    )


@pytest.fixture
def app(db: sa.Engine, settings: Settings):  # type: ignore[no-untyped-def]
    from gridcity.root.app import create_app

    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def password_hash() -> str:
    return security.hash_password("password-123")


class Org:
    """The test organisation: departments and one user per role, with ready bearer headers."""

    def __init__(self, ids: dict[str, int], depts: dict[str, int], secret: str) -> None:
        self.ids = ids
        self.depts = depts
        self.secret = secret

    def headers(self, username: str) -> dict[str, str]:
        uid = self.ids[username]
        token = security.create_token(user_id=uid, role="x", secret=self.secret, ttl=dt.timedelta(hours=1))
        return {"Authorization": f"Bearer {token}"}


ORG_USERS = [
    ("inspector", Role.INSPECTOR, None),
    ("inspector2", Role.INSPECTOR, None),
    ("acceptor", Role.ACCEPTOR, None),
    ("shiftlead", Role.SHIFT_LEADER, None),
    ("dispatcher", Role.DISPATCHER, None),
    ("water", Role.DEPARTMENT, "SZ"),
    ("lighting", Role.DEPARTMENT, "LD"),
    ("leader", Role.LEADER, None),
    ("admin", Role.ADMIN, None),
]


@pytest.fixture
def orgdata(db: sa.Engine, settings: Settings, password_hash: str) -> Org:
    """Departments SZ (water), LD (lighting), HW (sanitation) and one login per role."""
    factory = make_session_factory(db)
    with factory() as s, s.begin():
        depts = {
            code: org.create_department(s, code=code, name=name, owner_kind=kind).id
            for code, name, kind in [
                ("SZ", "市自来水公司", "water_supply"),
                ("LD", "市路灯管理所", "street_lighting"),
                ("HW", "市环境卫生管理处", "sanitation"),
            ]
        }
        ids = {
            u: org.create_user(
                s,
                username=u,
                password="password-123",
                role=r,
                password_hash=password_hash,
                department_id=depts[d] if d else None,
            ).id
            for u, r, d in ORG_USERS
        }
    return Org(ids, depts, settings.resolved_secret_key())


def make_jpeg(width: int = 640, height: int = 480, color: tuple[int, int, int] = (200, 30, 30), seed: int = 0) -> bytes:
    """A real JPEG (noise-free but distinct per seed)."""
    img = Image.new("RGB", (width, height), color)
    img.putpixel((seed % width, (seed // width) % height), (seed % 256, 0, 255 - seed % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()
