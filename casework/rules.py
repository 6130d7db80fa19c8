"""The city's standard tables for casework: class catalogue, working calendar, handling standards.

This is where they are read from files and handed to their loaders (:mod:`casework.tables`,
:mod:`components.catalog_loader`); the modules that use them (:mod:`casework.deadlines`,
:mod:`components.catalog`) are pure and read no files.

Shipped defaults live in ``casework/data`` and ``components/data``; a city overrides them with files of the
same names in its ``city_dir`` (settings ``GRIDCITY_CITY_DIR``): ``calendar.toml`` replaces the calendar,
``handling_standards.csv`` rows override shipped rows, ``classes.csv`` adds or disables classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from casework import deadlines, tables
from components import catalog as class_catalog
from components import catalog_loader


@dataclass(frozen=True)
class CaseRules:
    """Everything data-driven that the case pipeline consults."""

    catalog: class_catalog.ClassCatalog
    calendar: deadlines.WorkCalendar
    standards: deadlines.StandardsTable
    #: The city's override folder these rules were read with; packages above casework read their own
    #: tables (e.g. evaluation's step limits) from the same place.
    city_dir: Path | None = None
    #: How near (metres) a verify/check result must be sent from (settings ``GRIDCITY_ONSITE_RADIUS_M``).
    onsite_radius_m: float = 200.0


DATA_DIR = Path(__file__).resolve().parent / "data"
"""The shipped tables of casework (``calendar.toml``, ``handling_standards.csv``)."""


def _shipped(name: str) -> str:
    return (resources.files("casework") / "data" / name).read_text("utf-8")


@lru_cache(maxsize=1)
def default_calendar() -> deadlines.WorkCalendar:
    """The shipped default calendar (``casework/data/calendar.toml``, cached); cities override it."""
    return tables.load_calendar(_shipped("calendar.toml"))


@lru_cache(maxsize=1)
def default_handling_standards() -> deadlines.StandardsTable:
    """The shipped default handling standards (``casework/data/handling_standards.csv``, cached)."""
    return tables.load_handling_standards(_shipped("handling_standards.csv"))


def _read_override(city_dir: Path | None, name: str) -> str | None:
    if city_dir is None:
        return None
    path = city_dir / name
    return path.read_text(encoding="utf-8") if path.exists() else None


@lru_cache(maxsize=8)
def load_rules(city_dir: Path | None = None) -> CaseRules:
    """Load the shipped tables, with the city's overrides applied."""
    data = resources.files("casework") / "data"
    calendar_text = _read_override(city_dir, "calendar.toml") or (data / "calendar.toml").read_text("utf-8")
    standards = tables.load_handling_standards((data / "handling_standards.csv").read_text("utf-8"))
    override = _read_override(city_dir, "handling_standards.csv")
    if override:
        standards = deadlines.merge(standards, tables.load_handling_standards(override))
    class_override = _read_override(city_dir, "classes.csv")
    catalog = (
        catalog_loader.default_catalog()
        if class_override is None
        else catalog_loader.load_catalog(catalog_loader.shipped_csv_texts(), class_override)
    )
    return CaseRules(
        catalog=catalog, calendar=tables.load_calendar(calendar_text), standards=standards, city_dir=city_dir
    )
