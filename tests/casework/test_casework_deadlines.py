"""Tests of the pure deadline arithmetic (casework.deadlines): hand-checked tables and properties.

Calendar used by the tables: the shipped default (Asia/Shanghai, 08:30-12:00 and 14:00-18:00, Sat/Sun off,
2025 holidays). 2025-03-03 is a Monday; a full working day is 7.5 h = 27000 working seconds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.deadlines import (
    ANY,
    STANDARDS_COLUMNS,
    Clock,
    HandlingStandard,
    Limit,
    LimitUnit,
    Pause,
    StandardsTable,
    WorkCalendar,
    add_limit,
    add_measured_seconds,
    add_work_seconds,
    convert_extension,
    limit_elapsed,
    limit_seconds,
    merge,
    merge_pauses,
    stage_clock,
    work_seconds_between,
)
from casework.rules import DATA_DIR, default_calendar, default_handling_standards
from casework.tables import load_calendar, load_handling_standards
from gridcity.errors import InvalidInput, NotFound

SH = ZoneInfo("Asia/Shanghai")
CAL = default_calendar()
PROPS = settings(max_examples=200, deadline=None)


def at(text: str) -> datetime:
    """Local Shanghai time from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


# ----- calendar


def test_default_calendar_shape() -> None:
    assert CAL.timezone == "Asia/Shanghai"
    assert CAL.periods == ((time(8, 30), time(12, 0)), (time(14, 0), time(18, 0)))
    assert CAL.weekend == frozenset({5, 6})
    assert CAL.work_seconds_per_day == 27000


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2025-03-03", True),  # Monday
        ("2025-03-08", False),  # Saturday
        ("2025-01-01", False),  # 元旦
        ("2025-01-26", True),  # Sunday, 春节 make-up day
        ("2025-02-04", False),  # last day of 春节
        ("2025-02-08", True),  # Saturday, make-up day
        ("2025-04-04", False),  # 清明
        ("2025-04-27", True),  # Sunday, 劳动节 make-up day
        ("2025-05-05", False),
        ("2025-06-02", False),  # 端午 (Monday)
        ("2025-09-28", True),
        ("2025-10-08", False),
        ("2025-10-11", True),
        # 2026, every line of the State Council notice of 2025-11-04:
        ("2026-01-02", False),  # 元旦 1月1日至3日 (Friday)
        ("2026-01-04", True),  # Sunday, 元旦 make-up day
        ("2026-02-14", True),  # Saturday, 春节 make-up day
        ("2026-02-16", False),  # 春节 2月15日至23日 (Monday)
        ("2026-02-23", False),
        ("2026-02-24", True),
        ("2026-02-28", True),  # Saturday, make-up day
        ("2026-04-06", False),  # 清明 4月4日至6日 (Monday)
        ("2026-05-05", False),  # 劳动节 5月1日至5日 (Tuesday)
        ("2026-05-09", True),  # Saturday, make-up day
        ("2026-06-19", False),  # 端午 (Friday)
        ("2026-09-20", True),  # Sunday, 国庆 make-up day
        ("2026-09-25", False),  # 中秋 (Friday)
        ("2026-10-07", False),  # 国庆 10月1日至7日 (Wednesday)
        ("2026-10-08", True),
        ("2026-10-10", True),  # Saturday, make-up day
    ],
)
def test_is_working_day(day: str, working: bool) -> None:
    assert CAL.is_working_day(date.fromisoformat(day)) is working


@pytest.mark.parametrize(
    ("start", "end", "seconds"),
    [
        ("2025-03-03 11:00", "2025-03-03 15:00", 7200),  # across the lunch break
        ("2025-03-07 17:00", "2025-03-10 09:30", 7200),  # across a weekend
        ("2025-03-03 00:00", "2025-03-04 00:00", 27000),  # a full day
        ("2025-03-08 00:00", "2025-03-10 00:00", 0),  # a weekend
        ("2025-02-08 00:00", "2025-02-09 00:00", 27000),  # a make-up Saturday
        ("2025-04-03 17:00", "2025-04-07 09:30", 7200),  # across 清明
        ("2025-03-03 12:00", "2025-03-03 14:00", 0),  # lunch break
        ("2025-03-03 15:00", "2025-03-03 11:00", 0),  # end before start
        ("2025-03-03 10:00", "2025-03-03 10:00:00.5", 0.5),
    ],
)
def test_work_seconds_between(start: str, end: str, seconds: float) -> None:
    assert work_seconds_between(CAL, at(start), at(end)) == seconds


