"""The `gridcity` command, run as a real process against a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

GRIDCITY = str(Path(sys.executable).parent / "gridcity")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRIDCITY, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        "GRIDCITY_DATA_DIR": str(tmp_path / "data"),
        "GRIDCITY_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
    }


def test_db_upgrade_users_create_and_demo(cli_env, tmp_path):
    r = run(["db", "upgrade"], cli_env)
    assert r.returncode == 0, r.stderr
    assert "database at head" in r.stdout
    r = run(["users", "create", "boss", "--role", "admin", "--password", "s3cret-pass"], cli_env)
    assert r.returncode == 0, r.stderr
    r = run(["users", "create", "boss", "--role", "admin", "--password", "s3cret-pass"], cli_env)
    assert r.returncode != 0 and "user.exists" in r.stderr
    r = run(["users", "create", "w", "--role", "department", "--password", "s3cret-pass"], cli_env)
    assert r.returncode != 0 and "user.department_required" in r.stderr
    r = run(["demo", "--small"], cli_env)
    assert r.returncode == 0, r.stderr
    assert "dispatcher" in r.stdout and "gridcity-demo" in r.stdout
    again = run(["demo", "--small"], cli_env)  # idempotent
    assert again.returncode == 0, again.stderr
    eng = sa.create_engine(cli_env["GRIDCITY_DATABASE_URL"])
    with eng.connect() as c:
        users = c.exec_driver_sql("SELECT username, role FROM app_user ORDER BY id").all()
    eng.dispose()
    assert ("boss", "admin") in users and ("dispatcher", "dispatcher") in users
    assert len([u for u in users if u[0] == "dispatcher"]) == 1


def test_demo_on_a_fresh_machine_needs_no_earlier_command(tmp_path: Path) -> None:
    """`gridcity demo` alone: the default SpatiaLite file's folder is created and the schema migrated."""
    data = tmp_path / "fresh" / "data"
    env = {"GRIDCITY_DATA_DIR": str(data), "GRIDCITY_DATABASE_URL": ""}
    r = run(["demo", "--small"], env)
    assert r.returncode == 0, r.stderr
    assert "dispatcher" in r.stdout
    engine = sa.create_engine(f"sqlite:///{data / 'gridcity.sqlite'}")
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM app_user WHERE username = 'dispatcher'")) == 1
    engine.dispose()


def test_cases_import_all_or_nothing_and_idempotent(cli_env, tmp_path):
    """`gridcity cases import FILE`: a good file imports (progress printed), again skips it, a file with an
    error is refused whole with the line number, leaving the database as it was."""
    assert run(["demo", "--small"], cli_env).returncode == 0
    first = (
        '{"case": "OLD-1", "action": "report", "actor": "inspector", "at": "2026-10-12T09:00:00+08:00", '
        '"class": "C0101", "location": {"lon": 107.1448, "lat": 34.3693}}'
    )
    good = tmp_path / "good.jsonl"
    good.write_text(
        first + "\n" + '{"case": "OLD-1", "action": "file", "actor": "shiftlead", "at": "2026-10-12T09:30:00+08:00"}\n',
        encoding="utf-8",
    )
    r = run(["cases", "import", str(good)], cli_env)
    assert r.returncode == 0, r.stderr
    assert "imported 1 cases (2 events" in r.stdout and "imported 1/1 cases" in r.stdout
    r = run(["cases", "import", str(good)], cli_env)
    assert r.returncode == 0 and "imported 0 cases" in r.stdout and "1 already imported" in r.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        first.replace("OLD-1", "OLD-2") + "\n" + '{"case": "OLD-2", "action": "file", "actor": "ghost", '
        '"at": "2026-10-12T09:30:00+08:00"}\n',
        encoding="utf-8",
    )
    r = run(["cases", "import", str(bad)], cli_env)
    assert r.returncode != 0
    assert "line 2: import.unknown_actor" in r.stderr and "nothing was imported" in r.stderr
    # an old system's export in GBK: a clear refusal (the file is read by the replay process), no traceback
    gbk = tmp_path / "gbk.jsonl"
    gbk.write_bytes((first.replace("OLD-1", "OLD-3")[:-1] + ', "note": "井盖破损"}\n').encode("gbk"))
    r = run(["cases", "import", str(gbk)], cli_env)
    assert r.returncode == 1 and "not UTF-8" in r.stderr and "Traceback" not in r.stderr, r.stderr
    eng = sa.create_engine(cli_env["GRIDCITY_DATABASE_URL"])
    with eng.connect() as c:
        assert c.scalar(sa.text('SELECT count(*) FROM "case"')) == 1
        assert c.scalar(sa.text("SELECT count(*) FROM case_event")) == 2
    eng.dispose()
