"""Deadline arithmetic for case handling time limits (处置时限).

This module is pure: it imports only the standard library and :mod:`gridcity.errors`. It holds

* the working calendar (:class:`WorkCalendar`): working periods of a day, weekend days, public holidays and
  调休 make-up working days, loaded from TOML with :func:`load_calendar`;
* working-time arithmetic: :func:`work_seconds_between` and its inverse :func:`add_work_seconds`;
* limits in the five units of the limit tables (:class:`LimitUnit`): 工作时, 工作日, 小时, 天, 分钟;
* the clock of one stage of a case (:func:`stage_clock`), with suspensions (挂账, the clock stops),
  approved extensions (延期) and a traffic light;
* the handling-standards table (立案条件 / 处置时限 / 结案条件) loaded from CSV with
  :func:`load_handling_standards`, and its most-specific-row lookup.

Measures. A limit in a *working* unit (``work_hour``, ``work_day``) is measured in working seconds: only
time inside a working period of a working day counts. ``N work_day`` means N full working days of working
time, i.e. ``N × WorkCalendar.work_seconds_per_day`` working seconds, so "1 working day" from Monday 10:00
ends on Tuesday 10:00. A limit in a *wall* unit (``hour``, ``day``, ``minute``) is plain elapsed time
(``day`` = 24 hours), measured on the UTC time line so that DST changes cannot distort it.

All instants must be timezone-aware. Datetimes returned by this module are in the calendar's time zone.
"""

from __future__ import annotations

import csv
import io
import math
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gridcity.errors import InvalidInput, NotFound

__all__ = [
    "ANY",
    "STAGES",
    "STANDARDS_COLUMNS",
    "URGENCIES",
    "Clock",
    "HandlingStandard",
    "Light",
    "Limit",
    "LimitUnit",
    "Pause",
    "StandardsTable",
    "WorkCalendar",
    "add_limit",
    "add_measured_seconds",
    "add_work_seconds",
    "convert_extension",
    "limit_elapsed",
    "limit_seconds",
    "load_calendar",
    "load_handling_standards",
    "merge",
    "merge_pauses",
    "stage_clock",
    "work_seconds_between",
]

"""Directory of the shipped default data files (``calendar.toml``, ``handling_standards.csv``)."""

_ZERO = timedelta(0)
_ONE_DAY = timedelta(days=1)


# ----------------------------------------------------------------------------------------------------
# Units
# ----------------------------------------------------------------------------------------------------


class LimitUnit(StrEnum):
    """Unit of a time limit, as written in the limit tables."""

    WORK_HOUR = "work_hour"  # 工作时
    WORK_DAY = "work_day"  # 工作日
    HOUR = "hour"  # 小时
    DAY = "day"  # 天 (24 hours of elapsed time)
    MINUTE = "minute"  # 分钟

    @property
    def counts_working_time(self) -> bool:
        """True for units measured in working seconds (``work_hour``, ``work_day``)."""
        return self in (LimitUnit.WORK_HOUR, LimitUnit.WORK_DAY)


def _unit(unit: LimitUnit | str, loc: Sequence[str | int] = ("unit",)) -> LimitUnit:
    if isinstance(unit, LimitUnit):
        return unit
    try:
        return LimitUnit(unit)
    except ValueError:
        allowed = ", ".join(u.value for u in LimitUnit)
        raise InvalidInput(
            f"unknown time-limit unit {unit!r} (allowed: {allowed})", code="deadline.invalid_unit", loc=loc
        ) from None


_MAX_SECONDS = 20 * 366 * 86400
"""Largest amount of time (20 years) the arithmetic accepts; more is surely a data error."""


def _amount(value: float, name: str, *, max_value: float = _MAX_SECONDS) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidInput(
            f"{name} must be a finite number >= 0, got {value!r}", code="deadline.invalid_amount", loc=[name]
        )
    if value > max_value:
        raise InvalidInput(
            f"{name} {value!r} is unreasonably large", code="deadline.invalid_amount", loc=[name]
        )
    return float(value)


