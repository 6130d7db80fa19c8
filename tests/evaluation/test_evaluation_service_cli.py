"""The ``gridcity evaluate`` command group on the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from evaluation.models import Publication, StageFact
from gridcity.database import make_session_factory
from gridcity.root import cli
from gridcity.settings import Settings, get_settings
from tests.conftest import Org
from tests.evaluation.conftest import Driver
from tests.evaluation.test_evaluation_service import scenario


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GRIDCITY_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("GRIDCITY_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_evaluate_prints_the_ranking_publishes_and_rebuilds(db: sa.Engine, orgdata: Org, cli_env: None) -> None:
    with make_session_factory(db)() as s, s.begin():
        scenario(Driver(s, orgdata))
    with make_session_factory(db)() as s, s.begin():
        s.execute(sa.delete(StageFact))  # as after a bulk import: facts missing until rebuilt
    runner = CliRunner()
    r = runner.invoke(cli.main, ["evaluate", "rebuild-facts"])
    assert r.exit_code == 0, r.output
    assert "rebuilt" in r.output
    r = runner.invoke(cli.main, ["evaluate", "--period", "2026-10", "--subject", "department", "--publish"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "department 2026-10 (indicator set v1)"
    assert "70.00" in lines[2] and "市自来水公司" in lines[2] and "insufficient_data" in lines[2]
    assert "published #" in r.output
    with make_session_factory(db)() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Publication)) == 1
    bad = runner.invoke(cli.main, ["evaluate", "--period", "2026-13"])
    assert bad.exit_code != 0 and "evaluation.bad_period" in bad.output
    assert runner.invoke(cli.main, ["evaluate"]).exit_code != 0
