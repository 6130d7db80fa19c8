"""Pure scoring core of 综合评价 (evaluation of regions, departments and positions).

The rules (rates, score bands, weights, grade bands, minimum sample size) are versioned *data*
(``evaluation/data/indicators_v*.toml``); this module validates them, computes every indicator of one
subject from its counting primitives, and ranks subjects. It does no I/O except reading the indicator
files (the shipped ones through :mod:`importlib.resources`).

Counting conventions (what the SQL that produces ``counts`` must respect; see :data:`PRIMITIVES`):

* A period is ``[start, end)`` in the city's local time and the computation is *as of* ``end``: only
  events logged before ``end`` exist, so recomputing a past period gives the same numbers.
* A case is counted once. Cases merged into another case are never counted. Cases voided (作废) before
  the as-of time are excluded from the case-level primitives (filed, closing, handling, 有效上报) and counted
  in ``voided`` (作废 after 立案); the work positions did on the case before the void (受理, 核实, 按时立案,
  a dispatch later sent back) stays counted for them, as each primitive's definition says.
* A timed task (a stage run of the case timeline: 核实, 立案, 派遣, 处置, 核查, plus the untimed-so-far
  steps 发核实, 发核查, 结案) has a deadline from the SLA engine (working calendar, approved extensions
  added, suspended time excluded). It is *on time* when completed at or before its deadline, and it is
  *determined* at ``min(completed_at, deadline)``. A task is counted in the period that contains its
  determination time; a task neither completed nor overdue at the as-of time is not counted yet. So
  every task lands in exactly one period and each "on time" count is a subset of its "due" count.
* Rates are ``numerator / denominator × 100`` and 0 when the denominator is 0 (the standard's rule).

Arithmetic is exact (:class:`fractions.Fraction`); the published 综合指标值 is rounded to two decimals with
``ROUND_HALF_UP``, and grades and rankings use that published value.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

from gridcity.errors import InvalidInput

__all__ = [
    "PRIMITIVES",
    "Band",
    "BandIndicator",
    "BandTable",
    "ComponentScore",
    "Direction",
    "Expr",
    "GradeBand",
    "Indicator",
    "IndicatorKind",
    "IndicatorSet",
    "IndicatorSetRegistry",
    "Primitive",
    "PrimitiveKind",
    "Ranked",
    "RateIndicator",
    "RateResult",
    "RegionClass",
    "ScoreFlag",
    "SubjectDefinition",
    "SubjectScore",
    "SubjectType",
    "ValueIndicator",
    "Weight",
    "by_composite",
    "default_indicator_set",
    "city_registry",
    "default_registry",
    "grade",
    "load_indicator_set",
    "load_indicator_sets",
    "lookup_band",
    "rank",
    "rate",
    "round_half_up",
    "score_subject",
]

INVALID_SET = "evaluation.invalid_indicator_set"
UNKNOWN_VERSION = "evaluation.unknown_version"
DUPLICATE_VERSION = "evaluation.duplicate_version"
NO_VERSION_IN_EFFECT = "evaluation.no_version_in_effect"
UNKNOWN_SUBJECT_TYPE = "evaluation.unknown_subject_type"
UNKNOWN_PRIMITIVE = "evaluation.unknown_primitive"
MISSING_COUNT = "evaluation.missing_count"
INVALID_COUNT = "evaluation.invalid_count"
INCONSISTENT_COUNTS = "evaluation.inconsistent_counts"
REGION_CLASS_REQUIRED = "evaluation.region_class_required"
UNKNOWN_REGION_CLASS = "evaluation.unknown_region_class"
INVALID_VALUE = "evaluation.invalid_value"
INVALID_RANKING = "evaluation.invalid_ranking"

WEIGHT_TOLERANCE = 1e-9
_HUNDRED = Fraction(100)


# --------------------------------------------------------------------------------------------------------
# Enumerations


class SubjectType(StrEnum):
    """What is being evaluated."""

    REGION = "region"  # 区域: grid / community / street / district
    DEPARTMENT = "department"  # 专业部门
    INSPECTOR = "inspector"  # 监督员
    ACCEPTOR = "acceptor"  # 受理员
    SHIFT_LEADER = "shift_leader"  # 值班长
    DISPATCHER = "dispatcher"  # 派遣员


class Direction(StrEnum):
    """Whether a higher indicator value is better; a lower-better rate scores ``100 − rate``."""

    HIGHER_BETTER = "higher_better"
    LOWER_BETTER = "lower_better"


class PrimitiveKind(StrEnum):
    """A primitive is either a count of cases/tasks or a measured value in 0–100."""

    COUNT = "count"
    VALUE = "value"


class IndicatorKind(StrEnum):
    """How an indicator turns primitives into a 0–100 component score."""

    RATE = "rate"  # numerator / denominator × 100
    BAND = "band"  # a count looked up in score bands
    VALUE = "value"  # a 0–100 value used as is


class ScoreFlag(StrEnum):
    """Flags attached to a subject's score."""

    INSUFFICIENT_DATA = "insufficient_data"


# --------------------------------------------------------------------------------------------------------
# Counting primitives (fixed registry; the TOML only labels them)


@dataclass(frozen=True)
class Primitive:
    """One counting primitive computed from the case event log for a subject and period.

    Attributes:
        name: Stable key used in ``counts`` and in indicator files.
        name_zh: Chinese name.
        name_en: English gloss.
        kind: Count or value.
        definition: Exact counting rule (see the module docstring for the shared conventions).
    """

    name: str
    name_zh: str
    name_en: str
    kind: PrimitiveKind
    definition: str


def _p(name: str, zh: str, en: str, definition: str, kind: PrimitiveKind = PrimitiveKind.COUNT) -> Primitive:
    return Primitive(name, zh, en, kind, " ".join(definition.split()))


