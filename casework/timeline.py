"""Derive the timed stages of a case from its event log (pure).

The log is the truth; deadlines, traffic lights and evaluation facts are computed from the stage runs
returned here, so they can always be recomputed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from casework.lifecycle import CaseAction, CaseStatus, Stage, stage_of


@dataclass(frozen=True)
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


# Actions that start a fresh run even when the stage stays the same (a rework restarts handling).
_RESTARTS = frozenset({CaseAction.DISPATCH, CaseAction.CHECK_FAIL})


def stage_runs(events: Iterable[EventFact]) -> list[StageRun]:
    """All stage runs of a case, oldest first; the last one is open if the case is in a timed stage."""
    runs: list[StageRun] = []
    current: dict[str, Any] | None = None

    def close(at: dt.datetime, action: CaseAction) -> None:
        nonlocal current
        if current is None:
            return
        pauses = tuple((s, e if e is not None else at) for s, e in current["pauses"])
        runs.append(StageRun(current["stage"], current["start"], at, pauses, tuple(current["ext"]), action))
        current = None

    for ev in events:
        new_stage = stage_of(ev.to_status)
        old_stage = current["stage"] if current else None
        if current is not None and (new_stage != old_stage or ev.action in _RESTARTS):
            close(ev.at, ev.action)
        if current is not None:
            if ev.action is CaseAction.APPROVE_SUSPENSION:
                current["pauses"].append((ev.at, None))
            elif ev.action is CaseAction.RESUME and current["pauses"] and current["pauses"][-1][1] is None:
                current["pauses"][-1] = (current["pauses"][-1][0], ev.at)
            elif ev.action is CaseAction.APPROVE_EXTENSION:
                ext = ev.data.get("extension") or {}
                current["ext"].append((float(ext.get("value", 0)), str(ext.get("unit", "work_hour"))))
        if current is None and new_stage is not None:
            current = {"stage": new_stage, "start": ev.at, "pauses": [], "ext": []}
    if current is not None:
        runs.append(StageRun(current["stage"], current["start"], None, tuple(current["pauses"]), tuple(current["ext"])))
    return runs
