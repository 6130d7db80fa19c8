"""``spatial.bulk_append`` stores what a Core insert stores, on both databases, by either COPY format on PostgreSQL.

Tables whose columns are all plain types (integers, text, booleans, floats, UTC datetimes) go through a binary
COPY on PostgreSQL; the others (JSON, …) keep the text COPY. Both must round-trip every value exactly.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.orm import Session

from gridcity import spatial
from gridcity.types import UTCDateTime

MD = sa.MetaData()
PLAIN = sa.Table(
    "bulk_plain_probe",
    MD,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer),
    sa.Column("big", sa.BigInteger),
    sa.Column("name", sa.String(20)),
    sa.Column("flag", sa.Boolean),
    sa.Column("x", sa.Float),
    sa.Column("at", UTCDateTime()),
)
WITH_JSON = sa.Table(
    "bulk_json_probe",
    MD,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("data", sa.JSON),
    sa.Column("at", UTCDateTime()),
)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_only_tables_of_plain_types_take_the_binary_copy() -> None:
    d = psycopg.dialect()
    names = tuple(c.name for c in PLAIN.c)
    assert spatial._binary_copy_types(PLAIN, names, d) == [
        "int4",
        "int4",
        "int8",
        "varchar",
        "bool",
        "float8",
        "timestamptz",
    ]
    assert spatial._binary_copy_types(WITH_JSON, ("id", "data", "at"), d) is None


def test_bulk_append_round_trips_every_value(db: sa.Engine) -> None:
    at = dt.datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=SHANGHAI)
    plain = [
        (1, 7, 2**40, "灯杆 a\tb\\c", True, 0.1, at),
        (2, None, None, None, None, None, None),
        (3, -3, -(2**40), "", False, 1e300, dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)),
        (4, 0, 0, "x", False, 3, at),  # an int in a float column
    ]
    with_json = [(1, {"k": [1, "二"]}, at), (2, None, None)]
    MD.create_all(db)
    try:
        with Session(db) as s, s.begin():
            spatial.bulk_append(s, PLAIN, [c.name for c in PLAIN.c], plain)
            spatial.bulk_append(s, WITH_JSON, ["id", "data", "at"], with_json)
        with Session(db) as s:
            got = [tuple(r) for r in s.execute(sa.select(PLAIN).order_by(PLAIN.c.id))]
            got_json = [tuple(r) for r in s.execute(sa.select(WITH_JSON).order_by(WITH_JSON.c.id))]
    finally:
        MD.drop_all(db)
    assert got == [tuple(float(v) if i == 5 and v is not None else v for i, v in enumerate(r)) for r in plain]
    assert got[0][6].utcoffset() == dt.timedelta(0)  # stored and read back as UTC
    assert got_json == with_json


def test_reserved_ids_are_fresh_ascending_and_never_handed_out_again(db: sa.Engine) -> None:
    """``spatial.reserve_ids``: the legacy import writes its cases with ids taken before their rows exist."""
    MD.create_all(db, tables=[PLAIN])
    try:
        with Session(db) as s, s.begin():
            s.execute(sa.insert(PLAIN), [{"n": 1}, {"n": 2}])
            taken = set(s.scalars(sa.select(PLAIN.c.id)))
            assert spatial.reserve_ids(s, PLAIN, 0) == []
            ids = spatial.reserve_ids(s, PLAIN, 5)
            assert len(set(ids)) == 5 and ids == sorted(ids) and min(ids) > max(taken)
            spatial.bulk_append(s, PLAIN, ("id", "n"), [(i, 10) for i in ids])
            s.execute(sa.insert(PLAIN), [{"n": 3}])  # the table's own next id is past the reserved ones
            assert s.scalar(sa.select(PLAIN.c.id).where(PLAIN.c.n == 3)) not in ids
            assert len(set(spatial.reserve_ids(s, PLAIN, 3)) & set(ids)) == 0
    finally:
        MD.drop_all(db, tables=[PLAIN])
