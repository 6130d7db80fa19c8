"""Evaluation periods (``[start, end)`` in local time, evaluated as of ``end``), the subject types of the API
and the indicator set in effect for a period."""

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from evaluation import indicator_loader, indicators, primitives
from gridcity.errors import InvalidInput
from gridcity.roles import Role
from gridcity.types import MAX_DATE, MIN_DATE

DEFAULT_TZ = "Asia/Shanghai"
MAX_RANGE_DAYS = 366
REGION_LEVELS: Mapping[str, int] = {"grid": 15, "community": 12, "street": 9, "district": 6}
POSITION_TYPES: Mapping[str, Role] = {
    "inspector": Role.INSPECTOR,
    "acceptor": Role.ACCEPTOR,
    "shift_leader": Role.SHIFT_LEADER,
    "dispatcher": Role.DISPATCHER,
}
SUBJECT_TYPES: tuple[str, ...] = ("department", *REGION_LEVELS, *POSITION_TYPES)
"""Subject types of the API: departments, the four region levels, the four positions."""

FLAG_NO_PATROL_DATA = "no_patrol_data"
FLAG_NAMES_ZH = {"insufficient_data": "样本不足", FLAG_NO_PATROL_DATA: "无巡查数据"}


# --------------------------------------------------------------------------------------------------------
# Periods


@dataclass(frozen=True)
class Period:
    """An evaluation period ``[start, end)``; ``start``/``end`` are UTC instants of local midnights."""

    label: str
    kind: str  # month | quarter | year | week | range
    first_day: dt.date
    last_day: dt.date  # inclusive
    start: dt.datetime
    end: dt.datetime
    # The as-of time of the computation: ``end`` (the default), or later for the rollup (see refresh_rollup).
    as_of: dt.datetime | None = None

    @property
    def t1(self) -> dt.datetime:
        """The as-of time: only events logged before it exist for the computation."""
        return self.as_of or self.end


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$", re.IGNORECASE)
_YEAR = re.compile(r"^(\d{4})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$", re.IGNORECASE)
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


def _bad_period(text: str) -> InvalidInput:
    return InvalidInput(
        f"无法识别的评价周期 {text!r}（可用格式：2026-10、2026-Q4、2026、2026-W43、2026-10-01..2026-10-15）",
        code="evaluation.bad_period",
        loc=["period"],
    )


def _add_months(d: dt.date, n: int) -> dt.date:
    y, m = divmod(d.month - 1 + n, 12)
    return dt.date(d.year + y, m + 1, 1)


def parse_period(text: str, *, tz: str = DEFAULT_TZ) -> Period:
    """Parse ``2026-10`` | ``2026-Q4`` | ``2026`` | ``2026-W43`` | ``2026-10-01..2026-10-15`` (inclusive).

    Raises:
        InvalidInput: ``evaluation.bad_period``, ``evaluation.end_before_start``,
            ``evaluation.range_too_long`` (more than 366 days).
    """
    raw = (text or "").strip()
    try:
        if m := _MONTH.match(raw):
            first = dt.date(int(m[1]), int(m[2]), 1)
            kind, last, label = "month", _add_months(first, 1) - dt.timedelta(days=1), f"{first:%Y-%m}"
        elif m := _QUARTER.match(raw):
            first = dt.date(int(m[1]), 3 * int(m[2]) - 2, 1)
            kind, last, label = "quarter", _add_months(first, 3) - dt.timedelta(days=1), f"{m[1]}-Q{m[2]}"
        elif m := _YEAR.match(raw):
            first = dt.date(int(m[1]), 1, 1)
            kind, last, label = "year", dt.date(first.year, 12, 31), m[1]
        elif m := _WEEK.match(raw):
            first = dt.date.fromisocalendar(int(m[1]), int(m[2]), 1)
            kind, last, label = "week", first + dt.timedelta(days=6), f"{m[1]}-W{int(m[2]):02d}"
        elif m := _RANGE.match(raw):
            first, last = dt.date.fromisoformat(m[1]), dt.date.fromisoformat(m[2])
            kind, label = "range", f"{first.isoformat()}..{last.isoformat()}"
        else:
            raise _bad_period(raw)
    except (ValueError, OverflowError):
        raise _bad_period(raw) from None
    if not (MIN_DATE <= first and last <= MAX_DATE):  # year 1 or 9999 would overflow the zone conversion
        raise _bad_period(raw)
    if last < first:
        raise InvalidInput(
            f"评价周期的结束日期 {last} 早于开始日期 {first}", code="evaluation.end_before_start", loc=["period"]
        )
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(
            f"评价周期 {label} 超过 {MAX_RANGE_DAYS} 天", code="evaluation.range_too_long", loc=["period"]
        )
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(first, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.UTC)
    return Period(label, kind, first, last, start, end)


# --------------------------------------------------------------------------------------------------------
# Subject types


def check_subject_type(subject_type: str) -> primitives.SubjectType:
    """The scoring subject type of an API subject type.

    Raises:
        InvalidInput: ``evaluation.unknown_subject_type``.
    """
    if subject_type in REGION_LEVELS:
        return primitives.SubjectType.REGION
    if subject_type == "department":
        return primitives.SubjectType.DEPARTMENT
    if subject_type in POSITION_TYPES:
        return primitives.SubjectType(subject_type)
    raise InvalidInput(
        f"未知的评价对象类型 {subject_type!r}（可用：{', '.join(SUBJECT_TYPES)}）",
        code="evaluation.unknown_subject_type",
        loc=["subject_type"],
    )


def indicator_set_for(period: Period, version: str | None, city_dir: Path | None = None) -> indicators.IndicatorSet:
    """The requested indicator set, or the one in effect at the period's start (with the city's own sets
    from ``city_dir``, see :func:`evaluation.indicator_loader.city_registry`).

    Raises:
        InvalidInput: ``evaluation.unknown_version`` / ``evaluation.no_version_in_effect``.
    """
    registry = indicator_loader.city_registry(city_dir)
    return registry.get(version) if version else registry.in_effect(period.first_day)
