"""Compact payloads of the phone API (``/mobile/v1``). Responses leave out empty fields."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridcity.types import BoundedDatetime, Lat, Lon, PositiveId, Version

CoordSystemName = Literal["wgs84", "gcj02"]
MAX_BATCH_ITEMS = 100
MAX_TRACK_POINTS = 2000


class ReportIn(BaseModel):
    """A report from the field (the ``report`` JSON field of the multipart POST, or a batch item)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "class_code": "C0101",
                    "lon": 107.1448,
                    "lat": 34.3693,
                    "coord_system": "wgs84",
                    "description": "上水井盖破损",
                    "captured_at": "2026-03-14T09:26:53+08:00",
                }
            ]
        },
    )
    class_code: str = Field(min_length=2, max_length=12)
    lon: Lon
    lat: Lat
    coord_system: CoordSystemName = "wgs84"
    description: str | None = Field(default=None, max_length=4000)
    address: str | None = Field(default=None, max_length=256)
    component_id: str | None = Field(default=None, max_length=17)
    urgency: Literal["normal", "urgent"] = "normal"
    captured_at: BoundedDatetime | None = Field(default=None, description="When the phone took the report.")
    self_handled: bool = Field(default=False, description="自处理: fixed on the spot; needs before/after photos.")
    note: str | None = Field(default=None, max_length=4000, description="What was done (self-handled).")


class ResultIn(BaseModel):
    """The outcome of a task on site: verify (核实) / check (核查) by an inspector, or done by department staff."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"outcome": "pass", "lon": 107.1448, "lat": 34.3693}]},
    )
    outcome: Literal["pass", "fail", "done"] = Field(
        description="pass/fail for a verify or check task; done for a department's handling (feedback)."
    )
    lon: Lon
    lat: Lat
    coord_system: CoordSystemName = "wgs84"
    note: str | None = Field(default=None, max_length=4000)
    captured_at: BoundedDatetime | None = None
    version: Version | None = Field(default=None, description="The case version the phone saw.")


class TrackPointIn(BaseModel):
    """One breadcrumb. Only the shape is checked here; range problems refuse the single point."""

    model_config = ConfigDict(extra="forbid")
    at: BoundedDatetime
    lon: float = Field(allow_inf_nan=False)
    lat: float = Field(allow_inf_nan=False)
    accuracy_m: float | None = Field(default=None, allow_inf_nan=False)


class TrackIn(BaseModel):
    """A batch of breadcrumbs."""

    model_config = ConfigDict(extra="forbid")
    coord_system: CoordSystemName = "wgs84"
    points: list[TrackPointIn] = Field(min_length=1, max_length=MAX_TRACK_POINTS)


class BatchItemIn(BaseModel):
    """One queued submission of the offline queue; photos are attachment ids from ``POST /photos``."""

    model_config = ConfigDict(extra="forbid")
    key: str | None = Field(default=None, description="The item's own idempotency key (required; 400 without).")
    kind: Literal["report", "result", "tracks"]
    report: ReportIn | None = None
    case_id: PositiveId | None = None
    result: ResultIn | None = None
    tracks: TrackIn | None = None
    photo_ids: list[PositiveId] = Field(default_factory=list, max_length=9)
    before_ids: list[PositiveId] = Field(default_factory=list, max_length=9)
    after_ids: list[PositiveId] = Field(default_factory=list, max_length=9)


class BatchIn(BaseModel):
    """The offline queue. Items are validated one by one, so one malformed item refuses only itself."""

    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class UserOut(BaseModel):
    """Who logged in."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    role: str
    department_id: int | None = None