@pytest.mark.parametrize(
    ("start", "value", "unit", "expected"),
    [
        ("2025-03-03 11:00", 2, "work_hour", "2025-03-03 15:00"),  # crosses lunch
        ("2025-03-03 11:00", 1, "work_hour", "2025-03-03 12:00"),  # ends at a period end: stays there
        ("2025-03-03 10:00", 0.5, "work_hour", "2025-03-03 10:30"),
        ("2025-03-07 17:00", 2, "work_hour", "2025-03-10 09:30"),  # weekend
        ("2025-04-03 17:00", 2, "work_hour", "2025-04-07 09:30"),  # 清明 Fri + weekend
        ("2025-01-27 17:00", 2, "work_hour", "2025-02-05 09:30"),  # 春节
        ("2025-09-30 17:00", 2, "work_hour", "2025-10-09 09:30"),  # 国庆 + 中秋
        ("2025-02-07 17:00", 2, "work_hour", "2025-02-08 09:30"),  # make-up Saturday
        ("2025-03-03 07:00", 1, "work_hour", "2025-03-03 09:30"),  # start before work
        ("2025-03-03 12:30", 1, "work_hour", "2025-03-03 15:00"),  # start in the lunch break
        ("2025-03-03 19:00", 1, "work_hour", "2025-03-04 09:30"),  # start in the evening
        ("2025-03-08 10:00", 1, "work_hour", "2025-03-10 09:30"),  # start on a Saturday
        ("2025-03-03 10:00", 1, "work_day", "2025-03-04 10:00"),
        ("2025-03-03 08:30", 5, "work_day", "2025-03-07 18:00"),  # five full days end Friday 18:00
        ("2025-05-29 10:00", 2, "work_day", "2025-06-03 10:00"),  # 端午 Sat-Mon
        ("2025-03-07 20:00", 48, "hour", "2025-03-09 20:00"),  # plain hours ignore the weekend
        ("2025-03-07 20:00", 1, "day", "2025-03-08 20:00"),
        ("2025-03-07 23:00", 90, "minute", "2025-03-08 00:30"),
        ("2025-03-03 07:00", 0, "work_hour", "2025-03-03 07:00"),  # a zero limit is due at once
    ],
)
def test_add_limit(start: str, value: float, unit: str, expected: str) -> None:
    result = add_limit(CAL, at(start), value, unit)
    assert result == at(expected)
    assert result.tzinfo == SH


def test_results_are_in_calendar_timezone_whatever_the_input_zone() -> None:
    start_utc = at("2025-03-03 11:00").astimezone(UTC)
    assert add_work_seconds(CAL, start_utc, 7200) == at("2025-03-03 15:00")
    assert add_work_seconds(CAL, start_utc, 7200).utcoffset() == timedelta(hours=8)


def test_limit_seconds_and_measures() -> None:
    assert limit_seconds(CAL, 2, LimitUnit.WORK_HOUR) == 7200
    assert limit_seconds(CAL, 2, "work_day") == 54000
    assert limit_seconds(CAL, 1, "day") == 86400
    assert limit_seconds(CAL, 3, "minute") == 180
    assert limit_elapsed(CAL, at("2025-03-07 17:00"), at("2025-03-10 09:30"), "work_hour") == 7200
    assert limit_elapsed(CAL, at("2025-03-07 17:00"), at("2025-03-10 09:30"), "hour") == 64.5 * 3600
    assert add_measured_seconds(CAL, at("2025-03-07 17:00"), 7200, "work_day") == at("2025-03-10 09:30")
    assert LimitUnit.WORK_DAY.counts_working_time and not LimitUnit.DAY.counts_working_time