_PRIMITIVE_LIST: tuple[Primitive, ...] = (
    # -- intake: inspectors and acceptors --------------------------------------------------------------
    _p(
        "reported",
        "上报数",
        "reports submitted",
        """
        Reports created by the inspector (action report, or self_handle creating a case) whose filing
        decision happened in the period; the decision is the first of file (立案), void (作废 / 不予立案)
        or approve_self_handled. Reports merged into another case are not counted. Attribution: the
        reporting inspector.""",
    ),
    _p(
        "valid_reported",
        "有效上报数",
        "valid reports",
        """
        Of `reported`: those decided by file or approve_self_handled and not voided before the as-of
        time.""",
    ),
    _p(
        "missed",
        "漏报数",
        "missed problems (found by the public)",
        """
        Of `filed` for the inspector (cases filed in the period in a grid the inspector was responsible
        for at filing): cases created by a public report (public_report: hotline / 12345 / app / Open311)
        that passed on-site verification (verify_true). Same set as `public_verified`, attributed to the
        grid's inspector instead of the region.""",
    ),
    _p(
        "public_verified",
        "监督举报核实数",
        "verified public reports",
        """
        Of `filed`: cases created by a public report (public_report) that passed on-site verification
        (verify_true).""",
    ),
    _p(
        "accepted",
        "受理数",
        "public reports registered",
        """
        public_report events (案件登记) performed by the acceptor in the period, whatever their later
        outcome (verified false, voided and merged reports included: registration is the work counted).""",
    ),
    _p(
        "verify_dispatch_due",
        "核实应派发数",
        "verification tasks due to be sent",
        """
        Send-verification steps (from public_report to send_verify, deadline = registration time + the
        send-verify limit) whose determination time is in the period; cases voided or merged before
        sending are excluded. Attribution: the acceptor who sent it, else the assigned acceptor.""",
    ),
    _p(
        "verify_dispatch_on_time",
        "核实按时派发数",
        "verification tasks sent on time",
        """
        Of `verify_dispatch_due`: send_verify at or before the deadline.""",
    ),
    _p(
        "check_dispatch_due",
        "核查应派发数",
        "check tasks due to be sent",
        """
        Send-check steps (from each feedback to send_check, deadline = feedback time + the send-check
        limit; every rework round is a new step) whose determination time is in the period. Attribution:
        the acceptor who sent it, else the assigned acceptor.""",
    ),
    _p(
        "check_dispatch_on_time",
        "核查按时派发数",
        "check tasks sent on time",
        """
        Of `check_dispatch_due`: send_check at or before the deadline.""",
    ),
    _p(
        "should_verify",
        "应核实数",
        "verifications due",
        """
        Verify stage runs (started by send_verify, ended by verify_true / verify_false) assigned to the
        inspector whose determination time is in the period.""",
    ),
    _p(
        "verified_on_time",
        "按时核实数",
        "verifications on time",
        """
        Of `should_verify`: ended at or before the run's deadline.""",
    ),
    _p(
        "should_check",
        "应核查数",
        "checks due",
        """
        Check stage runs (started by send_check, ended by check_pass / check_fail) assigned to the
        inspector whose determination time is in the period; each rework round is a new run.""",
    ),
    _p(
        "checked_on_time",
        "按时核查数",
        "checks on time",
        """
        Of `should_check`: ended at or before the run's deadline.""",
    ),
    # -- filing: shift leaders, regions ----------------------------------------------------------------
    _p(
        "filed",
        "立案数",
        "cases filed",
        """
        Cases whose first file (立案) event is in the period and that were not voided before the as-of
        time. Attribution: region = the case's grid at filing lies in the region; department = the
        department of the effective dispatch as of the as-of time (cases not yet dispatched are not
        attributed); inspector = the inspector responsible for the grid at filing; shift leader = who
        performed the file action.""",
    ),
    _p(
        "voided",
        "作废数",
        "filed cases voided",
        """
        Cases whose first file event is in the period and that were voided (void) before the as-of time,
        i.e. filed in error. Reports voided without ever being filed are not counted here. Attribution as
        for `filed`.""",
    ),
    _p(
        "filed_on_time",
        "按时立案数",
        "cases filed on time",
        """
        Cases whose first file event is in the period (voided later or not) and whose file stage run (from
        report / verify_true to file) ended at or before its deadline; a subset of `filed` + `voided`.""",
    ),
    # -- dispatch: dispatchers ---------------------------------------------------------------------------
    _p(
        "should_dispatch",
        "应派遣数",
        "dispatches due",
        """
        Dispatch stage runs (from file, or from an approved send-back, to dispatch) whose determination
        time is in the period. Attribution: the dispatcher who dispatched, else the assigned dispatcher;
        unassigned overdue runs are attributed to nobody.""",
    ),
    _p(
        "dispatched",
        "派遣数",
        "cases dispatched",
        """
        Distinct cases the dispatcher dispatched (dispatch event) in the period, re-dispatches included
        once per case.""",
    ),
    _p(
        "dispatched_on_time",
        "按时派遣数",
        "dispatches on time",
        """
        Of `should_dispatch`: ended by dispatch at or before the run's deadline.""",
    ),
    _p(
        "dispatched_accurately",
        "准确派遣数",
        "accurate dispatches",
        """
        Of `should_dispatch`: ended by dispatch, and that dispatch was not undone by an approved send-back
        (approve_sendback, 回退 = mis-dispatch) before the as-of time.""",
    ),
    # -- handling: departments ---------------------------------------------------------------------------
    _p(
        "should_handle",
        "应处置数",
        "handling due",
        """
        Cases attributed to the department (its effective dispatch: the latest dispatch not undone by an
        approved send-back) whose handle stage run started by that dispatch has its determination time,
        min(first feedback, deadline), in the period. Rework runs are not counted here (see `rework`).""",
    ),
    _p(
        "handled",
        "处置数",
        "cases handled",
        """
        Of `should_handle`: the first feedback (处置反馈) of that handle run was given before the as-of
        time. Equals `handled_on_time` + `overdue_handled`.""",
    ),
    _p(
        "handled_on_time",
        "按期处置数",
        "cases handled on time",
        """
        Of `should_handle`: first feedback at or before the handling deadline.""",
    ),
    _p(
        "overdue_handled",
        "超期处置数",
        "cases handled late",
        """
        Of `should_handle`: first feedback after the deadline but before the as-of time.""",
    ),
    _p(
        "overdue_unhandled",
        "超期未处置数",
        "overdue, not yet handled",
        """
        Of `should_handle`: no feedback before the as-of time (the deadline has passed). Equals
        `should_handle` − `handled`.""",
    ),
    _p(
        "extended",
        "延期数",
        "cases with an approved extension",
        """
        Of `should_handle`: at least one approve_extension in that handle run before the as-of time.""",
    ),
    _p(
        "suspended",
        "挂账数",
        "cases put on account (suspended)",
        """
        Cases attributed to the subject with an approve_suspension (挂账) event in the period.""",
    ),
    # -- closing: regions, departments, shift leaders ----------------------------------------------------
    _p(
        "should_close",
        "应结案数",
        "closures due",
        """
        Filed, not voided cases whose closing determination time, min(close time, overall case deadline),
        is in the period. The overall deadline is the SLA engine's 立案→结案 deadline (approved extensions
        added, suspended time excluded); close time is the close event. Self-handled cases (never filed)
        are not counted. Attribution: region = the case's grid at filing; department = the department of
        the effective dispatch as of the as-of time.""",
    ),
    _p(
        "closed",
        "结案数",
        "cases closed",
        """
        Of `should_close`: closed before the as-of time.""",
    ),
    _p(
        "closed_on_time",
        "按期结案数",
        "cases closed on time",
        """
        Of `should_close`: closed at or before the overall case deadline.""",
    ),
    _p(
        "rework",
        "返工数",
        "cases sent back for rework",
        """
        Of `should_close`: cases with at least one check_fail (核查不通过 → 返工) before the as-of time. A
        case counts once however many rework rounds it had.""",
    ),
    _p(
        "close_task_due",
        "应结案办理数",
        "closing actions due (shift leader)",
        """
        Closing steps (from check_pass to close, deadline = check_pass time + the close limit) whose
        determination time is in the period. Attribution: the shift leader who closed, else the assigned
        shift leader.""",
    ),
    _p(
        "close_task_on_time",
        "按时结案办理数",
        "closing actions on time (shift leader)",
        """
        Of `close_task_due`: close at or before the deadline.""",
    ),
    # -- values --------------------------------------------------------------------------------------------
    _p(
        "patrol_coverage",
        "巡查覆盖率",
        "patrol coverage (percent of grids patrolled)",
        """
        A value in 0–100, not a count: the percentage of the grids assigned to the inspector at the start
        of the period in which the inspector's GPS track has at least one point during working hours of the
        period.""",
        PrimitiveKind.VALUE,
    ),
)

