"""The transition table, judged with no database."""

from __future__ import annotations

import itertools

import pytest

from casework.exceptions import ActionForbidden, InvalidTransition, MissingActionInput
from casework.lifecycle import (
    CREATING_ACTIONS,
    TERMINAL,
    TRANSITIONS,
    Actor,
    CaseAction,
    CaseFacts,
    CaseStatus,
    Need,
    Scope,
    Stage,
    allowed_actions,
    can_view,
    check_transition,
    stage_of,
)
from gridcity.roles import Role

ALL_NEEDS = frozenset(Need)


def actor_for(t, *, user_id=7, dept=3):
    role = next(iter(sorted(t.roles)))
    return Actor(user_id=user_id, role=role, department_id=dept if role is Role.DEPARTMENT else None)


def facts_for(status, t, *, user_id=7, dept=3):
    return CaseFacts(status=status, department_id=dept, reporter_id=user_id, assigned_inspector_id=user_id)


@pytest.mark.parametrize("t", TRANSITIONS, ids=lambda t: f"{t.action}")
def test_every_row_of_the_table_is_allowed_from_each_of_its_sources(t):
    for src in t.sources:
        row = check_transition(actor_for(t), facts_for(src, t), t.action, ALL_NEEDS)
        assert row.target is t.target


def test_anything_not_in_the_table_is_refused():
    for status, action in itertools.product(CaseStatus, CaseAction):
        rows = [t for t in TRANSITIONS if t.action is action and status in t.sources]
        if rows:
            continue
        for role in Role:
            actor = Actor(user_id=7, role=role, department_id=3)
            facts = CaseFacts(status=status, department_id=3, reporter_id=7, assigned_inspector_id=7)
            with pytest.raises((InvalidTransition, ActionForbidden)):
                check_transition(actor, facts, action, ALL_NEEDS)


def test_terminal_states_allow_nothing():
    for status in TERMINAL:
        for role in Role:
            actor = Actor(user_id=7, role=role, department_id=3)
            assert (
                allowed_actions(
                    actor, CaseFacts(status=status, department_id=3, reporter_id=7, assigned_inspector_id=7)
                )
                == []
            )


def test_a_role_that_never_takes_an_action_is_forbidden_not_conflicted():
    with pytest.raises(ActionForbidden) as e:
        check_transition(Actor(1, Role.DEPARTMENT, 3), CaseFacts(CaseStatus.REPORTED), CaseAction.FILE)
    assert e.value.code == "case.role_forbidden"


def test_an_invalid_transition_names_the_allowed_actions():
    with pytest.raises(InvalidTransition) as e:
        check_transition(Actor(1, Role.SHIFT_LEADER), CaseFacts(CaseStatus.REPORTED), CaseAction.CLOSE)
    assert e.value.extra["allowed_actions"] == ["file", "void", "merge"]


def test_department_scope_is_the_case_department():
    facts = CaseFacts(CaseStatus.DISPATCHED, department_id=3)
    assert check_transition(Actor(1, Role.DEPARTMENT, 3), facts, CaseAction.ACCEPT).target is CaseStatus.HANDLING
    with pytest.raises(ActionForbidden) as e:
        check_transition(Actor(1, Role.DEPARTMENT, 4), facts, CaseAction.ACCEPT)
    assert e.value.code == f"case.not_{Scope.OWN_DEPARTMENT}"


def test_only_the_assigned_inspector_answers_a_task():
    facts = CaseFacts(CaseStatus.CHECKING, assigned_inspector_id=9)
    photos = frozenset({Need.ATTACHMENT})
    check_transition(Actor(9, Role.INSPECTOR), facts, CaseAction.CHECK_PASS, photos)
    with pytest.raises(ActionForbidden):
        check_transition(Actor(8, Role.INSPECTOR), facts, CaseAction.CHECK_PASS, photos)


def test_on_site_results_need_photos():
    """Verify and check results carry photos on every route (the table is the one rule)."""
    for action, status, needs in [
        (CaseAction.VERIFY_TRUE, CaseStatus.VERIFYING, set()),
        (CaseAction.VERIFY_FALSE, CaseStatus.VERIFYING, {Need.NOTE}),
        (CaseAction.CHECK_PASS, CaseStatus.CHECKING, set()),
        (CaseAction.CHECK_FAIL, CaseStatus.CHECKING, {Need.NOTE}),
    ]:
        facts = CaseFacts(status, assigned_inspector_id=9)
        with pytest.raises(MissingActionInput) as e:
            check_transition(Actor(9, Role.INSPECTOR), facts, action, frozenset(needs))
        assert e.value.extra["missing"] == ["attachment_ids"]
        check_transition(Actor(9, Role.INSPECTOR), facts, action, frozenset({*needs, Need.ATTACHMENT}))


