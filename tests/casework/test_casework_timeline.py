"""Stage runs derived from the log (pure)."""

from __future__ import annotations

import datetime as dt

from casework.lifecycle import CaseAction as A
from casework.lifecycle import CaseStatus as S
from casework.lifecycle import Stage
from casework.timeline import EventFact, stage_runs

T0 = dt.datetime(2026, 10, 12, 1, 0, tzinfo=dt.UTC)


def ev(minutes, action, frm, to, **data):
    return EventFact(action, frm, to, T0 + dt.timedelta(minutes=minutes), data)


def test_main_path_gives_one_run_per_stage():
    runs = stage_runs(
        [
            ev(0, A.REPORT, S.NEW, S.REPORTED),
            ev(10, A.FILE, S.REPORTED, S.FILED),
            ev(20, A.DISPATCH, S.FILED, S.DISPATCHED),
            ev(30, A.ACCEPT, S.DISPATCHED, S.HANDLING),
            ev(90, A.FEEDBACK, S.HANDLING, S.FEEDBACK),
            ev(100, A.SEND_CHECK, S.FEEDBACK, S.CHECKING),
            ev(130, A.CHECK_PASS, S.CHECKING, S.CHECKED),
            ev(140, A.CLOSE, S.CHECKED, S.CLOSED),
        ]
    )

    def m(t):
        return None if t is None else int((t - T0).total_seconds() // 60)

    assert [(r.stage, m(r.started_at), m(r.ended_at)) for r in runs] == [
        (Stage.FILE, 0, 10),
        (Stage.DISPATCH, 10, 20),
        (Stage.HANDLE, 20, 90),
        (Stage.CHECK, 100, 130),
    ]
    assert runs[2].end_action is A.FEEDBACK


def test_suspension_is_a_pause_and_extension_is_kept():
    runs = stage_runs(
        [
            ev(0, A.DISPATCH, S.FILED, S.DISPATCHED),
            ev(5, A.ACCEPT, S.DISPATCHED, S.HANDLING),
            ev(10, A.REQUEST_SUSPENSION, S.HANDLING, S.SUSPENSION_REQUESTED),
            ev(15, A.APPROVE_SUSPENSION, S.SUSPENSION_REQUESTED, S.SUSPENDED),
            ev(45, A.RESUME, S.SUSPENDED, S.HANDLING),
            ev(50, A.REQUEST_EXTENSION, S.HANDLING, S.EXTENSION_REQUESTED, extension={"value": 1, "unit": "work_day"}),
            ev(55, A.APPROVE_EXTENSION, S.EXTENSION_REQUESTED, S.HANDLING, extension={"value": 1, "unit": "work_day"}),
        ]
    )
    (run,) = runs
    assert run.ended_at is None
    assert run.pauses == ((T0 + dt.timedelta(minutes=15), T0 + dt.timedelta(minutes=45)),)
    assert run.extensions == ((1.0, "work_day"),)


def test_rework_restarts_the_handling_run():
    runs = stage_runs(
        [
            ev(0, A.DISPATCH, S.FILED, S.DISPATCHED),
            ev(60, A.FEEDBACK, S.HANDLING, S.FEEDBACK),
            ev(70, A.SEND_CHECK, S.FEEDBACK, S.CHECKING),
            ev(80, A.CHECK_FAIL, S.CHECKING, S.DISPATCHED),
        ]
    )
    assert [r.stage for r in runs] == [Stage.HANDLE, Stage.CHECK, Stage.HANDLE]
    assert runs[-1].ended_at is None and runs[-1].started_at == T0 + dt.timedelta(minutes=80)


def test_an_open_suspension_is_closed_at_the_end_of_a_finished_run():
    runs = stage_runs(
        [
            ev(0, A.DISPATCH, S.FILED, S.DISPATCHED),
            ev(1, A.ACCEPT, S.DISPATCHED, S.HANDLING),
            ev(2, A.REQUEST_SUSPENSION, S.HANDLING, S.SUSPENSION_REQUESTED),
            ev(3, A.APPROVE_SUSPENSION, S.SUSPENSION_REQUESTED, S.SUSPENDED),
        ]
    )
    assert runs[0].pauses == ((T0 + dt.timedelta(minutes=3), None),)
