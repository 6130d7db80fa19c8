"""The cached stage clock (deadline, 80% warning, light) is measured in working time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from casework import service
from casework.lifecycle import Actor, CaseAction
from gridcity.roles import Role

CST = ZoneInfo("Asia/Shanghai")


def test_a_friday_evening_report_stays_green_over_the_weekend(session_factory, orgdata):
    friday = dt.datetime(2026, 10, 16, 17, 30, tzinfo=CST)  # 30 working minutes left that day
    inspector = Actor(orgdata.ids["inspector"], Role.INSPECTOR)
    with session_factory() as s, s.begin():
        case = service.create_case(
            s,
            actor=inspector,
            action=CaseAction.REPORT,
            at=friday,
            new=service.NewCase(class_code="C0101", lon=107.1448, lat=34.3693),
        )
        # 立案 limit for C0101: 1 working hour → 30 min on Friday + 30 min from Monday 08:30.
        assert case.deadline_at == dt.datetime(2026, 10, 19, 9, 0, tzinfo=CST)
        # 80% = 48 working minutes → Monday 08:48.
        assert case.warn_at == dt.datetime(2026, 10, 19, 8, 48, tzinfo=CST)
        saturday_noon = dt.datetime(2026, 10, 17, 12, 0, tzinfo=CST)
        assert service.light_of(case, saturday_noon) == "green"
        assert service.light_of(case, dt.datetime(2026, 10, 19, 8, 50, tzinfo=CST)) == "yellow"
        assert service.light_of(case, dt.datetime(2026, 10, 19, 9, 1, tzinfo=CST)) == "red"


def test_the_clock_of_a_filed_case_starts_at_filing(session_factory, orgdata):
    t0 = dt.datetime(2026, 10, 14, 9, 0, tzinfo=CST)  # a Wednesday
    with session_factory() as s, s.begin():
        case = service.create_case(
            s,
            actor=Actor(orgdata.ids["inspector"], Role.INSPECTOR),
            at=t0,
            action=CaseAction.REPORT,
            new=service.NewCase(class_code="C0101", lon=107.1448, lat=34.3693),
        )
        case, _ = service.apply_action(
            s,
            case_id=case.id,
            actor=Actor(orgdata.ids["shiftlead"], Role.SHIFT_LEADER),
            action=CaseAction.FILE,
            at=t0 + dt.timedelta(minutes=20),
        )
        assert case.stage == "dispatch"
        assert case.deadline_at == t0 + dt.timedelta(minutes=80)
        assert service.light_of(case, t0 + dt.timedelta(minutes=30)) == "green"
