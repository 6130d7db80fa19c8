"""The routing table (派遣规则): effective-dated (class pattern × scope) → department rows.

Whether a class is dispatched automatically on filing is the class catalog's ``auto_dispatch`` flag
(``components/data``), which a city overrides in its ``classes.csv``; no table here duplicates it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gridcity.database import Base
from gridcity.types import UTCDateTime, utcnow


class RoutingRuleRow(Base):
    """One routing rule; validity is ``[valid_from, valid_to)`` (``valid_to`` NULL = open-ended)."""

    __tablename__ = "routing_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    class_code: Mapped[str] = mapped_column(String(8))  # C0101 | C01* | *
    scope_level: Mapped[str] = mapped_column(String(10))  # grid | community | street | district | city
    scope_code: Mapped[str] = mapped_column(String(15), default="")  # "" for city
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_routing_rule_scope", "scope_level", "scope_code", "class_code"),)
