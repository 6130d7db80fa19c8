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
    return subprocess.run([GRIDCITY, *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {"GRIDCITY_DATA_DIR": str(tmp_path / "data"),
            "GRIDCITY_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"}


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
