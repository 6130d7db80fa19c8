"""The city on the map: areas (district/street/community), unit grids, supervision areas and components."""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import JSON, Date, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gridcity.database import Base
from gridcity.types import BigId, UTCDateTime, utcnow

COMPONENT_STATES = ("完好", "破损", "丢失", "占用", "废弃", "移除")
"""Component states (管理部件状态, standards.md §2.2)."""

AREA_LEVELS = ("district", "street", "community")


class Area(Base):
    """An administrative area: district (6-digit code), street (9) or community (12)."""

    __tablename__ = "area"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    level: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    parent_code: Mapped[str | None] = mapped_column(String(12), index=True)
    region_class: Mapped[str] = mapped_column(String(16), default="class1")
    geom: Mapped[WKBElement] = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True))


class Grid(Base):
    """A unit grid (单元网格, ~10,000 m²) with its 15-digit code."""

    __tablename__ = "grid"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(15), unique=True)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    region_class: Mapped[str] = mapped_column(String(16), default="class1")
    area_m2: Mapped[float] = mapped_column(Float)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POLYGON", srid=4326, spatial_index=True))
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)


class SupervisionArea(Base):
    """An inspector's patrol area (监督员责任区): a set of unit grids."""

    __tablename__ = "supervision_area"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)


class SupervisionGrid(Base):
    """Membership of a unit grid in a supervision area."""

    __tablename__ = "supervision_grid"

    supervision_area_id: Mapped[int] = mapped_column(ForeignKey("supervision_area.id"), primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), primary_key=True, index=True)


class SupervisionHistory(Base):
    """A past assignment of a unit grid to an inspector (监督员责任区 history), closed at ``valid_to``.

    The current assignment is ``supervision_area`` / ``supervision_grid``; every change made through
    :func:`components.service.assign_supervision_area` closes the grid's previous assignment here, so that
    evaluations attribute each case to the inspector responsible for its grid *at the time* (``valid_from``
    None: since before any recorded change; ``inspector_id`` None: nobody was responsible). For an instant
    ``t`` the row with ``valid_from <= t < valid_to`` applies; when none does, ``t`` is after the grid's last
    change and the current assignment applies.
    """

    __tablename__ = "supervision_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    supervision_area_id: Mapped[int | None] = mapped_column()
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    valid_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    valid_to: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Component(Base):
    """A managed component (管理部件) with its identifier, class, position, owners and state."""

    __tablename__ = "component"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(17), unique=True)
    class_code: Mapped[str] = mapped_column(String(12), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    geom: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))
    grid_code: Mapped[str | None] = mapped_column(String(15), index=True)
    main_department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    owner_department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    maintainer_department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    state: Mapped[str] = mapped_column(String(8), default="完好")
    initial_date: Mapped[dt.date | None] = mapped_column(Date)
    change_date: Mapped[dt.date | None] = mapped_column(Date)
    data_source: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(256))
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ComponentHistory(Base):
    """One change of a component (append-only): what an import created or changed."""

    __tablename__ = "component_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    component_code: Mapped[str] = mapped_column(String(17), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    action: Mapped[str] = mapped_column(String(10))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(100))


class PatrolPoint(Base):
    """One GPS breadcrumb of an inspector's patrol, with the unit grid it fell in (WGS84)."""

    __tablename__ = "patrol_point"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inspector_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    lon: Mapped[float]
    lat: Mapped[float]
    accuracy_m: Mapped[float | None]
    grid_code: Mapped[str | None] = mapped_column(String(15))

    # One point per inspector and instant: a re-uploaded breadcrumb is a no-op. The constraint's index
    # also serves the per-inspector, per-day coverage query.
    __table_args__ = (UniqueConstraint("inspector_id", "at", name="uq_patrol_point_inspector_at"),)


class Address(Base):
    """A standard address (标准地址): a door plate (门牌), a named place, or a road with a representative point.

    ``search_text`` is the normalised text the look-up matches (name, road, area names, aliases); its
    character bigrams are indexed in :class:`AddressGram`.
    """

    __tablename__ = "address"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(12))  # door_plate | place | road
    name: Mapped[str] = mapped_column(String(200))  # 经二路12号 / 宝鸡市中心医院 / 经二路
    road: Mapped[str | None] = mapped_column(String(100))
    number: Mapped[str | None] = mapped_column(String(20))
    full_name: Mapped[str] = mapped_column(String(300))  # 渭滨区 经二路街道 经二路12号
    lon: Mapped[float]
    lat: Mapped[float]
    grid_code: Mapped[str | None] = mapped_column(String(15), index=True)
    community_code: Mapped[str | None] = mapped_column(String(12))
    search_text: Mapped[str] = mapped_column(String(400))
    name_key: Mapped[str] = mapped_column(String(200))  # the normalised name (ranks exact and prefix hits)

    # Name prefixes (经二路12 → 经二路12号, 经二路120号 ...) by a B-tree range on name_key in byte order
    # (gridcity.spatial.prefix_index_sql, migration 0004): on PostgreSQL the column is indexed COLLATE "C",
    # rendered by postgresql_ops (written after the column, where CREATE INDEX takes a collation).
    __table_args__ = (Index("ix_address_name_key", "name_key", postgresql_ops={"name_key": 'COLLATE "C"'}),)


class AddressGram(Base):
    """The n-gram index of the standard addresses: one row per (character bigram, address).

    Plain B-tree on both databases (no FTS, no pg_trgm): the look-up counts the postings of each bigram of
    the query (capped), walks the rarest one and checks the others on the candidate's text.
    """

    __tablename__ = "address_gram"

    gram: Mapped[str] = mapped_column(String(8), primary_key=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("address.id", ondelete="CASCADE"), primary_key=True)
