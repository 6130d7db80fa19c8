"""The routing rules and component ownership choice (pure: no database)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.rules import (
    SCOPE_LEVELS,
    CaseFacts,
    ComponentFact,
    RoutingRule,
    Status,
    choose,
    choose_component,
    load_rules,
)
from gridcity.errors import InvalidInput

GRID = "610302001002003"
D = dt.date(2026, 3, 1)
FACTS = CaseFacts.from_grid("C0101", GRID, D)


def rule(
    cls: str,
    level: str,
    dept: int,
    *,
    code: str | None = None,
    frm: dt.date = dt.date(2026, 1, 1),
    to: dt.date | None = None,
    rid: int | None = None,
) -> RoutingRule:
    if code is None:
        code = {"grid": GRID, "community": GRID[:12], "street": GRID[:9], "district": GRID[:6], "city": ""}[level]
    return RoutingRule(cls, level, code, dept, frm, to, rid)


def test_facts_from_grid_take_the_area_codes_from_the_grid_code_prefixes() -> None:
    assert (FACTS.community_code, FACTS.street_code, FACTS.district_code) == (GRID[:12], GRID[:9], GRID[:6])
    assert CaseFacts.from_grid("C0101", None, D).district_code is None


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # scope beats class: a grid rule for every class beats a city rule for the exact class
        ([rule("C0101", "city", 1), rule("*", "grid", 2)], 2),
        ([rule("C0101", "district", 1), rule("*", "street", 2)], 2),
        ([rule("C0101", "street", 1), rule("*", "community", 2)], 2),
        ([rule("C0101", "community", 1), rule("*", "grid", 2)], 2),
        # same scope: exact class > major wildcard > *
        ([rule("*", "district", 1), rule("C01*", "district", 2)], 2),
        ([rule("C01*", "district", 1), rule("C0101", "district", 2)], 2),
        ([rule("*", "city", 1), rule("C01*", "city", 2), rule("C0101", "city", 3)], 3),
        # rules of other classes, other areas and other dates do not apply
        ([rule("C0102", "grid", 1), rule("*", "city", 2)], 2),
        ([rule("C02*", "grid", 1), rule("*", "city", 2)], 2),
        ([rule("E01*", "grid", 1), rule("*", "city", 2)], 2),
        ([rule("C0101", "grid", 1, code="610302001002004"), rule("*", "city", 2)], 2),
        ([rule("C0101", "district", 1, code="610303"), rule("*", "city", 2)], 2),
        ([rule("C0101", "grid", 1, frm=dt.date(2026, 3, 2)), rule("*", "city", 2)], 2),
        ([rule("C0101", "grid", 1, to=D), rule("*", "city", 2)], 2),  # valid_to is exclusive
        ([rule("C0101", "grid", 1, frm=D), rule("*", "city", 2)], 1),  # valid_from is inclusive
        ([rule("C0101", "grid", 1, to=D + dt.timedelta(days=1)), rule("*", "city", 2)], 1),
    ],
)
def test_the_most_specific_rule_in_force_wins(rules: list[RoutingRule], expected: int) -> None:
    for given_rules in (rules, load_rules(rules)):  # the indexed set and a plain list agree
        choice = choose(FACTS, given_rules)
        assert choice.status is Status.UNIQUE
        assert choice.department_id == expected
        assert choice.rule is not None and choice.rule.department_id == expected
        assert [c.department_id for c in choice.candidates] == [expected]


def test_a_major_wildcard_covers_both_code_generations_of_its_major() -> None:
    rules = load_rules([rule("C01*", "city", 7)])
    assert choose(CaseFacts.from_grid("C01001", GRID, D), rules).department_id == 7
    assert choose(CaseFacts.from_grid("C1001", GRID, D), rules).department_id is None


def test_tied_rules_naming_different_departments_are_ambiguous() -> None:
    # A tie at the best specificity means the same pattern and scope in force on the same day, which
    # load_rules refuses as a conflict; choose still reports it instead of picking one, for rule lists that
    # were never validated (e.g. rows edited directly in the database).
    rules = [rule("C0101", "street", 3, rid=1), rule("C0101", "street", 4, rid=2), rule("*", "city", 9)]
    choice = choose(FACTS, rules)
    assert choice.status is Status.AMBIGUOUS
    assert choice.department_id is None and choice.rule is None
    assert sorted(c.department_id for c in choice.candidates) == [3, 4]
    assert "规则 #1" in choice.reason and "规则 #2" in choice.reason


def test_the_same_department_twice_at_one_specificity_is_not_ambiguous() -> None:
    rules = [rule("C0101", "street", 3, rid=1), rule("C0101", "street", 3, rid=2)]
    choice = choose(FACTS, load_rules(rules))
    assert (choice.status, choice.department_id, len(choice.candidates)) == (Status.UNIQUE, 3, 1)


def test_no_rule_means_no_department_and_says_so() -> None:
    choice = choose(FACTS, load_rules([rule("C0102", "city", 1)]))
    assert (choice.status, choice.department_id, choice.rule, choice.candidates) == (Status.NONE, None, None, [])
    assert "C0101" in choice.reason and GRID in choice.reason


def test_a_case_without_a_grid_only_gets_city_rules() -> None:
    rules = load_rules([rule("C0101", "district", 1), rule("C01*", "city", 2)])
    assert choose(CaseFacts.from_grid("C0101", None, D), rules).department_id == 2


def test_conflicting_rules_are_refused_naming_both() -> None:
    rows = [
        rule("C0101", "grid", 1, rid=11),
        rule("C0102", "grid", 2),
        rule("C0101", "grid", 3, frm=dt.date(2026, 6, 1), rid=12),
    ]
    with pytest.raises(InvalidInput) as exc:
        load_rules(rows)
    assert exc.value.code == "routing.conflicting_rules"
    assert "#11" in exc.value.message and "#12" in exc.value.message
    assert exc.value.extra["rows"] == [0, 2]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # back to back: [2026-01-01, 2026-06-01) then [2026-06-01, …)
        (rule("C0101", "grid", 1, to=dt.date(2026, 6, 1)), rule("C0101", "grid", 2, frm=dt.date(2026, 6, 1))),
        (rule("C0101", "grid", 1), rule("C0101", "street", 2)),  # other scope level
        (rule("C0101", "grid", 1), rule("C0101", "grid", 2, code="610302001002004")),  # other grid
        (rule("C0101", "grid", 1), rule("C01*", "grid", 2)),  # other class pattern
        (rule("C0101", "grid", 1), rule("C0101", "grid", 1)),  # same department
    ],
)
def test_rules_that_do_not_conflict_are_accepted(a: RoutingRule, b: RoutingRule) -> None:
    assert len(load_rules([a, b])) == 2


@pytest.mark.parametrize(
    ("row", "code", "field"),
    [
        ({"class_code": "C01"}, "routing.bad_class", "class_code"),
        ({"class_code": "C0*"}, "routing.bad_class", "class_code"),
        ({"class_code": "X0101"}, "routing.bad_class", "class_code"),
        ({"class_code": 101}, "routing.bad_class", "class_code"),
        ({"scope_level": "province"}, "routing.bad_scope", "scope_level"),
        ({"scope_code": "61030200100200"}, "routing.bad_scope", "scope_code"),
        ({"scope_code": "61030200100200x"}, "routing.bad_scope", "scope_code"),
        ({"scope_level": "city", "scope_code": "610302"}, "routing.bad_scope", "scope_code"),
        ({"department_id": 0}, "routing.bad_department", "department_id"),
        ({"department_id": "5"}, "routing.bad_department", "department_id"),
        ({"department_id": True}, "routing.bad_department", "department_id"),
        ({"valid_from": "2026-13-01"}, "routing.bad_date", "valid_from"),
        ({"valid_from": None}, "routing.bad_date", "valid_from"),
        ({"valid_from": dt.datetime(2026, 1, 1)}, "routing.bad_date", "valid_from"),
        ({"valid_to": "2026-01-01"}, "routing.bad_validity", "valid_to"),
        ({"valid_to": "2025-12-31"}, "routing.bad_validity", "valid_to"),
    ],
)
def test_malformed_rows_are_refused_naming_the_row_and_field(row: dict[str, object], code: str, field: str) -> None:
    good = {
        "class_code": "C0101",
        "scope_level": "grid",
        "scope_code": GRID,
        "department_id": 5,
        "valid_from": "2026-01-01",
        "valid_to": None,
    }
    with pytest.raises(InvalidInput) as exc:
        load_rules([good, {**good, **row}])
    assert exc.value.code == code
    assert exc.value.loc == [1, field]


def test_rows_from_json_parse_dates_and_a_missing_city_code() -> None:
    rules = load_rules(
        [
            {
                "class_code": "*",
                "scope_level": "city",
                "department_id": 4,
                "valid_from": "2026-01-01",
                "valid_to": "2027-01-01",
                "id": 3,
            }
        ]
    )
    (r,) = list(rules)
    assert r == RoutingRule("*", "city", "", 4, dt.date(2026, 1, 1), dt.date(2027, 1, 1), 3)


# ---- property: a less specific rule never changes the winner ---------------------------------------------

CLASS_PATTERNS = ["C0101", "C01*", "*", "C0102", "E0101", "E01*"]
FACT_CLASSES = ["C0101", "C0102", "E0101"]
SCOPES = [
    (level, code)
    for level in SCOPE_LEVELS
    for code in (
        {
            "grid": [GRID, "610302001002004"],
            "community": [GRID[:12]],
            "street": [GRID[:9]],
            "district": [GRID[:6], "610303"],
            "city": [""],
        }[level]
    )
]

rules_st = st.builds(
    lambda cls, scope, dept, start, length: RoutingRule(
        cls,
        scope[0],
        scope[1],
        dept,
        dt.date(2026, 1, 1) + dt.timedelta(days=start),
        None if length is None else dt.date(2026, 1, 1) + dt.timedelta(days=start + length),
    ),
    st.sampled_from(CLASS_PATTERNS),
    st.sampled_from(SCOPES),
    st.integers(1, 4),
    st.integers(0, 120),
    st.none() | st.integers(1, 120),
)


@settings(max_examples=300, deadline=None)
@given(rules=st.lists(rules_st, max_size=8), extra=rules_st, cls=st.sampled_from(FACT_CLASSES), day=st.integers(0, 200))
def test_adding_a_less_specific_rule_never_changes_the_winner(
    rules: list[RoutingRule], extra: RoutingRule, cls: str, day: int
) -> None:
    facts = CaseFacts.from_grid(cls, GRID, dt.date(2026, 1, 1) + dt.timedelta(days=day))
    before = choose(facts, rules)
    if before.status is Status.NONE:
        return
    best = min(c.rule.specificity for c in before.candidates)
    if extra.specificity <= best:
        return  # not less specific than the winner
    after = choose(facts, [*rules, extra])
    assert after.status is before.status
    assert after.department_id == before.department_id
    assert [c.department_id for c in after.candidates] == [c.department_id for c in before.candidates]


@settings(max_examples=200, deadline=None)
@given(rules=st.lists(rules_st, max_size=8), cls=st.sampled_from(FACT_CLASSES), day=st.integers(0, 200))
def test_the_index_and_a_plain_scan_agree(rules: list[RoutingRule], cls: str, day: int) -> None:
    try:
        indexed = load_rules(rules)
    except InvalidInput:
        return
    facts = CaseFacts.from_grid(cls, GRID, dt.date(2026, 1, 1) + dt.timedelta(days=day))
    assert choose(facts, indexed) == choose(facts, rules)


# ---- component ownership ---------------------------------------------------------------------------------


def comp(
    code: str, dist: float, main: int | None = None, maint: int | None = None, owner: int | None = None
) -> ComponentFact:
    return ComponentFact(
        code=code,
        class_code="C0101",
        distance_m=dist,
        main_department_id=main,
        maintainer_department_id=maint,
        owner_department_id=owner,
    )


@pytest.mark.parametrize(
    ("components", "dept", "role", "code"),
    [
        ([comp("a", 4.0, main=1, maint=2, owner=3)], 1, "main", "a"),
        ([comp("a", 4.0, maint=2, owner=3)], 2, "maintainer", "a"),
        ([comp("a", 4.0, owner=3)], 3, "owner", "a"),
        ([comp("far", 9.0, main=1), comp("near", 4.0, main=2)], 2, "main", "near"),
        # a component with no department cannot route; the next one can
        ([comp("none", 1.0), comp("b", 6.0, main=5)], 5, "main", "b"),
        # equally near, same department: not ambiguous
        ([comp("a", 4.0, main=1), comp("b", 4.5, maint=1)], 1, "main", "a"),
        # 1.5 m apart is not a tie
        ([comp("a", 4.0, main=1), comp("b", 5.5, main=2)], 1, "main", "a"),
    ],
)
def test_the_nearest_component_with_a_department_decides(
    components: list[ComponentFact], dept: int, role: str, code: str
) -> None:
    choice = choose_component(components)
    assert choice.status is Status.UNIQUE
    assert (choice.department_id, choice.responsibility) == (dept, role)
    assert choice.component is not None and choice.component.code == code


def test_two_components_equally_near_with_different_owners_are_ambiguous() -> None:
    choice = choose_component([comp("a", 4.0, main=1), comp("b", 4.8, owner=2), comp("c", 9.0, main=3)])
    assert choice.status is Status.AMBIGUOUS and choice.department_id is None
    assert [(c.department_id, c.responsibility, c.component.code) for c in choice.candidates] == [
        (1, "main", "a"),
        (2, "owner", "b"),
    ]


def test_no_component_with_a_department_gives_nothing() -> None:
    assert choose_component([]).status is Status.NONE
    assert choose_component([comp("a", 1.0)]).department_id is None
