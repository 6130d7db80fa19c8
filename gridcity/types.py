"""Reusable column and field types."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.orm import mapped_column
from sqlalchemy.types import TypeDecorator

IntPK = Annotated[int, mapped_column(primary_key=True)]


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
PositiveId = Annotated[int, Field(gt=0, lt=2**31)]


def enum_type(enum_cls: type[enum.Enum], length: int = 24) -> sa.Enum:
    """A portable VARCHAR enum that stores the members' values (``'dispatch'``), not their names."""
    return sa.Enum(
        enum_cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )

# 64-bit ids for the fast-growing logs (events, breadcrumbs); SQLite needs INTEGER for its rowid alias.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
