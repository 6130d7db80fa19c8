"""The models and the migrations describe the same schema: alembic's autogenerate comparison of the models
against a database migrated to head finds nothing to change, on SpatiaLite and on PostGIS.

What the comparison leaves out is decided by ``migrations.autogen.include_object_for`` (the hook
``migrations/env.py`` uses too): the spatial extension's own tables, and indexes declared for the other
database only (``ddl_if``). Anything else that differs is drift and fails here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gridcity.root.metadata import all_metadata
from migrations.autogen import include_object_for


def _drift(conn: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_object": include_object_for(conn.dialect.name)}
    )
    return list(compare_metadata(context, all_metadata()))


def test_the_migrated_database_matches_the_models(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert _drift(conn) == []


def test_an_index_only_the_database_has_is_drift(engine: sa.Engine) -> None:
    """The comparison sees indexes (the hook hides none of ours): one created behind the models' back shows."""
    with engine.connect() as conn, conn.begin() as tx:
        conn.exec_driver_sql("CREATE INDEX ix_drift_probe ON address (kind)")
        found = [d[1].name for d in _drift(conn) if isinstance(d, tuple) and d[0] == "remove_index"]
        tx.rollback()
    assert found == ["ix_drift_probe"]


def test_an_index_declared_for_postgresql_only_is_compared_there_only() -> None:
    effective = next(ix for ix in all_metadata().tables["stage_fact"].indexes if ix.name == "ix_stage_fact_effective")
    assert include_object_for("postgresql")(effective, effective.name, "index", False, None)
    assert not include_object_for("sqlite")(effective, effective.name, "index", False, None)
