"""case_event ids become visible in increasing order on PostgreSQL (migration 0006_case_event_order), so a
version read as the newest event id (case tiles, the live stream) never misses an event that commits later."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from casework import legacy_import
from casework.lifecycle import CaseAction, CaseStatus
from casework.models import EVENT_ORDER_LOCK, CaseEvent
from gridcity.database import make_session_factory
from tests.casework.helpers import LAT, LON, report
from tests.conftest import Org

pytestmark = pytest.mark.postgis


@pytest.fixture(autouse=True)
def _postgis_only(backend: str) -> None:
    if backend != "postgis":
        pytest.skip("SQLite has one writer: its event ids commit in order anyway")


def _waiting_on_the_order_lock(db: sa.Engine) -> list[str]:
    """The statements of the backends now waiting for the case-event order lock."""
    with db.connect() as c:
        return list(
            c.execute(
                sa.text(
                    "SELECT a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND NOT l.granted AND l.classid = 0 AND l.objid = :k"
                ),
                {"k": EVENT_ORDER_LOCK},
            ).scalars()
        )


def _until(done: Callable[[], bool], what: str) -> None:
    """Wait for a condition another thread brings about (not a timing assertion: it only bounds a hang)."""
    for _ in range(3000):
        if done():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def _insert_event(conn: sa.Connection, case_id: int, seq: int) -> int:
    """A plain insert into case_event, as a writer that takes no lock of its own would do it."""
    return int(
        conn.execute(
            sa.insert(CaseEvent)
            .values(
                case_id=case_id,
                seq=seq,
                action=CaseAction.FILE,
                from_status=CaseStatus.NEW,
                to_status=CaseStatus.NEW,
                data={},
            )
            .returning(CaseEvent.id)
        ).scalar_one()
    )


def _newest(db: sa.Engine) -> int:
    with db.connect() as c:
        return int(c.execute(sa.select(sa.func.max(CaseEvent.id))).scalar_one())


def test_a_second_event_writer_waits_so_a_version_read_between_commits_misses_nothing(
    client: TestClient, orgdata: Org, db: sa.Engine
) -> None:
    """Writer A inserts an event and holds its transaction open; writer B's insert must wait for A's commit
    (without the trigger B would draw a higher id and could commit first, and a reader would take B's id as the
    version while A's event is still invisible: the version would never change again when A commits)."""
    case = report(client, orgdata, user="inspector")
    before = _newest(db)
    b_result: dict[str, Any] = {}
    b_inserted, b_commit = threading.Event(), threading.Event()

    def writer_b() -> None:
        try:
            with db.connect() as b:
                b_result["id"] = _insert_event(b, case["id"], 101)
                b_inserted.set()
                b_commit.wait(60)
                b.commit()
        except BaseException as exc:  # reported by the main thread
            b_result["error"] = exc
            b_inserted.set()

    with db.connect() as a:
        a_id = _insert_event(a, case["id"], 100)
        thread = threading.Thread(target=writer_b)
        thread.start()
        try:
            _until(lambda: b_inserted.is_set() or bool(_waiting_on_the_order_lock(db)), "B inserted or waits")
            assert not b_inserted.is_set(), "B inserted an event while A's was uncommitted"
            (waiting,) = _waiting_on_the_order_lock(db)
            assert "INSERT INTO case_event" in waiting
            assert _newest(db) == before  # nothing new is visible, and nothing can become visible below it
            a.commit()
            _until(b_inserted.is_set, "B's insert after A's commit")
            assert "error" not in b_result, b_result.get("error")
            assert b_result["id"] > a_id  # the event that commits later has the higher id
            assert _newest(db) == a_id  # a reader now: A's event, and every id below it is committed
        finally:
            b_commit.set()
            thread.join(60)
    assert "error" not in b_result
    assert _newest(db) == b_result["id"]


def test_the_legacy_import_takes_the_event_order_lock_at_its_start(orgdata: Org, db: sa.Engine) -> None:
    """An import waits for a transaction that is writing events before it reads or writes anything."""
    line = {
        "case": "K-ORDER-1",
        "action": "report",
        "actor": "inspector",
        "at": "2026-03-02T09:10:00+08:00",
        "class": "C0101",
        "location": {"lon": LON, "lat": LAT},
    }
    done: dict[str, Any] = {}
    statements: list[str] = []

    def run_import() -> None:
        try:
            with make_session_factory(db)() as s, s.begin():
                sa.event.listen(s.connection(), "before_cursor_execute", lambda *a: statements.append(a[2]))
                done["result"] = legacy_import.import_records(s, legacy_import.read_lines([json.dumps(line)]))
        except BaseException as exc:  # reported by the main thread
            done["error"] = exc

    with db.connect() as holder:
        holder.execute(sa.select(sa.func.pg_advisory_xact_lock(EVENT_ORDER_LOCK)))
        thread = threading.Thread(target=run_import)
        thread.start()
        try:
            _until(lambda: bool(done) or bool(_waiting_on_the_order_lock(db)), "the import ran or waits")
            assert not done, "the import ran while another transaction held the event order lock"
            (waiting,) = _waiting_on_the_order_lock(db)
            assert "pg_advisory_xact_lock" in waiting
            assert len(statements) == 1 and "pg_advisory_xact_lock" in statements[0], statements  # nothing read
        finally:
            holder.rollback()
            thread.join(60)
    assert "error" not in done, done.get("error")
    assert done["result"].cases == 1
