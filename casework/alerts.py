"""Deadline warnings (预警 yellow at 80 % of a stage's limit, 超时 red when overdue), each raised once.

One row per (case, stage, stage run, level): the unique key makes the monitor idempotent across restarts
and across workers (inserts use ON CONFLICT DO NOTHING). A new run of the same stage (e.g. rework after a
failed check) has another ``run_started_at`` and so gets its own warnings.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gridcity.database import Base
from gridcity.types import UTCDateTime, utcnow

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

LEVELS = ("yellow", "red")


class CaseAlert(Base):
    """A deadline warning raised for one run of a timed stage of a case."""

    __tablename__ = "case_alert"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    stage: Mapped[str] = mapped_column(String(12))
    run_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    level: Mapped[str] = mapped_column(String(6))  # yellow | red
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # The department the case was with when the warning was raised (who must act; stream visibility).
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("case_id", "stage", "run_started_at", "level", name="uq_case_alert_run_level"),
        sa.CheckConstraint("level IN ('yellow', 'red')", name="level"),
    )
