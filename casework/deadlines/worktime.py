"""Working-time arithmetic: :func:`work_seconds_between` and its inverse :func:`add_work_seconds`, and limits
in the five units of the limit tables measured in working or elapsed seconds.

Pure: standard library and :mod:`gridcity.errors` only. UTC internally, exact microsecond timedeltas.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from casework.deadlines.calendar import WorkCalendar
from casework.deadlines.units import _ONE_DAY, _ZERO, LimitUnit, _amount, _aware_utc, _unit
from gridcity.errors import InvalidInput


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