def test_convert_extension() -> None:
    assert convert_extension(CAL, 4, "work_hour", stage_unit="work_day") == 14400
    assert convert_extension(CAL, 1, "day", stage_unit="hour") == 86400
    with pytest.raises(InvalidInput) as err:
        convert_extension(CAL, 1, "work_day", stage_unit="hour")
    assert err.value.code == "deadline.unit_mismatch"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (
            lambda: work_seconds_between(CAL, datetime(2025, 3, 3), at("2025-03-04 00:00")),
            "deadline.naive_datetime",
        ),
        (lambda: add_work_seconds(CAL, at("2025-03-03 00:00"), -1), "deadline.invalid_amount"),
        (lambda: add_work_seconds(CAL, at("2025-03-03 00:00"), float("nan")), "deadline.invalid_amount"),
        (lambda: add_limit(CAL, at("2025-03-03 00:00"), 1, "fortnight"), "deadline.invalid_unit"),
        (lambda: add_limit(CAL, at("2025-03-03 00:00"), 1e9, "day"), "deadline.invalid_amount"),
        (lambda: add_work_seconds(CAL, at("2025-03-03 00:00"), 1e12), "deadline.invalid_amount"),
        (lambda: Pause(at("2025-03-03 10:00"), at("2025-03-03 09:00")), "deadline.invalid_pause"),
        (lambda: Pause(datetime(2025, 3, 3)), "deadline.naive_datetime"),
        (
            lambda: stage_clock(CAL, start=at("2025-03-03 08:00"), value=1, unit=None, now=at("2025-03-03 09:00")),
            "deadline.invalid_unit",
        ),
        (
            lambda: stage_clock(
                CAL,
                start=at("2025-03-03 08:00"),
                value=1,
                unit="hour",
                now=at("2025-03-03 09:00"),
                yellow_at=0,
            ),
            "deadline.invalid_amount",
        ),
    ],
)
def test_bad_arguments(call: Any, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        call()
    assert err.value.code == code


# ----- stage clock

S = at("2025-03-03 08:30")  # Monday
P_LUNCHTIME = Pause(at("2025-03-03 10:30"), at("2025-03-04 08:30"))


def clock(**kwargs: Any) -> Clock:
    args: dict[str, Any] = {"start": S, "value": 4, "unit": "work_hour"}
    args.update(kwargs)
    return stage_clock(CAL, **args)


CLOCK_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "running, no pause",
        {"now": at("2025-03-03 10:00")},
        {"deadline": at("2025-03-03 14:30"), "used_seconds": 5400, "fraction": 0.375, "light": "green"},
    ),
    (
        "closed suspension pauses the clock",
        {"now": at("2025-03-04 09:00"), "pauses": [P_LUNCHTIME]},
        {"deadline": at("2025-03-04 10:30"), "used_seconds": 9000, "light": "green", "paused": False},
    ),
    (
        "open suspension: deadline unknown",
        {"now": at("2025-03-03 15:00"), "pauses": [Pause(at("2025-03-03 10:30"))]},
        {"deadline": None, "used_seconds": 7200, "fraction": 0.5, "light": "green", "paused": True},
    ),
    (
        "open suspension after the deadline passed keeps the deadline and stays red",
        {"value": 1, "now": at("2025-03-04 10:00"), "pauses": [Pause(at("2025-03-03 10:00"))]},
        {
            "deadline": at("2025-03-03 09:30"),
            "used_seconds": 5400,
            "light": "red",
            "overdue_seconds": 1800,
            "paused": True,
        },
    ),
    (
        "suspension over a weekend does not move a working-time deadline",
        {
            "start": at("2025-03-07 16:00"),
            "now": at("2025-03-10 09:00"),
            "pauses": [Pause(at("2025-03-08 00:00"), at("2025-03-10 00:00"))],
        },
        {"deadline": at("2025-03-10 10:30"), "used_seconds": 9000},
    ),
    (
        "overlapping suspensions in any order are merged",
        {
            "now": at("2025-03-03 15:00"),
            "pauses": [
                Pause(at("2025-03-03 09:30"), at("2025-03-03 11:00")),
                Pause(at("2025-03-03 09:00"), at("2025-03-03 10:00")),
            ],
        },
        {"deadline": at("2025-03-03 16:30"), "used_seconds": 9000, "light": "green"},
    ),
    (
        "extension moves the deadline",
        {"now": at("2025-03-03 15:00"), "extension_seconds": 7200},
        {
            "deadline": at("2025-03-03 16:30"),
            "limit_seconds": 21600,
            "used_seconds": 16200,
            "fraction": 0.75,
            "light": "green",
        },
    ),
    (
        "same case without extension is overdue",
        {"now": at("2025-03-03 15:00")},
        {"deadline": at("2025-03-03 14:30"), "light": "red", "overdue_seconds": 1800, "fraction": 1.125},
    ),
    (
        "plain hours with a suspension",
        {
            "start": at("2025-03-03 08:00"),
            "value": 24,
            "unit": "hour",
            "now": at("2025-03-04 10:00"),
            "pauses": [Pause(at("2025-03-03 20:00"), at("2025-03-04 08:00"))],
        },
        {"deadline": at("2025-03-04 20:00"), "used_seconds": 14 * 3600, "light": "green"},
    ),
    (
        "yellow at 80%",
        {"start": at("2025-03-03 08:00"), "value": 5, "unit": "hour", "now": at("2025-03-03 12:00")},
        {"used_seconds": 14400, "fraction": 0.8, "light": "yellow", "overdue_seconds": 0},
    ),
    (
        "green just below 80%",
        {"start": at("2025-03-03 08:00"), "value": 5, "unit": "hour", "now": at("2025-03-03 11:59")},
        {"light": "green"},
    ),
    (
        "exactly at the deadline is not yet overdue",
        {"start": at("2025-03-03 08:00"), "value": 5, "unit": "hour", "now": at("2025-03-03 13:00")},
        {"deadline": at("2025-03-03 13:00"), "fraction": 1.0, "light": "yellow", "overdue_seconds": 0},
    ),
    (
        "red one second after the deadline",
        {"start": at("2025-03-03 08:00"), "value": 5, "unit": "hour", "now": at("2025-03-03 13:00:01")},
        {"light": "red", "overdue_seconds": 1},
    ),
    (
        "finished late stays red",
        {
            "start": at("2025-03-03 08:00"),
            "value": 5,
            "unit": "hour",
            "end": at("2025-03-03 14:00"),
            "now": at("2025-03-10 09:00"),
        },
        {"used_seconds": 21600, "fraction": 1.2, "light": "red", "overdue_seconds": 3600, "paused": False},
    ),
    (
        "finished on time is green even above 80%",
        {
            "start": at("2025-03-03 08:00"),
            "value": 5,
            "unit": "hour",
            "end": at("2025-03-03 12:30"),
            "now": at("2025-03-10 09:00"),
        },
        {"used_seconds": 16200, "fraction": 0.9, "light": "green"},
    ),
    (
        "finished while suspended: the suspension ends at the finish",
        {
            "now": at("2025-03-10 09:00"),
            "end": at("2025-03-04 10:00"),
            "pauses": [Pause(at("2025-03-03 10:30"))],
        },
        {"used_seconds": 7200, "light": "green", "paused": False, "deadline": at("2025-03-04 12:00")},
    ),
    (
        "work_day limit across a holiday",
        {"start": at("2025-04-03 10:00"), "value": 1, "unit": "work_day", "now": at("2025-04-07 09:00")},
        {"deadline": at("2025-04-07 10:00"), "used_seconds": 6 * 3600 + 1800, "light": "yellow"},
    ),
    (
        "now before start",
        {"now": at("2025-03-03 07:00")},
        {"used_seconds": 0, "fraction": 0.0, "light": "green", "paused": False},
    ),
    (
        "zero limit, used",
        {"value": 0, "now": at("2025-03-03 09:00")},
        {"deadline": S, "fraction": float("inf"), "light": "red", "overdue_seconds": 1800},
    ),
    (
        "stage without a limit",
        {"value": None, "unit": None, "now": at("2025-03-03 10:30")},
        {"deadline": None, "limit_seconds": None, "fraction": None, "light": "none", "used_seconds": 7200},
    ),
]


