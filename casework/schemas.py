"""API payloads of the case pipeline."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from casework.lifecycle import CaseAction, CaseStatus
from gridcity.types import Lat, Lon, PositiveId, Version


class ReporterIn(BaseModel):
    """A member of the public's contact data (kept private)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200)


class CaseCreate(BaseModel):
    """A new report: by an inspector, a hotline operator (public report), or self-handled."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "action": "report",
                    "class_code": "C0101",
                    "lon": 107.1448,
                    "lat": 34.3693,
                    "description": "上水井盖破损",
                    "attachment_ids": [1],
                }
            ]
        },
    )
    action: Literal["report", "public_report", "self_handle"] = "report"
    class_code: str = Field(min_length=2, max_length=12, description="C0101 (component) / E0101 (event) ...")
    lon: Lon | None = Field(default=None, description="Required unless address_id names a standard address.")
    lat: Lat | None = None
    address_id: PositiveId | None = Field(
        default=None,
        description="A standard address (门牌) from /addresses; "
        "gives the position and the address text when lon/lat are absent.",
    )
    channel: Literal["hotline_12319", "hotline_12345", "walk_in", "letter", "other"] | None = Field(
        default=None, description="How a public report reached the centre (受理渠道)."
    )
    urgency: Literal["normal", "urgent"] = "normal"
    address: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=4000)
    component_id: str | None = Field(default=None, max_length=17)
    attachment_ids: list[PositiveId] = Field(default_factory=list, max_length=9)
    reporter: ReporterIn | None = None
    coord_system: Literal["wgs84", "gcj02"] = "wgs84"


class ExtensionIn(BaseModel):
    """How much more time a department asks for (or the dispatcher grants)."""

    model_config = ConfigDict(extra="forbid")
    value: float = Field(gt=0, le=10_000)
    unit: Literal["work_hour", "work_day", "hour", "day", "minute"]


class ActionIn(BaseModel):
    """One action on a case. ``version`` guards against acting on a stale view."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "dispatch", "version": 3, "department_id": 12},
                {"action": "feedback", "version": 5, "note": "已更换井盖", "attachment_ids": [7]},
                {
                    "action": "request_extension",
                    "version": 4,
                    "note": "需采购配件",
                    "extension": {"value": 2, "unit": "work_day"},
                },
            ]
        },
    )
    action: CaseAction
    version: Version | None = Field(default=None, description="The case version the client saw.")
    department_id: PositiveId | None = None
    inspector_id: PositiveId | None = None
    note: str | None = Field(default=None, max_length=4000)
    attachment_ids: list[PositiveId] = Field(default_factory=list, max_length=9)
    extension: ExtensionIn | None = None
    target_case_id: PositiveId | None = None
    lon: Lon | None = None
    lat: Lat | None = None


class ClockRead(BaseModel):
    """One timed stage of a case: its deadline and traffic light."""

    stage: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    limit: str | None = Field(description="e.g. '4 work_hour'")
    deadline: dt.datetime | None
    light: str
    fraction: float | None
    paused: bool
    overdue_seconds: float
    extensions: list[dict[str, Any]]


class CaseRead(BaseModel):
    """A case as the current user sees it."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    number: str
    status: CaseStatus
    version: int
    source: str
    kind: str
    class_code: str
    class_name: str | None = None
    urgency: str
    lon: float
    lat: float
    address: str | None
    description: str | None
    grid_code: str | None
    component_id: str | None
    department_id: int | None
    reporter_id: int | None
    assigned_inspector_id: int | None
    merged_into_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    stage: str | None
    deadline_at: dt.datetime | None
    light: str = "none"
    allowed_actions: list[CaseAction] = Field(default_factory=list)
    clocks: list[ClockRead] = Field(default_factory=list)
    reporter: ReporterIn | None = Field(default=None, description="The caller (supervision centre roles only).")
    requested_extension: dict[str, Any] | None = Field(default=None, description="The extension asked for.")
    extension_units: list[str] = Field(
        default_factory=list, description="Units valid for extending this case's handling limit."
    )


class CaseListItem(BaseModel):
    """A case in a list."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    number: str
    status: CaseStatus
    version: int
    class_code: str
    class_name: str | None = None
    address: str | None = None
    description: str | None = None
    source: str | None = None
    urgency: str
    lon: float
    lat: float
    grid_code: str | None
    department_id: int | None
    created_at: dt.datetime
    stage: str | None
    deadline_at: dt.datetime | None
    light: str = "none"


class CasePage(BaseModel):
    """A page of cases."""

    items: list[CaseListItem]
    total: int
    offset: int
    limit: int


class EventRead(BaseModel):
    """One entry of a case's timeline."""

    id: int
    seq: int
    action: CaseAction
    from_status: CaseStatus
    to_status: CaseStatus
    actor_id: int | None
    actor_role: str | None
    department_id: int | None
    at: dt.datetime
    lon: float | None
    lat: float | None
    note: str | None
    data: dict[str, Any]
    attachments: list[dict[str, Any]]


class AttachmentRead(BaseModel):
    """A stored photo."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    sha256: str
    media_type: str
    size: int
    width: int
    height: int
    taken_at: dt.datetime | None
    exif_lon: float | None
    exif_lat: float | None
    flags: list[dict[str, Any]]
    display_url: str = ""
    thumb_url: str = ""
