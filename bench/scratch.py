"""Scratch databases and servers for benchmarks."""

from __future__ import annotations

import socket
import sys

import sqlalchemy as sa


def recreate_postgis_database(url: str) -> str:
    """Drop and create the database named by ``url`` with PostGIS; return ``url``.

    The URL must name a scratch database: whatever it holds is lost.
    """
    base, name = url.rsplit("/", 1)
    admin = sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    e = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with e.connect() as c:
        c.exec_driver_sql("CREATE EXTENSION postgis")
    e.dispose()
    return url


def uvicorn_cmd(app: str, port: int) -> list[str]:
    """``uvicorn APP`` on 127.0.0.1:PORT, one worker, no access log (the command every server bench runs)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (a fixed port collides with another bench's run)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
