"""The city's base map (底图): roads with names, buildings, water and green space, imported like other layers."""

from __future__ import annotations

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import BigInteger, String
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


CASES_REVISION = "cases"
"""The revision of the case tiles' data: the case table and the departments' names (migration 0008)."""


class LayerRevision(Base):
    """How often the data of a tile layer changed: the layer's data version.

    ``layer`` is the tile layer's name (``admin`` for the area table, ``grids``, ``components``, ``base``
    for base_feature) or :data:`CASES_REVISION` (the case and hot-spot layers: the case and department tables).

    Bumped by database triggers (migrations ``0007_layer_revision`` and ``0008_case_revision``) on every
    insert, update and delete of the layer's tables, whatever path writes them (imports, the demo loader, an
    admin's edit, the case service, plain SQL), so a feature changed in place (a component moved, a department
    renamed, a case repaired without an event) changes the version like a new one. On PostgreSQL the bump also
    row-locks the layer's revision until the writer commits, so revisions commit in order."""

    __tablename__ = "layer_revision"

    layer: Mapped[str] = mapped_column(String(32), primary_key=True)
    rev: Mapped[int] = mapped_column(BigInteger)
