"""Import every model module so that ``Base.metadata`` knows all tables (for Alembic and tests)."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

MODEL_MODULES = (
    "gridcity.org",
    "components.models",
    "casework.models",
    "casework.alerts",
    "dispatch.models",
    "mobile_api.models",
    "evaluation.models",
    "gis_data.models",
)


def all_metadata() -> MetaData:
    """The metadata with every table registered."""
    from gridcity.database import Base  # noqa: PLC0415

    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return Base.metadata
