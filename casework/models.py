"""Cases, their append-only event log, and attachments."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casework.lifecycle import CaseAction, CaseStatus
from gridcity.database import Base
from gridcity.roles import Role
from gridcity.types import BigId, UTCDateTime, enum_type, utcnow


class Case(Base):
    """A case (案卷). ``status`` and the cached columns below it are derived from ``case_event``."""

    __tablename__ = "case"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # inspector | public | hotline | open311 | self
    class_code: Mapped[str] = mapped_column(String(12), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # component | event
    urgency: Mapped[str] = mapped_column(String(10), default="normal")
    status: Mapped[CaseStatus] = mapped_column(enum_type(CaseStatus), index=True)
    version: Mapped[int] = mapped_column(default=1)
    lon: Mapped[float]
    lat: Mapped[float]
    # Only ever queried spatially (bbox, duplicates); lon/lat carry the point for reading, so not loaded.
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), deferred=True)
    address: Mapped[str | None] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(String(15), index=True)
    component_id: Mapped[str | None] = mapped_column(String(17), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    assigned_inspector_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("case.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Cached from the log (recomputable): the current timed stage and its deadline.
    stage: Mapped[str | None] = mapped_column(String(12))
    stage_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    warn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # when 80% of the limit is used
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


EVENT_ORDER_LOCK = 7_301_011
"""The PostgreSQL advisory lock (``pg_advisory_xact_lock``) that every writer of ``case_event`` holds until it
commits, so event ids become visible in increasing order: the live stream resumes by id, and a case tile's
version (the newest event id) must never be read between two commits that land out of order. Migration
``0006_case_event_order`` takes it in a trigger on every insert (its own copy of this number, as migrations are
frozen); the service and the legacy import take it earlier, at their start."""


class CaseEvent(Base):
    """One entry of the append-only case log. Never updated, never deleted."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    seq: Mapped[int]  # 1, 2, 3 ... within the case
    action: Mapped[CaseAction] = mapped_column(enum_type(CaseAction))
    from_status: Mapped[CaseStatus] = mapped_column(enum_type(CaseStatus))
    to_status: Mapped[CaseStatus] = mapped_column(enum_type(CaseStatus))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    actor_role: Mapped[Role | None] = mapped_column(enum_type(Role, 20))
    # The department the case is with after this event (None when with neither).
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    lon: Mapped[float | None]
    lat: Mapped[float | None]
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        sa.UniqueConstraint("case_id", "seq", name="uq_case_event_case_seq"),
        Index("ix_case_event_action_at", "action", "at"),
    )


class Attachment(Base):
    """A stored photo (content-addressed). Public renditions have metadata stripped."""

    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    media_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    taken_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    exif_lon: Mapped[float | None]
    exif_lat: Mapped[float | None]
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class EventAttachment(Base):
    """Which photos are evidence of which event (before/after/evidence)."""

    __tablename__ = "event_attachment"

    event_id: Mapped[int] = mapped_column(ForeignKey("case_event.id"), primary_key=True)
    attachment_id: Mapped[int] = mapped_column(ForeignKey("attachment.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(10), default="evidence")


class CaseCounter(Base):
    """The last case number used per year (readable numbers: 2026-000123)."""

    __tablename__ = "case_counter"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(default=0)


class PublicReporter(Base):
    """Personal data of a member of the public; never shown in public responses."""

    __tablename__ = "public_reporter"

    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(200))
    device_id: Mapped[str | None] = mapped_column(String(100))


class CaseLegacyKey(Base):
    """The key a case had in the system it was imported from (``gridcity cases import``): makes imports
    idempotent (a key already present is skipped)."""

    __tablename__ = "case_legacy_key"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), unique=True)
