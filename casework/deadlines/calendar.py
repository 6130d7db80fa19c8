"""The working calendar (工作日历): working periods of a day, weekend days, public holidays and 调休 make-up
working days. Its TOML file is read and checked by :func:`casework.tables.load_calendar`.

Pure: standard library and :mod:`gridcity.errors` only; reads no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
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
    path = ".".join(map(str, loc))
    return InvalidInput(
        f"工作日历 {path}: {message}" if path else f"工作日历: {message}",
        code="calendar.invalid",
        loc=["calendar", *loc],
    )


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
            raise _calendar_error(f"未知的时区 {self.timezone!r}", ["timezone"]) from None

        raw = [tuple(p) for p in self.periods]
        for i, p in enumerate(raw):
            if len(p) != 2 or not all(isinstance(t, time) and t.tzinfo is None for t in p):
                raise _calendar_error(f"工作时段 {p!r} 应为两个不带时区的时间", ["working_periods", i])
        periods = tuple(sorted(raw))
        if not periods:
            raise _calendar_error("至少需要一个工作时段", ["working_periods"])
        for i, p in enumerate(periods):
            if p[1] <= p[0]:
                raise _calendar_error(
                    f"工作时段 {p[0]:%H:%M}-{p[1]:%H:%M} 的结束时间不晚于开始时间", ["working_periods", i]
                )
            if i and periods[i - 1][1] > p[0]:
                q = periods[i - 1]
                raise _calendar_error(
                    f"工作时段 {q[0]:%H:%M}-{q[1]:%H:%M} 与 {p[0]:%H:%M}-{p[1]:%H:%M} 重叠",
                    ["working_periods", i],
                )
        object.__setattr__(self, "periods", periods)

        weekend = frozenset(self.weekend)
        if any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in weekend):
            raise _calendar_error(f"周末应为 0-6 的星期序号，实为 {sorted(weekend)}", ["weekend"])
        if len(weekend) == 7:
            raise _calendar_error("一周七天不能都是周末", ["weekend"])
        object.__setattr__(self, "weekend", weekend)

        for name in ("holidays", "makeup_workdays"):
            days = frozenset(getattr(self, name))
            bad = [d for d in days if isinstance(d, datetime) or not isinstance(d, date)]
            if bad:
                raise _calendar_error(f"{name} 应只含日期，实有 {bad[0]!r}", [name])
            object.__setattr__(self, name, days)
        both = self.holidays & self.makeup_workdays
        if both:
            raise _calendar_error(f"{min(both).isoformat()} 既是假日又是调休补班日", ["makeup_workdays"])
        not_weekend = sorted(d for d in self.makeup_workdays if d.weekday() not in weekend)
        if not_weekend:
            raise _calendar_error(f"调休补班日 {not_weekend[0].isoformat()} 不是周末", ["makeup_workdays"])

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def work_seconds_per_day(self) -> float:
        """Working seconds of one full working day (the measure of ``1 work_day``)."""
        if not self._per_day:  # computed once: limit_seconds asks for every work_day limit
            self._per_day.append(
                sum(
                    (datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()
                    for a, b in self.periods
                )
            )
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
