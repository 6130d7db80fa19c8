"""Loading and validating the indicator sets of 综合评价: the shipped ``evaluation/data/indicators_*.toml``
and a city's own files (a city file with a shipped version replaces it; a new version is added).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from evaluation.indicators import (
    Band,
    BandIndicator,
    BandTable,
    Expr,
    GradeBand,
    Indicator,
    IndicatorSet,
    IndicatorSetRegistry,
    RateIndicator,
    RegionClass,
    SubjectDefinition,
    ValueIndicator,
    Weight,
)
from evaluation.primitives import PRIMITIVES, Direction, IndicatorKind, PrimitiveKind, SubjectType
from gridcity.errors import InvalidInput

INVALID_SET = "evaluation.invalid_indicator_set"
WEIGHT_TOLERANCE = 1e-9
_M = TypeVar("_M", bound="_Table")


# --------------------------------------------------------------------------------------------------------
# The shape of a document: pydantic models (keys, types, value ranges)
#
# Each table is checked by its model; what needs the rest of the document (a primitive declared in
# [primitives], the region classes, contiguous bands, weights summing to 100) is checked after, in the
# functions below. Every error is ``evaluation.invalid_indicator_set`` with ``loc`` naming the key.


def _bad(message: str, *loc: str | int) -> InvalidInput:
    return InvalidInput(message, code=INVALID_SET, loc=list(loc))


def _text_value(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PydanticCustomError("text", "expected a non-empty string")
    return value


def _number_value(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number", "expected a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("number", "expected a finite number")
    return Decimal(str(value))


def _count_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PydanticCustomError("count", "expected a non-negative integer")
    return value


_NAME = r"[a-z][a-z0-9_]*"
_EXPR_RE = re.compile(rf"^\s*{_NAME}(\s*[+-]\s*{_NAME})*\s*$")
_TERM_RE = re.compile(rf"([+-]?)\s*({_NAME})")


def _expr_value(value: Any) -> str:
    if not isinstance(value, str) or not _EXPR_RE.match(value):
        raise PydanticCustomError(
            "expression", "expected a primitive name or a sum/difference of names, e.g. 'filed + voided'"
        )
    return value


def _direction_value(value: Any) -> Direction:
    try:
        return Direction(value)
    except ValueError:
        raise PydanticCustomError(
            "direction", "unknown direction {value!r} (expected higher_better or lower_better)", {"value": value}
        ) from None


def _date_value(value: Any) -> date:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("date", "expected a date YYYY-MM-DD") from None
    if not isinstance(value, date) or isinstance(value, datetime):
        raise PydanticCustomError("date", "expected a date YYYY-MM-DD")
    return value


def _one_of(message: str, *allowed: str) -> BeforeValidator:
    def check(value: Any) -> str:
        if value not in allowed:
            raise PydanticCustomError("one_of", message)
        return str(value)

    return BeforeValidator(check)


Text = Annotated[str, BeforeValidator(_text_value)]
Number = Annotated[Decimal, BeforeValidator(_number_value)]
Count = Annotated[int, BeforeValidator(_count_value)]
ExprText = Annotated[str, BeforeValidator(_expr_value)]  # the names are checked against [primitives] after
DirectionValue = Annotated[Direction, BeforeValidator(_direction_value)]


class _Table(BaseModel):
    """A TOML table: unknown keys are refused; ``description`` and ``notes`` are allowed anywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    description: Any = None
    notes: Any = None


class LabelIn(_Table):
    """A region class or a primitive's labels."""

    name_zh: Text
    name_en: Text


class BandIn(_Table):
    """One score band ``[min, max)``."""

    min: Number
    max: Number | None = None
    score: Number

    @field_validator("score")
    @classmethod
    def _score_in_range(cls, v: Decimal) -> Decimal:
        if not Decimal(0) <= v <= Decimal(100):
            raise PydanticCustomError("score", "band score must be within 0–100")
        return v


class GradeIn(_Table):
    """One grade band."""

    grade: Text
    min: Number
    name_zh: Any = ""
    name_en: Any = ""


class _IndicatorIn(_Table):
    kind: str
    name_zh: Text
    name_en: Text


class RateIn(_IndicatorIn):
    """A rate indicator: numerator / denominator of count primitives."""

    numerator: ExprText
    denominator: ExprText
    direction: DirectionValue


class BandIndicatorIn(_IndicatorIn):
    """A band indicator: a count looked up in bands (one table, or one per region class)."""

    input: ExprText
    bands: list[BandIn] | None = None
    bands_by_region_class: dict[str, list[BandIn]] | None = None


