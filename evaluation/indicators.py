"""The indicator-set model of 综合评价: indicators, bands, weights, grades and region classes (pure data).

An indicator set is versioned *data* (``evaluation/data/indicators_v*.toml``, a city may add or replace
versions); :mod:`evaluation.indicator_loader` reads and validates the files into these frozen dataclasses,
and :mod:`evaluation.scoring` computes scores from them. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import TypeAlias

from evaluation.primitives import PRIMITIVES, Direction, IndicatorKind, SubjectType
from gridcity.errors import InvalidInput

UNKNOWN_SUBJECT_TYPE = "evaluation.unknown_subject_type"
REGION_CLASS_REQUIRED = "evaluation.region_class_required"
UNKNOWN_REGION_CLASS = "evaluation.unknown_region_class"
UNKNOWN_VERSION = "evaluation.unknown_version"
DUPLICATE_VERSION = "evaluation.duplicate_version"
NO_VERSION_IN_EFFECT = "evaluation.no_version_in_effect"


# --------------------------------------------------------------------------------------------------------
# Indicator-set model


def fmt_decimal(d: Decimal) -> str:
    """A decimal without exponent or trailing zeros (``12.50`` → ``12.5``)."""
    return format(d.normalize(), "f")


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
        hi = "+∞" if self.max_value is None else fmt_decimal(self.max_value)
        return f"[{fmt_decimal(self.min_value)}, {hi})"


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
    band_scaling: str  # "proportional": count bands scale with the period's length; "none": they do not
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


@dataclass(frozen=True)
class IndicatorSetRegistry:
    """Indicator sets keyed by version."""

    sets: tuple[IndicatorSet, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for s in self.sets:
            if s.version in seen:
                raise InvalidInput(f"指标体系版本 {s.version!r} 重复", code=DUPLICATE_VERSION, loc=["version"])
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
            raise InvalidInput(f"{on.isoformat()} 没有生效的指标体系", code=NO_VERSION_IN_EFFECT, loc=["period"])
        return max(candidates, key=lambda s: (s.effective_from, s.version))
