"""Evaluation tables: the derived per-stage-run fact table, and frozen publications of results.

``stage_fact`` is derived from ``case_event`` (see :mod:`evaluation.facts`) and can be rebuilt from the log at
any time (``gridcity evaluate rebuild-facts``). Every indicator of a period is a handful of SQL ``GROUP BY``
aggregates over it (plus ``case_event`` for pure event counts); the covering indexes below are what make
those aggregates index-only scans on SQLite (goal G-S3) and cheap on PostgreSQL.

``publication`` / ``published_result`` freeze the results of one period under one indicator-set version:
rows are written once and never updated, so later case edits or a new indicator version never change
what was published.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from casework.models import CaseEvent
from gridcity.database import Base
from gridcity.types import UTCDateTime, utcnow


class StageFact(Base):
    """One run of a timed step of a case, with its deadline and outcome (derived, recomputable).

    ``stage`` is a lifecycle stage (verify, file, dispatch, handle, check), a pseudo-stage for a step the
    lifecycle does not time (send_verify, send_check, close; limits in ``evaluation/data/step_limits.toml``),
    ``report`` (an intake from creation to its filing decision, untimed) or ``case`` (the whole case from
    its first 立案 to 结案 against the overall deadline; one row per filed case, carrying case-level flags).
    """

    __tablename__ = "stage_fact"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(12))
    run_no: Mapped[int]
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    start_action: Mapped[str] = mapped_column(String(24))
    start_actor_id: Mapped[int | None] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    end_action: Mapped[str | None] = mapped_column(String(24))
    end_actor_id: Mapped[int | None] = mapped_column()
    # Set when the run ended by the action that completes the step (e.g. feedback for handle).
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # min(completed_at, deadline_at); None while neither exists (open run without a known deadline).
    determined_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    on_time: Mapped[bool] = mapped_column(default=False)
    overdue_seconds: Mapped[float] = mapped_column(default=0.0)
    department_id: Mapped[int | None] = mapped_column()
    assignee_id: Mapped[int | None] = mapped_column()
    grid_code: Mapped[str | None] = mapped_column(String(15))
    class_code: Mapped[str] = mapped_column(String(12))
    # dispatch / handle runs of a dispatch: when an approved send-back (回退) undid that dispatch.
    undone_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    first_extension_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # case rows (and report rows: the report's case was voided, also after filing)
    voided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    rework_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    public_verified: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (
        sa.UniqueConstraint("case_id", "stage", "run_no", name="uq_stage_fact_case_stage_run"),
        # Task families: filter on (stage, determined_at), everything else read from the index.
        Index(
            "ix_stage_fact_task",
            "stage",
            "determined_at",
            "start_action",
            "end_action",
            "ended_at",
            "completed_at",
            "on_time",
            "end_actor_id",
            "assignee_id",
            "department_id",
            "undone_at",
            "first_extension_at",
            "case_id",
        ),
        # Closing family (case rows by determination time).
        Index(
            "ix_stage_fact_closing",
            "stage",
            "determined_at",
            "voided_at",
            "completed_at",
            "on_time",
            "rework_at",
            "grid_code",
            "case_id",
        ),
        # Filing family (case rows by first 立案) and intake decisions (report rows by ended_at).
        Index(
            "ix_stage_fact_started",
            "stage",
            "started_at",
            "voided_at",
            "public_verified",
            "start_actor_id",
            "grid_code",
            "case_id",
        ),
        Index(
            "ix_stage_fact_ended",
            "stage",
            "ended_at",
            "start_action",
            "end_action",
            "completed_at",
            "on_time",
            "start_actor_id",
            "end_actor_id",
            "voided_at",
            "case_id",
        ),
        # The effective-dispatch lookup per case (attribution of case-level primitives to a department).
        Index("ix_stage_fact_case", "case_id", "stage", "start_action", "started_at", "undone_at", "department_id"),
        # PostgreSQL only (migration 0005): exactly the runs an effective dispatch can be, so the department
        # scorecard's join reads them by an index-only scan of a small index. SQLite cannot use a partial
        # index when the query's terms are bound parameters, and reads them from ix_stage_fact_case.
        Index(
            "ix_stage_fact_effective",
            "case_id",
            postgresql_include=["started_at", "undone_at", "department_id"],
            postgresql_where=sa.text("stage = 'handle' AND start_action = 'dispatch'"),
        ).ddl_if(dialect="postgresql"),
    )


# A covering index for the primitives counted straight from the log (受理数, 派遣数, 挂账数): declared here,
# next to the only queries that need it, so that casework's model module stays free of evaluation concerns.
Index("ix_case_event_action_at_actor", CaseEvent.action, CaseEvent.at, CaseEvent.actor_id, CaseEvent.case_id)


class Publication(Base):
    """A frozen evaluation of one period under one indicator-set version (never updated)."""

    __tablename__ = "publication"

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    version: Mapped[str] = mapped_column(String(40))
    indicator_set_sha: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    __table_args__ = (sa.UniqueConstraint("period", "version", name="uq_publication_period_version"),)


class PublishedResult(Base):
    """One subject's frozen result within a publication."""

    __tablename__ = "published_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publication.id"), index=True)
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str] = mapped_column(String(40))
    subject_name: Mapped[str] = mapped_column(String(200))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    composite: Mapped[Any] = mapped_column(Numeric(7, 2))
    grade: Mapped[str] = mapped_column(String(4))
    rank: Mapped[int]
    flags: Mapped[list[str]] = mapped_column(JSON)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON)


