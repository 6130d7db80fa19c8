"""Every model module imported, so that ``Base.metadata`` knows all tables (for Alembic, the CLI and tests).

Plain imports: a model module that is missing fails here, it is never skipped.
"""

from __future__ import annotations

from sqlalchemy import MetaData

import casework.alerts
import casework.models
import components.models
import dispatch.models
import evaluation.models
import gis_data.models
import gridcity.org
import mobile_api.models
from gridcity.database import Base

MODEL_MODULES = (
    gridcity.org,
    components.models,
    casework.models,
    casework.alerts,
    dispatch.models,
    mobile_api.models,
    evaluation.models,
    gis_data.models,
)


def all_metadata() -> MetaData:
    """The metadata with every table registered."""
    return Base.metadata
