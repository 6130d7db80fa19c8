"""Tests of the pure 综合评价 core (evaluation/primitives.py, indicators.py, scoring.py), its loader
(evaluation/indicator_loader.py) and the shipped v1 indicator set."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.indicator_loader import default_indicator_set, default_registry, load_indicator_set, load_indicator_sets
from evaluation.indicators import Band, BandIndicator, IndicatorSet, RateIndicator
from evaluation.primitives import PRIMITIVES, Direction, ScoreFlag, SubjectType
from evaluation.scoring import SubjectScore, grade, lookup_band, rank, rate, round_half_up, score_subject
from gridcity.errors import InvalidInput

V1_PATH = Path(__file__).resolve().parents[2] / "evaluation" / "data" / "indicators_v1.toml"
V1_TEXT = V1_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def v1() -> IndicatorSet:
    return default_indicator_set()


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once in the v1 file"
    return text.replace(old, new)


def _explained(score: SubjectScore, prefix: str) -> str:
    matches = [line for line in score.explanation if line.startswith(prefix)]
    assert len(matches) == 1, score.explanation
    return matches[0]


# ---------------------------------------------------------------------------------------------------------
# The shipped v1 set


def test_v1_metadata_and_cache(v1: IndicatorSet) -> None:
    assert v1.version == "v1"
    assert v1.effective_from == date(2026, 1, 1)
    assert v1.title
    assert len(v1.sha256) == 64
    assert default_indicator_set() is v1  # lru_cache
    assert {s.subject_type for s in v1.subjects} == set(SubjectType)
    assert [(g.grade, g.min_value) for g in v1.grades] == [
        ("E", 0),
        ("D", 40),
        ("C", 60),
        ("B", 75),
        ("A", 90),
    ]


@pytest.mark.parametrize(
    ("subject_type", "weights"),
    [
        ("region", {"public_report_rate": 10, "filed_score": 20, "close_rate": 30, "on_time_close_rate": 40}),
        ("department", {"filed_score": 10, "close_rate": 30, "on_time_handle_rate": 30, "rework_rate": 30}),
        (
            "inspector",
            {"valid_report_rate": 40, "missed_rate": 20, "on_time_verify_rate": 20, "on_time_check_rate": 20},
        ),
        ("acceptor", {"accepted_score": 25, "verify_dispatch_rate": 40, "check_dispatch_rate": 35}),
        ("shift_leader", {"on_time_file_rate": 25, "accurate_file_rate": 40, "on_time_close_rate": 35}),
        ("dispatcher", {"dispatched_score": 20, "on_time_dispatch_rate": 40, "accurate_dispatch_rate": 40}),
    ],
)
def test_v1_weights_follow_the_standards_intent(v1: IndicatorSet, subject_type: str, weights: dict[str, int]) -> None:
    definition = v1.subject(subject_type)
    assert {w.indicator: w.percent for w in definition.weights} == weights
    assert definition.min_cases == 10


def test_v1_directions_fix_the_source_bugs(v1: IndicatorSet) -> None:
    def ind(subject: str, key: str) -> RateIndicator:
        found = next(i for i in v1.subject(subject).indicators if i.key == key)
        assert isinstance(found, RateIndicator)
        return found

    assert ind("inspector", "missed_rate").direction is Direction.LOWER_BETTER  # (1 − 漏报率)
    assert ind("department", "rework_rate").direction is Direction.LOWER_BETTER  # (1 − 返工率)
    assert ind("region", "public_report_rate").direction is Direction.LOWER_BETTER
    band = next(i for i in v1.subject("department").indicators if i.key == "filed_score")
    assert isinstance(band, BandIndicator) and str(band.input) == "filed"  # not 返工数


def test_v1_labels_every_primitive_it_uses(v1: IndicatorSet) -> None:
    labelled = {name for name, _, _ in v1.primitive_labels}
    for definition in v1.subjects:
        assert set(definition.primitives) <= labelled
    for name, zh, en in v1.primitive_labels:
        assert zh == PRIMITIVES[name].name_zh and en
    for definition in v1.subjects:
        for indicator in definition.indicators:
            assert indicator.name_zh and indicator.name_en


def test_main_denominators(v1: IndicatorSet) -> None:
    mains = {s.subject_type: str(s.main_denominator) for s in v1.subjects}
    assert mains[SubjectType.DEPARTMENT] == "should_handle"
    assert mains[SubjectType.REGION] == "filed"
    assert mains[SubjectType.INSPECTOR] == "reported"


# ---------------------------------------------------------------------------------------------------------
# rate / bands / grades / rounding


def test_rate_zero_denominator_is_zero() -> None:
    assert rate(0, 0) == 0.0
    assert rate(7, 0) == 0.0
    assert rate(45, 50) == 90.0
    assert rate(1, 3) == pytest.approx(100 / 3)


@pytest.mark.parametrize("bad", [(-1, 5), (1, -5), (float("nan"), 1), (1, float("inf"))])
def test_rate_rejects_bad_inputs(bad: tuple[float, float]) -> None:
    with pytest.raises(InvalidInput) as exc:
        rate(*bad)
    assert exc.value.code == "evaluation.invalid_count"


def _bands(v1: IndicatorSet, subject: str, key: str, region_class: str | None = None) -> tuple[Band, ...]:
    indicator = next(i for i in v1.subject(subject).indicators if i.key == key)
    assert isinstance(indicator, BandIndicator)
    return indicator.bands_for(region_class)


@pytest.mark.parametrize(
    ("count", "score"),
    [(0, 100), (1, 90), (2, 90), (3, 75), (4, 75), (5, 60), (6, 60), (7, 40), (8, 40), (9, 0), (500, 0)],
)
def test_region_class1_filed_bands(v1: IndicatorSet, count: int, score: int) -> None:
    # 一类区域: 0→100, <3→90, <5→75, <7→60, <9→40, else 0
    assert lookup_band(count, _bands(v1, "region", "filed_score", "class1")).score == score


@pytest.mark.parametrize(
    ("count", "score"), [(0, 100), (1, 90), (3, 90), (4, 75), (5, 75), (6, 60), (8, 40), (9, 40), (10, 0)]
)
def test_region_class2_filed_bands(v1: IndicatorSet, count: int, score: int) -> None:
    # 二类区域: 0→100, <4→90, <6→75, <8→60, <10→40, else 0
    assert lookup_band(count, _bands(v1, "region", "filed_score", "class2")).score == score


@pytest.mark.parametrize(
    ("count", "score"),
    [
        (0, 100),
        (50, 100),
        (51, 90),
        (100, 90),
        (101, 75),
        (200, 75),
        (201, 60),
        (500, 60),
        (501, 40),
        (1000, 40),
        (1001, 0),
    ],
)
def test_department_filed_bands(v1: IndicatorSet, count: int, score: int) -> None:
    # ≤50→100, ≤100→90, ≤200→75, ≤500→60, ≤1000→40, else 0 (the source's 10/9/7.5/6/4 ÷ 10%)
    assert lookup_band(count, _bands(v1, "department", "filed_score")).score == score


@pytest.mark.parametrize(
    ("count", "score"),
    [
        (0, 0),
        (100, 0),
        (101, 40),
        (300, 40),
        (301, 60),
        (500, 60),
        (501, 75),
        (1200, 75),
        (1201, 90),
        (2000, 90),
        (2001, 100),
    ],
)
@pytest.mark.parametrize(("subject", "key"), [("acceptor", "accepted_score"), ("dispatcher", "dispatched_score")])
def test_count_bands_acceptor_and_dispatcher(v1: IndicatorSet, subject: str, key: str, count: int, score: int) -> None:
    # 受理数分值: ≥2001→100, ≥1201→90, ≥501→75, ≥301→60, ≥101→40, else 0 (派遣数: same shape, our assumption)
    assert lookup_band(count, _bands(v1, subject, key)).score == score


def test_lookup_band_rejects_negative(v1: IndicatorSet) -> None:
    with pytest.raises(InvalidInput) as exc:
        lookup_band(-1, _bands(v1, "department", "filed_score"))
    assert exc.value.code == "evaluation.invalid_value"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("100"), "A"),
        (Decimal("90"), "A"),
        (Decimal("90.00"), "A"),
        (Decimal("89.99"), "B"),
        (89.99, "B"),
        (Decimal("75"), "B"),
        (Decimal("74.99"), "C"),
        (Decimal("60"), "C"),
        (Decimal("59.99"), "D"),
        (Decimal("40"), "D"),
        (Decimal("39.99"), "E"),
        (0, "E"),
    ],
)
def test_grade_boundaries(v1: IndicatorSet, value: Decimal | float, expected: str) -> None:
    assert grade(value, v1.grades) == expected


def test_grade_rejects_out_of_range(v1: IndicatorSet) -> None:
    for bad in (Decimal("-0.01"), float("nan")):
        with pytest.raises(InvalidInput) as exc:
            grade(bad, v1.grades)
        assert exc.value.code == "evaluation.invalid_value"


def test_round_half_up_is_exact() -> None:
    assert round_half_up(Fraction(1, 8)) == Decimal("0.13")  # banker's rounding would give 0.12
    assert round_half_up(Fraction(17999, 200)) == Decimal("90.00")  # 89.995
    assert round_half_up(2.675) == Decimal("2.68")  # the float's decimal literal, not its binary value
    assert round_half_up(Fraction(-1, 8)) == Decimal("-0.13")
    assert str(round_half_up(50)) == "50.00"


# ---------------------------------------------------------------------------------------------------------
# Hand-checked composites, one per subject type


def test_region_composite_class1(v1: IndicatorSet) -> None:
    counts = {"filed": 12, "public_verified": 3, "should_close": 12, "closed": 9, "closed_on_time": 6}
    s = score_subject("region", counts, v1, region_class="class1", subject_id="110101001001001")
    # 监督举报率 3/12 = 25%  → (100 − 25) × 10% = 7.50
    # 立案数 12, 一类区域 ≥ 9 → 0 × 20% = 0
    # 结案率 9/12 = 75%      → 75 × 30% = 22.50
    # 按期结案率 6/12 = 50%  → 50 × 40% = 20.00
    # 综合 = 50.00 → D
    assert s.composite == Decimal("50.00")
    assert s.grade == "D"
    assert s.flags == frozenset()
    assert [(r.key, r.numerator, r.denominator, r.value) for r in s.rates] == [
        ("public_report_rate", 3, 12, 25.0),
        ("close_rate", 9, 12, 75.0),
        ("on_time_close_rate", 6, 12, 50.0),
    ]
    assert [c.contribution for c in s.components] == [7.5, 0.0, 22.5, 20.0]
    assert s.region_class == "class1"
    assert (
        _explained(s, "立案数分值")
        == "立案数分值（一类区域）：立案数 12 落在 [9, +∞) 档 → 0.00 分，权重 20%，得分 0.00"
    )


def test_region_composite_class2_by_chinese_name(v1: IndicatorSet) -> None:
    counts = {"filed": 10, "public_verified": 0, "should_close": 8, "closed": 8, "closed_on_time": 8}
    s = score_subject("region", counts, v1, region_class="二类区域")
    # 监督举报率 0/10 = 0% → 100 × 10% = 10; 立案数 10 (二类 ≥ 10) → 0; 结案率 100% → 30; 按期结案率 100% → 40
    # 综合 = 80.00 → B
    assert (s.composite, s.grade, s.region_class) == (Decimal("80.00"), "B", "class2")


def test_department_composite(v1: IndicatorSet) -> None:
    counts = {
        "filed": 120, "should_handle": 80, "handled": 70, "handled_on_time": 60, "overdue_unhandled": 10,
        "extended": 4, "should_close": 80, "closed": 72, "rework": 8,
    }  # fmt: skip
    s = score_subject(SubjectType.DEPARTMENT, counts, v1, subject_id="dept-roads")
    # 立案数 120 → [101, 201) → 75 × 10% = 7.50
    # 结案率 72/80 = 90%        → 90 × 30% = 27.00
    # 按期处置率 60/80 = 75%    → 75 × 30% = 22.50
    # 返工率 8/80 = 10%         → (100 − 10) × 30% = 27.00
    # 综合 = 84.00 → B; 处置率 / 超期未处置率 / 延期率 are informational
    assert s.composite == Decimal("84.00")
    assert s.grade == "B"
    assert _explained(s, "按期处置率") == "按期处置率 = 按期处置数 60 / 应处置数 80 = 75.00%，权重 30%，得分 22.50"
    assert _explained(s, "返工率").endswith("按 100 − 返工率 = 90.00 计分，权重 30%，得分 27.00")
    assert _explained(s, "处置率").endswith("（参考指标，不计入综合指标值）")
    assert s.explanation[-1] == (
        "综合指标值 = 立案数分值 7.50 + 结案率 27.00 + 按期处置率 22.50 + (1 − 返工率) 27.00 = 84.00，"
        "等级 B（A≥90，B≥75，C≥60，D≥40，E<40）"
    )
    assert {c.key: c.weight for c in s.components}["handle_rate"] == 0.0


def test_department_explanation_matches_the_documented_example(v1: IndicatorSet) -> None:
    counts = {
        "filed": 40, "should_handle": 50, "handled": 48, "handled_on_time": 45, "overdue_unhandled": 2,
        "extended": 3, "should_close": 50, "closed": 45, "rework": 5,
    }  # fmt: skip
    s = score_subject("department", counts, v1)
    assert "按期处置率 = 按期处置数 45 / 应处置数 50 = 90.00%，权重 30%，得分 27.00" in s.explanation
    # 100 × 10% + 90 × 30% + 90 × 30% + 90 × 30% = 91.00 → A
    assert (s.composite, s.grade) == (Decimal("91.00"), "A")


def test_inspector_composite(v1: IndicatorSet) -> None:
    counts = {
        "reported": 50, "valid_reported": 45, "filed": 40, "missed": 4, "should_verify": 20,
        "verified_on_time": 19, "should_check": 25, "checked_on_time": 20, "patrol_coverage": 88.5,
    }  # fmt: skip
    s = score_subject("inspector", counts, v1)
    # 有效上报率 45/50 = 90% → 90 × 40% = 36
    # 漏报率 4/40 = 10%      → (100 − 10) × 20% = 18
    # 按时核实率 19/20 = 95% → 95 × 20% = 19
    # 按时核查率 20/25 = 80% → 80 × 20% = 16
    # 综合 = 89.00 → B (巡查覆盖率 88.5 is informational)
    assert (s.composite, s.grade) == (Decimal("89.00"), "B")
    assert {c.key: c.score for c in s.components}["patrol_coverage"] == 88.5


def test_acceptor_composite(v1: IndicatorSet) -> None:
    counts = {
        "accepted": 600, "verify_dispatch_due": 200, "verify_dispatch_on_time": 190,
        "check_dispatch_due": 300, "check_dispatch_on_time": 270,
    }  # fmt: skip
    s = score_subject("acceptor", counts, v1)
    # 受理数 600 → [501, 1201) → 75 × 25% = 18.75
    # 核实按时派发率 190/200 = 95% → 95 × 40% = 38.00
    # 核查按时派发率 270/300 = 90% → 90 × 35% = 31.50
    # 综合 = 88.25 → B
    assert (s.composite, s.grade) == (Decimal("88.25"), "B")


def test_shift_leader_composite(v1: IndicatorSet) -> None:
    counts = {"filed": 38, "voided": 2, "filed_on_time": 36, "close_task_due": 40, "close_task_on_time": 38}
    s = score_subject("shift_leader", counts, v1)
    # 按时立案率 36/(38+2) = 90%        → 90 × 25% = 22.50
    # 准确立案率 (40−2)/40 = 38/40 = 95% → 95 × 40% = 38.00
    # 按时结案率 38/40 = 95%            → 95 × 35% = 33.25
    # 综合 = 93.75 → A
    assert (s.composite, s.grade) == (Decimal("93.75"), "A")
    assert _explained(s, "准确立案率") == (
        "准确立案率 = 立案数 38 / (立案数 38 + 作废数 2 = 40) = 95.00%，权重 40%，得分 38.00"
    )
    assert s.main_denominator == 40 and s.main_denominator_expr == "filed + voided"


def test_dispatcher_composite(v1: IndicatorSet) -> None:
    counts = {
        "dispatched": 150,
        "should_dispatch": 160,
        "dispatched_on_time": 144,
        "dispatched_accurately": 152,
    }
    s = score_subject("dispatcher", counts, v1)
    # 派遣数 150 → [101, 301) → 40 × 20% = 8 (bands are our assumption)
    # 按时派遣率 144/160 = 90% → 90 × 40% = 36
    # 准确派遣率 152/160 = 95% → 95 × 40% = 38
    # 综合 = 82.00 → B
    assert (s.composite, s.grade) == (Decimal("82.00"), "B")


def test_composite_rounds_half_up_and_grades_the_published_value(v1: IndicatorSet) -> None:
    counts = {
        "accepted": 2001, "verify_dispatch_due": 10, "verify_dispatch_on_time": 10,
        "check_dispatch_due": 7000, "check_dispatch_on_time": 4999,
    }  # fmt: skip
    s = score_subject("acceptor", counts, v1)
    # 100 × 25% + 100 × 40% + (4999/7000 × 100) × 35% = 25 + 40 + 24.995 = 89.995 → 90.00 → A
    assert s.composite_unrounded == pytest.approx(89.995)
    assert s.composite == Decimal("90.00")
    assert s.grade == "A"

    tiny = {
        "accepted": 0, "verify_dispatch_due": 0, "verify_dispatch_on_time": 0,
        "check_dispatch_due": 280, "check_dispatch_on_time": 1,
    }  # fmt: skip
    # 0 + 0 + (1/280 × 100) × 35% = 0.125 exactly → 0.13 (a float sum would give 0.12499…)
    assert score_subject("acceptor", tiny, v1).composite == Decimal("0.13")


def test_zero_denominators_score_zero_and_flag(v1: IndicatorSet) -> None:
    counts = dict.fromkeys(v1.subject("department").primitives, 0)
    s = score_subject("department", counts, v1)
    # every rate is 0 (standard rule): 立案数 0 → 100 × 10% = 10; 结案率 0; 按期处置率 0; (1 − 0) × 30% = 30
    assert all(r.value == 0.0 for r in s.rates)
    assert s.composite == Decimal("40.00") and s.grade == "D"
    assert s.insufficient_data and ScoreFlag.INSUFFICIENT_DATA in s.flags and "insufficient_data" in s.flags
    assert "（分母为 0，按 0 计）" in _explained(s, "按期处置率")
    assert s.explanation[-1] == "样本不足：应处置数 0 < 最小样本量 10，结果仅供参考，排名列于最后"


def test_insufficient_data_threshold_is_inclusive(v1: IndicatorSet) -> None:
    base = {"dispatched": 0, "dispatched_on_time": 0, "dispatched_accurately": 0}
    assert score_subject("dispatcher", {**base, "should_dispatch": 9}, v1).insufficient_data
    assert not score_subject("dispatcher", {**base, "should_dispatch": 10}, v1).insufficient_data


# ---------------------------------------------------------------------------------------------------------
# Input validation of counts


def _dept_counts() -> dict[str, float]:
    return {
        "filed": 10, "should_handle": 10, "handled": 10, "handled_on_time": 10, "overdue_unhandled": 0,
        "extended": 0, "should_close": 10, "closed": 10, "rework": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"closed": 11}, "evaluation.inconsistent_counts"),
        ({"should_close": 0}, "evaluation.inconsistent_counts"),
        ({"rework": -1}, "evaluation.invalid_count"),
        ({"filed": float("nan")}, "evaluation.invalid_count"),
        ({"filed": True}, "evaluation.invalid_count"),
        ({"bogus": 1}, "evaluation.unknown_primitive"),
    ],
)
def test_bad_counts_rejected(v1: IndicatorSet, change: dict[str, float], code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        score_subject("department", {**_dept_counts(), **change}, v1)
    assert exc.value.code == code


def test_missing_count_rejected(v1: IndicatorSet) -> None:
    counts = _dept_counts()
    del counts["rework"]
    with pytest.raises(InvalidInput) as exc:
        score_subject("department", counts, v1)
    assert exc.value.code == "evaluation.missing_count" and exc.value.loc == ["counts", "rework"]


def test_extra_known_primitives_are_ignored(v1: IndicatorSet) -> None:
    s = score_subject("department", {**_dept_counts(), "accepted": 5, "suspended": 2}, v1)
    assert s.composite == Decimal("100.00")


def test_value_primitive_above_100_rejected(v1: IndicatorSet) -> None:
    counts = dict.fromkeys(v1.subject("inspector").primitives, 0) | {"patrol_coverage": 100.5}
    with pytest.raises(InvalidInput) as exc:
        score_subject("inspector", counts, v1)
    assert exc.value.code == "evaluation.invalid_count"


def test_region_class_required_and_known(v1: IndicatorSet) -> None:
    counts = {"filed": 12, "public_verified": 3, "should_close": 12, "closed": 9, "closed_on_time": 6}
    with pytest.raises(InvalidInput) as exc:
        score_subject("region", counts, v1)
    assert exc.value.code == "evaluation.region_class_required"
    with pytest.raises(InvalidInput) as exc:
        score_subject("region", counts, v1, region_class="class9")
    assert exc.value.code == "evaluation.unknown_region_class"


def test_unknown_subject_type(v1: IndicatorSet) -> None:
    with pytest.raises(InvalidInput) as exc:
        score_subject("mayor", {}, v1)
    assert exc.value.code == "evaluation.unknown_subject_type"


# ---------------------------------------------------------------------------------------------------------
# Ranking


def _fake(
    subject_id: str, composite: str, *, insufficient: bool = False, base: SubjectScore | None = None
) -> SubjectScore:
    template = base or score_subject("department", _dept_counts(), default_indicator_set())
    flags = frozenset({ScoreFlag.INSUFFICIENT_DATA}) if insufficient else frozenset()
    return dataclasses.replace(template, subject_id=subject_id, composite=Decimal(composite), flags=flags)


def test_ties_use_competition_ranking() -> None:
    scores = [_fake("d", "80"), _fake("c", "87.5"), _fake("a", "95"), _fake("b", "87.50")]
    ranked = rank(scores)
    assert [(r.subject_id, r.rank, r.tied, r.tie_group) for r in ranked] == [
        ("a", 1, False, None),
        ("b", 2, True, 2),  # two 87.5 → both rank 2, ordered by id
        ("c", 2, True, 2),
        ("d", 4, False, None),  # next rank is 4 ("1224")
    ]


def test_insufficient_data_ranked_last_and_marked() -> None:
    scores = [
        _fake("x", "99", insufficient=True),
        _fake("a", "70"),
        _fake("b", "60"),
        _fake("y", "50", insufficient=True),
    ]
    ranked = rank(scores)
    assert [(r.subject_id, r.rank, r.insufficient_data) for r in ranked] == [
        ("a", 1, False),
        ("b", 2, False),
        ("x", 3, True),
        ("y", 4, True),
    ]
    together = rank(scores, insufficient_last=False)
    assert [(r.subject_id, r.rank, r.insufficient_data) for r in together] == [
        ("x", 1, True),
        ("a", 2, False),
        ("b", 3, False),
        ("y", 4, True),
    ]


def test_rank_with_custom_key() -> None:
    scores = [_fake("a", "95"), _fake("b", "80")]
    ranked = rank(scores, key=lambda s: -s.composite)
    assert [r.subject_id for r in ranked] == ["b", "a"]


def test_rank_rejects_mixed_or_duplicate_subjects(v1: IndicatorSet) -> None:
    other = score_subject(
        "dispatcher",
        {"dispatched": 0, "should_dispatch": 0, "dispatched_on_time": 0, "dispatched_accurately": 0},
        v1,
        subject_id="z",
    )
    for scores in ([_fake("a", "1"), other], [_fake("a", "1"), _fake("a", "2")]):
        with pytest.raises(InvalidInput) as exc:
            rank(scores)
        assert exc.value.code == "evaluation.invalid_ranking"
    assert rank([]) == []


# ---------------------------------------------------------------------------------------------------------
# Invalid indicator sets and versions


@pytest.mark.parametrize(
    ("old", "new", "loc_tail"),
    [
        # region weights sum to 90
        ("on_time_close_rate = 40  #", "on_time_close_rate = 30  #", "weights"),
        # unknown primitive
        ('numerator = "handled_on_time"', 'numerator = "handled_in_time"', "numerator"),
        # overlapping bands (class 1: [1, 3) then [2, 5))
        ("{ min = 3, max = 5, score = 75 }", "{ min = 2, max = 5, score = 75 }", 2),
        # gap between bands
        ("{ min = 3, max = 5, score = 75 }", "{ min = 4, max = 5, score = 75 }", 2),
        # descending bands
        ("{ min = 9, score = 0 },", "{ min = 9, score = 0 },\n    { min = 8, score = 0 },", 5),
        # unknown direction
        ('direction = "lower_better"  # scored as', 'direction = "smaller"  # scored as', "direction"),
        # unknown indicator kind
        ('kind = "value"', 'kind = "ratio"', "kind"),
        # score outside 0–100
        (
            "{ min = 2001, score = 100 },\n]\n\n[subjects.acceptor",
            "{ min = 2001, score = 101 },\n]\n\n[subjects.acceptor",
            "score",
        ),
        # grades not ascending
        ('grade = "A"\nmin = 90', 'grade = "A"\nmin = 70', "min"),
        # a typo in a key
        ('main_denominator = "reported"', 'main_denominater = "reported"', "inspector"),
        # unknown subject type
        ("[subjects.dispatcher]\n", "[subjects.mayor]\n", "mayor"),
        # unknown primitive in the labels
        ("\nreported = { name_zh", "\nreportd = { name_zh", "reportd"),
        # value primitive used in a rate
        ('\ndenominator = "reported"', '\ndenominator = "patrol_coverage"', "denominator"),
        # bands of a region class missing
        ("class2 = [", "class3 = [", "bands_by_region_class"),
        # negative weight (and sum ≠ 100)
        ("dispatched_score = 20", "dispatched_score = -20", "dispatched_score"),
        # not TOML at all
        ('version = "v1"', 'version = "v1', "toml"),
    ],
)
def test_invalid_indicator_sets_rejected(old: str, new: str, loc_tail: str | int) -> None:
    text = _replace_once(V1_TEXT, old, new)
    with pytest.raises(InvalidInput) as exc:
        load_indicator_set(text)
    assert exc.value.code == "evaluation.invalid_indicator_set"
    assert exc.value.loc[-1] == loc_tail, exc.value.message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("on_time_close_rate = 40  #", "on_time_close_rate = 30  #", "weights of region sum to 90, not 100"),
        (
            'numerator = "handled_on_time"',
            'numerator = "handled_in_time"',
            "unknown primitive 'handled_in_time'",
        ),
        ("{ min = 3, max = 5, score = 75 }", "{ min = 2, max = 5, score = 75 }", "bands overlap"),
    ],
)
def test_invalid_indicator_set_messages(old: str, new: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as exc:
        load_indicator_set(_replace_once(V1_TEXT, old, new))
    assert exc.value.code == "evaluation.invalid_indicator_set"


def test_weights_within_tolerance_accepted() -> None:
    text = _replace_once(
        V1_TEXT,
        "accepted_score = 25\nverify_dispatch_rate = 40\ncheck_dispatch_rate = 35",
        "accepted_score = 33.33\nverify_dispatch_rate = 33.33\ncheck_dispatch_rate = 33.34",
    )
    s = load_indicator_set(text)
    assert sum(w.percent for w in s.subject("acceptor").weights) == 100


def test_registry_versions_and_unknown_version(tmp_path: Path) -> None:
    registry = default_registry()
    assert "v1" in registry and registry.get("v1").version == "v1"
    with pytest.raises(InvalidInput) as exc:
        registry.get("v9")
    assert exc.value.code == "evaluation.unknown_version"

    v2 = _replace_once(
        _replace_once(V1_TEXT, 'version = "v1"', 'version = "v2"'),
        "effective_from = 2026-01-01",
        "effective_from = 2027-01-01",
    )
    (tmp_path / "indicators_v1.toml").write_text(V1_TEXT, encoding="utf-8")
    (tmp_path / "indicators_v2.toml").write_text(v2, encoding="utf-8")
    (tmp_path / "README.toml").write_text("ignored = true", encoding="utf-8")
    loaded = load_indicator_sets(tmp_path)
    assert loaded.versions == ("v1", "v2")
    assert loaded.in_effect(date(2026, 6, 30)).version == "v1"
    assert loaded.in_effect(date(2027, 1, 1)).version == "v2"
    with pytest.raises(InvalidInput) as exc:
        loaded.in_effect(date(2025, 12, 31))
    assert exc.value.code == "evaluation.no_version_in_effect"

    assert load_indicator_sets([V1_TEXT, v2]).versions == ("v1", "v2")
    with pytest.raises(InvalidInput) as exc:
        load_indicator_sets([V1_TEXT, V1_TEXT])
    assert exc.value.code == "evaluation.duplicate_version"


# ---------------------------------------------------------------------------------------------------------
# Properties


def _sub(draw: st.DrawFn, upper: int) -> int:
    return draw(st.integers(0, upper))


N = st.integers(0, 3000)


@st.composite
def region_counts(draw: st.DrawFn) -> dict[str, float]:
    filed, should_close = draw(N), draw(N)
    closed = _sub(draw, should_close)
    return {"filed": filed, "public_verified": _sub(draw, filed), "should_close": should_close,
            "closed": closed, "closed_on_time": _sub(draw, closed)}  # fmt: skip


@st.composite
def department_counts(draw: st.DrawFn) -> dict[str, float]:
    should_handle, should_close = draw(N), draw(N)
    handled = _sub(draw, should_handle)
    return {"filed": draw(N), "should_handle": should_handle, "handled": handled,
            "handled_on_time": _sub(draw, handled), "overdue_unhandled": should_handle - handled,
            "extended": _sub(draw, should_handle), "should_close": should_close,
            "closed": _sub(draw, should_close), "rework": _sub(draw, should_close)}  # fmt: skip


@st.composite
def inspector_counts(draw: st.DrawFn) -> dict[str, float]:
    reported, filed, sv, sc = draw(N), draw(N), draw(N), draw(N)
    return {"reported": reported, "valid_reported": _sub(draw, reported), "filed": filed,
            "missed": _sub(draw, filed), "should_verify": sv, "verified_on_time": _sub(draw, sv),
            "should_check": sc, "checked_on_time": _sub(draw, sc),
            "patrol_coverage": draw(st.floats(0, 100, allow_nan=False))}  # fmt: skip


@st.composite
def acceptor_counts(draw: st.DrawFn) -> dict[str, float]:
    vd, cd = draw(N), draw(N)
    return {"accepted": draw(N), "verify_dispatch_due": vd, "verify_dispatch_on_time": _sub(draw, vd),
            "check_dispatch_due": cd, "check_dispatch_on_time": _sub(draw, cd)}  # fmt: skip


@st.composite
def shift_leader_counts(draw: st.DrawFn) -> dict[str, float]:
    filed, voided, due = draw(N), draw(N), draw(N)
    return {"filed": filed, "voided": voided, "filed_on_time": _sub(draw, filed + voided),
            "close_task_due": due, "close_task_on_time": _sub(draw, due)}  # fmt: skip


@st.composite
def dispatcher_counts(draw: st.DrawFn) -> dict[str, float]:
    due = draw(N)
    return {"dispatched": draw(N), "should_dispatch": due, "dispatched_on_time": _sub(draw, due),
            "dispatched_accurately": _sub(draw, due)}  # fmt: skip


COUNT_STRATEGIES: dict[str, Callable[[], st.SearchStrategy[dict[str, float]]]] = {
    "region": region_counts,
    "department": department_counts,
    "inspector": inspector_counts,
    "acceptor": acceptor_counts,
    "shift_leader": shift_leader_counts,
    "dispatcher": dispatcher_counts,
}


def test_strategies_cover_every_subject_type() -> None:
    assert set(COUNT_STRATEGIES) == {t.value for t in SubjectType}


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    subject_type=st.sampled_from(sorted(COUNT_STRATEGIES)),
    rc=st.sampled_from(["class1", "class2"]),
)
def test_composite_always_within_0_and_100(data: st.DataObject, subject_type: str, rc: str) -> None:
    v1 = default_indicator_set()
    counts = data.draw(COUNT_STRATEGIES[subject_type]())
    s = score_subject(subject_type, counts, v1, region_class=rc)
    assert Decimal(0) <= s.composite <= Decimal(100)
    assert 0.0 <= s.composite_unrounded <= 100.0
    assert all(0.0 <= c.score <= 100.0 for c in s.components)
    assert all(0.0 <= r.value <= 100.0 for r in s.rates)
    assert s.grade == grade(s.composite, v1.grades)
    assert abs(float(s.composite) - s.composite_unrounded) <= 0.005 + 1e-9
    assert sum(c.contribution for c in s.components) == pytest.approx(s.composite_unrounded)
    assert s.insufficient_data == (s.main_denominator < s.min_cases)


CENTS = st.integers(0, 10_000).map(lambda n: Decimal(n).scaleb(-2))


@given(a=CENTS, b=CENTS)
def test_grade_is_monotonic_in_composite(a: Decimal, b: Decimal) -> None:
    order = [g.grade for g in default_indicator_set().grades]  # ascending: E … A
    lo, hi = sorted((a, b))
    grades = default_indicator_set().grades
    assert order.index(grade(lo, grades)) <= order.index(grade(hi, grades))


@given(
    entries=st.lists(
        st.tuples(st.integers(0, 40).map(lambda n: Decimal(n * 25).scaleb(-1)), st.booleans()),
        max_size=25,
    ),
    insufficient_last=st.booleans(),
)
def test_rank_properties(entries: list[tuple[Decimal, bool]], insufficient_last: bool) -> None:
    base = score_subject("department", _dept_counts(), default_indicator_set())
    scores = [_fake(f"s{i:02d}", str(c), insufficient=ins, base=base) for i, (c, ins) in enumerate(entries)]
    ranked = rank(scores, insufficient_last=insufficient_last)

    # a permutation
    assert sorted(r.subject_id for r in ranked) == sorted(s.subject_id for s in scores)
    sections = (
        [[r for r in ranked if not r.insufficient_data], [r for r in ranked if r.insufficient_data]]
        if insufficient_last
        else [ranked]
    )
    if insufficient_last:
        assert ranked == sections[0] + sections[1]  # insufficient data strictly after all others
    offset = 0
    for section in sections:
        composites = [r.score.composite for r in section]
        assert composites == sorted(composites, reverse=True)  # best first
        for r in section:
            better = sum(1 for other in section if other.score.composite > r.score.composite)
            equal = sum(1 for other in section if other.score.composite == r.score.composite)
            assert r.rank == offset + 1 + better  # competition ranking
            assert r.tied == (equal > 1)
            assert r.tie_group == (r.rank if equal > 1 else None)
        for x, y in zip(section, section[1:], strict=False):
            if x.score.composite == y.score.composite:
                assert x.rank == y.rank and x.subject_id < y.subject_id  # ties: equal ranks, ordered by id
        offset += len(section)