class RollupCount(Base):
    """Daily rollup (G-S1): one primitive family's counts for one subject on one local day.

    ``n1 .. n6`` are the family's primitives in the order of ``evaluation.service.Family.primitives``. The
    counts are *as of the current log* (every event that exists), bucketed by the local day of each counted
    item's reference time, so the sum over the days of a period equals the raw computation whenever the
    period ends after the latest event (see ``evaluation.service.rollup_is_exact``). Derived: rebuilt from
    ``stage_fact`` / ``case_event`` by ``evaluation.service.refresh_rollup_days``.

    Distinct-case counts (派遣数, 挂账数: a case counted once however often it happens) are not additive over
    days; they are stored as per-day distinct counts plus one correction row (``n1 = -1``) per repeat, on the
    repeat's day with ``since_at`` = the previous occurrence: a correction counts only when ``since_at`` is
    inside the period too, which makes the sum exactly one per case and subject.
    """

    __tablename__ = "eval_rollup"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(20))
    day: Mapped[dt.date] = mapped_column(sa.Date())
    family: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str] = mapped_column(String(40))
    since_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    n1: Mapped[int] = mapped_column(default=0)
    n2: Mapped[int] = mapped_column(default=0)
    n3: Mapped[int] = mapped_column(default=0)
    n4: Mapped[int] = mapped_column(default=0)
    n5: Mapped[int] = mapped_column(default=0)
    n6: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        # The dashboard read: one subject type, a range of days, everything else from the index.
        Index(
            "ix_eval_rollup_read",
            "subject_type",
            "day",
            "family",
            "subject_id",
            "since_at",
            "n1",
            "n2",
            "n3",
            "n4",
            "n5",
            "n6",
        ),
    )


class RollupDirty(Base):
    """A local day whose rollup rows are stale (written with the fact rows; consumed by the refresh)."""

    __tablename__ = "eval_rollup_dirty"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(sa.Date())
    # The latest event time of the changed cases: the rollup is exact only for periods ending after it.
    latest_event_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class RollupState(Base):
    """One row: the latest event time folded into the rollup, when it was last fully rebuilt, and its zone."""

    __tablename__ = "eval_rollup_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    latest_event_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    rebuilt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    tz: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")  # whose local days the rows are
