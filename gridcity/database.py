"""Engine, declarative base and session factory for PostGIS and SpatiaLite.

SQLite specifics: the stdlib driver of the pyenv Python cannot load extensions, so SQLite goes through
``sqlean`` (a drop-in ``sqlite3`` with extension loading) and loads ``mod_spatialite``. Every SQLite
transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the write lock instead of
failing late with a stale snapshot, and savepoints nest correctly inside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(bind: Engine | sa.Connection | Session) -> bool:
    """Whether the bind talks to SQLite/SpatiaLite."""
    if isinstance(bind, Session):
        b = bind.get_bind()
        return b.dialect.name == "sqlite"
    return bind.dialect.name == "sqlite"


def _sqlite_engine(url: str, echo: bool) -> Engine:
    # pyproj must be loaded before mod_spatialite: both bring a libproj.so.25 (pyproj its bundled copy,
    # SpatiaLite the system one), and when SpatiaLite's comes first the process aborts at exit
    # ("double free or corruption"), which turns every successful run into exit code 134.
    import pyproj  # noqa: F401, PLC0415
    import sqlean  # noqa: PLC0415  (only needed for SQLite)
    from geoalchemy2.admin.dialects.sqlite import load_spatialite  # noqa: PLC0415

    os.environ.setdefault("SPATIALITE_LIBRARY_PATH", "mod_spatialite")
    engine = sa.create_engine(
        url,
        module=sqlean,
        echo=echo,
        hide_parameters=True,  # bound values (phone numbers, hashes) never reach a log line or error text
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=sa.pool.QueuePool,
        pool_size=5,
        max_overflow=10,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        load_spatialite(dbapi_conn, record, init_mode="WGS84")  # type: ignore[no-untyped-call]
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """Create the engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return sa.create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                            hide_parameters=True)  # bound values (phones, hashes) never reach a log line


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose sessions keep loaded objects usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Run a unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
