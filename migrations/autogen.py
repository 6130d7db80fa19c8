"""What alembic's autogenerate compares: every table and index of the models, nothing of the database's own.

``include_object_for(dialect)`` is the ``include_object`` hook of ``migrations/env.py`` and of the drift test
(``tests/test_model_drift.py``). It leaves out

* the spatial extension's own tables (geoalchemy2's list, plus the SpatiaLite 5 tables it misses), which
  ``InitSpatialMetaData`` creates and no model declares;
* an index the models declare for another database only (``Index(...).ddl_if(dialect=...)``, e.g. the
  PostgreSQL-only partial ``ix_stage_fact_effective``): alembic does not read ``ddl_if`` itself, so without
  this it would propose creating that index on SQLite.

Nothing else is hidden: an index or table that only the database has (or only the models) is drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geoalchemy2 import alembic_helpers

SPATIALITE_TABLES = frozenset(
    {"SpatialIndex", "ElementaryGeometries", "KNN", "KNN2", "data_licenses", "sql_statements_log"}
)


def _declared_for(obj: Any, dialect: str) -> bool:
    ddl_if = getattr(obj, "_ddl_if", None)
    return ddl_if is None or ddl_if.dialect is None or ddl_if.dialect == dialect


def include_object_for(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """The ``include_object`` hook for a database of ``dialect`` (``postgresql`` or ``sqlite``)."""

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if not alembic_helpers.include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-call]
            return False
        if type_ == "table" and reflected and compare_to is None and name in SPATIALITE_TABLES:
            return dialect != "sqlite"
        if type_ == "index" and not reflected:
            return _declared_for(obj, dialect)
        return True

    return include_object
