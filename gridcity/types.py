"""Reusable column and field types."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import Path, Query
from pydantic import AfterValidator, Field
from sqlalchemy.orm import mapped_column
from sqlalchemy.types import TypeDecorator

IntPK = Annotated[int, mapped_column(primary_key=True)]


_SQLITE_DATETIME_FORMAT: Final = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)
"""SQLAlchemy's default text format of a SQLite ``DATETIME`` (what :class:`UTCDateTime` stores there)."""


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both back ends (SQLite stores them naive, as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[dt.datetime | None], Any] | None:
        """On SQLite, :meth:`process_bind_param` and SQLite's own text format in one step: ``isoformat`` gives
        the very string SQLAlchemy's ``DATETIME`` formats field by field (``YYYY-MM-DD HH:MM:SS.ffffff``) at
        about 2.5 times less cost; every write of a time (a bulk import writes millions) goes through here."""
        inner = self.impl_instance.dialect_impl(dialect)
        if dialect.name != "sqlite" or getattr(inner, "_storage_format", None) != _SQLITE_DATETIME_FORMAT:
            return super().bind_processor(dialect)
        utc = dt.UTC

        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            if value.tzinfo is not utc:
                value = value.astimezone(utc)
            return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"

        return process

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, examples=[107.1448])]
Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, examples=[34.3693])]

# ---- Bounded inputs (issue 15): every id, offset, date and name a client sends is checked here once -------

MAX_ID: Final = 2**31 - 1
"""Ids are 1..2^31-1 everywhere (PostgreSQL INTEGER); a larger number can name nothing and is a 422."""
MAX_OFFSET: Final = 2**31 - 1
PositiveId = Annotated[int, Field(gt=0, lt=2**31)]
"""An id in a body."""
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
"""An id in a path."""
OptionalIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
"""An optional id filter in a query."""
IdQuery = Annotated[int, Query(ge=1, le=MAX_ID)]
"""A required id in a query."""
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
"""How many rows a page skips."""
Version = Annotated[int, Field(ge=1, le=MAX_ID)]
"""An optimistic-locking version a client echoes back."""

MIN_DATE: Final = dt.date(1900, 1, 1)
MAX_DATE: Final = dt.date(2199, 12, 31)
"""Dates and datetimes outside these are refused (422): none can be meant, and the arithmetic done on them
(zone conversion, ±90 days, the next month) would overflow Python's datetime near year 1 or 9999."""


def _date_in_range(value: dt.date) -> dt.date:
    day = value.date() if isinstance(value, dt.datetime) else value
    if not MIN_DATE <= day <= MAX_DATE:
        raise ValueError(f"must be between {MIN_DATE} and {MAX_DATE}")
    return value


BoundedDate = Annotated[dt.date, AfterValidator(_date_in_range)]
"""A calendar date within 1900..2199."""
BoundedDatetime = Annotated[dt.datetime, AfterValidator(_date_in_range)]
"""A datetime within 1900..2199; may be naive (the service reads it in the city's zone) or a plain date."""


def localize(value: dt.datetime | None, tz: str) -> dt.datetime | None:
    """An input datetime made aware: a naive one (or a plain date, read as its midnight) is in zone ``tz``."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(tz))


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("may not contain control characters (U+0000-U+001F, U+007F-U+009F)")
    return value


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
Name = Annotated[str, AfterValidator(_no_control_characters)]
"""A name shown in lists, exports and XML (department, user): no control characters, not even tab/newline."""


def enum_type(enum_cls: type[enum.Enum], length: int = 24) -> sa.Enum:
    """A portable VARCHAR enum that stores the members' values (``'dispatch'``), not their names."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


# 64-bit ids for the fast-growing logs (events, breadcrumbs); SQLite needs INTEGER for its rowid alias.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
