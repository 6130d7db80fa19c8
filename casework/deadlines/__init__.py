"""Deadline arithmetic for case handling time limits (处置时限).

This package is pure: it imports only the standard library and :mod:`gridcity.errors`. It holds

* the working calendar (:class:`WorkCalendar`): working periods of a day, weekend days, public holidays and
  调休 make-up working days;
* working-time arithmetic: :func:`work_seconds_between` and its inverse :func:`add_work_seconds`, and their
  integer forms on epoch microseconds (:func:`to_us`): :func:`work_us_between` and :func:`add_work_us`;
* limits in the five units of the limit tables (:class:`LimitUnit`): 工作时, 工作日, 小时, 天, 分钟;
* the clock of one stage of a case (:func:`stage_clock`; :func:`stage_clock_us` on integers), with
  suspensions (挂账, the clock stops), approved extensions (延期) and a traffic light;
* the handling-standards table (立案条件 / 处置时限 / 结案条件) and its most-specific-row lookup.

It reads no files: the TOML calendar and the CSV standards are read and checked (pydantic) by
:mod:`casework.tables`.

Measures. A limit in a *working* unit (``work_hour``, ``work_day``) is measured in working seconds: only
time inside a working period of a working day counts. ``N work_day`` means N full working days of working
time, i.e. ``N × WorkCalendar.work_seconds_per_day`` working seconds, so "1 working day" from Monday 10:00
ends on Tuesday 10:00. A limit in a *wall* unit (``hour``, ``day``, ``minute``) is plain elapsed time
(``day`` = 24 hours), measured on the UTC time line so that DST changes cannot distort it.

All instants must be timezone-aware. Datetimes returned by this module are in the calendar's time zone.

The package's modules, one per seam: :mod:`.units`, :mod:`.calendar`, :mod:`.worktime` (working-time
arithmetic), :mod:`.clock` (stage clocks) and :mod:`.standards` (handling standards). This module re-exports
their public names, the package's API.
"""

from casework.deadlines.calendar import WorkCalendar
from casework.deadlines.clock import Clock, Light, Pause, UsClock, merge_pauses, stage_clock, stage_clock_us
from casework.deadlines.standards import (
    ANY,
    STAGES,
    STANDARDS_COLUMNS,
    URGENCIES,
    HandlingStandard,
    Limit,
    StandardsTable,
    merge,
)
from casework.deadlines.units import LimitUnit
from casework.deadlines.worktime import (
    add_limit,
    add_measured_seconds,
    add_work_seconds,
    add_work_us,
    convert_extension,
    from_us,
    limit_elapsed,
    limit_seconds,
    limit_us,
    to_us,
    work_seconds_between,
    work_us_between,
)

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
    "UsClock",
    "WorkCalendar",
    "add_limit",
    "add_measured_seconds",
    "add_work_seconds",
    "add_work_us",
    "convert_extension",
    "from_us",
    "limit_elapsed",
    "limit_seconds",
    "limit_us",
    "merge",
    "merge_pauses",
    "stage_clock",
    "stage_clock_us",
    "to_us",
    "work_seconds_between",
    "work_us_between",
]
