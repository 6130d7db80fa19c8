"""Engine, declarative base and session factory for PostGIS and SpatiaLite.

SQLite specifics: the stdlib driver of the pyenv Python cannot load extensions, so SQLite goes through
``sqlean`` (a drop-in ``sqlite3`` with extension loading) and loads ``mod_spatialite``.

Reads and writes (both databases, enforced on both):

* A **write unit** (:func:`make_session_factory`, :func:`transaction`) on SQLite starts with ``BEGIN
  IMMEDIATE``: it takes the write lock before its first read, so concurrent writers queue on the lock
  (``busy_timeout``) instead of failing late. SQLite cannot safely upgrade a deferred read to a write under
  WAL: if another connection committed since the read's snapshot began, the upgrade fails at once with
  ``SQLITE_BUSY_SNAPSHOT`` and no waiting helps. So a unit must say up front that it writes.
* A **read unit** (:func:`make_read_session_factory`) starts a deferred ``BEGIN``
  and reads one WAL snapshot: it takes no lock, waits for no writer and delays no writer, however long it
  runs (a ranking, an export, the map). It is read-only for real: ``PRAGMA query_only`` on SQLite and a
  ``READ ONLY`` transaction on PostgreSQL, so a write slipped into a read unit fails loudly in every test on
  both databases instead of failing now and then under load on SQLite only.

The request dependency (``gridcity.deps``) gives GET/HEAD requests a read unit and every other method a
write unit; authentication reads the user in its own short read unit.

Pool: ``pool_size`` connections plus as many overflow ones, on both databases (``GRIDCITY_DB_POOL_SIZE``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from gridcity.errors import InvalidInput

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


READ_ONLY = "gridcity_read_only"  # execution option of the engine behind read units
_QUERY_ONLY = "gridcity_query_only"  # per DBAPI connection: the PRAGMA query_only value last set


def _sqlite_engine(url: str, echo: bool, pool_size: int) -> Engine:
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
        pool_size=pool_size,
        max_overflow=pool_size,
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
        read_only = bool(conn.get_execution_options().get(READ_ONLY))
        pooled = conn.connection
        if pooled.info.get(_QUERY_ONLY, False) != read_only:  # only when the mode changes: no extra statement
            pooled.driver_connection.execute(f"PRAGMA query_only = {int(read_only)}")  # type: ignore[union-attr]
            pooled.info[_QUERY_ONLY] = read_only
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        # A JSON column's parameter is its serialised text: U+0000 appears there as the escape \u0000.
        return "\x00" in value or "\\u0000" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    wrapped = getattr(value, "obj", None)  # psycopg's Json/Jsonb wrapper of a JSON column's value
    return wrapped is not None and type(value).__module__.startswith("psycopg") and _has_nul(wrapped)


def refuse_nul_parameters(engine: Engine) -> None:
    """Refuse any text containing U+0000 before it reaches the database (422 ``input.nul_character``).

    PostgreSQL cannot store the NUL character in text or jsonb (psycopg fails, a 500 before this guard);
    SQLite would store it and hand it to every reader. Checking the bound parameters of every statement
    catches every input path at once (JSON, forms, multipart fields, path and query values, tokens), on
    both back ends alike; the request's session then rolls back, so nothing is half-stored.
    """

    @event.listens_for(engine, "before_cursor_execute")
    def _no_nul(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if parameters and _has_nul(parameters):
            raise InvalidInput(
                "text may not contain the NUL character (U+0000)", code="input.nul_character", loc=["body"]
            )


# PostgreSQL plans every execution for its own parameter values (see make_engine).
PG_CONNECT_ARGS: dict[str, Any] = {"options": "-c plan_cache_mode=force_custom_plan"}


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """Create the engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``).

    ``pool_size`` pooled connections plus as many overflow connections, on both databases.

    PostgreSQL connections run with ``plan_cache_mode=force_custom_plan``. psycopg prepares a statement on
    the server once it has run 5 times on a connection (``prepare_threshold``), and after 5 executions of a
    prepared statement PostgreSQL may switch to a *generic* plan, made without the parameter values. For
    the department scorecard that plan is 3–5× slower from about the 10th run on a connection (measured at
    100,000 cases: 0.15 s → 0.6–0.8 s; the raw scan of the log 0.13 → 0.35–0.38 s): it cannot use the
    partial index ``ix_stage_fact_effective`` (whose ``stage = 'handle'`` becomes a parameter) and, blind to
    the period's range, probes 200,000 index entries by a nested loop instead of one hash join. A custom plan
    per execution keeps the statements prepared (parsed once, which the case pipeline's small statements
    reuse) and costs a planning of ~1 ms only for the large ones. The other cure, ``prepare_threshold=None``
    (never prepare), measured the same on the scorecard and no better on the case pipeline
    (``bench/bench_pipeline.py``, PostGIS, 100 cases: server CPU per transition 8.6 / 6.9 ms as before,
    9.7 / 8.0 with custom plans, 10.6 / 8.3 unprepared, on a machine at load 4–8: within its noise).
    """
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo, pool_size)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = sa.create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        hide_parameters=True,  # bound values (phones, hashes) never reach a log line
        connect_args=PG_CONNECT_ARGS,
    )
    ping_idle_connections(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 2.0
_IDLE_SINCE = "gridcity_idle_since"


def ping_idle_connections(engine: Engine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Ping a pooled connection on checkout when it sat unused for ``idle_seconds`` or more.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip before each request's work and
    another before its user lookup (two of the dozen a case action costs, G-P1). A connection used within
    the last seconds is alive unless the server went away in those seconds, which is the same risk as the
    server going away in the middle of a request: that request fails (503 ``database.unavailable`` with
    ``Retry-After``, nothing committed) and the pool starts over. One idle for
    longer (a quiet night, a restarted database) is pinged first and, when the ping fails, replaced before the
    request sees it.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)  # None: a fresh connection (a reconnect clears the record's info)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise sa.exc.DisconnectionError("stale pooled connection") from exc  # the pool connects anew


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Write units: sessions that keep loaded objects usable after commit (SQLite: ``BEGIN IMMEDIATE``)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def read_only_engine(engine: Engine) -> Engine:
    """The same engine and pool, for read units (deferred WAL snapshot on SQLite, ``READ ONLY`` on PostgreSQL)."""
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    return engine.execution_options(**options)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Read units: read-only sessions that never take or wait for the write lock (see the module docstring)."""
    return sessionmaker(bind=read_only_engine(engine), expire_on_commit=False)


def make_single_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for a read of one statement (the user of a bearer token, on every request).

    On PostgreSQL they run in autocommit, without ``BEGIN``/``ROLLBACK`` round trips around the one
    statement (a single statement is atomic and sees one snapshot anyway). On SQLite they are read units: its
    transaction control costs no round trip, and its ``BEGIN`` hook must not run outside a transaction.
    Write nothing with them.
    """
    if engine.dialect.name == "postgresql":
        return sessionmaker(bind=engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
    return make_read_session_factory(engine)


def is_read_only(session: Session) -> bool:
    """Whether ``session`` is a read unit."""
    return bool(session.get_bind().get_execution_options().get(READ_ONLY))


def write_unit_beside(session: Session) -> Session:
    """A new write-unit session on the same database and pool as ``session`` (e.g. a read unit that found
    derived data to refresh: it ends its own read, writes in this unit, then reads again)."""
    bind: Any = session.get_bind()
    while hasattr(bind, "_proxied"):  # an OptionEngine: back to the plain engine (its options, not False flags:
        bind = bind._proxied  # noqa: SLF001  psycopg does not reset READ ONLY for postgresql_readonly=False)
    return Session(bind=bind, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Run a unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
