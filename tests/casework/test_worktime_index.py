"""The indexed working-time arithmetic (prefix sums per day, bisection) against day-by-day stepping.

``casework.deadlines.worktime`` answers "working time in [s, e)" and "the instant at which N working seconds
have elapsed after s" from a per-calendar index. The reference here is the plain definition, written
independently: walk the local days from s to e and add up the overlap with each working period. The two must
agree to the microsecond on every calendar (weekends, holidays, make-up days, a zone with DST, periods up to
midnight) and every pair of instants, including ones years apart, which grow the index in both directions.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from casework.deadlines import (
    Pause,
    WorkCalendar,
    add_work_seconds,
    add_work_us,
    from_us,
    limit_us,
    stage_clock,
    stage_clock_us,
    to_us,
    work_seconds_between,
    work_us_between,
)

PROPS = settings(max_examples=300, deadline=None)
ZERO = timedelta(0)


def ref_between(cal: WorkCalendar, start: datetime, end: datetime) -> timedelta:
    """Working time in [start, end) by stepping the local days (the definition)."""
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    if e <= s:
        return ZERO
    tz = ZoneInfo(cal.timezone)
    day, last = s.astimezone(tz).date(), e.astimezone(tz).date()
    total = ZERO
    while day <= last:
        if cal.is_working_day(day):
            for a, b in cal.periods:
                lo = max(datetime.combine(day, a, tzinfo=tz).astimezone(UTC), s)
                hi = min(datetime.combine(day, b, tzinfo=tz).astimezone(UTC), e)
                if hi > lo:
                    total += hi - lo
        day += timedelta(days=1)
    return total


def ref_add(cal: WorkCalendar, start: datetime, amount: timedelta) -> datetime:
    """The earliest t >= start with ref_between(start, t) >= amount, by stepping the periods."""
    s = start.astimezone(UTC)
    if amount <= ZERO:
        return s
    tz = ZoneInfo(cal.timezone)
    day, remaining = s.astimezone(tz).date(), amount
    while True:
        if cal.is_working_day(day):
            for a, b in cal.periods:
                lo = max(datetime.combine(day, a, tzinfo=tz).astimezone(UTC), s)
                hi = datetime.combine(day, b, tzinfo=tz).astimezone(UTC)
                if hi > lo:
                    if remaining <= hi - lo:
                        return lo + remaining
                    remaining -= hi - lo
        day += timedelta(days=1)


def _calendar(
    zone: str, periods: list[tuple[int, int]], weekend: set[int], holidays: set[date], makeup: set[date]
) -> WorkCalendar:
    makeup = {d for d in makeup if d.weekday() in weekend} - holidays
    spans = tuple((time(a // 60, a % 60), time(b // 60, b % 60)) for a, b in periods)
    return WorkCalendar(
        timezone=zone,
        periods=spans,
        weekend=frozenset(weekend),
        holidays=frozenset(holidays),
        makeup_workdays=frozenset(makeup),
    )


@st.composite
def calendars(draw: st.DrawFn) -> WorkCalendar:
    zone = draw(st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "America/New_York"]))  # two with DST
    cuts = sorted(draw(st.sets(st.integers(0, 24 * 60 - 1), min_size=2, max_size=6)))
    if len(cuts) % 2:
        cuts = cuts[:-1]
    periods = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts), 2)]
    weekend = draw(st.sets(st.integers(0, 6), max_size=3))
    days = st.dates(date(2024, 1, 1), date(2027, 12, 31))
    return _calendar(zone, periods, weekend, draw(st.sets(days, max_size=40)), draw(st.sets(days, max_size=10)))


instants = st.datetimes(datetime(2023, 6, 1), datetime(2028, 6, 1), timezones=st.just(UTC))
SHANGHAI = _calendar(
    "Asia/Shanghai",
    [(8 * 60 + 30, 12 * 60), (14 * 60, 18 * 60)],
    {5, 6},
    {date(2025, 10, d) for d in range(1, 9)},
    {date(2025, 9, 28), date(2025, 10, 11)},
)


@PROPS
@given(calendars(), instants, instants)
@example(SHANGHAI, datetime(2025, 9, 30, 10, 0, tzinfo=UTC), datetime(2025, 10, 11, 1, 0, tzinfo=UTC))
def test_working_time_between_equals_the_day_by_day_sum(cal: WorkCalendar, a: datetime, b: datetime) -> None:
    assert timedelta(seconds=work_seconds_between(cal, a, b)) == ref_between(cal, a, b)
    # The reverse order on a fresh calendar grows its index the other way first.
    fresh = _calendar(
        cal.timezone,
        [(p.hour * 60 + p.minute, q.hour * 60 + q.minute) for p, q in cal.periods],
        set(cal.weekend),
        set(cal.holidays),
        set(cal.makeup_workdays),
    )
    assert work_seconds_between(fresh, b, b + timedelta(days=900)) >= 0
    assert timedelta(seconds=work_seconds_between(fresh, a, b)) == ref_between(cal, a, b)


@PROPS
@given(calendars(), instants, st.integers(0, 10**6))
@example(SHANGHAI, datetime(2025, 9, 30, 4, 0, tzinfo=UTC), 10**6 * 3600 // (27000 * 400))  # 12:00 before 国庆
# Spring forward in Berlin: the period 02:01-03:00 of 2024-03-31 does not exist (found by this test).
@example(_calendar("Europe/Berlin", [(121, 180)], set(), set(), set()), datetime(2024, 3, 31, tzinfo=UTC), 1)
# Fall back in New York: 01:00:01.872 local happens twice on 2023-11-05; the answer is the first (EDT), 05:00:01.872
# UTC. Aware datetimes in different zones never compare equal at an ambiguous time (PEP 495), so the test compares
# instants in UTC (found by this test).
@example(_calendar("America/New_York", [(53, 147)], set(), set(), set()), datetime(2023, 11, 5, 4, 53, tzinfo=UTC), 187)
def test_adding_working_time_equals_stepping_the_periods(cal: WorkCalendar, a: datetime, ppm: int) -> None:
    # Up to 400 full working days of the calendar, in whole microseconds.
    per_day = sum((datetime.combine(date.min, q) - datetime.combine(date.min, p) for p, q in cal.periods), ZERO)
    amount = per_day * 400 * ppm // 10**6
    got = add_work_seconds(cal, a, amount.total_seconds())
    # add_work_seconds takes float seconds rounded to the microsecond, like the reference's timedelta.
    want = ref_add(cal, a, timedelta(seconds=amount.total_seconds()))
    assert got.astimezone(UTC) == want.astimezone(UTC)
    assert ref_between(cal, a, got) >= timedelta(seconds=amount.total_seconds())


def test_instants_outside_the_indexed_years_are_stepped_with_the_same_results() -> None:
    for a, b in [
        (datetime(1899, 12, 20, tzinfo=UTC), datetime(1900, 1, 20, tzinfo=UTC)),
        (datetime(2399, 6, 1, tzinfo=UTC), datetime(2401, 1, 3, tzinfo=UTC)),
    ]:
        assert timedelta(seconds=work_seconds_between(SHANGHAI, a, b)) == ref_between(SHANGHAI, a, b)
        assert add_work_seconds(SHANGHAI, a, 40 * 27000.0) == ref_add(SHANGHAI, a, timedelta(seconds=40 * 27000))


def test_threads_growing_one_calendars_index_in_both_directions_agree_with_the_definition() -> None:
    # Requests run in a thread pool and share the city's calendar: one thread growing the index backwards
    # (which moves its origin) must not change what another computes on the span it started with.
    cal = _calendar("Asia/Shanghai", [(510, 720), (840, 1080)], {5, 6}, {date(2025, 10, 1)}, set())
    starts = [datetime(2025, 6, 1, tzinfo=UTC) + timedelta(days=k * 97 * (-1) ** k, hours=k) for k in range(24)]
    amounts = [timedelta(hours=3 + 7 * k) for k in range(24)]
    want = [
        (ref_between(cal, s, s + timedelta(days=40)), ref_add(cal, s, a)) for s, a in zip(starts, amounts, strict=True)
    ]

    def work(k: int) -> tuple[timedelta, datetime]:
        s = starts[k]
        return (
            timedelta(seconds=work_seconds_between(cal, s, s + timedelta(days=40))),
            add_work_seconds(cal, s, amounts[k].total_seconds()),
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(work, range(24)))
    assert got == want


# The integer forms (epoch microseconds) that the evaluation facts compute on.

US = timedelta(microseconds=1)


@PROPS
@given(calendars(), instants, instants)
@example(SHANGHAI, datetime(2025, 9, 30, 3, 59, tzinfo=UTC), datetime(2025, 10, 9, 1, 0, tzinfo=UTC))  # 国庆
@example(SHANGHAI, datetime(2025, 9, 27, 1, 0, tzinfo=UTC), datetime(2025, 9, 29, 1, 0, tzinfo=UTC))  # 补班 Sunday
def test_integer_working_time_equals_the_day_by_day_sum_and_the_datetime_form(
    cal: WorkCalendar, a: datetime, b: datetime
) -> None:
    got = work_us_between(cal, to_us(a), to_us(b))
    assert got == ref_between(cal, a, b) // US
    assert got == round(work_seconds_between(cal, a, b) * 10**6)


@PROPS
@given(calendars(), instants, st.integers(0, 400 * 86400 * 10**6))
@example(SHANGHAI, datetime(2025, 9, 30, 3, 0, tzinfo=UTC), 3600 * 10**6)  # 11:00 + 1 h: ends at 12:00, not 14:00
@example(SHANGHAI, datetime(2025, 10, 10, 10, 0, tzinfo=UTC), 10**6)  # Friday 18:00 → the make-up Saturday
def test_integer_adding_equals_stepping_the_periods_and_the_datetime_form(
    cal: WorkCalendar, a: datetime, n: int
) -> None:
    per_day = sum((datetime.combine(date.min, q) - datetime.combine(date.min, p) for p, q in cal.periods), ZERO)
    amount = n % (per_day // US * 400 + 1)  # up to 400 working days
    got = add_work_us(cal, to_us(a), amount)
    assert from_us(got) == ref_add(cal, a, amount * US)
    assert from_us(got) == add_work_seconds(cal, a, amount / 10**6).astimezone(UTC)


@PROPS
@given(calendars(), instants, instants)
@example(SHANGHAI, datetime(2025, 9, 30, 3, 0, tzinfo=UTC), datetime(2025, 9, 30, 5, 0, tzinfo=UTC))  # lunch
@example(SHANGHAI, datetime(2025, 9, 30, 3, 0, tzinfo=UTC), datetime(2025, 10, 5, 5, 0, tzinfo=UTC))  # holiday
@example(SHANGHAI, datetime(2025, 9, 30, 3, 0, tzinfo=UTC), datetime(2025, 10, 9, 0, 30, tzinfo=UTC))  # 08:30 opens
def test_adding_the_working_time_between_two_instants_lands_on_the_same_working_instant(
    cal: WorkCalendar, a: datetime, b: datetime
) -> None:
    t, u = to_us(min(a, b)), to_us(max(a, b))
    w = work_us_between(cal, t, u)
    r = add_work_us(cal, t, w)
    # The earliest instant with the same working time: u itself, or the end of the working period before the
    # break u falls in (no working time between them). An instant that opens a working period counts as in
    # that break: no working time of the period has passed yet (found by Hypothesis: a one-minute period
    # each day, u at 00:00 of the next day, r at 00:01 of the day before).
    assert t <= r <= u
    assert work_us_between(cal, t, r) == w
    assert work_us_between(cal, r, u) == 0
    if w > 0:
        assert work_us_between(cal, t, r - 1) == w - 1
    if cal.is_working_time(from_us(u - 1)) and r != t:
        assert r == u


def _counted(
    cal: WorkCalendar, working: bool, s: datetime, e: datetime, pauses: list[tuple[datetime, datetime]]
) -> int:
    """Microseconds of the measure in [s, e) outside the pauses, by the day-by-day reference."""
    cuts = sorted({s, e, *(max(s, min(e, x)) for p in pauses for x in p)})
    total = ZERO
    for lo, hi in itertools.pairwise(cuts):
        if any(p <= lo and hi <= q for p, q in pauses):
            continue
        total += ref_between(cal, lo, hi) if working else hi - lo
    return total // US


@PROPS
@given(
    calendars(),
    instants,
    st.lists(st.tuples(st.integers(0, 30 * 86400), st.integers(0, 5 * 86400)), max_size=3),
    st.integers(0, 40 * 3600 * 10**6),
    st.integers(0, 60 * 86400),
    st.booleans(),
    st.booleans(),
)
@example(SHANGHAI, datetime(2025, 9, 29, 1, 0, tzinfo=UTC), [(3600, 86400)], 20 * 3600 * 10**6, 20 * 86400, True, True)
def test_integer_stage_clock_counts_the_reference_measure_outside_the_suspensions(
    cal: WorkCalendar,
    start: datetime,
    raw_pauses: list[tuple[int, int]],
    limit: int,
    run_s: int,
    working: bool,
    finished: bool,
) -> None:
    pauses = [(start + timedelta(seconds=a), start + timedelta(seconds=a + d)) for a, d in raw_pauses]
    end = start + timedelta(seconds=run_s)
    c = stage_clock_us(
        cal,
        start=to_us(start),
        limit=limit,
        working=working,
        now=to_us(end),
        pauses=[(to_us(p), to_us(q)) for p, q in pauses],
        end=to_us(end) if finished else None,
    )
    # A finished stage is not suspended after it finished: its suspensions are cut at its end.
    counted = [(p, min(q, end)) for p, q in pauses] if finished else pauses
    assert c.used == _counted(cal, working, start, end, counted)
    assert c.overdue == max(0, c.used - limit)
    assert c.deadline is not None
    d = from_us(c.deadline)
    # The deadline is the earliest instant at which the counted time reaches the limit.
    assert _counted(cal, working, start, d, counted) == limit
    if limit > 0:
        assert _counted(cal, working, start, d - US, counted) < limit
    else:
        assert d == start
    # The datetime form is a wrapper over the same clock.
    unit = "work_hour" if working else "hour"
    wrapped = stage_clock(
        cal,
        start=start,
        value=limit / 3600e6,
        unit=unit,
        now=end,
        pauses=[Pause(p, q) for p, q in pauses],
        end=end if finished else None,
    )
    lim = limit_us(cal, limit / 3600e6, unit)
    assert wrapped.used_seconds == c.used / 10**6
    assert wrapped.deadline is not None
    assert (
        to_us(wrapped.deadline)
        == stage_clock_us(
            cal,
            start=to_us(start),
            limit=lim,
            working=working,
            now=to_us(end),
            pauses=[(to_us(p), to_us(q)) for p, q in pauses],
            end=to_us(end) if finished else None,
        ).deadline
    )