PRIMITIVES: Mapping[str, Primitive] = MappingProxyType({p.name: p for p in _PRIMITIVE_LIST})
"""The fixed registry of counting primitives, keyed by name."""


# --------------------------------------------------------------------------------------------------------
# Indicator-set model


@dataclass(frozen=True)
class Expr:
    """A sum/difference of primitives, e.g. ``filed + voided``.

    Attributes:
        terms: ``(sign, primitive name)`` pairs, sign ``+1`` or ``-1``.
    """

    terms: tuple[tuple[int, str], ...]

    @property
    def primitives(self) -> tuple[str, ...]:
        """The primitive names used, in order."""
        return tuple(name for _, name in self.terms)

    def evaluate(self, counts: Mapping[str, Fraction]) -> Fraction:
        """Evaluate exactly against already-validated counts."""
        return sum((sign * counts[name] for sign, name in self.terms), Fraction(0))

    def __str__(self) -> str:
        out = ""
        for i, (sign, name) in enumerate(self.terms):
            out += name if i == 0 else f" {'+' if sign > 0 else '-'} {name}"
        return out


@dataclass(frozen=True)
class Band:
    """A half-open score band ``[min_value, max_value)``; ``max_value`` None means unbounded."""

    min_value: Decimal
    max_value: Decimal | None
    score: Decimal

    def contains(self, value: Fraction) -> bool:
        """Whether ``value`` falls in this band."""
        if value < Fraction(self.min_value):
            return False
        return self.max_value is None or value < Fraction(self.max_value)

    def __str__(self) -> str:
        hi = "+∞" if self.max_value is None else _fmt_decimal(self.max_value)
        return f"[{_fmt_decimal(self.min_value)}, {hi})"


@dataclass(frozen=True)
class BandTable:
    """The bands of a band indicator for one region class (``region_class`` None: all subjects)."""

    region_class: str | None
    bands: tuple[Band, ...]


@dataclass(frozen=True)
class RateIndicator:
    """A ratio of primitives, in percent."""

    key: str
    name_zh: str
    name_en: str
    numerator: Expr
    denominator: Expr
    direction: Direction
    kind: IndicatorKind = IndicatorKind.RATE


@dataclass(frozen=True)
class BandIndicator:
    """A count scored by bands, optionally per region class."""

    key: str
    name_zh: str
    name_en: str
    input: Expr
    tables: tuple[BandTable, ...]
    kind: IndicatorKind = IndicatorKind.BAND

    @property
    def by_region_class(self) -> bool:
        """Whether the bands depend on the region class."""
        return self.tables[0].region_class is not None

    def bands_for(self, region_class: str | None) -> tuple[Band, ...]:
        """The bands that apply to ``region_class`` (ignored when the bands are not per class)."""
        for table in self.tables:
            if table.region_class is None or table.region_class == region_class:
                return table.bands
        raise InvalidInput(
            f"{self.name_zh} 需要区域类别 (region class required)",
            code=REGION_CLASS_REQUIRED,
            loc=["region_class"],
        )


@dataclass(frozen=True)
class ValueIndicator:
    """A 0–100 value primitive used directly (lower-better values score ``100 − value``)."""

    key: str
    name_zh: str
    name_en: str
    input: str
    direction: Direction
    kind: IndicatorKind = IndicatorKind.VALUE


Indicator: TypeAlias = RateIndicator | BandIndicator | ValueIndicator


@dataclass(frozen=True)
class Weight:
    """The weight (percent) of one indicator in the 综合指标值."""

    indicator: str
    percent: Decimal


@dataclass(frozen=True)
class SubjectDefinition:
    """The indicator set of one subject type."""

    subject_type: SubjectType
    name_zh: str
    name_en: str
    attribution: str
    applies_to: tuple[str, ...]
    main_denominator: Expr
    min_cases: int
    indicators: tuple[Indicator, ...]
    weights: tuple[Weight, ...]

    def weight_of(self, key: str) -> Decimal:
        """The weight of indicator ``key`` (0 for informational indicators)."""
        for w in self.weights:
            if w.indicator == key:
                return w.percent
        return Decimal(0)

    @property
    def primitives(self) -> tuple[str, ...]:
        """Every primitive this subject type needs in ``counts``, in first-use order."""
        names: list[str] = list(self.main_denominator.primitives)
        for ind in self.indicators:
            if isinstance(ind, RateIndicator):
                names += ind.numerator.primitives + ind.denominator.primitives
            elif isinstance(ind, BandIndicator):
                names += ind.input.primitives
            else:
                names.append(ind.input)
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class GradeBand:
    """A grade and its inclusive lower bound on the 综合指标值."""

    grade: str
    min_value: Decimal
    name_zh: str = ""
    name_en: str = ""


@dataclass(frozen=True)
class RegionClass:
    """A region class (一类区域 / 二类区域 …) used by per-class bands."""

    key: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class IndicatorSet:
    """One validated, versioned indicator set."""

    version: str
    title: str
    effective_from: date
    band_period: str
    min_cases: int
    region_classes: tuple[RegionClass, ...]
    grades: tuple[GradeBand, ...]
    primitive_labels: tuple[tuple[str, str, str], ...]  # (name, name_zh, name_en)
    subjects: tuple[SubjectDefinition, ...]
    sha256: str

    def subject(self, subject_type: SubjectType | str) -> SubjectDefinition:
        """The definition for ``subject_type``.

        Raises:
            InvalidInput: ``evaluation.unknown_subject_type`` if it is not defined in this set.
        """
        for s in self.subjects:
            if s.subject_type == subject_type:
                return s
        raise InvalidInput(
            f"评价对象类型 {subject_type!r} 未在指标体系 {self.version} 中定义",
            code=UNKNOWN_SUBJECT_TYPE,
            loc=["subject_type"],
        )

    def label(self, primitive: str) -> str:
        """The Chinese label of a primitive (this set's label, else the registry's)."""
        for name, zh, _ in self.primitive_labels:
            if name == primitive:
                return zh
        return PRIMITIVES[primitive].name_zh

    def region_class(self, key: str) -> RegionClass:
        """Resolve a region class by key or Chinese name.

        Raises:
            InvalidInput: ``evaluation.unknown_region_class``.
        """
        for rc in self.region_classes:
            if key in (rc.key, rc.name_zh):
                return rc
        raise InvalidInput(f"未知的区域类别 {key!r}", code=UNKNOWN_REGION_CLASS, loc=["region_class"])


