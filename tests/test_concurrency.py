"""Reads that never wait, logins that never hold a transaction, throttled logins, housekeeping that runs.

Real servers (uvicorn in a thread), real threads, real connections on the session's database; the timeouts
here only detect a deadlock, nothing asserts a speed.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gridcity.database import is_read_only
from gridcity.deps import DbSession
from gridcity.security import LoginThrottle
from tests.console import ThreadServer

WAIT = 60.0  # deadlock detection only
GRIDCITY = str(Path(sys.executable).parent / "gridcity")


# ---- reads never wait (issue 10) ---------------------------------------------------------------------------


def test_a_long_read_delays_neither_another_read_nor_a_write(app, orgdata, db, backend):
    """A GET holding its read transaction open (a slow ranking or export) while other requests run."""
    started, release = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def slow_read(session: DbSession) -> dict[str, int]:
        seen["read_only"] = is_read_only(session)
        first = session.scalar(sa.text("SELECT count(*) FROM department"))
        started.set()
        assert release.wait(WAIT)
        again = session.scalar(sa.text("SELECT count(*) FROM department"))
        return {"first": int(first or 0), "again": int(again or 0)}

    app.add_api_route("/test/slow-read", slow_read, methods=["GET"])
    order: list[str] = []
    with ThreadServer(app) as srv, httpx.Client(base_url=srv.url, timeout=WAIT) as http:
        result: dict[str, httpx.Response] = {}
        t = threading.Thread(target=lambda: result.update(slow=http.get("/test/slow-read")))
        t.start()
        assert started.wait(WAIT), "the slow read never started"
        # While the slow read's transaction is open: another read and a write both finish.
        r = http.get("/api/v1/departments", headers=orgdata.headers("leader"))
        assert r.status_code == 200, r.text
        order.append("read")
        w = http.post("/api/v1/departments", headers=orgdata.headers("admin"), json={"code": "NEW", "name": "新部门"})
        assert w.status_code == 201, w.text
        order.append("write")
        assert t.is_alive() and not release.is_set()  # the slow read is still open
        release.set()
        t.join(WAIT)
        order.append("slow read done")
    assert order == ["read", "write", "slow read done"]
    assert seen["read_only"] is True
    slow = result["slow"].json()
    assert slow["first"] == 3
    if backend == "spatialite":  # one WAL snapshot for the whole read (PostgreSQL reads committed rows)
        assert slow["again"] == 3


def test_get_requests_get_read_units_and_other_methods_write_units(app, orgdata):
    modes: dict[str, bool] = {}

    def probe_get(session: DbSession) -> None:
        modes["GET"] = is_read_only(session)

    def probe_post(session: DbSession) -> None:
        modes["POST"] = is_read_only(session)

    app.add_api_route("/test/probe", probe_get, methods=["GET"])
    app.add_api_route("/test/probe", probe_post, methods=["POST"])
    with TestClient(app) as c:
        assert c.get("/test/probe").status_code == 200
        assert c.post("/test/probe").status_code == 200
    assert modes == {"GET": True, "POST": False}


def test_a_read_unit_refuses_to_write_on_both_databases(app, db):
    with app.state.read_session_factory() as s, pytest.raises(sa.exc.DBAPIError):
        s.execute(sa.text("INSERT INTO department (code, name, kind, active) VALUES ('X', 'x', 'p', true)"))
    with db.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM department")) == 0


# ---- logins ------------------------------------------------------------------------------------------------


def _thread_in(name: str, filename_end: str) -> bool:
    """Whether any thread is inside the function ``name`` of a file ending in ``filename_end`` right now."""
    for frame in sys._current_frames().values():
        f = frame
        while f is not None:
            if f.f_code.co_name == name and f.f_code.co_filename.endswith(filename_end):
                return True
            f = f.f_back
    return False


def _transaction_is_held(db: sa.Engine) -> bool:
    """SQLite: someone holds the write lock. PostgreSQL: some connection of this database sits in a transaction."""
    if db.dialect.name == "sqlite":
        import sqlean  # noqa: PLC0415

        raw = sqlean.connect(db.url.database, timeout=0, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
            return False
        except sqlean.OperationalError:
            return True
        finally:
            raw.close()
    with db.connect() as c:
        n = c.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )
        )
    return bool(n)


@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/mobile/v1/auth/token"])
def test_no_transaction_is_open_while_a_password_is_checked(app, orgdata, db, path):
    """Caught in the act: while a thread is inside argon2, no write lock / open transaction exists."""
    caught = 0
    with ThreadServer(app) as srv, httpx.Client(base_url=srv.url, timeout=WAIT) as http:
        for attempt in range(8):
            done = threading.Event()

            def login(attempt: int = attempt, done: threading.Event = done) -> None:
                http.post(path, data={"username": "inspector", "password": f"wrong-{attempt}"})
                done.set()

            t = threading.Thread(target=login)
            t.start()
            while not done.is_set():
                if _thread_in("verify_password", "gridcity/security.py"):
                    assert not _transaction_is_held(db), "a transaction is open while argon2 runs"
                    caught += 1
                    break
                time.sleep(0.0005)
            t.join(WAIT)
            if caught >= 2:
                break
    assert caught >= 1, "never saw a password check in progress"


def _limited_app(settings, **limits):  # type: ignore[no-untyped-def]
    from gridcity.root.app import create_app  # noqa: PLC0415

    return create_app(settings.model_copy(update=limits))


@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/mobile/v1/auth/token"])
def test_failed_logins_are_throttled_per_account(db, settings, orgdata, path):
    app = _limited_app(settings, login_max_failures_per_account=3, login_max_failures_per_address=100)
    with TestClient(app) as c:
        for i in range(3):
            r = c.post(path, data={"username": "inspector", "password": f"nope-{i}"})
            assert r.status_code == 401 and r.json()["detail"][0]["type"] == "auth.bad_credentials"
        # Even the right password is refused now, before any password check, with a stable code.
        r = c.post(path, data={"username": "inspector", "password": "password-123"})
        assert r.status_code == 429, r.text
        assert r.json()["detail"][0]["type"] == "auth.too_many_attempts"
        assert int(r.headers["Retry-After"]) > 0
        r = c.post(path, data={"username": "INSPECTOR", "password": "password-123"})  # case does not bypass it
        assert r.status_code == 429
        # Another account from the same address is not affected.
        r = c.post(path, data={"username": "inspector2", "password": "password-123"})
        assert r.status_code == 200, r.text
    app.state.engine.dispose()


def test_a_successful_login_clears_the_accounts_failures(db, settings, orgdata):
    app = _limited_app(settings, login_max_failures_per_account=3)
    with TestClient(app) as c:
        for _ in range(2):
            assert c.post("/api/v1/auth/token", data={"username": "leader", "password": "x" * 8}).status_code == 401
        assert c.post("/api/v1/auth/token", data={"username": "leader", "password": "password-123"}).status_code == 200
        for _ in range(2):
            assert c.post("/api/v1/auth/token", data={"username": "leader", "password": "x" * 8}).status_code == 401
        assert c.post("/api/v1/auth/token", data={"username": "leader", "password": "password-123"}).status_code == 200
    app.state.engine.dispose()


def test_failed_logins_are_throttled_per_address(db, settings, orgdata):
    app = _limited_app(settings, login_max_failures_per_account=100, login_max_failures_per_address=4)
    with TestClient(app) as c:
        for i in range(4):  # password spraying: a different (unknown) account each time
            assert c.post("/api/v1/auth/token", data={"username": f"ghost{i}", "password": "x" * 8}).status_code == 401
        r = c.post("/api/v1/auth/token", data={"username": "leader", "password": "password-123"})
        assert r.status_code == 429 and r.json()["detail"][0]["type"] == "auth.too_many_attempts"
    app.state.engine.dispose()


def test_the_throttle_window_slides():
    now = [1000.0]
    t = LoginThrottle(per_account=2, per_address=10, window_s=60, clock=lambda: now[0])
    t.failed("a", "1.2.3.4")
    now[0] += 30
    t.failed("a", "1.2.3.4")
    with pytest.raises(Exception) as exc:
        t.check("a", "1.2.3.4")
    assert exc.value.code == "auth.too_many_attempts" and exc.value.extra["retry_after"] == 30  # type: ignore[attr-defined]
    now[0] += 31  # the first failure left the window
    t.check("a", "1.2.3.4")


# ---- housekeeping (issue 15) -------------------------------------------------------------------------------


def _old_orphan_and_old_key(db: sa.Engine, store, orgdata) -> tuple[Path, int]:  # type: ignore[no-untyped-def]
    """A media file nobody refers to (3 h old) and an idempotency record 40 days old; returns the file and id."""
    _, path = store.put(b"orphan bytes", ".orig", key="e" * 64)
    t = time.time() - 3 * 3600
    os.utime(path, (t, t))
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    if db.dialect.name == "sqlite":
        old = old.replace(tzinfo=None)
    with db.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO idempotency_record (user_id, key, kind, request_hash, status_code, created_at) "
                "VALUES (:u, 'old-key', 'report', 'h', 201, :t)"
            ),
            {"u": orgdata.ids["inspector"], "t": old},
        )
        rid = c.scalar(sa.text("SELECT id FROM idempotency_record WHERE key = 'old-key'"))
    return path, int(rid)


def _key_exists(db: sa.Engine, rid: int) -> bool:
    with db.connect() as c:
        return c.scalar(sa.text("SELECT count(*) FROM idempotency_record WHERE id = :i"), {"i": rid}) == 1


def test_the_server_runs_housekeeping_on_its_schedule(db, settings, orgdata):
    from gridcity.root.app import create_app  # noqa: PLC0415
    from gridcity.storage import MediaStore  # noqa: PLC0415

    orphan, rid = _old_orphan_and_old_key(db, MediaStore(settings.media_dir), orgdata)
    app = create_app(settings.model_copy(update={"maintenance_interval_seconds": 0.2}))
    with TestClient(app):
        # Wait for the run's report, not only for its effects: the files go at the run's commit, the report
        # is recorded only after run_maintenance returns, and leaving the client in between cancels the loop
        # before it records anything (on a loaded machine that window is wide enough to be hit).
        deadline = time.monotonic() + WAIT
        while not app.state.maintenance_runs and time.monotonic() < deadline:
            time.sleep(0.1)
        runs = list(app.state.maintenance_runs)
    app.state.engine.dispose()
    assert not orphan.exists() and not _key_exists(db, rid)
    assert runs and runs[0].ran and runs[0].files_removed == 1 and runs[0].idempotency_removed == 1


def test_housekeeping_is_off_when_its_interval_is_zero(db, settings, orgdata):
    from gridcity.root.app import create_app  # noqa: PLC0415

    app = create_app(settings.model_copy(update={"maintenance_interval_seconds": 0}))
    with TestClient(app):
        time.sleep(0.5)
    assert app.state.maintenance_runs == []
    app.state.engine.dispose()


def test_one_worker_at_a_time_runs_housekeeping(db, settings, orgdata, backend):
    """PostgreSQL: a worker that finds the advisory lock taken skips its run (another worker is doing it)."""
    from gridcity.database import make_session_factory  # noqa: PLC0415
    from gridcity.storage import MediaStore  # noqa: PLC0415
    from mobile_api.maintenance import MAINTENANCE_LOCK_KEY, run_maintenance  # noqa: PLC0415

    store = MediaStore(settings.media_dir)
    orphan, rid = _old_orphan_and_old_key(db, store, orgdata)
    factory = make_session_factory(db)
    if backend == "postgis":
        with db.connect() as other:
            other.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MAINTENANCE_LOCK_KEY})
            try:
                skipped = run_maintenance(factory, store)
            finally:
                other.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MAINTENANCE_LOCK_KEY})
                other.commit()
        assert skipped.ran is False
        assert orphan.exists() and _key_exists(db, rid)
    report = run_maintenance(factory, store)
    assert report.ran and report.files_removed == 1 and report.idempotency_removed == 1
    assert not orphan.exists() and not _key_exists(db, rid)


def _cli(args: list[str], settings) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "GRIDCITY_DATABASE_URL": settings.resolved_database_url(),
        "GRIDCITY_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run([GRIDCITY, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_gridcity_maintenance_commands(db, settings, orgdata):
    from gridcity.storage import MediaStore  # noqa: PLC0415

    store = MediaStore(settings.media_dir)
    orphan, rid = _old_orphan_and_old_key(db, store, orgdata)
    r = _cli(["maintenance", "purge-idempotency", "--older-than-days", "60"], settings)
    assert r.returncode == 0, r.stderr
    assert "idempotency records: 0 removed" in r.stdout and _key_exists(db, rid)
    r = _cli(["maintenance", "clean-orphans", "--older-than-hours", "5"], settings)
    assert r.returncode == 0, r.stderr
    assert "0 files removed" in r.stdout and orphan.exists()
    r = _cli(["maintenance", "run"], settings)
    assert r.returncode == 0, r.stderr
    assert "1 files removed" in r.stdout and "idempotency records: 1 removed" in r.stdout
    assert not orphan.exists() and not _key_exists(db, rid)
