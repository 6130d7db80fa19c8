"""Units of time limits (工作时, 工作日, 小时, 天, 分钟) and the argument checks shared by the deadline modules.

Pure: standard library and :mod:`gridcity.errors` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from gridcity.errors import InvalidInput

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
        raise InvalidInput(f"{name} {value!r} is unreasonably large", code="deadline.invalid_amount", loc=[name])
    return float(value)


def _aware_utc(dt: datetime, name: str) -> datetime:
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidInput(
            f"{name} must be a timezone-aware datetime, got {dt!r}",
            code="deadline.naive_datetime",
            loc=[name],
        )
    return dt.astimezone(UTC)