@pytest.mark.parametrize(("kwargs", "expected"), [c[1:] for c in CLOCK_CASES], ids=[c[0] for c in CLOCK_CASES])
def test_stage_clock(kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    result = clock(**kwargs)
    for name, value in expected.items():
        assert getattr(result, name) == value, name


def test_extension_helper_feeds_stage_clock() -> None:
    ext = convert_extension(CAL, 1, "work_day", stage_unit="work_day")
    result = clock(value=2, unit="work_day", now=at("2025-03-03 09:00"), extension_seconds=ext)
    assert result.deadline == at("2025-03-05 18:00")  # three full working days


def test_merge_pauses() -> None:
    merged = merge_pauses(
        [
            Pause(at("2025-03-03 12:00"), at("2025-03-03 13:00")),
            Pause(at("2025-03-03 09:00"), at("2025-03-03 10:00")),
            Pause(at("2025-03-03 10:00"), at("2025-03-03 11:00")),  # touching: joined
            Pause(at("2025-03-03 12:30")),  # open: swallows the rest
            Pause(at("2025-03-03 15:00"), at("2025-03-03 16:00")),
        ]
    )
    assert merged == (
        Pause(at("2025-03-03 09:00"), at("2025-03-03 11:00")),
        Pause(at("2025-03-03 12:00"), None),
    )


# ----- calendar loading

GOOD_TOML = """
timezone = "Asia/Shanghai"
weekend = ["sun", 6]
working_periods = [["09:00", "12:00"], [13:00:00, "17:30"]]
makeup_workdays = ["2025-03-09"]

[[holidays]]
name = "x"
start = 2025-03-04
end = "2025-03-05"
makeup_workdays = [2025-03-16]

[[holidays]]
start = 2025-03-07
"""


def test_load_calendar() -> None:
    cal = load_calendar(GOOD_TOML)
    assert cal.weekend == frozenset({5, 6})
    assert cal.periods == ((time(9), time(12)), (time(13), time(17, 30)))
    assert cal.holidays == {date(2025, 3, 4), date(2025, 3, 5), date(2025, 3, 7)}
    assert cal.makeup_workdays == {date(2025, 3, 9), date(2025, 3, 16)}
    assert cal.work_seconds_per_day == 7.5 * 3600
    assert add_work_seconds(cal, datetime(2025, 3, 3, 16, tzinfo=SH), 7200) == datetime(2025, 3, 6, 9, 30, tzinfo=SH)


def test_empty_calendar_uses_defaults() -> None:
    assert load_calendar("") == WorkCalendar()


@pytest.mark.parametrize(
    "text",
    [
        'working_periods = [["08:30", "12:00"], ["11:00", "18:00"]]',  # overlap
        'working_periods = [["12:00", "08:30"]]',  # end before start
        'working_periods = [["08:30", "08:30"]]',  # empty
        'working_periods = [["8h30", "12:00"]]',
        "working_periods = []",
        '[[holidays]]\nstart = "2025-02-30"',  # bad date
        "[[holidays]]\nstart = 2025-03-05\nend = 2025-03-04",
        "[[holidays]]\nstart = 2025-03-08\nmakeup_workdays = [2025-03-08]",  # both holiday and make-up
        'makeup_workdays = ["2025-03-03"]',  # a Monday is not a weekend day
        "[[holidays]]\nstart = 2025-03-03T00:00:00",
        "[[holidays]]\nend = 2025-03-03",
        "[[holidays]]\nstart = 2025-03-03\nlength = 2",
        'timezone = "Mars/Olympus"',
        'weekend = ["sat", "funday"]',
        'weekend = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]',
        "holiday = []",  # unknown key
        "timezone = ",  # not TOML
    ],
)
def test_load_calendar_rejects(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        load_calendar(text)
    assert err.value.code == "calendar.invalid"
    assert err.value.loc[0] == "calendar"


@pytest.mark.parametrize(
    ("text", "loc"),
    [
        ('[[holidays]]\nstart = "2025-02-30"', ["calendar", "holidays", 0, "start"]),
        ("[[holidays]]\nend = 2025-03-03", ["calendar", "holidays", 0, "start"]),
        ("[[holidays]]\nstart = 2025-03-05\nend = 2025-03-04", ["calendar", "holidays", 0, "end"]),
        ("[[holidays]]\nstart = 2025-03-03\nlength = 2", ["calendar", "holidays", 0, "length"]),
        ('working_periods = [["08:30", "12:00"], ["8h30", "9:00"]]', ["calendar", "working_periods", 1, 0]),
        ('working_periods = [["08:30"]]', ["calendar", "working_periods", 0, 1]),  # the missing end
        ('weekend = ["sat", "funday"]', ["calendar", "weekend", 1]),
        ("timezone = 8", ["calendar", "timezone"]),
        ('timezone = "Mars/Olympus"', ["calendar", "timezone"]),
        ("holiday = []", ["calendar", "holiday"]),
        ("timezone = ", ["calendar"]),
    ],
)
def test_load_calendar_error_names_the_key(text: str, loc: list[str | int]) -> None:
    with pytest.raises(InvalidInput) as err:
        load_calendar(text)
    assert err.value.loc == loc
    assert "工作日历" in err.value.message


# ----- standards

HEADER = ",".join(STANDARDS_COLUMNS)
W = "1,work_hour,1,work_hour"
V = "2,work_hour,2,work_hour"


def table(*rows: str) -> StandardsTable:
    return load_handling_standards("\n".join([HEADER, *rows]) + "\n")


def test_shipped_standards_load_and_default_for_unknown_class() -> None:
    std = default_handling_standards()
    assert len(std) >= 20
    fallback = std.lookup("E9999", "normal")
    assert fallback.key == (ANY, ANY, "")
    assert fallback.handle == Limit(5, LimitUnit.WORK_DAY)
    assert std.lookup("X", "normal").key == (ANY, ANY, "")
    assert std.lookup("E9999", "urgent").key == (ANY, "urgent", "")
    assert all(row.filing_condition and row.close_condition and row.handle for row in std)


@pytest.mark.parametrize(
    ("code", "urgency", "region", "key"),
    [
        ("C0101", "urgent", "", ("C0101", "urgent", "")),
        ("C0101", "normal", "B", ("C0101", "normal", "")),
        ("c0110", "normal", "", ("C01*", "normal", "")),  # major default
        ("C0110", "urgent", "", ("C01*", "urgent", "")),
        ("E0102", "normal", "A", ("E0102", "normal", "A")),  # region-specific
        ("E0102", "normal", "C", ("E0102", "normal", "")),
        ("E0102", "urgent", "", (ANY, "urgent", "")),  # no urgent row for E0102 / E01*: global urgent
        ("E0499", "urgent", "", ("E04*", "urgent", "")),
        ("C0699", "normal", "", (ANY, ANY, "")),
    ],
)
def test_shipped_lookup(code: str, urgency: str, region: str, key: tuple[str, str, str]) -> None:
    assert default_handling_standards().lookup(code, urgency, region).key == key


def test_shipped_manhole_limits() -> None:
    std = default_handling_standards()
    for code in ("C0101", "C0102", "C0103"):
        assert std.lookup(code, "urgent").handle == Limit(6, LimitUnit.HOUR)
        assert std.lookup(code, "normal").handle == Limit(1, LimitUnit.WORK_DAY)
    assert std.lookup("E0102", "normal").handle == Limit(4, LimitUnit.WORK_HOUR)
    assert std.lookup("C0101", "normal").limit("check") == Limit(2, LimitUnit.WORK_HOUR)


def test_lookup_precedence_and_wildcards() -> None:
    t = table(
        f"*,*,,{W},9,day,{V},,",
        f"C01*,normal,,{W},8,day,{V},,",
        f"C0101,normal,,{W},7,day,{V},,",
        f"C0101,normal,A,{W},6,day,{V},,",
        f"C0101,*,B,{W},5,day,{V},,",
    )
    assert t.lookup("C0101", "normal", "A").handle == Limit(6, LimitUnit.DAY)
    assert t.lookup("C0101", "normal", "B").handle == Limit(7, LimitUnit.DAY)  # urgency beats region
    assert t.lookup("C0101", "urgent", "B").handle == Limit(5, LimitUnit.DAY)
    assert t.lookup("C0101", "urgent", "A").handle == Limit(9, LimitUnit.DAY)  # no urgent row below global
    assert t.lookup("C0102", "normal").handle == Limit(8, LimitUnit.DAY)
    assert t.lookup("C0102", "urgent").handle == Limit(9, LimitUnit.DAY)
    assert t.get("C01*", "normal") is not None and t.get("C0102", "normal") is None


def test_empty_stage_means_no_limit() -> None:
    row = table("*,*,,,,1,hour,2,work_day,,,,,a,b").lookup("C0101", "normal")
    assert row.file is None and row.check is None and row.limit("verify") is None
    assert row.dispatch == Limit(1, LimitUnit.HOUR)
    assert (row.filing_condition, row.close_condition) == ("a", "b")
    with pytest.raises(InvalidInput):
        row.limit("close")


def test_lookup_errors() -> None:
    t = table(f"C0101,normal,,{W},1,day,{V},,")
    with pytest.raises(NotFound) as nf:
        t.lookup("C0102", "normal")
    assert nf.value.code == "standards.not_found"
    with pytest.raises(InvalidInput) as bad:
        t.lookup("C0101", "whenever")
    assert bad.value.code == "standards.invalid_urgency"


def test_merge_overrides_rows() -> None:
    base = table(f"*,*,,{W},5,work_day,{V},,", f"C0101,normal,,{W},1,work_day,{V},,")
    city = table(f"C0101,normal,,{W},2,hour,{V},,", f"C0102,normal,,{W},3,hour,{V},,")
    merged = merge(base, city)
    assert len(merged) == 3
    assert merged.lookup("C0101", "normal").handle == Limit(2, LimitUnit.HOUR)
    assert merged.lookup("C0102", "normal").handle == Limit(3, LimitUnit.HOUR)
    assert merged.lookup("C0999", "normal").handle == Limit(5, LimitUnit.WORK_DAY)
    assert merge(base, StandardsTable()) == base


def test_comments_bom_and_column_order() -> None:
    cols = list(reversed(STANDARDS_COLUMNS))
    values = dict.fromkeys(STANDARDS_COLUMNS, "")
    values.update(class_code="*", urgency="*", handle_value="1", handle_unit="day", close_condition="x")
    text = "\ufeff# comment\n\n" + ",".join(cols) + "\n# another, with commas\n" + ",".join(values[c] for c in cols)
    row = load_handling_standards(text).lookup("E0101", "normal")
    assert row.handle == Limit(1, LimitUnit.DAY) and row.close_condition == "x"


@pytest.mark.parametrize(
    ("rows", "line", "fragment"),
    [
        ([f"C0101,normal,,{W},1,day,{V},,", f"C0101,normal,,{W},2,day,{V},,"], 3, "duplicate"),
        ([f"C0101,normal,,{W},1,fortnight,{V},,"], 2, "unknown unit"),
        ([f"C0101,normal,,{W},-1,day,{V},,"], 2, ">= 0"),
        ([f"C0101,normal,,{W},abc,day,{V},,"], 2, "not a number"),
        ([f"C0101,normal,,{W},1,,{V},,"], 2, "both"),
        ([f"0101,normal,,{W},1,day,{V},,"], 2, "class_code"),
        ([f"C0101,soon,,{W},1,day,{V},,"], 2, "urgency"),
        ([f"C0101,normal,A B,{W},1,day,{V},,"], 2, "region_class"),
        ([f"C0101,normal,,{W},1,day,{V},"], 2, "cells"),
    ],
)
def test_load_standards_rejects(rows: list[str], line: int, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        table(*rows)
    assert err.value.code == "standards.invalid"
    assert err.value.loc[:2] == ["csv", line]
    assert f"line {line}" in err.value.message and fragment in err.value.message


@pytest.mark.parametrize("header", ["", HEADER.replace("close_condition", "closing"), HEADER + ",extra"])
def test_load_standards_rejects_bad_header(header: str) -> None:
    with pytest.raises(InvalidInput) as err:
        load_handling_standards(header)
    assert err.value.code == "standards.invalid"


def test_shipped_files_exist() -> None:
    assert (DATA_DIR / "calendar.toml").is_file() and (DATA_DIR / "handling_standards.csv").is_file()
    assert isinstance(default_handling_standards().lookup("C0101", "normal"), HandlingStandard)


# ----- properties

# A second, awkward calendar: Berlin (DST changes), Friday-only weekend, uneven periods.
ODD = WorkCalendar(
    timezone="Europe/Berlin",
    periods=((time(0, 0), time(6, 0)), (time(9, 0), time(9, 1)), (time(20, 0), time(23, 59))),
    weekend=frozenset({4}),
    holidays=frozenset({date(2025, 3, 30), date(2025, 12, 25)}),
    makeup_workdays=frozenset({date(2025, 10, 31)}),
)
calendars = st.sampled_from([CAL, ODD])
instants = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2026, 10, 31),
    timezones=st.sampled_from([SH, UTC, ZoneInfo("Europe/Berlin")]),
    allow_imaginary=False,
)
work_amounts = st.one_of(
    st.floats(min_value=1e-6, max_value=40 * 27000, allow_nan=False, allow_infinity=False),
    st.integers(min_value=1, max_value=40 * 15).map(lambda k: k * 1800.0),  # hits period ends
)


def is_period_end(cal: WorkCalendar, t: datetime) -> bool:
    local = t.astimezone(cal.tz)
    return any(b == t for day in (local.date(), local.date() - timedelta(days=1)) for _, b in cal.working_periods(day))


@PROPS
@given(cal=calendars, start=instants, seconds=work_amounts)
def test_add_and_between_are_inverse(cal: WorkCalendar, start: datetime, seconds: float) -> None:
    t = add_work_seconds(cal, start, seconds)
    assert t >= start
    assert abs(work_seconds_between(cal, start, t) - seconds) <= 1e-6


@PROPS
@given(cal=calendars, start=instants, a=work_amounts, b=work_amounts)
def test_add_work_seconds_is_monotonic(cal: WorkCalendar, start: datetime, a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert add_work_seconds(cal, start, lo) <= add_work_seconds(cal, start, hi)


@PROPS
@given(cal=calendars, start=instants, seconds=work_amounts)
def test_deadline_is_in_working_time_or_a_period_end(cal: WorkCalendar, start: datetime, seconds: float) -> None:
    t = add_work_seconds(cal, start, seconds)
    assert cal.is_working_time(t) or is_period_end(cal, t)


limits = st.tuples(
    st.integers(min_value=0, max_value=30),
    st.sampled_from(list(LimitUnit)),
)
pause_specs = st.lists(
    st.tuples(
        st.integers(min_value=-3 * 24 * 60, max_value=30 * 24 * 60),  # start offset, minutes
        st.one_of(st.none(), st.integers(min_value=0, max_value=5 * 24 * 60)),  # length, None = open
    ),
    max_size=5,
)


def make_pauses(start: datetime, specs: list[tuple[int, int | None]]) -> list[Pause]:
    out = []
    for offset, length in specs:
        a = start + timedelta(minutes=offset)
        out.append(Pause(a, None if length is None else a + timedelta(minutes=length)))
    return out


@PROPS
@given(cal=calendars, start=instants, limit=limits, specs=pause_specs)
def test_pausing_never_makes_the_deadline_earlier(
    cal: WorkCalendar, start: datetime, limit: tuple[int, LimitUnit], specs: list[tuple[int, int | None]]
) -> None:
    value, unit = limit
    base = stage_clock(cal, start=start, value=value, unit=unit, now=start)
    paused = stage_clock(cal, start=start, value=value, unit=unit, now=start, pauses=make_pauses(start, specs))
    assert base.deadline is not None
    assert paused.deadline is None or paused.deadline >= base.deadline


@PROPS
@given(cal=calendars, start=instants, limit=limits, specs=pause_specs)
def test_counted_time_at_the_deadline_equals_the_limit(
    cal: WorkCalendar, start: datetime, limit: tuple[int, LimitUnit], specs: list[tuple[int, int | None]]
) -> None:
    value, unit = limit
    pauses = make_pauses(start, specs)
    c = stage_clock(cal, start=start, value=value, unit=unit, now=start, pauses=pauses)
    if c.deadline is None:
        assert any(p.end is None for p in pauses)
        return
    at_deadline = stage_clock(cal, start=start, value=value, unit=unit, now=c.deadline, pauses=pauses)
    assert abs(at_deadline.used_seconds - limit_seconds(cal, value, unit)) <= 1e-6
    assert at_deadline.light != "red"


SLOT = timedelta(minutes=30)
slot_pauses = st.lists(
    st.tuples(st.integers(min_value=-10, max_value=200), st.one_of(st.none(), st.integers(0, 100))),
    max_size=6,
)


@PROPS
@given(
    day=st.integers(min_value=0, max_value=364),
    unit=st.sampled_from(list(LimitUnit)),
    specs=slot_pauses,
    now_slot=st.integers(min_value=0, max_value=200),
    perm=st.randoms(use_true_random=False),
)
def test_overlapping_pauses_count_as_their_union(
    day: int, unit: LimitUnit, specs: list[tuple[int, int | None]], now_slot: int, perm: Any
) -> None:
    start = datetime(2025, 1, 1, tzinfo=SH) + timedelta(days=day)
    pauses = [
        Pause(start + i * SLOT, None if n is None else start + (i + n) * SLOT) for i, n in specs
    ]  # may overlap, touch, repeat
    covered = set()
    for i, n in specs:
        covered.update(range(i, 10_000 if n is None else i + n))
    expected = 0.0
    for k in range(now_slot):
        slot_start = start + k * SLOT
        if k in covered:
            continue
        if not unit.counts_working_time or CAL.is_working_time(slot_start):
            expected += SLOT.total_seconds()
    now = start + now_slot * SLOT
    c = stage_clock(CAL, start=start, value=3, unit=unit, now=now, pauses=pauses)
    assert c.used_seconds == expected
    shuffled = list(pauses)
    perm.shuffle(shuffled)
    assert stage_clock(CAL, start=start, value=3, unit=unit, now=now, pauses=shuffled) == c
    assert stage_clock(CAL, start=start, value=3, unit=unit, now=now, pauses=merge_pauses(pauses)) == c
    merged = merge_pauses(pauses)
    assert all(a.end is not None and a.end < b.start for a, b in zip(merged, merged[1:], strict=False))