class ValueIndicatorIn(_IndicatorIn):
    """A value indicator: one value primitive."""

    input: ExprText
    direction: DirectionValue


class SubjectIn(_Table):
    """One subject type's definition."""

    name_zh: Text
    name_en: Text
    attribution: Text
    main_denominator: ExprText
    indicators: dict[str, dict[str, Any]]  # each checked by its kind's model
    weights: dict[str, Number]
    applies_to: list[Text] = []
    min_cases: Count | None = None


class IndicatorSetIn(_Table):
    """A whole indicator-set document."""

    version: Text
    title: Text
    effective_from: Annotated[date, BeforeValidator(_date_value)]
    grades: list[GradeIn]
    primitives: dict[str, dict[str, Any]]  # names checked against PRIMITIVES first, then the labels
    subjects: dict[str, dict[str, Any]]  # subject types checked first, then each by SubjectIn
    min_cases: Count = 0
    region_classes: dict[str, LabelIn] = {}
    band_period: Annotated[str, _one_of("band_period must be month, quarter or year", "month", "quarter", "year")] = (
        "month"
    )
    band_scaling: Annotated[str, _one_of("band_scaling must be proportional or none", "proportional", "none")] = (
        "proportional"
    )


_KEYED = {"missing": "missing key(s): {}", "extra_forbidden": "unknown key(s): {}"}
_TYPES = {"model_type": "expected a table", "dict_type": "expected a table", "list_type": "expected an array"}


