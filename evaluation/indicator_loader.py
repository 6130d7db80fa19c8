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
from datetime import date
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

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
            raise _bad(f"primitive {name!r} is a {PRIMITIVES[name].kind.value}, expected a {kind.value}", *loc)
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
                raise _bad(f"bands overlap: [{lo}, …) starts before the previous band ends at {prev_hi}", *loc, i)
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
        raise _bad(f"unknown indicator kind {kind_raw!r} (expected rate, band or value)", *loc, "kind") from None
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
                BandTable(rc, _bands(per_class[rc], *loc, "bands_by_region_class", rc)) for rc in region_classes
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
        main_denominator=_expr(t["main_denominator"], declared, *loc, "main_denominator", kind=PrimitiveKind.COUNT),
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
        {"min_cases", "region_classes", "band_period", "band_scaling"},
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
    band_scaling = doc.get("band_scaling", "proportional")
    if band_scaling not in ("proportional", "none"):
        raise _bad("band_scaling must be proportional or none", "band_scaling")

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
        band_scaling=band_scaling,
        min_cases=min_cases,
        region_classes=tuple(region_classes),
        grades=_grades(doc["grades"]),
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
