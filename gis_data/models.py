"""The city's base map (底图): roads with names, buildings, water and green space, imported like other layers."""

from __future__ import annotations

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from gridcity.database import Base

BASE_LAYERS = ("road", "building", "water", "green")
"""The base-map layers; each is one MVT layer of the ``base`` tile."""


class BaseFeature(Base):
    """One feature of a base-map layer (WGS84). ``kind`` is free text such as 主干路 / 住宅 / 河流."""

    __tablename__ = "base_feature"

    id: Mapped[int] = mapped_column(primary_key=True)
    layer: Mapped[str] = mapped_column(String(16), index=True)
    code: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(100))
    geom: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))
