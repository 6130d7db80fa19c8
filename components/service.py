"""Component and grid services used by the case pipeline (geography arrives with the GIS work)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridcity import spatial


@dataclass(frozen=True)
class Located:
    """Where a point falls."""

    grid_code: str | None
    inside_city: bool


def locate_point(session: Session, *, lon: float, lat: float) -> Located:
    """The unit grid containing the point (none while no grids are loaded)."""
    return Located(grid_code=None, inside_city=True)


def check_point_in_city(session: Session, *, lon: float, lat: float) -> str | None:
    """Refuse points outside the city; return the grid code of the point."""
    return locate_point(session, lon=lon, lat=lat).grid_code


def check_component_for_case(session: Session, *, component_id: str, class_code: str) -> None:
    """Check that a reported component ID is plausible for the class."""


def bbox_clause(session: Session, geom_col: Any, bbox: tuple[float, float, float, float]) -> sa.ColumnElement[bool]:
    """A spatially indexed bbox filter on ``geom_col``."""
    return spatial.bbox_filter(session, geom_col, bbox)
