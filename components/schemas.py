"""API shapes of the map layers and components."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gridcity.types import BoundedDatetime


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


class AddressRead(BaseModel):
    """A standard address (标准地址) with its position, unit grid and community."""

    id: int
    code: str
    kind: str
    name: str
    full_name: str
    road: str | None
    number: str | None
    lon: float
    lat: float
    grid_code: str | None
    community_code: str | None
    community_name: str | None
    street_name: str | None
    rank: int = 0


class AddressList(BaseModel):
    """Look-up results, best first."""

    q: str
    items: list[AddressRead]


class SupervisionAreaRead(BaseModel):
    """An inspector's supervision area (监督员责任区)."""

    id: int
    code: str
    name: str
    inspector_id: int | None
    grid_codes: list[str]


class SupervisionAreaCreate(BaseModel):
    """A new supervision area."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100)
    inspector_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    grid_codes: list[str] = Field(default_factory=list, max_length=10_000)


class SupervisionAreaReassign(BaseModel):
    """Give a supervision area (all its grids) to another inspector, or to nobody, from a given time on."""

    model_config = ConfigDict(extra="forbid")
    inspector_id: int | None = Field(
        ge=1, le=2**31 - 1, description="the new inspector; null: nobody is responsible from then on"
    )
    effective_at: BoundedDatetime = Field(
        description="when the change takes effect: not in the future, not before the area's last recorded change; "
        "without a zone it is read in the city's time zone",
        examples=["2026-11-02T08:30:00+08:00"],
    )


class SupervisionAreaUpdate(BaseModel):
    """Changes to a supervision area."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    inspector_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    clear_inspector: bool = False
    grid_codes: list[str] | None = Field(default=None, max_length=10_000)
