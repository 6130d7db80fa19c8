"""What an action does to a case, as data (pure: no framework, no database).

:func:`effect_of` is the one statement of every action's effect besides the transition table's target status:
which case attributes it sets and what its event records. ``casework.service.perform_action`` applies the
result (after checking the referenced department, inspector or target case exist), and so does every other
caller that replays actions (the legacy import), so no second copy of these rules exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from casework.lifecycle import CaseAction, CaseFacts, CaseStatus
from casework.timeline import EventFact

A = CaseAction


@dataclass(frozen=True)
class EffectInput:
    """The parts of an action's input its effect depends on (already shape-checked)."""

    department_id: int | None = None
    inspector_id: int | None = None
    target_case_id: int | None = None
    extension: Mapping[str, Any] | None = None  # {"value": 2.0, "unit": "work_day"}, validated
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Effect:
    """The effect of one action: the target status, the case attributes it sets, and the event's data."""

    target: CaseStatus
    changes: Mapping[str, Any]  # case attribute -> new value (department_id, assigned_inspector_id, ...)
    data: Mapping[str, Any]
    closes: bool = False  # sets closed_at to the action's time


def last_requested_extension(log: Sequence[EventFact]) -> dict[str, Any] | None:
    """The extension of the latest ``request_extension`` in the log (None if there was none)."""
    for ev in reversed(log):
        if ev.action is A.REQUEST_EXTENSION:
            ext = ev.data.get("extension")
            return dict(ext) if isinstance(ext, Mapping) else None
    return None


def effect_of(case: CaseFacts, action: CaseAction, target: CaseStatus, inp: EffectInput) -> Effect:
    """What ``action`` (allowed by the table, moving the case to ``target``) does to a case with ``case``'s facts.

    Raises:
        ValueError: the input lacks what the action needs (the table's needs are checked before, so this
            signals a programming error, not bad user input).
    """
    data: dict[str, Any] = dict(inp.data)
    changes: dict[str, Any] = {}
    if action is A.DISPATCH:
        if inp.department_id is None:
            raise ValueError("dispatch needs department_id")
        changes["department_id"] = data["department_id"] = inp.department_id
    elif action is A.APPROVE_SENDBACK:
        data["from_department_id"] = case.department_id
        changes["department_id"] = None
    elif action in (A.SEND_VERIFY, A.SEND_CHECK):
        if inp.inspector_id is None:
            raise ValueError(f"{action} needs inspector_id")
        changes["assigned_inspector_id"] = data["inspector_id"] = inp.inspector_id
    elif action in (A.REQUEST_EXTENSION, A.APPROVE_EXTENSION):
        if inp.extension is None:
            raise ValueError(f"{action} needs an extension")
        data["extension"] = dict(inp.extension)
    elif action is A.MERGE:
        if inp.target_case_id is None:
            raise ValueError("merge needs target_case_id")
        changes["merged_into_id"] = data["target_case_id"] = inp.target_case_id
    elif action is A.CHECK_FAIL:
        data["rework"] = True
    return Effect(target=target, changes=changes, data=data, closes=target is CaseStatus.CLOSED)
