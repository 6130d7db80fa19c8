"""Derive the timed stages of a case from its event log (pure).

The log is the truth; deadlines, traffic lights and evaluation facts are computed from the stage runs
returned here, so they can always be recomputed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from casework.lifecycle import CaseAction, CaseStatus, Stage, stage_of


@dataclass(frozen=True, slots=True)
class EventFact:
    """The parts of one logged event that matter for timing."""

    action: CaseAction
    from_status: CaseStatus
    to_status: CaseStatus
    at: dt.datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    actor_id: int | None = None  # who acted (None: the system)
    department_id: int | None = None  # the case's department after the event


@dataclass(frozen=True)
class StageRun:
    """One run of a timed stage: when it started and ended, its pauses and granted extensions."""

    stage: Stage
    started_at: dt.datetime
    ended_at: dt.datetime | None
    pauses: tuple[tuple[dt.datetime, dt.datetime | None], ...] = ()
    extensions: tuple[tuple[float, str], ...] = ()
    end_action: CaseAction | None = None


@dataclass(frozen=True, slots=True)
class RunSpan:
    """One run of a timed stage as positions in the event sequence it was derived from.

    ``start`` is the event that started the run and ``end`` the one that ended it (None: still open);
    ``pauses`` are the (approve_suspension, resume) event pairs inside it (the resume None when the run ended
    or the log ended while suspended) and ``extensions`` its approved extensions. The one derivation of stage
    runs: :func:`stage_runs` (datetimes) and the evaluation facts (integer clocks) both read these.
    """

    stage: Stage
    start: int
    end: int | None
    pauses: tuple[tuple[int, int | None], ...] = ()
    extensions: tuple[int, ...] = ()


class _Timed(Protocol):
    @property
    def action(self) -> CaseAction: ...
    @property
    def to_status(self) -> CaseStatus: ...


# Actions that start a fresh run even when the stage stays the same (a rework restarts handling).
_RESTARTS = frozenset({CaseAction.DISPATCH, CaseAction.CHECK_FAIL})
_SUSPEND, _RESUME, _EXTEND = CaseAction.APPROVE_SUSPENSION, CaseAction.RESUME, CaseAction.APPROVE_EXTENSION


def run_spans(events: Sequence[_Timed]) -> list[RunSpan]:
    """All stage runs of a case as event positions, oldest first; the last one is open if the case is in a
    timed stage."""
    spans: list[RunSpan] = []
    stage: Stage | None = None
    start = 0
    pauses: list[tuple[int, int | None]] = []
    ext: list[int] = []
    for i, ev in enumerate(events):
        action = ev.action
        new_stage = stage_of(ev.to_status)
        if stage is not None:
            if new_stage != stage or action in _RESTARTS:
                spans.append(RunSpan(stage, start, i, tuple(pauses), tuple(ext)))
                stage = None
            elif action is _SUSPEND:
                pauses.append((i, None))
            elif action is _RESUME and pauses and pauses[-1][1] is None:
                pauses[-1] = (pauses[-1][0], i)
            elif action is _EXTEND:
                ext.append(i)
        if stage is None and new_stage is not None:
            stage, start, pauses, ext = new_stage, i, [], []
    if stage is not None:
        spans.append(RunSpan(stage, start, None, tuple(pauses), tuple(ext)))
    return spans


def extension_of(data: Mapping[str, Any]) -> tuple[float, str]:
    """``(value, unit)`` of an approve_extension event's data."""
    ext = data.get("extension") or {}
    return float(ext.get("value", 0)), str(ext.get("unit", "work_hour"))


def stage_runs(events: Iterable[EventFact]) -> list[StageRun]:
    """All stage runs of a case, oldest first; the last one is open if the case is in a timed stage."""
    evs = events if isinstance(events, Sequence) else list(events)
    runs: list[StageRun] = []
    for r in run_spans(evs):
        end = None if r.end is None else evs[r.end].at
        pauses = tuple((evs[p].at, evs[q].at if q is not None else end) for p, q in r.pauses)
        runs.append(
            StageRun(
                r.stage,
                evs[r.start].at,
                end,
                pauses,
                tuple(extension_of(evs[x].data) for x in r.extensions),
                None if r.end is None else evs[r.end].action,
            )
        )
    return runs
