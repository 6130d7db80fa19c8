"""Alembic environment: runs on the app's engine (SpatiaLite or PostGIS)."""

from __future__ import annotations

from typing import Any

from alembic import context
from geoalchemy2 import alembic_helpers

from gridcity.database import make_engine
from gridcity.root.metadata import all_metadata
from gridcity.settings import get_settings
from migrations.autogen import include_object_for

target_metadata = all_metadata()


def _url() -> str:
    return context.config.attributes.get("url") or get_settings().resolved_database_url()


def run_migrations_online() -> None:
    """Run the migrations with a live connection."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_object=include_object_for(connection.dialect.name),
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