# --------------------------------------------------------------------------------------------------------
# Loading and validation


def _bad(message: str, *loc: str | int) -> InvalidInput:
    return InvalidInput(message, code=INVALID_SET, loc=list(loc))


def _table(value: Any, *loc: str | int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad("expected a table", *loc)
    return value


def _check_keys(table: Mapping[str, Any], required: set[str], optional: set[str], *loc: str | int) -> None:
    missing = sorted(required - table.keys())
    if missing:
        raise _bad(f"missing key(s): {', '.join(missing)}", *loc)
    unknown = sorted(table.keys() - required - optional - {"description", "notes"})
    if unknown:
        raise _bad(f"unknown key(s): {', '.join(unknown)}", *loc)


def _text(value: Any, *loc: str | int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad("expected a non-empty string", *loc)
    return value


def _number(value: Any, *loc: str | int) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("expected a number", *loc)
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad("expected a finite number", *loc)
    return Decimal(str(value))


def _count_int(value: Any, *loc: str | int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad("expected a non-negative integer", *loc)
    return value


_NAME = r"[a-z][a-z0-9_]*"
_EXPR_RE = re.compile(rf"^\s*{_NAME}(\s*[+-]\s*{_NAME})*\s*$")
_TERM_RE = re.compile(rf"([+-]?)\s*({_NAME})")


def _expr(value: Any, declared: Mapping[str, Any], *loc: str | int, kind: PrimitiveKind) -> Expr:
    if not isinstance(value, str) or not _EXPR_RE.match(value):
        raise _bad("expected a primitive name or a sum/difference of names, e.g. 'filed + voided'", *loc)
    terms: list[tuple[int, str]] = []
    for sign, name in _TERM_RE.findall(value):
        if name not in PRIMITIVES:
            raise _bad(f"unknown primitive {name!r}", *loc)
        if name not in declared:
            raise _bad(f"primitive {name!r} is not declared in [primitives]", *loc)
        if PRIMITIVES[name].kind is not kind:
            raise _bad(
                f"primitive {name!r} is a {PRIMITIVES[name].kind.value}, expected a {kind.value}", *loc
            )
        terms.append((-1 if sign == "-" else 1, name))
    return Expr(tuple(terms))


def _direction(value: Any, *loc: str | int) -> Direction:
    try:
        return Direction(value)
    except ValueError:
        raise _bad(f"unknown direction {value!r} (expected higher_better or lower_better)", *loc) from None


def _bands(value: Any, *loc: str | int) -> tuple[Band, ...]:
    if not isinstance(value, list) or not value:
        raise _bad("expected a non-empty array of bands", *loc)
    bands: list[Band] = []
    for i, raw in enumerate(value):
        t = _table(raw, *loc, i)
        _check_keys(t, {"min", "score"}, {"max"}, *loc, i)
        lo = _number(t["min"], *loc, i, "min")
        hi = _number(t["max"], *loc, i, "max") if "max" in t else None
        score = _number(t["score"], *loc, i, "score")
        if not Decimal(0) <= score <= Decimal(100):
            raise _bad("band score must be within 0–100", *loc, i, "score")
        if hi is not None and hi <= lo:
            raise _bad(f"band max {hi} must be greater than min {lo}", *loc, i)
        if hi is None and i != len(value) - 1:
            raise _bad("only the last band may omit max", *loc, i)
        if i == 0 and lo != 0:
            raise _bad("the first band must start at 0", *loc, i, "min")
        if bands:
            prev_hi = bands[-1].max_value
            assert prev_hi is not None
            if lo < prev_hi:
                raise _bad(
                    f"bands overlap: [{lo}, …) starts before the previous band ends at {prev_hi}", *loc, i
                )
            if lo > prev_hi:
                raise _bad(f"gap between bands: {prev_hi} to {lo} is not covered", *loc, i)
        bands.append(Band(lo, hi, score))
    if bands[-1].max_value is not None:
        raise _bad("the last band must be open-ended (no max)", *loc, len(value) - 1)
    return tuple(bands)


def _indicator(
    key: str, raw: Any, declared: Mapping[str, Any], region_classes: Sequence[str], *loc: str | int
) -> Indicator:
    t = _table(raw, *loc)
    kind_raw = t.get("kind")
    try:
        kind = IndicatorKind(str(kind_raw))
    except ValueError:
        raise _bad(
            f"unknown indicator kind {kind_raw!r} (expected rate, band or value)", *loc, "kind"
        ) from None
    common = {"kind", "name_zh", "name_en"}
    if kind is IndicatorKind.RATE:
        _check_keys(t, common | {"numerator", "denominator", "direction"}, set(), *loc)
        return RateIndicator(
            key,
            _text(t["name_zh"], *loc, "name_zh"),
            _text(t["name_en"], *loc, "name_en"),
            _expr(t["numerator"], declared, *loc, "numerator", kind=PrimitiveKind.COUNT),
            _expr(t["denominator"], declared, *loc, "denominator", kind=PrimitiveKind.COUNT),
            _direction(t["direction"], *loc, "direction"),
        )
    if kind is IndicatorKind.BAND:
        _check_keys(t, common | {"input"}, {"bands", "bands_by_region_class"}, *loc)
        if ("bands" in t) == ("bands_by_region_class" in t):
            raise _bad("give exactly one of bands / bands_by_region_class", *loc)
        if "bands" in t:
            tables: tuple[BandTable, ...] = (BandTable(None, _bands(t["bands"], *loc, "bands")),)
        else:
            per_class = _table(t["bands_by_region_class"], *loc, "bands_by_region_class")
            if set(per_class) != set(region_classes):
                raise _bad(
                    f"bands_by_region_class must cover exactly the region classes {sorted(region_classes)}",
                    *loc,
                    "bands_by_region_class",
                )
            tables = tuple(
                BandTable(rc, _bands(per_class[rc], *loc, "bands_by_region_class", rc))
                for rc in region_classes
            )
        return BandIndicator(
            key,
            _text(t["name_zh"], *loc, "name_zh"),
            _text(t["name_en"], *loc, "name_en"),
            _expr(t["input"], declared, *loc, "input", kind=PrimitiveKind.COUNT),
            tables,
        )
    _check_keys(t, common | {"input", "direction"}, set(), *loc)
    value_expr = _expr(t["input"], declared, *loc, "input", kind=PrimitiveKind.VALUE)
    if len(value_expr.terms) != 1 or value_expr.terms[0][0] != 1:
        raise _bad("a value indicator takes a single value primitive", *loc, "input")
    return ValueIndicator(
        key,
        _text(t["name_zh"], *loc, "name_zh"),
        _text(t["name_en"], *loc, "name_en"),
        value_expr.terms[0][1],
        _direction(t["direction"], *loc, "direction"),
    )


def _subject(
    key: str, raw: Any, declared: Mapping[str, Any], region_classes: Sequence[str], default_min: int
) -> SubjectDefinition:
    loc: tuple[str, ...] = ("subjects", key)
    try:
        subject_type = SubjectType(key)
    except ValueError:
        raise _bad(f"unknown subject type {key!r}", *loc) from None
    t = _table(raw, *loc)
    _check_keys(
        t,
        {"name_zh", "name_en", "attribution", "main_denominator", "indicators", "weights"},
        {"applies_to", "min_cases"},
        *loc,
    )
    applies_raw = t.get("applies_to", [])
    if not isinstance(applies_raw, list):
        raise _bad("expected an array of strings", *loc, "applies_to")
    applies_to = tuple(_text(a, *loc, "applies_to", i) for i, a in enumerate(applies_raw))
    indicators_raw = _table(t["indicators"], *loc, "indicators")
    if not indicators_raw:
        raise _bad("a subject type needs at least one indicator", *loc, "indicators")
    indicators = tuple(
        _indicator(k, v, declared, region_classes, *loc, "indicators", k) for k, v in indicators_raw.items()
    )
    weights_raw = _table(t["weights"], *loc, "weights")
    keys = {ind.key for ind in indicators}
    weights: list[Weight] = []
    for k, v in weights_raw.items():
        if k not in keys:
            raise _bad(f"weight for unknown indicator {k!r}", *loc, "weights", k)
        w = _number(v, *loc, "weights", k)
        if w < 0:
            raise _bad("weights must not be negative", *loc, "weights", k)
        weights.append(Weight(k, w))
    total = sum((w.percent for w in weights), Decimal(0))
    if abs(total - 100) > Decimal(str(WEIGHT_TOLERANCE)):
        raise _bad(f"weights of {key} sum to {total}, not 100", *loc, "weights")
    return SubjectDefinition(
        subject_type=subject_type,
        name_zh=_text(t["name_zh"], *loc, "name_zh"),
        name_en=_text(t["name_en"], *loc, "name_en"),
        attribution=_text(t["attribution"], *loc, "attribution"),
        applies_to=applies_to,
        main_denominator=_expr(
            t["main_denominator"], declared, *loc, "main_denominator", kind=PrimitiveKind.COUNT
        ),
        min_cases=_count_int(t["min_cases"], *loc, "min_cases") if "min_cases" in t else default_min,
        indicators=indicators,
        weights=tuple(weights),
    )


def _grades(value: Any) -> tuple[GradeBand, ...]:
    if not isinstance(value, list) or not value:
        raise _bad("expected a non-empty array of grade bands", "grades")
    grades: list[GradeBand] = []
    for i, raw in enumerate(value):
        t = _table(raw, "grades", i)
        _check_keys(t, {"grade", "min"}, {"name_zh", "name_en"}, "grades", i)
        g = GradeBand(
            _text(t["grade"], "grades", i, "grade"),
            _number(t["min"], "grades", i, "min"),
            str(t.get("name_zh", "")),
            str(t.get("name_en", "")),
        )
        if i == 0 and g.min_value != 0:
            raise _bad("the lowest grade band must start at 0", "grades", i, "min")
        if g.min_value > 100:
            raise _bad("grade bounds must be within 0–100", "grades", i, "min")
        if grades and g.min_value <= grades[-1].min_value:
            raise _bad("grade bands must be listed with strictly ascending min", "grades", i, "min")
        if any(g.grade == other.grade for other in grades):
            raise _bad(f"duplicate grade {g.grade!r}", "grades", i, "grade")
        grades.append(g)
    return tuple(grades)


def load_indicator_set(text: str) -> IndicatorSet:
    """Parse and validate one indicator-set TOML document.

    Args:
        text: The TOML text (see ``evaluation/data/indicators_v1.toml`` for the schema).

    Returns:
        The validated, immutable indicator set.

    Raises:
        InvalidInput: ``evaluation.invalid_indicator_set`` with ``loc`` pointing at the offending key when
            the TOML is malformed, a key is missing or unknown, a primitive is not in :data:`PRIMITIVES`,
            a direction or kind is unknown, bands are not ascending/contiguous/non-overlapping, grade bands
            are not ascending, or the weights of a subject type do not sum to 100 (± 1e-9).
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(f"not valid TOML: {exc}", "toml") from None
    _check_keys(
        doc,
        {"version", "title", "effective_from", "grades", "primitives", "subjects"},
        {"min_cases", "region_classes", "band_period"},
    )
    version = _text(doc["version"], "version")
    title = _text(doc["title"], "title")
    eff = doc["effective_from"]
    if isinstance(eff, str):
        try:
            eff = date.fromisoformat(eff)
        except ValueError:
            raise _bad("expected a date YYYY-MM-DD", "effective_from") from None
    if not isinstance(eff, date) or hasattr(eff, "hour"):
        raise _bad("expected a date YYYY-MM-DD", "effective_from")
    band_period = doc.get("band_period", "month")
    if band_period not in ("month", "quarter", "year"):
        raise _bad("band_period must be month, quarter or year", "band_period")
    min_cases = _count_int(doc.get("min_cases", 0), "min_cases")

    region_classes: list[RegionClass] = []
    for k, v in _table(doc.get("region_classes", {}), "region_classes").items():
        t = _table(v, "region_classes", k)
        _check_keys(t, {"name_zh", "name_en"}, set(), "region_classes", k)
        region_classes.append(
            RegionClass(
                k,
                _text(t["name_zh"], "region_classes", k, "name_zh"),
                _text(t["name_en"], "region_classes", k, "name_en"),
            )
        )

    declared = _table(doc["primitives"], "primitives")
    labels: list[tuple[str, str, str]] = []
    for name, v in declared.items():
        if name not in PRIMITIVES:
            raise _bad(f"unknown primitive {name!r}", "primitives", name)
        t = _table(v, "primitives", name)
        _check_keys(t, {"name_zh", "name_en"}, set(), "primitives", name)
        labels.append(
            (
                name,
                _text(t["name_zh"], "primitives", name, "name_zh"),
                _text(t["name_en"], "primitives", name, "name_en"),
            )
        )

    subjects_raw = _table(doc["subjects"], "subjects")
    if not subjects_raw:
        raise _bad("at least one subject type is required", "subjects")
    class_keys = [rc.key for rc in region_classes]
    subjects = tuple(_subject(k, v, declared, class_keys, min_cases) for k, v in subjects_raw.items())

    return IndicatorSet(
        version=version,
        title=title,
        effective_from=eff,
        band_period=band_period,
        min_cases=min_cases,
        region_classes=tuple(region_classes),
        grades=_grades(doc["grades"]),
        primitive_labels=tuple(labels),
        subjects=subjects,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


@dataclass(frozen=True)
class IndicatorSetRegistry:
    """Indicator sets keyed by version."""

    sets: tuple[IndicatorSet, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for s in self.sets:
            if s.version in seen:
                raise InvalidInput(
                    f"指标体系版本 {s.version!r} 重复", code=DUPLICATE_VERSION, loc=["version"]
                )
            seen.add(s.version)

    @property
    def versions(self) -> tuple[str, ...]:
        """All versions, ordered by effective date then version."""
        return tuple(s.version for s in sorted(self.sets, key=lambda s: (s.effective_from, s.version)))

    def __contains__(self, version: object) -> bool:
        return any(s.version == version for s in self.sets)

    def get(self, version: str) -> IndicatorSet:
        """The set with this version.

        Raises:
            InvalidInput: ``evaluation.unknown_version``.
        """
        for s in self.sets:
            if s.version == version:
                return s
        raise InvalidInput(
            f"未知的指标体系版本 {version!r}（可用：{', '.join(self.versions) or '无'}）",
            code=UNKNOWN_VERSION,
            loc=["version"],
        )

    def in_effect(self, on: date) -> IndicatorSet:
        """The set in effect on a date: the latest ``effective_from`` not after it.

        Raises:
            InvalidInput: ``evaluation.no_version_in_effect`` if every set starts later.
        """
        candidates = [s for s in self.sets if s.effective_from <= on]
        if not candidates:
            raise InvalidInput(
                f"{on.isoformat()} 没有生效的指标体系", code=NO_VERSION_IN_EFFECT, loc=["period"]
            )
        return max(candidates, key=lambda s: (s.effective_from, s.version))


def load_indicator_sets(source: str | os.PathLike[str] | Iterable[str]) -> IndicatorSetRegistry:
    """Load several indicator sets into a registry keyed by version.

    Args:
        source: A directory (``str`` or path) whose ``indicators_*.toml`` files are read, or an iterable
            of TOML texts (a list, not a bare string).

    Returns:
        The registry.

    Raises:
        InvalidInput: ``evaluation.invalid_indicator_set`` for an invalid document,
            ``evaluation.duplicate_version`` when two documents share a version.
    """
    if isinstance(source, str | os.PathLike):
        directory = Path(source)
        if not directory.is_dir():
            raise InvalidInput(f"{directory} is not a directory", code=INVALID_SET, loc=["source"])
        texts = [p.read_text(encoding="utf-8") for p in sorted(directory.glob("indicators_*.toml"))]
    else:
        texts = list(source)
    return IndicatorSetRegistry(tuple(load_indicator_set(t) for t in texts))


def _shipped_texts() -> list[str]:
    data = resources.files(__name__.rpartition(".")[0]) / "data"
    entries = sorted(
        (e for e in data.iterdir() if e.name.startswith("indicators_") and e.name.endswith(".toml")),
        key=lambda e: e.name,
    )
    return [e.read_text(encoding="utf-8") for e in entries]


@lru_cache(maxsize=1)
def default_registry() -> IndicatorSetRegistry:
    """All indicator sets shipped in ``evaluation/data`` (cached)."""
    return load_indicator_sets(_shipped_texts())


@lru_cache(maxsize=8)
def city_registry(city_dir: Path | None) -> IndicatorSetRegistry:
    """The shipped indicator sets with a city's own ``indicators_*.toml`` from ``city_dir`` (cached).

    A city file whose version equals a shipped one replaces it (a city's own weights or bands for that
    version); other versions are added, so a city can bring in a new set from a date without code changes.
    Without ``city_dir`` (or without such files) this is :func:`default_registry`.
    """
    if city_dir is None or not any(Path(city_dir).glob("indicators_*.toml")):
        return default_registry()
    by_version = {s.version: s for s in default_registry().sets}
    by_version.update((s.version, s) for s in load_indicator_sets(Path(city_dir)).sets)
    return IndicatorSetRegistry(tuple(by_version.values()))


@lru_cache(maxsize=1)
def default_indicator_set() -> IndicatorSet:
    """The shipped v1 indicator set (cached)."""
    data = resources.files(__name__.rpartition(".")[0]) / "data" / "indicators_v1.toml"
    return load_indicator_set(data.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class RateResult:
    """One computed rate, with its inputs so the UI can explain it."""

    key: str
    name_zh: str
    name_en: str
    numerator_expr: str
    denominator_expr: str
    numerator: float
    denominator: float
    value: float  # percent, 0–100 (unrounded)
    direction: Direction


@dataclass(frozen=True)
class ComponentScore:
    """The 0–100 score of one indicator and its weighted contribution to the composite."""

    key: str
    name_zh: str
    name_en: str
    kind: IndicatorKind
    input_value: float  # the rate (percent), the banded count, or the value
    score: float  # 0–100
    weight: float  # percent; 0 for informational indicators
    contribution: float  # score × weight / 100
    band: Band | None = None


@dataclass(frozen=True)
class SubjectScore:
    """Everything computed for one subject in one period."""

    subject_type: SubjectType
    subject_id: str
    version: str
    region_class: str | None
    rates: tuple[RateResult, ...]
    components: tuple[ComponentScore, ...]
    composite: Decimal  # 综合指标值, published: 2 decimals, ROUND_HALF_UP
    composite_unrounded: float
    grade: str
    flags: frozenset[ScoreFlag]
    main_denominator_expr: str
    main_denominator: float
    min_cases: int
    explanation: tuple[str, ...]

    @property
    def insufficient_data(self) -> bool:
        """Whether the main denominator is below the minimum sample size."""
        return ScoreFlag.INSUFFICIENT_DATA in self.flags


def round_half_up(value: Fraction | Decimal | float | int, places: int = 2) -> Decimal:
    """Round exactly to ``places`` decimals, halves away from zero (``ROUND_HALF_UP``)."""
    fr = _to_fraction(value)
    scale = 10**places
    scaled = abs(fr) * scale
    n = math.floor(scaled + Fraction(1, 2))
    return Decimal(-n if fr < 0 else n).scaleb(-places)


def rate(num: float | int | Fraction | Decimal, den: float | int | Fraction | Decimal) -> float:
    """``num / den × 100`` in percent; 0 when ``den`` is 0 (as the standard says).

    Raises:
        InvalidInput: ``evaluation.invalid_count`` for negative or non-finite inputs.
    """
    return float(_rate(_count(num, "numerator"), _count(den, "denominator")))


def _rate(num: Fraction, den: Fraction) -> Fraction:
    return Fraction(0) if den == 0 else num / den * _HUNDRED


def _to_fraction(value: Fraction | Decimal | float | int) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        return Fraction(str(value))  # the decimal the float was written as
    return Fraction(value)


def _count(value: Any, *loc: str | int) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | Fraction):
        raise InvalidInput(f"{value!r} is not a number", code=INVALID_COUNT, loc=list(loc))
    if isinstance(value, float | Decimal) and not math.isfinite(value):
        raise InvalidInput(f"{value!r} is not finite", code=INVALID_COUNT, loc=list(loc))
    fr = _to_fraction(value)
    if fr < 0:
        raise InvalidInput(f"{value!r} is negative", code=INVALID_COUNT, loc=list(loc))
    return fr


def lookup_band(value: Fraction | Decimal | float | int, bands: Sequence[Band]) -> Band:
    """The band that contains ``value`` (bands are half-open ``[min, max)``).

    Raises:
        InvalidInput: ``evaluation.invalid_value`` if no band contains it (e.g. a negative value).
    """
    fr = _to_fraction(value)
    for band in bands:
        if band.contains(fr):
            return band
    raise InvalidInput(f"{value!r} lies in no score band", code=INVALID_VALUE, loc=["value"])


def grade(value: Decimal | float | int, bands: Sequence[GradeBand]) -> str:
    """The grade for a 综合指标值: the band with the highest lower bound not above ``value``.

    Args:
        value: The (published) composite value.
        bands: Grade bands in any order, each with an inclusive lower bound.

    Raises:
        InvalidInput: ``evaluation.invalid_value`` if the value is NaN or below every band.
    """
    if isinstance(value, float | Decimal) and not math.isfinite(value):
        raise InvalidInput(f"{value!r} is not a finite number", code=INVALID_VALUE, loc=["value"])
    fr = _to_fraction(value)
    for band in sorted(bands, key=lambda b: b.min_value, reverse=True):
        if fr >= Fraction(band.min_value):
            return band.grade
    raise InvalidInput(f"{value!r} lies below every grade band", code=INVALID_VALUE, loc=["value"])


def _fmt_decimal(d: Decimal) -> str:
    return format(d.normalize(), "f")


def _fmt_count(fr: Fraction) -> str:
    if fr.denominator == 1:
        return str(fr.numerator)
    return _fmt_decimal(round_half_up(fr, 4))


def _fmt2(fr: Fraction) -> str:
    return str(round_half_up(fr, 2))


def _grade_scale(grades: Sequence[GradeBand]) -> str:
    """E.g. ``A≥90，B≥75，C≥60，D≥40，E<40`` for ascending grade bands."""
    parts = [f"{g.grade}≥{_fmt_decimal(g.min_value)}" for g in reversed(grades[1:])]
    if len(grades) > 1:
        parts.append(f"{grades[0].grade}<{_fmt_decimal(grades[1].min_value)}")
    else:
        parts.append(f"{grades[0].grade}≥0")
    return "，".join(parts)


def _describe(expr: Expr, counts: Mapping[str, Fraction], indicator_set: IndicatorSet) -> str:
    if len(expr.terms) == 1 and expr.terms[0][0] == 1:
        name = expr.terms[0][1]
        return f"{indicator_set.label(name)} {_fmt_count(counts[name])}"
    parts = []
    for i, (sign, name) in enumerate(expr.terms):
        op = "" if i == 0 else (" + " if sign > 0 else " − ")
        parts.append(f"{op}{indicator_set.label(name)} {_fmt_count(counts[name])}")
    return f"({''.join(parts)} = {_fmt_count(expr.evaluate(counts))})"


def _validated_counts(definition: SubjectDefinition, counts: Mapping[str, Any]) -> dict[str, Fraction]:
    for name in counts:
        if name not in PRIMITIVES:
            raise InvalidInput(f"未知的统计量 {name!r}", code=UNKNOWN_PRIMITIVE, loc=["counts", name])
    out: dict[str, Fraction] = {}
    for name in definition.primitives:
        if name not in counts:
            raise InvalidInput(
                f"缺少统计量 {name} ({PRIMITIVES[name].name_zh})", code=MISSING_COUNT, loc=["counts", name]
            )
        fr = _count(counts[name], "counts", name)
        if PRIMITIVES[name].kind is PrimitiveKind.VALUE and fr > _HUNDRED:
            raise InvalidInput(f"{name} must be within 0–100", code=INVALID_COUNT, loc=["counts", name])
        out[name] = fr
    return out


def score_subject(
    subject_type: SubjectType | str,
    counts: Mapping[str, float | int | Decimal | Fraction],
    indicator_set: IndicatorSet,
    region_class: str | None = None,
    *,
    subject_id: str = "",
) -> SubjectScore:
    """Score one subject for one period.

    Args:
        subject_type: Which indicator set of ``indicator_set`` applies.
        counts: Primitive name → count (or 0–100 value) for this subject and period; every primitive the
            subject type uses must be present, extra known primitives are ignored.
        indicator_set: The versioned rules.
        region_class: Region class key (e.g. ``class1``) or Chinese name (``一类区域``); required when a
            band indicator of the subject type depends on it.
        subject_id: The subject's id, used for ranking and carried into the result.

    Returns:
        The rates with their numerators/denominators, the component scores, the 综合指标值 (2 decimals,
        ROUND_HALF_UP), its grade, flags and a Chinese explanation.

    Raises:
        InvalidInput: ``evaluation.unknown_subject_type``, ``evaluation.unknown_primitive``,
            ``evaluation.missing_count``, ``evaluation.invalid_count`` (negative, non-finite, a value
            outside 0–100), ``evaluation.inconsistent_counts`` (a numerator above its denominator, or a
            negative difference), ``evaluation.region_class_required``, ``evaluation.unknown_region_class``.
    """
    try:
        st = SubjectType(subject_type)
    except ValueError:
        raise InvalidInput(
            f"未知的评价对象类型 {subject_type!r}", code=UNKNOWN_SUBJECT_TYPE, loc=["subject_type"]
        ) from None
    definition = indicator_set.subject(st)
    rc = indicator_set.region_class(region_class) if region_class is not None else None
    rc_key = rc.key if rc is not None else None
    values = _validated_counts(definition, counts)

    rates: list[RateResult] = []
    components: list[ComponentScore] = []
    lines: list[str] = []
    weighted: list[tuple[str, Fraction]] = []
    total_weight = sum((Fraction(w.percent) for w in definition.weights), Fraction(0))
    composite = Fraction(0)

    for ind in definition.indicators:
        weight = Fraction(definition.weight_of(ind.key))
        band: Band | None = None
        if isinstance(ind, RateIndicator):
            num = ind.numerator.evaluate(values)
            den = ind.denominator.evaluate(values)
            if num < 0 or den < 0 or num > den:
                raise InvalidInput(
                    f"{ind.name_zh}: 分子 {ind.numerator} = {_fmt_count(num)} 与分母 {ind.denominator} = "
                    f"{_fmt_count(den)} 不一致（须 0 ≤ 分子 ≤ 分母）",
                    code=INCONSISTENT_COUNTS,
                    loc=["counts", ind.key],
                )
            value = _rate(num, den)
            score = value if ind.direction is Direction.HIGHER_BETTER else _HUNDRED - value
            rates.append(
                RateResult(
                    ind.key,
                    ind.name_zh,
                    ind.name_en,
                    str(ind.numerator),
                    str(ind.denominator),
                    float(num),
                    float(den),
                    float(value),
                    ind.direction,
                )
            )
            head = (
                f"{ind.name_zh} = {_describe(ind.numerator, values, indicator_set)} / "
                f"{_describe(ind.denominator, values, indicator_set)} = {_fmt2(value)}%"
            )
            if den == 0:
                head += "（分母为 0，按 0 计）"
            if ind.direction is Direction.LOWER_BETTER:
                head += f"，越低越好，按 100 − {ind.name_zh} = {_fmt2(score)} 计分"
        elif isinstance(ind, BandIndicator):
            value = ind.input.evaluate(values)
            if value < 0:
                raise InvalidInput(
                    f"{ind.name_zh}: {ind.input} = {_fmt_count(value)} 为负数",
                    code=INCONSISTENT_COUNTS,
                    loc=["counts", ind.key],
                )
            if ind.by_region_class and rc_key is None:
                raise InvalidInput(
                    f"{ind.name_zh} 按区域类别分档，须给出区域类别 (region_class)",
                    code=REGION_CLASS_REQUIRED,
                    loc=["region_class"],
                )
            band = lookup_band(value, ind.bands_for(rc_key))
            score = Fraction(band.score)
            cls = f"（{rc.name_zh}）" if ind.by_region_class and rc is not None else ""
            head = (
                f"{ind.name_zh}{cls}：{_describe(ind.input, values, indicator_set)} 落在 {band} 档 → "
                f"{_fmt2(score)} 分"
            )
        else:
            value = values[ind.input]
            score = value if ind.direction is Direction.HIGHER_BETTER else _HUNDRED - value
            head = f"{ind.name_zh} = {_fmt2(value)}"
            if ind.direction is Direction.LOWER_BETTER:
                head += f"，越低越好，按 100 − {ind.name_zh} = {_fmt2(score)} 计分"
        contribution = score * weight / total_weight if weight else Fraction(0)
        composite += contribution
        if weight:
            label = (
                f"(1 − {ind.name_zh})"
                if getattr(ind, "direction", None) is Direction.LOWER_BETTER
                else ind.name_zh
            )
            weighted.append((label, contribution))
            lines.append(
                f"{head}，权重 {_fmt_decimal(definition.weight_of(ind.key))}%，得分 {_fmt2(contribution)}"
            )
        else:
            lines.append(f"{head}（参考指标，不计入综合指标值）")
        components.append(
            ComponentScore(
                ind.key,
                ind.name_zh,
                ind.name_en,
                ind.kind,
                float(value),
                float(score),
                float(weight),
                float(contribution),
                band,
            )
        )

    published = round_half_up(composite, 2)
    letter = grade(published, indicator_set.grades)
    scale = _grade_scale(indicator_set.grades)
    lines.append(
        "综合指标值 = "
        + " + ".join(f"{label} {_fmt2(part)}" for label, part in weighted)
        + f" = {published}，等级 {letter}"
        + f"（{scale}）"
    )

    flags: set[ScoreFlag] = set()
    main = definition.main_denominator.evaluate(values)
    if main < definition.min_cases:
        flags.add(ScoreFlag.INSUFFICIENT_DATA)
        lines.append(
            f"样本不足：{_describe(definition.main_denominator, values, indicator_set)} < 最小样本量 "
            f"{definition.min_cases}，结果仅供参考，排名列于最后"
        )

    return SubjectScore(
        subject_type=st,
        subject_id=subject_id,
        version=indicator_set.version,
        region_class=rc_key,
        rates=tuple(rates),
        components=tuple(components),
        composite=published,
        composite_unrounded=float(composite),
        grade=letter,
        flags=frozenset(flags),
        main_denominator_expr=str(definition.main_denominator),
        main_denominator=float(main),
        min_cases=definition.min_cases,
        explanation=tuple(lines),
    )


# --------------------------------------------------------------------------------------------------------
# Ranking


@dataclass(frozen=True)
class Ranked:
    """One row of a ranking.

    Attributes:
        rank: Competition rank ("1224"): 1 + the number of subjects ranked strictly better in the same
            section; subjects with insufficient data form a second section after all others when
            ``insufficient_last`` (their ranks continue after the last rank of the first section).
        score: The subject's score.
        tied: Whether another subject shares this rank.
        tie_group: The shared rank when tied, else None.
        insufficient_data: Whether the subject is flagged ``insufficient_data``.
    """

    rank: int
    score: SubjectScore
    tied: bool
    tie_group: int | None
    insufficient_data: bool

    @property
    def subject_id(self) -> str:
        """The ranked subject's id."""
        return self.score.subject_id


def by_composite(score: SubjectScore) -> Decimal:
    """Default ranking key: the published 综合指标值."""
    return score.composite


def rank(
    scores: Iterable[SubjectScore],
    key: Callable[[SubjectScore], Decimal | float | int] = by_composite,
    *,
    insufficient_last: bool = True,
) -> list[Ranked]:
    """Rank subjects, best (highest key) first, with competition ranking and explicit ties.

    Args:
        scores: Scores of one subject type under one indicator-set version, with unique subject ids.
        key: The value ranked on (higher is better); defaults to the published 综合指标值.
        insufficient_last: Put subjects flagged ``insufficient_data`` after all others.

    Returns:
        Rows in rank order; within a tie, ordered by subject id.

    Raises:
        InvalidInput: ``evaluation.invalid_ranking`` for mixed subject types or versions, or duplicate ids.
    """
    items = list(scores)
    if len({(s.subject_type, s.version) for s in items}) > 1:
        raise InvalidInput(
            "排名只能在同一评价对象类型、同一指标体系版本内进行", code=INVALID_RANKING, loc=["scores"]
        )
    ids = [s.subject_id for s in items]
    if len(set(ids)) != len(ids):
        raise InvalidInput("评价对象 id 重复", code=INVALID_RANKING, loc=["scores"])

    keyed = [(_to_fraction(key(s)), s) for s in items]
    if insufficient_last:
        sections = [
            [p for p in keyed if not p[1].insufficient_data],
            [p for p in keyed if p[1].insufficient_data],
        ]
    else:
        sections = [keyed]

    out: list[Ranked] = []
    offset = 0
    for section in sections:
        section.sort(key=lambda p: (-p[0], p[1].subject_id))
        counts: dict[Fraction, int] = {}
        for k, _ in section:
            counts[k] = counts.get(k, 0) + 1
        position = 0
        current: Fraction | None = None
        current_rank = 0
        for k, s in section:
            position += 1
            if k != current:
                current, current_rank = k, offset + position
            tied = counts[k] > 1
            out.append(Ranked(current_rank, s, tied, current_rank if tied else None, s.insufficient_data))
        offset += len(section)
    return out