def _parse(model: type[_M], raw: Any, *loc: str | int) -> _M:
    """``raw`` checked by ``model``; the first problem as ``InvalidInput`` at ``loc`` + the key's path (a
    missing or unknown key is reported at its table, like the other loaders of the project)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        path = [p for p in err["loc"] if isinstance(p, str | int)]
        if err["type"] in _KEYED:
            raise _bad(_KEYED[err["type"]].format(path[-1]), *loc, *path[:-1]) from None
        raise _bad(_TYPES.get(err["type"], err["msg"]), *loc, *path) from None


# --------------------------------------------------------------------------------------------------------
# What needs the rest of the document


def _expr(value: str, declared: Mapping[str, Any], *loc: str | int, kind: PrimitiveKind) -> Expr:
    terms: list[tuple[int, str]] = []
    for sign, name in _TERM_RE.findall(value):
        if name not in PRIMITIVES:
            raise _bad(f"unknown primitive {name!r}", *loc)
        if name not in declared:
            raise _bad(f"primitive {name!r} is not declared in [primitives]", *loc)
        if PRIMITIVES[name].kind is not kind:
            raise _bad(f"primitive {name!r} is a {PRIMITIVES[name].kind.value}, expected a {kind.value}", *loc)
        terms.append((-1 if sign == "-" else 1, name))
    return Expr(tuple(terms))


def _bands(value: list[BandIn], *loc: str | int) -> tuple[Band, ...]:
    if not value:
        raise _bad("expected a non-empty array of bands", *loc)
    bands: list[Band] = []
    for i, b in enumerate(value):
        lo, hi = b.min, b.max
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
                raise _bad(f"bands overlap: [{lo}, …) starts before the previous band ends at {prev_hi}", *loc, i)
            if lo > prev_hi:
                raise _bad(f"gap between bands: {prev_hi} to {lo} is not covered", *loc, i)
        bands.append(Band(lo, hi, b.score))
    if bands[-1].max_value is not None:
        raise _bad("the last band must be open-ended (no max)", *loc, len(value) - 1)
    return tuple(bands)


def _indicator(
    key: str, raw: dict[str, Any], declared: Mapping[str, Any], region_classes: Sequence[str], *loc: str | int
) -> Indicator:
    kind_raw = raw.get("kind")
    try:
        kind = IndicatorKind(str(kind_raw))
    except ValueError:
        raise _bad(f"unknown indicator kind {kind_raw!r} (expected rate, band or value)", *loc, "kind") from None
    if kind is IndicatorKind.RATE:
        rate = _parse(RateIn, raw, *loc)
        return RateIndicator(
            key,
            rate.name_zh,
            rate.name_en,
            _expr(rate.numerator, declared, *loc, "numerator", kind=PrimitiveKind.COUNT),
            _expr(rate.denominator, declared, *loc, "denominator", kind=PrimitiveKind.COUNT),
            rate.direction,
        )
    if kind is IndicatorKind.BAND:
        band = _parse(BandIndicatorIn, raw, *loc)
        if (band.bands is None) == (band.bands_by_region_class is None):
            raise _bad("give exactly one of bands / bands_by_region_class", *loc)
        if band.bands is not None:
            tables: tuple[BandTable, ...] = (BandTable(None, _bands(band.bands, *loc, "bands")),)
        else:
            per_class = band.bands_by_region_class or {}
            if set(per_class) != set(region_classes):
                raise _bad(
                    f"bands_by_region_class must cover exactly the region classes {sorted(region_classes)}",
                    *loc,
                    "bands_by_region_class",
                )
            tables = tuple(
                BandTable(rc, _bands(per_class[rc], *loc, "bands_by_region_class", rc)) for rc in region_classes
            )
        return BandIndicator(
            key,
            band.name_zh,
            band.name_en,
            _expr(band.input, declared, *loc, "input", kind=PrimitiveKind.COUNT),
            tables,
        )
    value = _parse(ValueIndicatorIn, raw, *loc)
    value_expr = _expr(value.input, declared, *loc, "input", kind=PrimitiveKind.VALUE)
    if len(value_expr.terms) != 1 or value_expr.terms[0][0] != 1:
        raise _bad("a value indicator takes a single value primitive", *loc, "input")
    return ValueIndicator(key, value.name_zh, value.name_en, value_expr.terms[0][1], value.direction)


def _subject(
    key: str, raw: Any, declared: Mapping[str, Any], region_classes: Sequence[str], default_min: int
) -> SubjectDefinition:
    loc: tuple[str, ...] = ("subjects", key)
    try:
        subject_type = SubjectType(key)
    except ValueError:
        raise _bad(f"unknown subject type {key!r}", *loc) from None
    t = _parse(SubjectIn, raw, *loc)
    if not t.indicators:
        raise _bad("a subject type needs at least one indicator", *loc, "indicators")
    indicators = tuple(
        _indicator(k, v, declared, region_classes, *loc, "indicators", k) for k, v in t.indicators.items()
    )
    keys = {ind.key for ind in indicators}
    weights: list[Weight] = []
    for k, w in t.weights.items():
        if k not in keys:
            raise _bad(f"weight for unknown indicator {k!r}", *loc, "weights", k)
        if w < 0:
            raise _bad("weights must not be negative", *loc, "weights", k)
        weights.append(Weight(k, w))
    total = sum((w.percent for w in weights), Decimal(0))
    if abs(total - 100) > Decimal(str(WEIGHT_TOLERANCE)):
        raise _bad(f"weights of {key} sum to {total}, not 100", *loc, "weights")
    return SubjectDefinition(
        subject_type=subject_type,
        name_zh=t.name_zh,
        name_en=t.name_en,
        attribution=t.attribution,
        applies_to=tuple(t.applies_to),
        main_denominator=_expr(t.main_denominator, declared, *loc, "main_denominator", kind=PrimitiveKind.COUNT),
        min_cases=t.min_cases if t.min_cases is not None else default_min,
        indicators=indicators,
        weights=tuple(weights),
    )


def _grades(value: list[GradeIn]) -> tuple[GradeBand, ...]:
    if not value:
        raise _bad("expected a non-empty array of grade bands", "grades")
    grades: list[GradeBand] = []
    for i, t in enumerate(value):
        g = GradeBand(t.grade, t.min, str(t.name_zh), str(t.name_en))
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
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(f"not valid TOML: {exc}", "toml") from None
    doc = _parse(IndicatorSetIn, raw)
    region_classes = [RegionClass(k, v.name_zh, v.name_en) for k, v in doc.region_classes.items()]

    labels: list[tuple[str, str, str]] = []
    for name, v in doc.primitives.items():
        if name not in PRIMITIVES:
            raise _bad(f"unknown primitive {name!r}", "primitives", name)
        label = _parse(LabelIn, v, "primitives", name)
        labels.append((name, label.name_zh, label.name_en))

    if not doc.subjects:
        raise _bad("at least one subject type is required", "subjects")
    class_keys = [rc.key for rc in region_classes]
    subjects = tuple(_subject(k, v, doc.primitives, class_keys, doc.min_cases) for k, v in doc.subjects.items())

    return IndicatorSet(
        version=doc.version,
        title=doc.title,
        effective_from=doc.effective_from,
        band_period=doc.band_period,
        band_scaling=doc.band_scaling,
        min_cases=doc.min_cases,
        region_classes=tuple(region_classes),
        grades=_grades(doc.grades),
        primitive_labels=tuple(labels),
        subjects=subjects,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


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