def _aware_utc(dt: datetime, name: str) -> datetime:
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidInput(
            f"{name} must be a timezone-aware datetime, got {dt!r}",
            code="deadline.naive_datetime",
            loc=[name],
        )
    return dt.astimezone(UTC)


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
        return sum(
            (datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()
            for a, b in self.periods
        )

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


# ----------------------------------------------------------------------------------------------------
# Working-time arithmetic (UTC internally, exact microsecond timedeltas)
# ----------------------------------------------------------------------------------------------------


def _work_between(cal: WorkCalendar, start: datetime, end: datetime) -> timedelta:
    """Working time in [start, end); both UTC."""
    if end <= start:
        return _ZERO
    tz = cal.tz
    day = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    total = _ZERO
    while day <= last:
        for a, b in cal._utc_periods(day):
            lo = a if a > start else start
            hi = b if b < end else end
            if hi > lo:
                total += hi - lo
        day += _ONE_DAY
    return total


def _add_work(cal: WorkCalendar, start: datetime, amount: timedelta) -> datetime:
    """Earliest UTC instant t >= start with working time in [start, t) >= amount."""
    if amount <= _ZERO:
        return start
    day = start.astimezone(cal.tz).date()
    remaining = amount
    while True:
        for a, b in cal._utc_periods(day):
            lo = a if a > start else start
            if b > lo:
                available = b - lo
                if remaining <= available:
                    return lo + remaining
                remaining -= available
        day += _ONE_DAY


def work_seconds_between(cal: WorkCalendar, start: datetime, end: datetime) -> float:
    """Working seconds in ``[start, end)``.

    Args:
        cal: The working calendar.
        start: Timezone-aware start instant.
        end: Timezone-aware end instant.

    Returns:
        The working seconds (0 when ``end <= start``).

    Raises:
        InvalidInput: ``deadline.naive_datetime`` if an instant is naive.
    """
    return _work_between(cal, _aware_utc(start, "start"), _aware_utc(end, "end")).total_seconds()


def add_work_seconds(cal: WorkCalendar, start: datetime, seconds: float) -> datetime:
    """The instant at which ``seconds`` of working time have elapsed after ``start``.

    This is the earliest instant ``t >= start`` with ``work_seconds_between(cal, start, t) >= seconds``, so if
    ``start`` is outside working time counting begins at the next working period, and a limit that is used up
    exactly at the end of a period returns that period end (not the start of the next period). ``seconds`` is
    rounded to the microsecond; ``0`` returns ``start``.

    Args:
        cal: The working calendar.
        start: Timezone-aware start instant.
        seconds: Working seconds to add (>= 0).

    Returns:
        The instant, in the calendar's time zone.

    Raises:
        InvalidInput: ``deadline.naive_datetime`` / ``deadline.invalid_amount`` for bad arguments.
    """
    amount = timedelta(seconds=_amount(seconds, "seconds"))
    return _add_work(cal, _aware_utc(start, "start"), amount).astimezone(cal.tz)


def _measure(cal: WorkCalendar, unit: LimitUnit | None, start: datetime, end: datetime) -> timedelta:
    """Time in [start, end) in the unit's measure (wall time when unit is None); UTC inputs."""
    if unit is not None and unit.counts_working_time:
        return _work_between(cal, start, end)
    return end - start if end > start else _ZERO


def _advance(cal: WorkCalendar, unit: LimitUnit | None, start: datetime, amount: timedelta) -> datetime:
    """Earliest UTC instant at which ``amount`` of the unit's measure has elapsed after start (UTC)."""
    if unit is not None and unit.counts_working_time:
        return _add_work(cal, start, amount)
    return start + amount


def limit_seconds(cal: WorkCalendar, value: float, unit: LimitUnit | str) -> float:
    """Convert a limit ``(value, unit)`` into seconds of the unit's measure.

    ``work_hour`` → ``value × 3600`` working seconds; ``work_day`` → ``value × cal.work_seconds_per_day``
    working seconds ("N working days = N full working days of working time"); ``hour`` / ``day`` /
    ``minute`` → ``value × 3600 / 86400 / 60`` elapsed seconds.

    Args:
        cal: The working calendar (gives the length of a working day).
        value: The limit value (>= 0).
        unit: A :class:`LimitUnit` or its string value.

    Returns:
        Seconds in the unit's measure.

    Raises:
        InvalidInput: ``deadline.invalid_unit`` / ``deadline.invalid_amount`` for bad arguments.
    """
    u = _unit(unit)
    v = _amount(value, "value")
    if u is LimitUnit.WORK_DAY:
        seconds = v * cal.work_seconds_per_day
    else:
        factor = {LimitUnit.WORK_HOUR: 3600, LimitUnit.HOUR: 3600, LimitUnit.DAY: 86400, LimitUnit.MINUTE: 60}
        seconds = v * factor[u]
    return _amount(seconds, "value")


def convert_extension(
    cal: WorkCalendar, value: float, unit: LimitUnit | str, *, stage_unit: LimitUnit | str
) -> float:
    """Convert an approved extension (延期) into seconds of the stage limit's measure.

    Working units combine only with working units and wall units with wall units (a "working day" has no
    fixed wall-clock length), e.g. a ``work_day`` stage may be extended by ``4 work_hour``.

    Args:
        cal: The working calendar.
        value: The extension value (>= 0).
        unit: The extension's unit.
        stage_unit: The unit of the stage limit being extended.

    Returns:
        Seconds to pass as ``stage_clock(..., extension_seconds=...)``.

    Raises:
        InvalidInput: ``deadline.unit_mismatch`` when one unit is a working unit and the other is not.
    """
    u = _unit(unit)
    s = _unit(stage_unit, ("stage_unit",))
    if u.counts_working_time != s.counts_working_time:
        raise InvalidInput(
            f"cannot extend a {s.value} limit by {u.value}: working and elapsed time do not mix",
            code="deadline.unit_mismatch",
            loc=["unit"],
        )
    return limit_seconds(cal, value, u)


def limit_elapsed(cal: WorkCalendar, start: datetime, end: datetime, unit: LimitUnit | str) -> float:
    """Time elapsed in ``[start, end)`` in the measure of ``unit``.

    Args:
        cal: The working calendar.
        start: Timezone-aware start instant.
        end: Timezone-aware end instant.
        unit: Working units give working seconds, wall units elapsed seconds.

    Returns:
        Seconds (0 when ``end <= start``).
    """
    return _measure(cal, _unit(unit), _aware_utc(start, "start"), _aware_utc(end, "end")).total_seconds()


def add_measured_seconds(
    cal: WorkCalendar, start: datetime, seconds: float, unit: LimitUnit | str
) -> datetime:
    """The instant at which ``seconds`` in the measure of ``unit`` have elapsed after ``start``.

    Args:
        cal: The working calendar.
        start: Timezone-aware start instant.
        seconds: Seconds to add (>= 0), working seconds for working units, elapsed seconds otherwise.
        unit: The unit whose measure applies.

    Returns:
        The instant, in the calendar's time zone.
    """
    u = _unit(unit)
    amount = timedelta(seconds=_amount(seconds, "seconds"))
    return _advance(cal, u, _aware_utc(start, "start"), amount).astimezone(cal.tz)


def add_limit(cal: WorkCalendar, start: datetime, value: float, unit: LimitUnit | str) -> datetime:
    """The deadline of a limit ``(value, unit)`` starting at ``start`` (no suspensions).

    Args:
        cal: The working calendar.
        start: Timezone-aware start instant.
        value: The limit value (>= 0).
        unit: The limit unit (see :func:`limit_seconds` for the measures).

    Returns:
        The deadline, in the calendar's time zone.
    """
    u = _unit(unit)
    return add_measured_seconds(cal, start, limit_seconds(cal, value, u), u)


# ----------------------------------------------------------------------------------------------------
# Stage clock
# ----------------------------------------------------------------------------------------------------

Light = Literal["green", "yellow", "red", "none"]


@dataclass(frozen=True)
class Pause:
    """A suspension of a stage clock (挂账): the clock does not run in ``[start, end)``.

    Attributes:
        start: Timezone-aware start of the suspension.
        end: Timezone-aware end (恢复), or None while the case is still suspended.

    Raises:
        InvalidInput: ``deadline.naive_datetime`` or ``deadline.invalid_pause`` (end before start).
    """

    start: datetime
    end: datetime | None = None

    def __post_init__(self) -> None:
        s = _aware_utc(self.start, "pause.start")
        if self.end is not None and _aware_utc(self.end, "pause.end") < s:
            raise InvalidInput(
                f"suspension ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})",
                code="deadline.invalid_pause",
                loc=["pause", "end"],
            )


def _merged_utc(pauses: Iterable[Pause]) -> list[tuple[datetime, datetime | None]]:
    items = sorted(
        ((p.start.astimezone(UTC), None if p.end is None else p.end.astimezone(UTC)) for p in pauses),
        key=lambda p: p[0],
    )
    merged: list[tuple[datetime, datetime | None]] = []
    for a, b in items:
        if merged:
            pa, pb = merged[-1]
            if pb is None:
                break  # an open pause swallows everything after it
            if a <= pb:
                merged[-1] = (pa, None if b is None else max(pb, b))
                continue
        merged.append((a, b))
    return merged


def merge_pauses(pauses: Iterable[Pause]) -> tuple[Pause, ...]:
    """Merge suspensions into disjoint, sorted ones (overlapping or touching ones are joined).

    Args:
        pauses: Suspensions in any order.

    Returns:
        Disjoint pauses in chronological order (UTC); at most the last one is open.
    """
    return tuple(Pause(a, b) for a, b in _merged_utc(pauses))


@dataclass(frozen=True)
class Clock:
    """The state of one stage's clock.

    Attributes:
        deadline: When the counted time reaches the limit given the suspensions; None when there is no limit,
            or when the stage is suspended without end and the limit was not reached before the suspension.
        limit_seconds: Limit plus extensions in the unit's measure; None when the stage has no limit.
        used_seconds: Time counted against the limit so far (final when the stage is finished): working
            seconds for working units, elapsed seconds otherwise; suspensions excluded.
        fraction: ``used / limit`` (1.0 for a zero limit not yet used, ``inf`` for a zero limit used); None
            without a limit.
        light: ``red`` when overdue (used > limit), ``yellow`` when used >= yellow_at × limit (running stages
            only), ``green`` otherwise, ``none`` without a limit.
        paused: True when the running stage is suspended at ``now``.
        overdue_seconds: ``max(0, used - limit)`` in the unit's measure.
    """

    deadline: datetime | None
    limit_seconds: float | None
    used_seconds: float
    fraction: float | None
    light: Light
    paused: bool
    overdue_seconds: float


def _active(
    cal: WorkCalendar,
    unit: LimitUnit | None,
    start: datetime,
    horizon: datetime,
    merged: Sequence[tuple[datetime, datetime | None]],
) -> timedelta:
    """Measure of [start, horizon) minus the (disjoint, sorted) pauses."""
    total = _ZERO
    cur = start
    for a, b in merged:
        if cur >= horizon:
            break
        if b is not None and b <= cur:
            continue
        if a >= horizon:
            break
        if a > cur:
            total += _measure(cal, unit, cur, a)
        if b is None:
            return total
        cur = max(cur, b)
    if cur < horizon:
        total += _measure(cal, unit, cur, horizon)
    return total


def _deadline(
    cal: WorkCalendar,
    unit: LimitUnit | None,
    start: datetime,
    limit: timedelta,
    merged: Sequence[tuple[datetime, datetime | None]],
) -> datetime | None:
    """Earliest instant at which the counted time reaches ``limit``; None if an open pause comes first."""
    if limit <= _ZERO:
        return start
    remaining = limit
    cur = start
    for a, b in merged:
        if b is not None and b <= cur:
            continue
        if a > cur:
            segment = _measure(cal, unit, cur, a)
            if remaining <= segment:
                return _advance(cal, unit, cur, remaining)
            remaining -= segment
        if b is None:
            return None
        cur = b
    return _advance(cal, unit, cur, remaining)


def stage_clock(
    cal: WorkCalendar,
    *,
    start: datetime,
    value: float | None,
    unit: LimitUnit | str | None,
    now: datetime,
    pauses: Iterable[Pause] = (),
    extension_seconds: float = 0.0,
    end: datetime | None = None,
    yellow_at: float = 0.8,
) -> Clock:
    """Compute the clock of one stage of a case (e.g. 处置: from dispatch to the department's feedback).

    Counted time is the unit's measure of ``[start, end or now)`` minus the measure inside the suspensions
    (overlapping suspensions are merged, never counted twice). The limit is ``limit_seconds(value, unit)``
    plus ``extension_seconds`` (approved 延期, in the same measure; see :func:`convert_extension`). When
    ``end`` is given the stage is finished: suspensions are cut at ``end``, the numbers are final and the
    light is ``red`` if it finished late, else ``green``.

    Args:
        cal: The working calendar.
        start: When the stage's clock started (e.g. the department received the task).
        value: The limit value, or None for a stage without a limit.
        unit: The limit unit; may be None only when ``value`` is None (then elapsed time is reported).
        now: The current instant (ignored for the counted time when ``end`` is given).
        pauses: Suspensions in any order, possibly overlapping; an open one (``end=None``) is still running.
        extension_seconds: Approved extensions in the limit's measure (>= 0).
        end: When the stage finished, or None while it runs.
        yellow_at: Fraction of the limit from which a running stage is yellow (0 < yellow_at <= 1).

    Returns:
        The :class:`Clock`.

    Raises:
        InvalidInput: for naive datetimes, a negative value or extension, an unknown unit, a value without a
            unit, or ``yellow_at`` outside (0, 1].
    """
    s = _aware_utc(start, "start")
    n = _aware_utc(now, "now")
    e = None if end is None else _aware_utc(end, "end")
    u = None if unit is None else _unit(unit)
    if value is not None and u is None:
        raise InvalidInput("a limit value needs a unit", code="deadline.invalid_unit", loc=["unit"])
    if isinstance(yellow_at, bool) or not isinstance(yellow_at, int | float) or not 0 < yellow_at <= 1:
        raise InvalidInput(
            f"yellow_at must be in (0, 1], got {yellow_at!r}",
            code="deadline.invalid_amount",
            loc=["yellow_at"],
        )
    ext = _amount(extension_seconds, "extension_seconds")

    merged = _merged_utc(pauses)
    if e is not None:  # a finished stage is not suspended after it finished
        merged = [(a, e if b is None or b > e else b) for a, b in merged if a < e]
    horizon = e if e is not None else n
    used = _active(cal, u, s, horizon, merged)
    paused = e is None and n >= s and any(a <= n and (b is None or n < b) for a, b in merged)

    if value is None or u is None:
        return Clock(
            deadline=None,
            limit_seconds=None,
            used_seconds=used.total_seconds(),
            fraction=None,
            light="none",
            paused=paused,
            overdue_seconds=0.0,
        )

    limit = timedelta(seconds=limit_seconds(cal, value, u) + ext)
    deadline = _deadline(cal, u, s, limit, merged)
    light: Light
    if used > limit:
        light = "red"
    elif e is None and used >= limit * yellow_at:
        light = "yellow"
    else:
        light = "green"
    if limit > _ZERO:
        fraction = used / limit
    else:
        fraction = 1.0 if used == _ZERO else math.inf
    return Clock(
        deadline=None if deadline is None else deadline.astimezone(cal.tz),
        limit_seconds=limit.total_seconds(),
        used_seconds=used.total_seconds(),
        fraction=fraction,
        light=light,
        paused=paused,
        overdue_seconds=max(used - limit, _ZERO).total_seconds(),
    )


# ----------------------------------------------------------------------------------------------------
# Handling standards (立案条件 / 处置时限 / 结案条件)
# ----------------------------------------------------------------------------------------------------

ANY = "*"
"""Wildcard: the global default class code, or "any urgency" in the urgency column."""

STAGES: tuple[str, ...] = ("file", "dispatch", "handle", "check", "verify")
"""Stages with a limit: 立案, 派遣, 处置, 核查, 核实."""

URGENCIES: tuple[str, ...] = ("normal", "urgent")

STANDARDS_COLUMNS: tuple[str, ...] = (
    "class_code",
    "urgency",
    "region_class",
    *(f"{stage}_{part}" for stage in STAGES for part in ("value", "unit")),
    "filing_condition",
    "close_condition",
)
"""Columns of the handling-standards CSV, in the shipped order."""

_CLASS_RE = re.compile(r"^(?:\*|[CE]\d{2}\*|[CE]\d{4,5})$")
_MAJOR_RE = re.compile(r"^([CE]\d{2})")
_REGION_RE = re.compile(r"^[A-Za-z0-9_-]{0,16}$")


class Limit(NamedTuple):
    """A time limit ``(value, unit)``."""

    value: float
    unit: LimitUnit


def _standards_error(message: str, line: int | None = None, column: str | None = None) -> InvalidInput:
    loc: list[str | int] = ["csv"]
    if line is not None:
        loc.append(line)
        message = f"line {line}: {message}"
    if column is not None:
        loc.append(column)
    return InvalidInput(message, code="standards.invalid", loc=loc)


@dataclass(frozen=True)
class HandlingStandard:
    """One row of the handling-standards table.

    Attributes:
        class_code: ``C`` + component code or ``E`` + event code (``C0101``, ``E0102``); ``C01*`` /
            ``E01*`` for the default of a major class; ``*`` for the global default.
        urgency: ``normal`` (一般), ``urgent`` (紧急) or ``*`` (any urgency).
        region_class: Region class (``A`` 核心区 …) or ``""`` for any region.
        file: Limit of 立案 (from report to filing), or None.
        dispatch: Limit of 派遣 (from filing to dispatch), or None.
        handle: Limit of 处置 (from dispatch to the department's feedback), or None.
        check: Limit of 核查 (inspector checks the result), or None.
        verify: Limit of 核实 (inspector verifies a public report), or None.
        filing_condition: 立案条件 text.
        close_condition: 结案条件 text.
    """

    class_code: str
    urgency: str
    region_class: str = ""
    file: Limit | None = None
    dispatch: Limit | None = None
    handle: Limit | None = None
    check: Limit | None = None
    verify: Limit | None = None
    filing_condition: str = ""
    close_condition: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """``(class_code, urgency, region_class)``: unique within a table."""
        return (self.class_code, self.urgency, self.region_class)

    def limit(self, stage: str) -> Limit | None:
        """The limit of ``stage`` (one of :data:`STAGES`).

        Args:
            stage: ``file``, ``dispatch``, ``handle``, ``check`` or ``verify``.

        Returns:
            The limit, or None if the stage has no limit.

        Raises:
            InvalidInput: ``standards.invalid_stage`` for an unknown stage.
        """
        if stage not in STAGES:
            raise InvalidInput(
                f"unknown stage {stage!r} (allowed: {', '.join(STAGES)})",
                code="standards.invalid_stage",
                loc=["stage"],
            )
        limit: Limit | None = getattr(self, stage)
        return limit


def _major_code(class_code: str) -> str | None:
    m = _MAJOR_RE.match(class_code)
    return f"{m[1]}*" if m else None


class StandardsTable:
    """An immutable table of :class:`HandlingStandard` rows keyed by (class_code, urgency, region_class)."""

    def __init__(self, rows: Iterable[HandlingStandard] = ()) -> None:
        """Build a table.

        Args:
            rows: The rows; keys must be unique.

        Raises:
            InvalidInput: ``standards.invalid`` on a duplicate key.
        """
        table: dict[tuple[str, str, str], HandlingStandard] = {}
        for row in rows:
            if row.key in table:
                raise _standards_error(f"duplicate row for {row.key}")
            table[row.key] = row
        self._rows = table

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[HandlingStandard]:
        return iter(self._rows.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StandardsTable) and self._rows == other._rows

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StandardsTable({len(self._rows)} rows)"

    def get(self, class_code: str, urgency: str, region_class: str = "") -> HandlingStandard | None:
        """The row with exactly this key, or None (no fallback).

        Args:
            class_code: Class code as written in the table (``C0101``, ``C01*``, ``*``).
            urgency: ``normal``, ``urgent`` or ``*``.
            region_class: Region class or ``""``.

        Returns:
            The row or None.
        """
        return self._rows.get((class_code.strip().upper(), urgency.strip().lower(), region_class.strip()))

    def lookup(self, class_code: str, urgency: str, region_class: str = "") -> HandlingStandard:
        """The most specific row for a case.

        Class levels are tried in order: the exact class, the major-class default (``C01*`` for ``C0101``),
        the global default ``*``. Within a level: (urgency, region), (urgency, any region), (any urgency,
        region), (any urgency, any region). The first row found wins.

        Args:
            class_code: ``C`` + component code or ``E`` + event code, e.g. ``C0101``.
            urgency: ``normal`` or ``urgent``.
            region_class: The case's region class (``A``/``B``/``C`` …) or ``""``.

        Returns:
            The row.

        Raises:
            InvalidInput: ``standards.invalid_urgency`` for an unknown urgency.
            NotFound: ``standards.not_found`` when not even a global default row exists.
        """
        code = class_code.strip().upper()
        urg = urgency.strip().lower()
        region = region_class.strip()
        if region == ANY:
            region = ""
        if urg not in URGENCIES:
            raise InvalidInput(
                f"unknown urgency {urgency!r} (allowed: {', '.join(URGENCIES)})",
                code="standards.invalid_urgency",
                loc=["urgency"],
            )
        levels = [code]
        major = _major_code(code)
        if major is not None and major != code:
            levels.append(major)
        if code != ANY:
            levels.append(ANY)
        regions = (region, "") if region else ("",)
        for c in levels:
            for u in (urg, ANY):
                for r in regions:
                    row = self._rows.get((c, u, r))
                    if row is not None:
                        return row
        raise NotFound(
            f"no handling standard for {code} ({urg}) and no default row",
            code="standards.not_found",
            loc=["class_code"],
        )


def _parse_limit(data: Mapping[str, str], stage: str, line: int) -> Limit | None:
    raw_value, raw_unit = data[f"{stage}_value"], data[f"{stage}_unit"]
    if not raw_value and not raw_unit:
        return None
    if not raw_value or not raw_unit:
        raise _standards_error(
            f"{stage}_value and {stage}_unit must both be given or both empty", line, stage
        )
    try:
        value = float(raw_value)
    except ValueError:
        raise _standards_error(
            f"{stage}_value {raw_value!r} is not a number", line, f"{stage}_value"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise _standards_error(f"{stage}_value {raw_value!r} must be >= 0", line, f"{stage}_value")
    try:
        unit = LimitUnit(raw_unit.lower())
    except ValueError:
        allowed = ", ".join(u.value for u in LimitUnit)
        raise _standards_error(
            f"unknown unit {raw_unit!r} in {stage}_unit (allowed: {allowed})", line, f"{stage}_unit"
        ) from None
    return Limit(value, unit)


def _parse_standard(data: Mapping[str, str], line: int) -> HandlingStandard:
    code = data["class_code"].upper()
    if not _CLASS_RE.match(code):
        raise _standards_error(
            f"bad class_code {data['class_code']!r} (expected '*', 'C01*', 'C0101', 'E0102' …)",
            line,
            "class_code",
        )
    urgency = data["urgency"].lower()
    if urgency not in (*URGENCIES, ANY):
        raise _standards_error(f"bad urgency {data['urgency']!r} (normal, urgent or *)", line, "urgency")
    region = "" if data["region_class"] == ANY else data["region_class"]
    if not _REGION_RE.match(region):
        raise _standards_error(f"bad region_class {region!r}", line, "region_class")
    limits = {stage: _parse_limit(data, stage, line) for stage in STAGES}
    return HandlingStandard(
        class_code=code,
        urgency=urgency,
        region_class=region,
        filing_condition=data["filing_condition"],
        close_condition=data["close_condition"],
        **limits,
    )


def load_handling_standards(csv_text: str) -> StandardsTable:
    """Parse a handling-standards CSV (columns :data:`STANDARDS_COLUMNS`, header first, any column order).

    Blank lines and lines whose first cell starts with ``#`` are ignored. Empty ``<stage>_value`` and
    ``<stage>_unit`` mean "no limit for this stage". ``region_class`` empty or ``*`` means any region.

    Args:
        csv_text: The CSV text (a leading UTF-8 BOM is accepted).

    Returns:
        The table.

    Raises:
        InvalidInput: ``standards.invalid`` naming the CSV line for a missing/unknown column, a bad class
            code, urgency or region, a non-numeric or negative value, an unknown unit, or a duplicate key.
    """
    reader = csv.reader(io.StringIO(csv_text.removeprefix("\ufeff")))
    header: list[str] | None = None
    rows: list[HandlingStandard] = []
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
            standard = _parse_standard(dict(zip(header, cells, strict=True)), line)
            if standard.key in seen:
                raise _standards_error(
                    f"duplicate row for {standard.key} (first on line {seen[standard.key]})", line
                )
            seen[standard.key] = line
            rows.append(standard)
    except csv.Error as exc:
        raise _standards_error(f"malformed CSV: {exc}", reader.line_num) from None
    if header is None:
        raise _standards_error("no header line")
    return StandardsTable(rows)


def merge(base: StandardsTable, override: StandardsTable) -> StandardsTable:
    """Overlay a city's table on a base table: override rows replace base rows with the same key.

    Args:
        base: The base table (e.g. the shipped defaults).
        override: The city's rows.

    Returns:
        A new table with the base rows not overridden plus all override rows.
    """
    rows = {row.key: row for row in base}
    rows.update((row.key, row) for row in override)
    return StandardsTable(rows.values())
