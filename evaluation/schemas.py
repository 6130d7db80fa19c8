"""API payloads of the evaluation endpoints (no SQLAlchemy here)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RankingRow(BaseModel):
    """One ranked subject with its score, grade, flags and explanation."""

    rank: int
    tied: bool
    subject_id: str
    name: str
    composite: Decimal
    grade: str
    flags: list[str]
    counts: dict[str, float]
    explanation: dict[str, Any]
    case_count: float | None = None  # the subject type's main denominator (案件数), as in the export


class RankingRead(BaseModel):
    """A ranking of one subject type for one period."""

    period: str
    period_start: dt.datetime
    period_end: dt.datetime
    subject_type: str
    version: str
    indicator_set_sha: str
    rows: list[RankingRow]


class EvidenceRow(BaseModel):
    """One case behind a number."""

    case_id: int
    number: str
    at: dt.datetime | None
    deadline_at: dt.datetime | None
    completed_at: dt.datetime | None
    overdue_seconds: float = Field(
        description="How far past the deadline (0 when on time), in working seconds "
        "(the working calendar; suspensions excluded) for every case, open or completed."
    )
    overdue_measure: str = Field("working_seconds", description="The unit of overdue_seconds: always working_seconds.")


class EvidenceRead(BaseModel):
    """The cases behind one primitive of one subject."""

    period: str
    subject_type: str
    subject_id: str
    primitive: str
    count: int
    cases: list[EvidenceRow]


class PublicationCreate(BaseModel):
    """Freeze a period's results."""

    model_config = ConfigDict(extra="forbid")
    period: str = Field(max_length=40, examples=["2026-10"])
    version: str | None = Field(default=None, max_length=40, description="Indicator-set version; default: in effect.")


class PublishedRow(BaseModel):
    """A frozen result row."""

    model_config = ConfigDict(from_attributes=True)
    subject_type: str
    subject_id: str
    subject_name: str
    rank: int
    composite: Decimal
    grade: str
    flags: list[str]
    counts: dict[str, float]
    explanation: dict[str, Any]


class PublicationRead(BaseModel):
    """A publication with its frozen rows."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    period: str
    period_start: dt.datetime
    period_end: dt.datetime
    version: str
    indicator_set_sha: str
    created_at: dt.datetime
    created_by: int | None
    results: list[PublishedRow] = Field(default_factory=list)
