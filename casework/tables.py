"""Loaders of casework's two text tables: the working calendar (TOML) and the handling standards (CSV).

The shape of each file is checked here, by pydantic models; the domain objects they build
(:class:`casework.deadlines.WorkCalendar`, :class:`casework.deadlines.StandardsTable`) stay pure and read no
files. :mod:`casework.rules` reads the shipped files and a city's overrides and parses them with these.

Errors keep the codes and ``loc`` paths of the old hand-written parsers: ``calendar.invalid`` with
``loc = ["calendar", <key path>]`` and ``standards.invalid`` with ``loc = ["csv", <line>, <column>]``.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from casework import deadlines
from casework.deadlines import ANY, STAGES, STANDARDS_COLUMNS, URGENCIES, LimitUnit
from gridcity.errors import InvalidInput

# ----------------------------------------------------------------------------------------------------
# Shared: pydantic's first error as a clear Chinese message
# ----------------------------------------------------------------------------------------------------

_MESSAGES = {
    "missing": "缺少此项",
    "extra_forbidden": "未知的键",
    "string_type": "应为字符串",
    "list_type": "应为列表",
    "tuple_type": "应为 [开始, 结束] 两项",
    "too_short": "应为 [开始, 结束] 两项",
    "too_long": "应为 [开始, 结束] 两项",
    "model_type": "应为表（[[holidays]]）",
    "model_attributes_type": "应为表（[[holidays]]）",
}


def _first_error(exc: ValidationError) -> tuple[list[str | int], str]:
    """The key path and a Chinese message of a validation's first error."""
    err: ErrorDetails = exc.errors()[0]
    loc = [p for p in err["loc"] if isinstance(p, str | int)]
    return loc, _MESSAGES.get(err["type"], err["msg"])


def _bad(kind: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, ctx)


# ----------------------------------------------------------------------------------------------------
# Working calendar (calendar.toml)
# ----------------------------------------------------------------------------------------------------

_WEEKDAY_NAMES = {
    **{n: i for i, n in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{n: i for i, n in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))},
}
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _to_time(value: Any) -> time:
    if isinstance(value, time) and value.tzinfo is None:
        return value
    if isinstance(value, str):
        m = _TIME_RE.match(value.strip())
        if m:
            try:
                return time(int(m[1]), int(m[2]), int(m[3] or 0))
            except ValueError:
                pass
    raise _bad("calendar_time", "时间 {value} 无效（应为 'HH:MM'）", value=repr(value))


def _to_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _bad("calendar_date", "日期 {value} 无效（应为 YYYY-MM-DD）", value=repr(value))


