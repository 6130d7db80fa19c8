"""One case pipeline per app: perform an action (``casework.service``), then tell this app's subscribers.

The pipeline is built where the app (or a CLI command) is assembled, with its subscribers passed in
explicitly: the evaluation facts, auto-dispatch with this app's routing settings, the live stream. There is no
module-level hook list, so two apps in one process never affect each other, and a test builds a pipeline with
exactly the subscribers it needs (``CasePipeline(rules)`` has none).

A subscriber runs inside the action's transaction, after the action has been flushed, in the order given. It
receives the pipeline itself, so that a follow-on action (auto-dispatch after filing) runs through the same
subscribers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.orm import Session

from casework import service
from casework.lifecycle import Actor, CaseAction
from casework.rules import CaseRules
from casework.service import ActionInput, CaseChange, NewCase
from components.service import Located


class Subscriber(Protocol):
    """Called after every successful action of the pipeline, in the action's transaction."""

    def __call__(self, session: Session, change: CaseChange, pipeline: CasePipeline) -> None:
        """React to ``change`` (may run follow-on actions through ``pipeline``)."""


class CasePipeline:
    """The actions of one app, with its rules and its subscribers."""

    def __init__(self, rules: CaseRules, subscribers: Sequence[Subscriber] = ()) -> None:
        """A pipeline over ``rules`` that tells ``subscribers``, in this order, of every change."""
        self.rules = rules
        self.subscribers: tuple[Subscriber, ...] = tuple(subscribers)

    def create_case(
        self,
        session: Session,
        *,
        actor: Actor,
        action: CaseAction,
        new: NewCase,
        inp: ActionInput = ActionInput(),
        at: dt.datetime | None = None,
        located: Located | None = None,
    ) -> CaseChange:
        """Take in a report as a new case (:func:`casework.service.open_case`), then tell the subscribers.

        ``located``: where the report's point lies, when the caller has located it already (not looked up again).
        """
        change = service.open_case(
            session, actor=actor, action=action, new=new, inp=inp, rules=self.rules, at=at, located=located
        )
        self._publish(session, change)
        return change

    def apply_action(
        self,
        session: Session,
        *,
        case_id: int,
        actor: Actor,
        action: CaseAction,
        inp: ActionInput = ActionInput(),
        at: dt.datetime | None = None,
    ) -> CaseChange:
        """Perform one action (:func:`casework.service.perform_action`), then tell the subscribers."""
        change = service.perform_action(
            session, case_id=case_id, actor=actor, action=action, inp=inp, rules=self.rules, at=at
        )
        self._publish(session, change)
        return change

    def _publish(self, session: Session, change: CaseChange) -> None:
        for subscriber in self.subscribers:
            subscriber(session, change, self)
