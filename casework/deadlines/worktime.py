"""Working-time arithmetic: :func:`work_seconds_between` and its inverse :func:`add_work_seconds`, and limits
in the five units of the limit tables measured in working or elapsed seconds.

Pure: standard library and :mod:`gridcity.errors` only. UTC internally, exact microsecond timedeltas.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
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
    """Microseconds since the epoch of an aware instant (exact)."""
    return (t - _EPOCH) // _US


def to_us(t: datetime) -> int:
    """An aware instant as integer microseconds since the epoch (exact; the integer API's time line).

    Raises:
        InvalidInput: ``deadline.naive_datetime`` if ``t`` is naive.
    """
    return (_aware_utc(t, "instant") - _EPOCH) // _US


def from_us(t: int) -> datetime:
    """The UTC instant of ``t`` microseconds since the epoch (the inverse of :func:`to_us`)."""
    return _EPOCH + timedelta(microseconds=t)


class _Span(NamedTuple):
    """An immutable stretch of the index: the working periods of the local days ``first .. last``, flat.

    ``starts``/``ends`` are the periods in epoch microseconds, ascending; ``cum[i]`` is the working time of
    the periods before period ``i``, ``done[i] = cum[i] + ends[i] - starts[i]``. ``lo``/``hi`` are the epoch
    microseconds of the local midnights that begin day ``first`` and end day ``last``: every instant in
    ``[lo, hi]`` has all the periods around it in the span.
    """

    first: int
    last: int
    lo: int
    hi: int
    starts: Sequence[int]
    ends: Sequence[int]
    cum: Sequence[int]
    done: Sequence[int]

    def before(self, t: int) -> int:
        """Working microseconds from the span's origin to ``t`` (epoch microseconds, covered)."""
        i = bisect_right(self.starts, t) - 1
        if i < 0:
            return 0
        e = self.ends[i]
        return self.cum[i] + (e if e < t else t) - self.starts[i]


_EMPTY = _Span(1, 0, 0, -1, (), (), (), ())


def _midnight_us(tz: tzinfo, day: int) -> int:
    return _us(datetime.combine(date.fromordinal(day), time(), tzinfo=tz))


class WorkIndex:
    """Prefix sums of the calendar's working time over its periods, for O(log n) integer arithmetic.

    The working time before an instant ``t`` is the sum of the whole periods before it plus the part of the
    period it falls in (:meth:`_Span.before`, one bisection), and the working time in ``[s, e)`` is the
    difference of two such values: exactly the sum the day-by-day stepping computes, without visiting the days
    in between. The inverse bisects the running totals. The index covers a range of days that grows on demand
    (a year of margin each time); a growth builds a new immutable span and swaps it in under a lock, so requests
    in other threads keep computing on the span they started with.
    """

    __slots__ = ("cal", "lock", "span", "tz")

    def __init__(self, cal: WorkCalendar) -> None:
        self.cal = cal
        self.tz = cal.tz
        self.lock = threading.Lock()
        self.span = _EMPTY

    def covering(self, lo: int, hi: int) -> _Span:
        """A span that covers the local day ordinals ``lo .. hi`` (inclusive)."""
        span = self.span
        if span.first <= lo and hi <= span.last:
            return span
        with self.lock:
            span = self.span
            if span.first <= lo and hi <= span.last:
                return span
            empty = span.first > span.last
            if not empty:
                hi = max(hi, span.last)
            last = min(_INDEX_MAX, hi + _INDEX_MARGIN_DAYS)
            if not empty and lo >= span.first:  # forwards only: keep the origin and the days computed
                first = span.first
                starts, ends, cum, done = list(span.starts), list(span.ends), list(span.cum), list(span.done)
                start = span.last + 1
            else:
                first = max(_INDEX_MIN, lo - _INDEX_MARGIN_DAYS)
                starts, ends, cum, done, start = [], [], [], [], first
            total = done[-1] if done else 0
            for o in range(start, last + 1):
                # A period that a DST change makes empty or negative (02:01-03:00 on the spring-forward night)
                # holds no working time, as in the day-by-day definition.
                for a, b in self.cal._utc_periods(date.fromordinal(o)):
                    if b > a:
                        ua, ub = _us(a), _us(b)
                        starts.append(ua)
                        ends.append(ub)
                        cum.append(total)
                        total += ub - ua
                        done.append(total)
            self.span = _Span(
                first, last, _midnight_us(self.tz, first), _midnight_us(self.tz, last + 1), starts, ends, cum, done
            )
            return self.span

    def around(self, start: int, end: int) -> _Span | None:
        """A span covering the instants ``start <= end`` (epoch µs), or None outside the indexed years."""
        span = self.span
        if span.lo <= start and end <= span.hi:
            return span
        lo, hi = (from_us(t).astimezone(self.tz).toordinal() for t in (start, end))
        if not (_in_index(lo) and _in_index(hi)):
            return None
        return self.covering(lo, hi)


def _index(cal: WorkCalendar) -> WorkIndex:
    if not cal._index:
        cal._index.append(WorkIndex(cal))
    index: WorkIndex = cal._index[0]  # two threads may both append: every caller uses the first
    return index


def _in_index(day: int) -> bool:
    return _INDEX_MIN <= day <= _INDEX_MAX - _INDEX_MARGIN_DAYS


def work_us_between(cal: WorkCalendar, start: int, end: int) -> int:
    """Working microseconds in ``[start, end)``, both in epoch microseconds (:func:`to_us`); 0 if ``end <= start``.

    The integer form of :func:`work_seconds_between`, for callers that do many clocks (evaluation facts).
    """
    if end <= start:
        return 0
    span = _index(cal).around(start, end)
    if span is None:
        return _step_between(cal, from_us(start), from_us(end)) // _US
    return span.before(end) - span.before(start)


def add_work_us(cal: WorkCalendar, start: int, amount: int) -> int:
    """The earliest instant ``t >= start`` (epoch microseconds) with ``work_us_between(cal, start, t) >= amount``.

    The integer form of :func:`add_work_seconds`: outside working time counting begins at the next working
    period, and an amount used up exactly at the end of a period gives that period end.
    """
    if amount <= 0:
        return start
    ix = _index(cal)
    span = ix.around(start, start)
    while span is not None:
        target = span.before(start) + amount
        done = span.done
        if done and done[-1] >= target:
            i = bisect_left(done, target)  # the first period whose end reaches the target
            return span.starts[i] + target - span.cum[i]
        if span.last >= _INDEX_MAX:
            break  # beyond the indexed years: step day by day
        span = ix.covering(span.first, span.last + 1)  # a limit can run past the indexed range
    return _us(_step_add(cal, from_us(start), timedelta(microseconds=amount)))


def _work_between(cal: WorkCalendar, start: datetime, end: datetime) -> timedelta:
    """Working time in [start, end); both aware."""
    return timedelta(microseconds=work_us_between(cal, _us(start), _us(end)))


def _add_work(cal: WorkCalendar, start: datetime, amount: timedelta) -> datetime:
    """Earliest UTC instant t >= start with working time in [start, t) >= amount."""
    return from_us(add_work_us(cal, _us(start), amount // _US))


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


def limit_us(cal: WorkCalendar, value: float, unit: LimitUnit | str, extension_seconds: float = 0.0) -> int:
    """A limit ``(value, unit)`` plus approved extensions (seconds of the same measure, :func:`convert_extension`)
    in whole microseconds of the unit's measure, rounded as :func:`stage_clock` rounds it."""
    return timedelta(seconds=limit_seconds(cal, value, unit) + extension_seconds) // _US


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