class TokenOut(BaseModel):
    """A bearer token for the phone."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut


class PhotoOut(BaseModel):
    """A stored photo and the advisory findings about it (EXIF vs. claim)."""

    id: int
    sha256: str | None = None
    taken_at: dt.datetime | None = None
    flags: list[str] | None = None


class TaskOut(BaseModel):
    """One entry of the task inbox."""

    id: int
    number: str
    task: Literal["verify", "check", "handle"]
    status: str
    version: int
    class_code: str
    urgency: str
    lon: float
    lat: float
    address: str | None = None
    description: str | None = None
    deadline_at: dt.datetime | None = None
    distance_m: float | None = None


class TaskList(BaseModel):
    """The inbox, by deadline then distance."""

    items: list[TaskOut]


class ReportOut(BaseModel):
    """One of my reports and its state."""

    id: int
    number: str
    status: str
    class_code: str
    lon: float
    lat: float
    created_at: dt.datetime
    grid_code: str | None = None
    self_handled: bool | None = None
    deadline_at: dt.datetime | None = None


class ReportPage(BaseModel):
    """A page of my reports, newest first."""

    items: list[ReportOut]
    total: int


class SubmissionOut(BaseModel):
    """What a report or a task result answers."""

    case_id: int
    number: str
    status: str
    version: int
    action: str
    grid_code: str | None = None
    lon: float | None = None
    lat: float | None = None
    component_id: str | None = Field(default=None, description="The component the case is about (given or snapped).")
    photos: list[PhotoOut] = Field(default_factory=list)


class RefusedPoint(BaseModel):
    """A breadcrumb that was not stored, and why."""

    index: int
    type: str
    msg: str


class TrackOut(BaseModel):
    """What a breadcrumb upload answers."""

    accepted: int
    duplicates: int
    refused: list[RefusedPoint] = Field(default_factory=list)


class BatchItemOut(BaseModel):
    """The answer to one queued item: its own status and result or error."""

    key: str | None = Field(default=None, description="The item's idempotency key (left out when it had none).")
    status: int
    replayed: bool = False
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class BatchOut(BaseModel):
    """Answers in the order of the items."""

    items: list[BatchItemOut]


class CoverageOut(BaseModel):
    """Patrol coverage of one inspector's supervision area on one day."""

    inspector_id: int
    date: dt.date
    grids_total: int
    grids_visited: int
    coverage: float | None = Field(description="visited / total; null when the inspector has no area.")
    points: int
    missed: list[str] = Field(default_factory=list)


# ---- what the field app (城管通, ``/m/``) reads besides the above -------------------------------------------


class ClassOut(BaseModel):
    """A class the inspector may report, by its Chinese name."""

    key: str
    name_zh: str
    name_en: str | None = None
    kind: str
    generation: str
    major_name_zh: str | None = None


class ClassList(BaseModel):
    """Enabled classes of both generations, no name twice; ``recent`` are the keys I reported lately."""

    items: list[ClassOut]
    recent: list[str] = Field(default_factory=list)


class NearComponentOut(BaseModel):
    """A component near the phone, of the class being reported."""

    code: str
    class_code: str
    name: str | None = None
    distance_m: float
    lon: float | None = None
    lat: float | None = None
    department_name: str | None = None


class NearComponents(BaseModel):
    """Components of a class within the snap tolerance of a point, nearest first, and where the point is."""

    inside_city: bool
    grid_code: str | None = None
    tolerance_m: float
    items: list[NearComponentOut]


class EventPhotoOut(BaseModel):
    """A photo of a case event (the renditions need the bearer token)."""

    id: int
    role: str
    thumb_url: str
    display_url: str


class EventOut(BaseModel):
    """One entry of a case's history."""

    seq: int
    action: str
    from_status: str | None = None
    to_status: str
    at: dt.datetime
    actor_role: str | None = None
    note: str | None = None
    photos: list[EventPhotoOut] = Field(default_factory=list)


class CaseDetailOut(BaseModel):
    """A case on the phone: a task's or one of my reports', with its photos, history and what I may do."""

    id: int
    number: str
    status: str
    version: int
    task: Literal["verify", "check", "handle"] | None = None
    class_code: str
    class_name: str | None = None
    urgency: str
    lon: float
    lat: float
    address: str | None = None
    description: str | None = None
    component_id: str | None = None
    grid_code: str | None = None
    created_at: dt.datetime
    deadline_at: dt.datetime | None = None
    distance_m: float | None = None
    onsite_radius_m: float = Field(description="Results must be sent from within this distance of the case.")
    allowed_actions: list[str] = Field(default_factory=list)
    extension_units: list[str] = Field(
        default_factory=list, description="Units an extension of this case's handling limit may use."
    )
    handle_limit: str | None = None
    photos: list[EventPhotoOut] = Field(default_factory=list)
    events: list[EventOut] = Field(default_factory=list)


class PhoneActionIn(BaseModel):
    """A department's action on a dispatched case from the phone: accept, ask for an extension or a send-back."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "action": "request_extension",
                    "note": "需更换井盖，备件两天后到",
                    "extension": {"value": 2, "unit": "work_day"},
                }
            ]
        },
    )
    action: Literal["accept", "request_extension", "request_sendback"]
    note: str | None = Field(default=None, max_length=4000)
    extension: dict[str, Any] | None = Field(default=None, description="{value, unit} for request_extension.")
    version: Version | None = Field(default=None, description="The case version the phone saw.")


class FieldConfigOut(BaseModel):
    """The deployment's limits the phone checks before queueing, and the city's extent."""

    max_upload_bytes: int
    max_photo_pixels: int
    max_photos: int
    onsite_radius_m: float
    snap_tolerance_m: float
    city_bbox: list[float] | None = Field(default=None, description="minlon, minlat, maxlon, maxlat (WGS84).")
