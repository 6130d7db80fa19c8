"""API shapes of the map layers and components."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection (WGS84 lon/lat) with OGC API paging counts."""

    type: str = "FeatureCollection"
    numberMatched: int | None = Field(default=None, description="Features matching the filters.")  # noqa: N815
    numberReturned: int | None = Field(default=None, description="Features in this page.")  # noqa: N815
    features: list[dict[str, Any]]


class ComponentHistoryRead(BaseModel):
    """One recorded change of a component."""

    model_config = ConfigDict(from_attributes=True)
    at: dt.datetime
    action: str
    source: str
    changes: dict[str, Any]


class ComponentRead(BaseModel):
    """A component as a GeoJSON feature, with its change history."""

    feature: dict[str, Any]
    history: list[ComponentHistoryRead]
