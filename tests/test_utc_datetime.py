"""UTCDateTime's SQLite bind processor: one step instead of SQLAlchemy's two, the very same stored text."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from gridcity.types import UTCDateTime

SQLITE = sqlite.dialect()
ZONES = [
    dt.UTC,
    ZoneInfo("UTC"),
    ZoneInfo("Asia/Shanghai"),
    ZoneInfo("America/St_Johns"),
    dt.timezone(dt.timedelta(hours=-3, minutes=-30)),
]


def _standard(value: dt.datetime) -> object:
    """What SQLAlchemy itself stores: process_bind_param, then the SQLite DATETIME's own formatting."""
    t = UTCDateTime()
    inner = t.impl_instance.dialect_impl(SQLITE).bind_processor(SQLITE)
    assert inner is not None
    return inner(t.process_bind_param(value, SQLITE))


@settings(max_examples=400, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2199, 12, 30)),
    st.sampled_from(ZONES),
)
def test_sqlite_text_is_the_standard_one(naive: dt.datetime, zone: dt.tzinfo) -> None:
    value = naive.replace(tzinfo=zone)
    fast = UTCDateTime().bind_processor(SQLITE)
    assert fast is not None
    assert fast(value) == _standard(value)


def test_sqlite_processor_refuses_naive_and_passes_none() -> None:
    fast = UTCDateTime().bind_processor(SQLITE)
    assert fast is not None
    assert fast(None) is None
    with pytest.raises(ValueError, match="naive"):
        fast(dt.datetime(2024, 1, 1))


def test_postgresql_keeps_the_standard_path() -> None:
    d = postgresql.psycopg.dialect()
    proc = UTCDateTime().bind_processor(d)
    value = dt.datetime(2024, 1, 1, 8, tzinfo=ZoneInfo("Asia/Shanghai"))
    got = proc(value) if proc is not None else UTCDateTime().process_bind_param(value, d)
    assert got == dt.datetime(2024, 1, 1, tzinfo=dt.UTC) and got.tzinfo is not None


def test_a_stored_time_reads_back_and_compares_as_before() -> None:
    """Through a real SQLite file: stored by the fast path, read back equal, ordered as text as before."""
    engine = sa.create_engine("sqlite://")
    md = sa.MetaData()
    t = sa.Table("t", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("at", UTCDateTime()))
    md.create_all(engine)
    times = [dt.datetime(2024, 1, 1, 8, 0, 0, us, tzinfo=ZoneInfo("Asia/Shanghai")) for us in (0, 1, 999_999)]
    with engine.begin() as c:
        c.execute(t.insert(), [{"at": v} for v in times])
        assert c.execute(sa.select(t.c.at).order_by(t.c.at)).scalars().all() == times
        assert c.scalar(sa.select(sa.func.count()).where(t.c.at >= times[1])) == 2
        assert c.scalar(sa.text("SELECT at FROM t WHERE id = 1")) == "2024-01-01 00:00:00.000000"
