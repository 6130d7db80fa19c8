"""The effects of actions as data (casework.effects, pure: no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from casework import effects
from casework.lifecycle import CaseAction, CaseFacts, CaseStatus
from casework.timeline import EventFact

A, S = CaseAction, CaseStatus
T0 = dt.datetime(2026, 10, 12, 9, tzinfo=dt.UTC)


def test_dispatch_sets_the_department_and_records_it() -> None:
    e = effects.effect_of(CaseFacts(S.FILED), A.DISPATCH, S.DISPATCHED, effects.EffectInput(department_id=7))
    assert (e.target, dict(e.changes), dict(e.data), e.closes) == (
        S.DISPATCHED,
        {"department_id": 7},
        {"department_id": 7},
        False,
    )


def test_an_approved_sendback_clears_the_department_and_remembers_it() -> None:
    e = effects.effect_of(
        CaseFacts(S.SENDBACK_REQUESTED, department_id=7),
        A.APPROVE_SENDBACK,
        S.FILED,
        effects.EffectInput(data={"via": "console"}),
    )
    assert dict(e.changes) == {"department_id": None}
    assert dict(e.data) == {"via": "console", "from_department_id": 7}


@pytest.mark.parametrize("action", [A.SEND_VERIFY, A.SEND_CHECK])
def test_sending_an_inspector_assigns_them(action: CaseAction) -> None:
    e = effects.effect_of(CaseFacts(S.REPORTED), action, S.VERIFYING, effects.EffectInput(inspector_id=3))
    assert dict(e.changes) == {"assigned_inspector_id": 3} and dict(e.data) == {"inspector_id": 3}


def test_merge_points_at_the_target_and_check_fail_marks_rework_and_close_closes() -> None:
    merge = effects.effect_of(CaseFacts(S.FILED), A.MERGE, S.MERGED, effects.EffectInput(target_case_id=9))
    assert dict(merge.changes) == {"merged_into_id": 9} and merge.data["target_case_id"] == 9
    fail = effects.effect_of(CaseFacts(S.CHECKING), A.CHECK_FAIL, S.DISPATCHED, effects.EffectInput())
    assert dict(fail.data) == {"rework": True} and not fail.changes
    close = effects.effect_of(CaseFacts(S.CHECKED), A.CLOSE, S.CLOSED, effects.EffectInput())
    assert close.closes and not close.changes and not close.data


def test_an_extension_is_recorded_and_the_last_requested_one_is_found_in_the_log() -> None:
    log = [
        EventFact(A.REQUEST_EXTENSION, S.HANDLING, S.HANDLING, T0, {"extension": {"value": v, "unit": "work_day"}})
        for v in (1.0, 2.0)
    ]
    assert effects.last_requested_extension(log) == {"value": 2.0, "unit": "work_day"}
    assert effects.last_requested_extension(log[:0]) is None
    e = effects.effect_of(
        CaseFacts(S.HANDLING),
        A.APPROVE_EXTENSION,
        S.HANDLING,
        effects.EffectInput(extension={"value": 2.0, "unit": "work_day"}),
    )
    assert dict(e.data) == {"extension": {"value": 2.0, "unit": "work_day"}} and not e.changes


def test_missing_input_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="department_id"):
        effects.effect_of(CaseFacts(S.FILED), A.DISPATCH, S.DISPATCHED, effects.EffectInput())
