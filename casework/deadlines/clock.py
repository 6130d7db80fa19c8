"""The clock of one stage of a case (:func:`stage_clock`): suspensions (挂账, the clock stops), approved
extensions (延期) and a traffic light.

Pure: standard library and :mod:`gridcity.errors` only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, TypeVar

from casework.deadlines.calendar import WorkCalendar
from casework.deadlines.units import _ZERO, LimitUnit, _amount, _aware_utc, _unit
from casework.deadlines.worktime import add_work_us, from_us, limit_us, to_us, work_us_between
from gridcity.errors import InvalidInput

_T = TypeVar("_T", datetime, int)

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
    return _merged((p.start.astimezone(UTC), None if p.end is None else p.end.astimezone(UTC)) for p in pauses)


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


class UsClock(NamedTuple):
    """A stage clock on the integer time line (:func:`stage_clock_us`): instants in epoch microseconds
    (:func:`casework.deadlines.to_us`), amounts in microseconds of the limit's measure.

    Attributes:
        deadline: When the counted time reaches the limit; None without a limit, or when an open suspension
            comes first.
        limit: Limit plus extensions; None without a limit.
        used: Time counted so far (final when the stage is finished), suspensions excluded.
        paused: True when the running stage is suspended at ``now``.
    """

    deadline: int | None
    limit: int | None
    used: int
    paused: bool

    @property
    def overdue(self) -> int:
        """``max(0, used - limit)`` (0 without a limit)."""
        return 0 if self.limit is None or self.used <= self.limit else self.used - self.limit


def _merged(pauses: Iterable[tuple[_T, _T | None]]) -> list[tuple[_T, _T | None]]:
    """Sorted, disjoint pauses (overlapping or touching ones joined); ``None`` is an open end."""
    merged: list[tuple[_T, _T | None]] = []
    for a, b in sorted(pauses, key=lambda p: p[0]):
        if merged:
            pa, pb = merged[-1]
            if pb is None:
                break  # an open pause swallows everything after it
            if a <= pb:
                merged[-1] = (pa, None if b is None else max(pb, b))
                continue
        merged.append((a, b))
    return merged


def _active_us(
    cal: WorkCalendar, working: bool, start: int, horizon: int, merged: Sequence[tuple[int, int | None]]
) -> int:
    """Measure of [start, horizon) minus the (disjoint, sorted) pauses."""
    total = 0
    cur = start
    for a, b in merged:
        if cur >= horizon:
            break
        if b is not None and b <= cur:
            continue
        if a >= horizon:
            break
        if a > cur:
            total += work_us_between(cal, cur, a) if working else a - cur
        if b is None:
            return total
        cur = max(cur, b)
    if cur < horizon:
        total += work_us_between(cal, cur, horizon) if working else horizon - cur
    return total


def _deadline_us(
    cal: WorkCalendar, working: bool, start: int, limit: int, merged: Sequence[tuple[int, int | None]]
) -> int | None:
    """Earliest instant at which the counted time reaches ``limit``; None if an open pause comes first."""
    if limit <= 0:
        return start
    remaining = limit
    cur = start
    for a, b in merged:
        if b is not None and b <= cur:
            continue
        if a > cur:
            segment = work_us_between(cal, cur, a) if working else a - cur
            if remaining <= segment:
                return add_work_us(cal, cur, remaining) if working else cur + remaining
            remaining -= segment
        if b is None:
            return None
        cur = b
    return add_work_us(cal, cur, remaining) if working else cur + remaining


def stage_clock_us(
    cal: WorkCalendar,
    *,
    start: int,
    limit: int | None,
    working: bool,
    now: int,
    pauses: Iterable[tuple[int, int | None]] = (),
    end: int | None = None,
) -> UsClock:
    """The clock of one stage on the integer time line: :func:`stage_clock` without the datetimes, the light
    and the argument checks, for callers that compute many clocks (evaluation facts).

    Args:
        cal: The working calendar.
        start: When the stage's clock started (epoch microseconds).
        limit: Limit plus extensions in microseconds of the measure (:func:`casework.deadlines.limit_us`), or
            None for a stage without a limit.
        working: True to count working time (working units), False for elapsed time.
        now: The current instant (ignored for the counted time when ``end`` is given).
        pauses: Suspensions ``(start, end or None)`` in any order, possibly overlapping.
        end: When the stage finished, or None while it runs.
    """
    merged = _merged(pauses)
    if end is not None:  # a finished stage is not suspended after it finished
        merged = [(a, end if b is None or b > end else b) for a, b in merged if a < end]
    used = _active_us(cal, working, start, end if end is not None else now, merged)
    paused = end is None and now >= start and any(a <= now and (b is None or now < b) for a, b in merged)
    deadline = None if limit is None else _deadline_us(cal, working, start, limit, merged)
    return UsClock(deadline, limit, used, paused)


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

    working = u is not None and u.counts_working_time
    lim = None if value is None or u is None else limit_us(cal, value, u, ext)
    c = stage_clock_us(
        cal,
        start=to_us(s),
        limit=lim,
        working=working,
        now=to_us(n),
        pauses=[(to_us(p.start), None if p.end is None else to_us(p.end)) for p in pauses],
        end=None if e is None else to_us(e),
    )
    used = timedelta(microseconds=c.used)
    if lim is None:
        return Clock(
            deadline=None,
            limit_seconds=None,
            used_seconds=used.total_seconds(),
            fraction=None,
            light="none",
            paused=c.paused,
            overdue_seconds=0.0,
        )

    limit = timedelta(microseconds=lim)
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
        deadline=None if c.deadline is None else from_us(c.deadline).astimezone(cal.tz),
        limit_seconds=limit.total_seconds(),
        used_seconds=used.total_seconds(),
        fraction=fraction,
        light=light,
        paused=c.paused,
        overdue_seconds=c.overdue / 1_000_000,
    )
