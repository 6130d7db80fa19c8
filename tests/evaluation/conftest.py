"""Fixtures for evaluation tests: drive cases through casework.service with explicit times."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from casework import service as casework_service
from casework.lifecycle import Actor, CaseAction
from casework.models import Attachment, Case
from casework.pipeline import CasePipeline
from casework.rules import load_rules
from components.models import SupervisionArea, SupervisionGrid
from evaluation import facts
from gridcity.database import make_session_factory
from gridcity.org import User
from tests.conftest import Org

TZ = ZoneInfo("Asia/Shanghai")
GRID = "610302001001001"
GRID2 = "610302001002001"


def local(day: int, hh: int, mm: int = 0, month: int = 10) -> dt.datetime:
    """A local (Asia/Shanghai) time in 2026 as an aware UTC datetime."""
    return dt.datetime(2026, month, day, hh, mm, tzinfo=TZ).astimezone(dt.UTC)


class Driver:
    """Creates and moves cases as named users at given times (one session, committed by the caller)."""

    def __init__(self, session: Session, org: Org) -> None:
        self.session = session
        self.org = org
        self.rules = load_rules()
        # Exactly the subscriber these tests need: the evaluation facts follow every action.
        self.pipeline = CasePipeline(self.rules, [facts.on_change])
        self.users = {u.username: u for u in session.scalars(sa.select(User))}
        att = session.scalars(sa.select(Attachment).where(Attachment.sha256 == "e" * 64)).first()
        if att is None:
            att = Attachment(sha256="e" * 64, media_type="image/jpeg", size=1, width=1, height=1)
            session.add(att)
            session.flush()
        self.photo = att.id

    def photo_of(self, username: str) -> int:
        """A new photo row uploaded by ``username`` (evidence belongs to its author and is used once)."""
        att = Attachment(
            sha256=uuid.uuid4().hex * 2,
            media_type="image/jpeg",
            size=1,
            width=1,
            height=1,
            uploaded_by=self.users[username].id,
        )
        self.session.add(att)
        self.session.flush()
        return att.id

    def actor(self, username: str) -> Actor:
        return casework_service.actor_of(self.users[username])

    def new(
        self,
        at: dt.datetime,
        *,
        user: str = "inspector",
        action: str = "report",
        grid: str | None = GRID,
        class_code: str = "C0101",
        urgency: str = "normal",
    ) -> int:
        act = CaseAction(action)
        inp = casework_service.ActionInput(
            attachment_ids=(self.photo_of(user),) if act is CaseAction.SELF_HANDLE else ()
        )
        case = self.pipeline.create_case(
            self.session,
            actor=self.actor(user),
            action=act,
            new=casework_service.NewCase(class_code=class_code, lon=107.1448, lat=34.3693, urgency=urgency),
            inp=inp,
            at=at,
        ).case
        # We place the case in a grid (no grid polygons are loaded in tests) and refresh its facts.
        case.grid_code = grid
        self.session.flush()
        facts.refresh_cases(self.session, case_ids=[case.id], rules=self.rules, now=at)
        return case.id

    def do(self, case_id: int, user: str, action: str, at: dt.datetime, **kw: Any) -> None:
        act = CaseAction(action)
        if act in (CaseAction.FEEDBACK, CaseAction.SELF_HANDLE) or act in casework_service.ON_SITE_ACTIONS:
            kw.setdefault("attachment_ids", (self.photo_of(user),))
        if act in casework_service.ON_SITE_ACTIONS:  # results are given on site
            kw.setdefault("lon", 107.1448)
            kw.setdefault("lat", 34.3693)
        if act in (
            CaseAction.VOID,
            CaseAction.VERIFY_FALSE,
            CaseAction.CHECK_FAIL,
            CaseAction.REQUEST_SENDBACK,
            CaseAction.REJECT_SENDBACK,
            CaseAction.REQUEST_SUSPENSION,
            CaseAction.REQUEST_EXTENSION,
            CaseAction.REJECT_EXTENSION,
            CaseAction.REJECT_SUSPENSION,
        ):
            kw.setdefault("note", "说明")
        if isinstance(kw.get("department_id"), str):
            kw["department_id"] = self.org.depts[kw["department_id"]]
        if isinstance(kw.get("inspector_id"), str):
            kw["inspector_id"] = self.org.ids[kw["inspector_id"]]
        self.pipeline.apply_action(
            self.session,
            case_id=case_id,
            actor=self.actor(user),
            action=act,
            inp=casework_service.ActionInput(**kw),
            at=at,
        )

    def number(self, case_id: int) -> str:
        case = self.session.get(Case, case_id)
        assert case is not None
        return case.number

    def supervise(self, inspector: str, *grids: str) -> None:
        area = SupervisionArea(code=f"SA-{inspector}", name=f"{inspector} 责任区", inspector_id=self.org.ids[inspector])
        self.session.add(area)
        self.session.flush()
        self.session.add_all(SupervisionGrid(supervision_area_id=area.id, grid_code=g) for g in grids)
        self.session.flush()


@pytest.fixture
def session(db: sa.Engine, orgdata: Org) -> Iterator[Session]:
    factory = make_session_factory(db)
    with factory() as s, s.begin():
        yield s


@pytest.fixture
def driver(session: Session, orgdata: Org) -> Driver:
    return Driver(session, orgdata)