def _to_weekday(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 7:
        return value - 1
    raise _bad("calendar_weekday", "星期 {value} 无效（应为 mon..sun 或 1..7）", value=repr(value))


TomlTime = Annotated[time, BeforeValidator(_to_time)]
TomlDate = Annotated[date, BeforeValidator(_to_date)]
Weekday = Annotated[int, BeforeValidator(_to_weekday)]


class HolidayIn(BaseModel):
    """One ``[[holidays]]`` block: ``start``..``end`` (inclusive) off, ``makeup_workdays`` worked instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: StrictStr = ""
    start: TomlDate
    end: TomlDate | None = None
    makeup_workdays: list[TomlDate] = Field(default_factory=list)


class CalendarFile(BaseModel):
    """A ``calendar.toml`` (see ``casework/data/calendar.toml``); omitted keys take the calendar's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    timezone: StrictStr | None = None
    weekend: list[Weekday] | None = None
    working_periods: list[tuple[TomlTime, TomlTime]] | None = None
    makeup_workdays: list[TomlDate] = Field(default_factory=list)
    holidays: list[HolidayIn] = Field(default_factory=list)


def _calendar_error(message: str, loc: Sequence[str | int] = ()) -> InvalidInput:
    path = ".".join(map(str, loc))
    return InvalidInput(
        f"工作日历 {path}: {message}" if path else f"工作日历: {message}",
        code="calendar.invalid",
        loc=["calendar", *loc],
    )


def load_calendar(text: str) -> deadlines.WorkCalendar:
    """Parse a working calendar from TOML.

    The format (see ``casework/data/calendar.toml``)::

        timezone = "Asia/Shanghai"                              # optional, default Asia/Shanghai
        weekend = ["sat", "sun"]                                # names or ISO numbers 1-7; optional
        working_periods = [["08:30", "12:00"], ["14:00", "18:00"]]  # optional, this is the default
        makeup_workdays = ["2025-01-26"]                        # optional, loose 调休 days

        [[holidays]]
        name = "2025 春节"
        start = 2025-01-28                                      # TOML dates or "YYYY-MM-DD" strings
        end = 2025-02-04                                        # inclusive; optional (one day)
        makeup_workdays = [2025-01-26, 2025-02-08]              # optional

    Raises:
        InvalidInput: ``calendar.invalid`` (``loc`` = ``["calendar", <key path>]``) for malformed TOML, unknown
            keys, bad times, dates or weekdays, a holiday ending before it starts or longer than a year, and
            whatever :class:`~casework.deadlines.WorkCalendar` rejects (overlapping or empty periods, unknown
            time zone, every day a weekend day, a date both a holiday and a make-up day …).
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _calendar_error(f"不是有效的 TOML：{exc}") from None
    try:
        parsed = CalendarFile.model_validate(doc)
    except ValidationError as exc:
        loc, message = _first_error(exc)
        raise _calendar_error(message, loc) from None

    holidays: set[date] = set()
    makeup: set[date] = set(parsed.makeup_workdays)
    for i, h in enumerate(parsed.holidays):
        last = h.end or h.start
        if last < h.start:
            raise _calendar_error(f"假期 {h.name!r} 的结束日早于开始日", ["holidays", i, "end"])
        if (last - h.start).days > 366:
            raise _calendar_error(f"假期 {h.name!r} 长于一年", ["holidays", i, "end"])
        holidays.update(h.start + timedelta(days=k) for k in range((last - h.start).days + 1))
        makeup.update(h.makeup_workdays)

    kwargs: dict[str, Any] = {}
    if parsed.timezone is not None:
        kwargs["timezone"] = parsed.timezone
    if parsed.weekend is not None:
        kwargs["weekend"] = frozenset(parsed.weekend)
    if parsed.working_periods is not None:
        kwargs["periods"] = tuple(parsed.working_periods)
    return deadlines.WorkCalendar(holidays=frozenset(holidays), makeup_workdays=frozenset(makeup), **kwargs)


# ----------------------------------------------------------------------------------------------------
# Handling standards (handling_standards.csv)
# ----------------------------------------------------------------------------------------------------

_CLASS_RE = re.compile(r"^(?:\*|[CE]\d{2}\*|[CE]\d{4,5})$")
_REGION_RE = re.compile(r"^[A-Za-z0-9_-]{0,16}$")


def _class_code(value: str) -> str:
    code = value.upper()
    if not _CLASS_RE.match(code):
        raise _bad(
            "standards_class", "bad class_code {value} (expected '*', 'C01*', 'C0101', 'E0102' …)", value=repr(value)
        )
    return code


def _urgency(value: str) -> str:
    if value.lower() not in (*URGENCIES, ANY):
        raise _bad("standards_urgency", "bad urgency {value} (normal, urgent or *)", value=repr(value))
    return value.lower()


def _region(value: str) -> str:
    region = "" if value == ANY else value
    if not _REGION_RE.match(region):
        raise _bad("standards_region", "bad region_class {value}", value=repr(region))
    return region


def _value(value: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise _bad("standards_number", "value {value} is not a number", value=repr(value)) from None
    if not number >= 0 or number == float("inf"):
        raise _bad("standards_number", "value {value} must be >= 0 and finite", value=repr(value))
    return number


def _unit(value: str) -> LimitUnit | None:
    if not value:
        return None
    try:
        return LimitUnit(value.lower())
    except ValueError:
        allowed = ", ".join(u.value for u in LimitUnit)
        raise _bad(
            "standards_unit", "unknown unit {value} (allowed: {allowed})", value=repr(value), allowed=allowed
        ) from None


Value = Annotated[float | None, BeforeValidator(_value)]
Unit = Annotated[LimitUnit | None, BeforeValidator(_unit)]


class StandardRow(BaseModel):
    """One data line of ``handling_standards.csv`` (cells already stripped; empty value+unit = no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    class_code: Annotated[str, BeforeValidator(_class_code)]
    urgency: Annotated[Literal["normal", "urgent", "*"], BeforeValidator(_urgency)]
    region_class: Annotated[str, BeforeValidator(_region)]
    file_value: Value
    file_unit: Unit
    dispatch_value: Value
    dispatch_unit: Unit
    handle_value: Value
    handle_unit: Unit
    check_value: Value
    check_unit: Unit
    verify_value: Value
    verify_unit: Unit
    filing_condition: str
    close_condition: str


def _standards_error(message: str, line: int | None = None, column: str | None = None) -> InvalidInput:
    loc: list[str | int] = ["csv"]
    if line is not None:
        loc.append(line)
        message = f"处置标准第 {line} 行（line {line}）: {message}"
    else:
        message = f"处置标准: {message}"
    if column is not None:
        loc.append(column)
    return InvalidInput(message, code="standards.invalid", loc=loc)


def _standard(cells: dict[str, str], line: int) -> deadlines.HandlingStandard:
    try:
        row = StandardRow.model_validate(cells)
    except ValidationError as exc:
        loc, message = _first_error(exc)
        column = str(loc[0]) if loc else None
        raise _standards_error(f"{column}: {message}" if column else message, line, column) from None
    limits: dict[str, deadlines.Limit | None] = {}
    for stage in STAGES:
        value, unit = getattr(row, f"{stage}_value"), getattr(row, f"{stage}_unit")
        if (value is None) != (unit is None):
            raise _standards_error(f"{stage}_value and {stage}_unit must both be given or both empty", line, stage)
        limits[stage] = None if unit is None else deadlines.Limit(value, unit)
    return deadlines.HandlingStandard(
        class_code=row.class_code,
        urgency=row.urgency,
        region_class=row.region_class,
        filing_condition=row.filing_condition,
        close_condition=row.close_condition,
        **limits,
    )


def load_handling_standards(csv_text: str) -> deadlines.StandardsTable:
    """Parse a handling-standards CSV (columns :data:`STANDARDS_COLUMNS`, header first, any column order).

    Blank lines and lines whose first cell starts with ``#`` are ignored. Empty ``<stage>_value`` and
    ``<stage>_unit`` mean "no limit for this stage". ``region_class`` empty or ``*`` means any region.

    Raises:
        InvalidInput: ``standards.invalid`` naming the CSV line (``loc`` = ``["csv", <line>, <column>]``) for a
            missing/unknown column, a bad class code, urgency or region, a non-numeric or negative value, an
            unknown unit, or a duplicate key.
    """
    reader = csv.reader(io.StringIO(csv_text.removeprefix("\ufeff")))
    header: list[str] | None = None
    rows: list[deadlines.HandlingStandard] = []
    seen: dict[tuple[str, str, str], int] = {}
    try:
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record) or record[0].lstrip().startswith("#"):
                continue
            cells = [cell.strip() for cell in record]
            if header is None:
                missing = [c for c in STANDARDS_COLUMNS if c not in cells]
                unknown = [c for c in cells if c not in STANDARDS_COLUMNS]
                if missing or unknown or len(set(cells)) != len(cells):
                    problem = (
                        f"missing column {missing[0]!r}"
                        if missing
                        else f"unknown column {unknown[0]!r}"
                        if unknown
                        else "duplicate column"
                    )
                    raise _standards_error(f"bad header: {problem}", line)
                header = cells
                continue
            if len(cells) != len(header):
                raise _standards_error(f"expected {len(header)} cells, got {len(cells)}", line)
            standard = _standard(dict(zip(header, cells, strict=True)), line)
            if standard.key in seen:
                raise _standards_error(f"duplicate row for {standard.key} (first on line {seen[standard.key]})", line)
            seen[standard.key] = line
            rows.append(standard)
    except csv.Error as exc:
        raise _standards_error(f"malformed CSV: {exc}", reader.line_num) from None
    if header is None:
        raise _standards_error("no header line")
    return deadlines.StandardsTable(rows)
