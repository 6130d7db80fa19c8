"""The working calendar (工作日历): working periods of a day, weekend days, public holidays and 调休 make-up
working days, loaded from TOML with :func:`load_calendar`.

Pure: standard library and :mod:`gridcity.errors` only.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from casework.deadlines.units import _aware_utc
from gridcity.errors import InvalidInput

# ----------------------------------------------------------------------------------------------------
# Working calendar
# ----------------------------------------------------------------------------------------------------

_DEFAULT_PERIODS: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(14, 0), time(18, 0)))
_PERIOD_CACHE_MAX = 20_000


def _calendar_error(message: str, loc: Sequence[str | int] = ()) -> InvalidInput:
    return InvalidInput(message, code="calendar.invalid", loc=["calendar", *loc])


@dataclass(frozen=True)
class WorkCalendar:
    """A working-time calendar (工作日历).

    Attributes:
        timezone: IANA time-zone name in which the working periods are read.
        periods: Working periods of a working day as ``(start, end)`` naive local times, ``start < end``;
            kept sorted and must not overlap. Example: ``((08:30, 12:00), (14:00, 18:00))``.
        weekend: Weekday numbers (``date.weekday()``: Monday = 0 … Sunday = 6) that are off by default.
        holidays: Dates that are off (public holidays, including weekend days inside a holiday block).
        makeup_workdays: Weekend dates that are working days nevertheless (调休补班).

    Raises:
        InvalidInput: ``calendar.invalid`` when a field is inconsistent (unknown time zone, empty or
            overlapping periods, a period with ``end <= start``, every weekday a weekend day, a date that is
            both a holiday and a make-up day, a make-up day that is not a weekend day).
    """

    timezone: str = "Asia/Shanghai"
    periods: tuple[tuple[time, time], ...] = _DEFAULT_PERIODS
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[date] = frozenset()
    makeup_workdays: frozenset[date] = frozenset()
    _cache: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    # The calendar's working-minute index (casework.deadlines.worktime.WorkIndex), built on first use.
    _index: list[Any] = field(default_factory=list, init=False, repr=False, compare=False, hash=False)
    _per_day: list[float] = field(default_factory=list, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise _calendar_error(f"unknown time zone {self.timezone!r}", ["timezone"]) from None

        raw = [tuple(p) for p in self.periods]
        for i, p in enumerate(raw):
            if len(p) != 2 or not all(isinstance(t, time) and t.tzinfo is None for t in p):
                raise _calendar_error(
                    f"working period {p!r} is not a pair of naive times", ["working_periods", i]
                )
        periods = tuple(sorted(raw))
        if not periods:
            raise _calendar_error("a calendar needs at least one working period", ["working_periods"])
        for i, p in enumerate(periods):
            if p[1] <= p[0]:
                raise _calendar_error(
                    f"working period {p[0]:%H:%M}-{p[1]:%H:%M} ends before it starts", ["working_periods", i]
                )
            if i and periods[i - 1][1] > p[0]:
                q = periods[i - 1]
                raise _calendar_error(
                    f"working periods {q[0]:%H:%M}-{q[1]:%H:%M} and {p[0]:%H:%M}-{p[1]:%H:%M} overlap",
                    ["working_periods", i],
                )
        object.__setattr__(self, "periods", periods)

        weekend = frozenset(self.weekend)
        if any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in weekend):
            raise _calendar_error(
                f"weekend days must be weekday numbers 0-6, got {sorted(weekend)}", ["weekend"]
            )
        if len(weekend) == 7:
            raise _calendar_error("every day of the week is a weekend day", ["weekend"])
        object.__setattr__(self, "weekend", weekend)

        for name in ("holidays", "makeup_workdays"):
            days = frozenset(getattr(self, name))
            bad = [d for d in days if isinstance(d, datetime) or not isinstance(d, date)]
            if bad:
                raise _calendar_error(f"{name} must hold dates, got {bad[0]!r}", [name])
            object.__setattr__(self, name, days)
        both = self.holidays & self.makeup_workdays
        if both:
            raise _calendar_error(
                f"{min(both).isoformat()} is both a holiday and a make-up working day", ["makeup_workdays"]
            )
        not_weekend = sorted(d for d in self.makeup_workdays if d.weekday() not in weekend)
        if not_weekend:
            raise _calendar_error(
                f"make-up working day {not_weekend[0].isoformat()} is not a weekend day", ["makeup_workdays"]
            )

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def work_seconds_per_day(self) -> float:
        """Working seconds of one full working day (the measure of ``1 work_day``)."""
        if not self._per_day:  # computed once: limit_seconds asks for every work_day limit
            self._per_day.append(sum(
                (datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()
                for a, b in self.periods
            ))
        per_day: float = self._per_day[0]
        return per_day

    def is_working_day(self, day: date) -> bool:
        """Tell whether ``day`` is a working day.

        Args:
            day: A calendar date (local to the calendar).

        Returns:
            True for make-up working days; False for holidays and (other) weekend days; True otherwise.
        """
        if day in self.makeup_workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() not in self.weekend

    def working_periods(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working periods of ``day`` as aware datetimes in the calendar's time zone (empty if off).

        Args:
            day: A calendar date (local to the calendar).

        Returns:
            ``[(start, end), ...]`` in chronological order.
        """
        tz = self.tz
        return [(a.astimezone(tz), b.astimezone(tz)) for a, b in self._utc_periods(day)]

    def is_working_time(self, instant: datetime) -> bool:
        """Tell whether ``instant`` lies inside a working period (start inclusive, end exclusive).

        Args:
            instant: A timezone-aware datetime.

        Returns:
            True when the instant is working time.
        """
        u = _aware_utc(instant, "instant")
        day = u.astimezone(self.tz).date()
        return any(a <= u < b for a, b in self._utc_periods(day))

    def _utc_periods(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        result: tuple[tuple[datetime, datetime], ...] = ()
        if self.is_working_day(day):
            tz = self.tz
            result = tuple(
                (
                    datetime.combine(day, a, tzinfo=tz).astimezone(UTC),
                    datetime.combine(day, b, tzinfo=tz).astimezone(UTC),
                )
                for a, b in self.periods
            )
        if len(self._cache) >= _PERIOD_CACHE_MAX:
            self._cache.clear()
        self._cache[day] = result
        return result


_WEEKDAY_NAMES = {
    **{n: i for i, n in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{
        n: i
        for i, n in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
    },
}
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_CALENDAR_KEYS = frozenset({"timezone", "weekend", "working_periods", "holidays", "makeup_workdays"})
_HOLIDAY_KEYS = frozenset({"name", "start", "end", "makeup_workdays"})


def _parse_time(value: Any, loc: list[str | int]) -> time:
    if isinstance(value, time) and value.tzinfo is None:
        return value
    if isinstance(value, str):
        m = _TIME_RE.match(value.strip())
        if m:
            try:
                return time(int(m[1]), int(m[2]), int(m[3] or 0))
            except ValueError:
                pass
    raise _calendar_error(f"bad time {value!r} (expected 'HH:MM')", loc)


def _parse_date(value: Any, loc: list[str | int]) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _calendar_error(f"bad date {value!r} (expected YYYY-MM-DD)", loc)


def _parse_dates(value: Any, loc: list[str | int]) -> list[date]:
    if not isinstance(value, list):
        raise _calendar_error(f"expected a list of dates, got {value!r}", loc)
    return [_parse_date(v, [*loc, i]) for i, v in enumerate(value)]


def _check_keys(table: Mapping[str, Any], allowed: frozenset[str], loc: list[str | int]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _calendar_error(f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})", loc)


def load_calendar(text: str) -> WorkCalendar:
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

    Args:
        text: The TOML document.

    Returns:
        The calendar.

    Raises:
        InvalidInput: ``calendar.invalid`` for malformed TOML, unknown keys, bad times or dates, overlapping
            periods, a period with ``end <= start``, a holiday range ending before it starts, or a date that
            is both a holiday and a make-up day.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _calendar_error(f"calendar is not valid TOML: {exc}") from None
    _check_keys(doc, _CALENDAR_KEYS, [])

    kwargs: dict[str, Any] = {}
    if "timezone" in doc:
        if not isinstance(doc["timezone"], str):
            raise _calendar_error("timezone must be a string", ["timezone"])
        kwargs["timezone"] = doc["timezone"]

    if "working_periods" in doc:
        raw = doc["working_periods"]
        if not isinstance(raw, list):
            raise _calendar_error("working_periods must be a list of [start, end] pairs", ["working_periods"])
        periods = []
        for i, pair in enumerate(raw):
            if not isinstance(pair, list) or len(pair) != 2:
                raise _calendar_error(
                    f"working period {pair!r} is not a [start, end] pair", ["working_periods", i]
                )
            periods.append(
                (
                    _parse_time(pair[0], ["working_periods", i, 0]),
                    _parse_time(pair[1], ["working_periods", i, 1]),
                )
            )
        kwargs["periods"] = tuple(periods)

    if "weekend" in doc:
        raw = doc["weekend"]
        if not isinstance(raw, list):
            raise _calendar_error("weekend must be a list of weekday names or ISO numbers", ["weekend"])
        weekend = set()
        for i, v in enumerate(raw):
            if isinstance(v, str) and v.strip().lower() in _WEEKDAY_NAMES:
                weekend.add(_WEEKDAY_NAMES[v.strip().lower()])
            elif isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 7:
                weekend.add(v - 1)
            else:
                raise _calendar_error(f"bad weekday {v!r} (use mon..sun or 1..7)", ["weekend", i])
        kwargs["weekend"] = frozenset(weekend)

    holidays: set[date] = set()
    makeup: set[date] = set(_parse_dates(doc.get("makeup_workdays", []), ["makeup_workdays"]))
    raw_holidays = doc.get("holidays", [])
    if not isinstance(raw_holidays, list):
        raise _calendar_error("holidays must be an array of tables ([[holidays]])", ["holidays"])
    for i, h in enumerate(raw_holidays):
        loc: list[str | int] = ["holidays", i]
        if not isinstance(h, dict):
            raise _calendar_error("each holiday must be a table with start/end", loc)
        _check_keys(h, _HOLIDAY_KEYS, loc)
        if "start" not in h:
            raise _calendar_error("holiday has no start date", loc)
        first = _parse_date(h["start"], [*loc, "start"])
        last = _parse_date(h.get("end", first), [*loc, "end"])
        if last < first:
            raise _calendar_error(f"holiday {h.get('name', '')!r} ends before it starts", [*loc, "end"])
        if (last - first).days > 366:
            raise _calendar_error(f"holiday {h.get('name', '')!r} is longer than a year", [*loc, "end"])
        holidays.update(first + timedelta(days=k) for k in range((last - first).days + 1))
        makeup.update(_parse_dates(h.get("makeup_workdays", []), [*loc, "makeup_workdays"]))

    return WorkCalendar(holidays=frozenset(holidays), makeup_workdays=frozenset(makeup), **kwargs)

