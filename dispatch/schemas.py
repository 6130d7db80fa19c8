"""API payloads of routing: recommendations, duplicate proposals and routing rules."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gridcity.types import BoundedDate, PositiveId


class CandidateRead(BaseModel):
    """A department the dispatcher may choose."""

    model_config = ConfigDict(from_attributes=True)
    department_id: int
    name: str
    reason: str


class RecommendationRead(BaseModel):
    """The recommended department of a case and why."""

    model_config = ConfigDict(from_attributes=True)
    department_id: int | None
    department_name: str | None
    method: Literal["component", "rule", "none"]
    explanation: str
    ambiguous: bool
    candidates: list[CandidateRead]
    component_code: str | None
    distance_m: float | None
    grid_code: str | None
    rule_id: int | None


class DuplicateRead(BaseModel):
    """An open case that may be the same problem."""

    model_config = ConfigDict(from_attributes=True)
    case_id: int
    number: str
    class_code: str
    component_id: str | None
    status: str
    created_at: dt.datetime
    distance_m: float
    age_hours: float
    same: Literal["component", "class"]


class RoutingRuleIn(BaseModel):
    """A routing rule to load. Validity is [valid_from, valid_to); valid_to null = open-ended."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "class_code": "C01*",
                    "scope_level": "street",
                    "scope_code": "610302001",
                    "department_id": 3,
                    "valid_from": "2026-01-01",
                    "valid_to": None,
                }
            ]
        },
    )
    class_code: str = Field(max_length=8, description="C0101 | C01* | E01* | *")
    scope_level: Literal["grid", "community", "street", "district", "city"]
    scope_code: str = Field(default="", max_length=15, description="area code of the level; empty for city")
    department_id: PositiveId
    valid_from: BoundedDate
    valid_to: BoundedDate | None = None


class RoutingRuleRead(RoutingRuleIn):
    """A stored routing rule."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: dt.datetime
