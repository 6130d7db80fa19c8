"""Pure scoring core of 综合评价 (evaluation of regions, departments and positions).

The rules (rates, score bands, weights, grade bands, minimum sample size) are versioned *data*
(:mod:`evaluation.indicators`, loaded by :mod:`evaluation.indicator_loader`); this module computes every
indicator of one subject from its counting primitives (:mod:`evaluation.primitives`) and ranks subjects.
Pure: no I/O.

Counting conventions (what the SQL that produces ``counts`` must respect; see :data:`PRIMITIVES`):

* A period is ``[start, end)`` in the city's local time and the computation is *as of* ``end``: only
  events logged before ``end`` exist, so recomputing a past period gives the same numbers.
* A case is counted once. Cases merged into another case are never counted. Cases voided (作废) before
  the as-of time are excluded from the case-level primitives (filed, closing, handling, 有效上报) and counted
  in ``voided`` (作废 after 立案); the work positions did on the case before the void (受理, 核实, 按时立案,
  a dispatch later sent back) stays counted for them, as each primitive's definition says.
* A timed task (a stage run of the case timeline: 核实, 立案, 派遣, 处置, 核查, plus the untimed-so-far
  steps 发核实, 发核查, 结案) has a deadline from the SLA engine (working calendar, approved extensions
  added, suspended time excluded). It is *on time* when the time elapsed to its completion, in the
  limit's measure (working time for working units), is at most the limit, and it is *determined* at its
  completion if on time, else at the first instant it is late (for a deadline at the end of a working
  period, the start of the next one). A task is counted in the period that contains its
  determination time; a task neither completed nor overdue at the as-of time is not counted yet. So
  every task lands in exactly one period and each "on time" count is a subset of its "due" count.
* Rates are ``numerator / denominator × 100`` and 0 when the denominator is 0 (the standard's rule).

Arithmetic is exact (:class:`fractions.Fraction`); the published 综合指标值 is rounded to two decimals with
``ROUND_HALF_UP``, and grades and rankings use that published value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from evaluation.indicators import (
    REGION_CLASS_REQUIRED,
    UNKNOWN_SUBJECT_TYPE,
    Band,
    BandIndicator,
    Expr,
    GradeBand,
    IndicatorSet,
    RateIndicator,
    SubjectDefinition,
    fmt_decimal,
)
from evaluation.primitives import PRIMITIVES, Direction, IndicatorKind, PrimitiveKind, ScoreFlag, SubjectType
from gridcity.errors import InvalidInput

UNKNOWN_PRIMITIVE = "evaluation.unknown_primitive"
MISSING_COUNT = "evaluation.missing_count"
INVALID_COUNT = "evaluation.invalid_count"
INCONSISTENT_COUNTS = "evaluation.inconsistent_counts"
INVALID_VALUE = "evaluation.invalid_value"
INVALID_RANKING = "evaluation.invalid_ranking"

_HUNDRED = Fraction(100)


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


_PERIOD_ZH = {"month": "月", "quarter": "季度", "year": "年"}
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def band_scale(kind: str, days: int, band_period: str) -> Fraction:
    """A period's length in band periods: exact for months, quarters and years (1 quarter = 3 months);
    weeks and date ranges count ``days × 12 / 365`` months."""
    months = Fraction(_MONTHS[kind]) if kind in _MONTHS else Fraction(days * 12, 365)
    return months / _MONTHS[band_period]


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


def _fmt_count(fr: Fraction) -> str:
    if fr.denominator == 1:
        return str(fr.numerator)
    return fmt_decimal(round_half_up(fr, 4))


def _fmt2(fr: Fraction) -> str:
    return str(round_half_up(fr, 2))


def _grade_scale(grades: Sequence[GradeBand]) -> str:
    """E.g. ``A≥90，B≥75，C≥60，D≥40，E<40`` for ascending grade bands."""
    parts = [f"{g.grade}≥{fmt_decimal(g.min_value)}" for g in reversed(grades[1:])]
    if len(grades) > 1:
        parts.append(f"{grades[0].grade}<{fmt_decimal(grades[1].min_value)}")
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
    period_scale: Fraction | int = 1,
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
        period_scale: The evaluated period's length in band periods (:func:`band_scale`): a count scored by
            bands is divided by it first (3 for a quarter under monthly bands), unless the indicator set
            says ``band_scaling = "none"``.

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
            per_band = Fraction(period_scale) if indicator_set.band_scaling == "proportional" else Fraction(1)
            banded = value / per_band if per_band > 0 else value
            band = lookup_band(banded, ind.bands_for(rc_key))
            score = Fraction(band.score)
            cls = f"（{rc.name_zh}）" if ind.by_region_class and rc is not None else ""
            per = ""
            if per_band != 1:
                unit = _PERIOD_ZH[indicator_set.band_period]
                per = f"，按每{unit}折算 {_fmt_count(value)} ÷ {_fmt_count(per_band)} = {_fmt_count(banded)}"
            head = (
                f"{ind.name_zh}{cls}：{_describe(ind.input, values, indicator_set)}{per} 落在 {band} 档 → "
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
            label = f"(1 − {ind.name_zh})" if getattr(ind, "direction", None) is Direction.LOWER_BETTER else ind.name_zh
            weighted.append((label, contribution))
            lines.append(f"{head}，权重 {fmt_decimal(definition.weight_of(ind.key))}%，得分 {_fmt2(contribution)}")
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
        raise InvalidInput("排名只能在同一评价对象类型、同一指标体系版本内进行", code=INVALID_RANKING, loc=["scores"])
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
