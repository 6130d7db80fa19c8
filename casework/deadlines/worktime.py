"""Working-time arithmetic: :func:`work_seconds_between` and its inverse :func:`add_work_seconds`, and limits
in the five units of the limit tables measured in working or elapsed seconds.

Pure: standard library and :mod:`gridcity.errors` only. UTC internally, exact microsecond timedeltas.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import NamedTuple

from casework.deadlines.calendar import WorkCalendar
from casework.deadlines.units import _ONE_DAY, _ZERO, LimitUnit, _amount, _aware_utc, _unit
from gridcity.errors import InvalidInput

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_INDEX_MARGIN_DAYS = 366
_INDEX_MIN = date(1900, 1, 1).toordinal()
_INDEX_MAX = date(2400, 1, 1).toordinal()


def _us(t: datetime) -> int:
    """Microseconds since the epoch of an aware UTC instant (exact)."""
    return (t - _EPOCH) // _US


class _Span(NamedTuple):
    """An immutable stretch of the index: the day ordinals ``first .. first + len(periods) - 1``."""

    first: int
    periods: Sequence[tuple[tuple[int, int], ...]]  # per day: its working periods in epoch microseconds
    cum: Sequence[int]  # cum[k]: working microseconds of the days first .. first + k - 1

    def covers(self, lo: int, hi: int) -> bool:
        return bool(self.periods) and self.first <= lo and hi < self.first + len(self.periods)

    def before(self, tz: tzinfo, t: datetime, t_us: int) -> int:
        """Working microseconds from the span's first day to ``t`` (covered; ``t_us = _us(t)``)."""
        k = t.astimezone(tz).toordinal() - self.first
        total = self.cum[k]
        for a, b in self.periods[k]:
            if t_us <= a:
                break
            total += (b if b < t_us else t_us) - a
        return total


class WorkIndex:
    """Prefix sums of the calendar's working time, one entry per local day, for O(log n) arithmetic.

    The working time before an instant ``t`` of day ``d`` is ``cum[d - first]`` plus the part of ``d``'s
    periods before ``t`` (:meth:`_Span.before`), and the working time in ``[s, e)`` is the difference of two
    such values: exactly the sum the day-by-day stepping computes, without visiting the days in between. The
    inverse finds the day by bisection. The index covers a range of days that grows on demand (a year of margin
    each time); a growth builds a new immutable span and swaps it in under a lock, so requests in other threads
    keep computing on the span they started with.
    """

    __slots__ = ("cal", "lock", "span")

    def __init__(self, cal: WorkCalendar) -> None:
        self.cal = cal
        self.lock = threading.Lock()
        self.span = _Span(0, (), (0,))

    def covering(self, lo: int, hi: int) -> _Span:
        """A span that covers the day ordinals ``lo .. hi`` (inclusive)."""
        span = self.span
        if span.covers(lo, hi):
            return span
        with self.lock:
            span = self.span
            if span.covers(lo, hi):
                return span
            if span.periods:
                hi = max(hi, span.first + len(span.periods) - 1)
            last = min(_INDEX_MAX, hi + _INDEX_MARGIN_DAYS)
            if span.periods and lo >= span.first:  # forwards only: keep the origin and the days computed
                first = span.first
                periods, cum = list(span.periods), list(span.cum)
                start = span.first + len(span.periods)
            else:
                first = max(_INDEX_MIN, lo - _INDEX_MARGIN_DAYS)
                periods, cum, start = [], [0], first
            total = cum[-1]
            for o in range(start, last + 1):
                # A period that a DST change makes empty or negative (02:01-03:00 on the spring-forward night)
                # holds no working time, as in the day-by-day definition.
                ps = tuple((_us(a), _us(b)) for a, b in self.cal._utc_periods(date.fromordinal(o)) if b > a)
                for a, b in ps:
                    total += b - a
                periods.append(ps)
                cum.append(total)
            self.span = _Span(first, periods, cum)
            return self.span

    def reach(self, span: _Span, target: int) -> int | None:
        """The earliest instant (epoch microseconds) at which ``span.before`` reaches ``target`` (> 0)."""
        while span.cum[-1] < target:  # extend forwards: a limit can run past the indexed range
            last = span.first + len(span.periods) - 1
            if last >= _INDEX_MAX:
                return None  # beyond the indexed years: the caller steps day by day
            grown = self.covering(span.first, last + 1)
            target += grown.cum[span.first - grown.first]  # the same instant, counted from the new origin
            span = grown
        k = bisect_left(span.cum, target) - 1  # the first day whose end reaches the target
        remaining = target - span.cum[k]
        for a, b in span.periods[k]:
            if remaining <= b - a:
                return a + remaining
            remaining -= b - a
        raise AssertionError("working-time index is inconsistent")  # pragma: no cover


def _index(cal: WorkCalendar) -> WorkIndex:
    if not cal._index:
        cal._index.append(WorkIndex(cal))
    index: WorkIndex = cal._index[0]  # two threads may both append: every caller uses the first
    return index


def _in_index(day: int) -> bool:
    return _INDEX_MIN <= day <= _INDEX_MAX - _INDEX_MARGIN_DAYS


def _work_between(cal: WorkCalendar, start: datetime, end: datetime) -> timedelta:
    """Working time in [start, end); both UTC."""
    if end <= start:
        return _ZERO
    tz = cal.tz
    lo, hi = start.astimezone(tz).toordinal(), end.astimezone(tz).toordinal()
    if not (_in_index(lo) and _in_index(hi)):
        return _step_between(cal, start, end)
    span = _index(cal).covering(lo, hi)
    return timedelta(microseconds=span.before(tz, end, _us(end)) - span.before(tz, start, _us(start)))


def _add_work(cal: WorkCalendar, start: datetime, amount: timedelta) -> datetime:
    """Earliest UTC instant t >= start with working time in [start, t) >= amount."""
    if amount <= _ZERO:
        return start
    tz = cal.tz
    o = start.astimezone(tz).toordinal()
    if _in_index(o):
        ix = _index(cal)
        span = ix.covering(o, o)
        reached = ix.reach(span, span.before(tz, start, _us(start)) + amount // _US)
        if reached is not None:
            return _EPOCH + timedelta(microseconds=reached)
    return _step_add(cal, start, amount)


# Day-by-day stepping: the definition, used outside the indexed years (1900 to 2400).


def _step_between(cal: WorkCalendar, start: datetime, end: datetime) -> timedelta:
    tz = cal.tz
    day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    total = _ZERO
    while day <= last:
        for a, b in cal._utc_periods(day):
            lo = a if a > start else start
            hi = b if b < end else end
            if hi > lo:
                total += hi - lo
        day += _ONE_DAY
    return total


def _step_add(cal: WorkCalendar, start: datetime, amount: timedelta) -> datetime:
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


def convert_extension(cal: WorkCalendar, value: float, unit: LimitUnit | str, *, stage_unit: LimitUnit | str) -> float:
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


def add_measured_seconds(cal: WorkCalendar, start: datetime, seconds: float, unit: LimitUnit | str) -> datetime:
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