def test_missing_inputs_are_named():
    with pytest.raises(MissingActionInput) as e:
        check_transition(Actor(1, Role.DISPATCHER), CaseFacts(CaseStatus.FILED), CaseAction.DISPATCH)
    assert e.value.extra["missing"] == ["department_id"]
    with pytest.raises(MissingActionInput) as e:
        check_transition(
            Actor(1, Role.DEPARTMENT, 3), CaseFacts(CaseStatus.HANDLING, department_id=3), CaseAction.REQUEST_EXTENSION
        )
    assert e.value.extra["missing"] == ["extension", "note"]


def test_creating_actions_start_from_new_only():
    for t in TRANSITIONS:
        if CaseStatus.NEW in t.sources:
            assert t.action in CREATING_ACTIONS


def test_every_non_terminal_status_is_reachable_and_can_move_on():
    reachable = {CaseStatus.NEW}
    frontier = [CaseStatus.NEW]
    while frontier:
        s = frontier.pop()
        for t in TRANSITIONS:
            if s in t.sources and t.target not in reachable:
                reachable.add(t.target)
                frontier.append(t.target)
    assert reachable == set(CaseStatus)
    for s in set(CaseStatus) - TERMINAL:
        assert any(s in t.sources for t in TRANSITIONS), s


def test_the_handling_stage_covers_every_state_with_a_department():
    for s in (
        CaseStatus.DISPATCHED,
        CaseStatus.HANDLING,
        CaseStatus.SUSPENDED,
        CaseStatus.SENDBACK_REQUESTED,
        CaseStatus.EXTENSION_REQUESTED,
        CaseStatus.SUSPENSION_REQUESTED,
    ):
        assert stage_of(s) is Stage.HANDLE
    assert stage_of(CaseStatus.CLOSED) is None


def test_visibility_by_role():
    case = CaseFacts(CaseStatus.HANDLING, department_id=3, reporter_id=5, assigned_inspector_id=6)
    assert can_view(Actor(1, Role.LEADER), case)
    assert can_view(Actor(1, Role.DEPARTMENT, 3), case)
    assert not can_view(Actor(1, Role.DEPARTMENT, 4), case)
    assert can_view(Actor(5, Role.INSPECTOR), case) and can_view(Actor(6, Role.INSPECTOR), case)
    assert not can_view(Actor(7, Role.INSPECTOR), case)


def test_a_filed_case_can_be_voided_by_the_shift_leader_with_a_note_before_dispatch():
    lead = Actor(1, Role.SHIFT_LEADER)
    filed = CaseFacts(CaseStatus.FILED)
    assert "void" in allowed_actions(lead, filed)
    row = check_transition(lead, filed, CaseAction.VOID, frozenset({Need.NOTE}))
    assert row.target is CaseStatus.VOIDED
    with pytest.raises(MissingActionInput) as e:
        check_transition(lead, filed, CaseAction.VOID)
    assert e.value.extra["missing"] == ["note"]
    # Only the shift leader voids; the dispatcher may only dispatch a filed case.
    with pytest.raises(ActionForbidden):
        check_transition(Actor(1, Role.DISPATCHER), filed, CaseAction.VOID, ALL_NEEDS)
    assert allowed_actions(Actor(1, Role.DISPATCHER), filed) == ["dispatch"]


@pytest.mark.parametrize(
    "status",
    [
        CaseStatus.DISPATCHED,
        CaseStatus.HANDLING,
        CaseStatus.SUSPENDED,
        CaseStatus.FEEDBACK,
        CaseStatus.CHECKED,
        CaseStatus.CLOSED,
    ],
)
def test_a_case_cannot_be_voided_once_dispatched(status):
    with pytest.raises(InvalidTransition):
        check_transition(Actor(1, Role.SHIFT_LEADER), CaseFacts(status), CaseAction.VOID, ALL_NEEDS)
