"""A city's own evaluation tables (GRIDCITY_CITY_DIR): step limits and indicator sets, without code changes."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from casework.deadlines import Limit
from casework.rules import load_rules
from evaluation import facts, indicator_loader
from evaluation import service as evaluation_service
from evaluation.models import StageFact
from gridcity.errors import InvalidInput
from tests.casework.helpers import to_status
from tests.conftest import Org

SHIPPED_SET = resources.files("evaluation") / "data" / "indicators_v1.toml"


def test_city_step_limits_override_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "step_limits.toml").write_text('[working]\nclose = { value = 3, unit = "work_hour" }\n')
    shipped, city = facts.load_step_limits(None), facts.load_step_limits(tmp_path)
    assert city.working["close"] == Limit(3, "work_hour") != shipped.working["close"]
    assert city.working["send_check"] == shipped.working["send_check"]
    assert city.elapsed == shipped.elapsed
    assert load_rules(tmp_path).city_dir == tmp_path


def test_fact_rows_use_the_step_limits_of_the_rules_city(
    client: Any, db: sa.Engine, orgdata: Org, tmp_path: Path
) -> None:
    (tmp_path / "step_limits.toml").write_text('[working]\nclose = { value = 3, unit = "work_hour" }\n')
    case = to_status(client, orgdata, "closed")

    def close_deadline(city_dir: Path | None) -> dt.datetime:
        with Session(db) as s, s.begin():
            facts.refresh_cases(s, case_ids=[case["id"]], rules=load_rules(city_dir))
        with Session(db) as s:
            return s.scalars(
                sa.select(StageFact.deadline_at).where(StageFact.case_id == case["id"], StageFact.stage == "close")
            ).one()

    shipped, city = close_deadline(None), close_deadline(tmp_path)
    # Two more working hours (which may span a lunch break, a night or a weekend, hence "at least").
    assert city - shipped >= dt.timedelta(hours=2)


def test_city_indicator_set_replaces_a_shipped_version_and_adds_new_ones(tmp_path: Path) -> None:
    text = SHIPPED_SET.read_text("utf-8")
    assert 'title = "数字化城管综合评价指标体系（第1版）"' in text
    (tmp_path / "indicators_v1.toml").write_text(
        text.replace('title = "数字化城管综合评价指标体系（第1版）"', 'title = "宝鸡市本地版"'), "utf-8"
    )
    (tmp_path / "indicators_v2.toml").write_text(
        text.replace('version = "v1"', 'version = "v2"').replace(
            "effective_from = 2026-01-01", "effective_from = 2026-07-01"
        ),
        "utf-8",
    )
    registry = indicator_loader.city_registry(tmp_path)
    assert set(registry.versions) == {"v1", "v2"}
    assert registry.get("v1").title == "宝鸡市本地版"
    assert registry.get("v1").sha256 != indicator_loader.default_registry().get("v1").sha256
    may = evaluation_service.parse_period("2026-05")
    october = evaluation_service.parse_period("2026-10")
    assert evaluation_service.indicator_set_for(may, None, tmp_path).version == "v1"
    assert evaluation_service.indicator_set_for(october, None, tmp_path).version == "v2"
    assert evaluation_service.indicator_set_for(october, None, None).version == "v1"  # shipped only
    assert indicator_loader.city_registry(None) is indicator_loader.default_registry()


def test_a_broken_city_indicator_set_is_refused(tmp_path: Path) -> None:
    (tmp_path / "indicators_v9.toml").write_text("version = 'v9'\n", "utf-8")
    with pytest.raises(InvalidInput) as err:
        indicator_loader.city_registry(tmp_path)
    assert err.value.code == "evaluation.invalid_indicator_set"


@pytest.mark.parametrize(
    ("old", "new", "loc", "message"),
    [
        # a band bound written as text
        (
            "    { min = 0, max = 51, score = 100 },",
            '    { min = "0", max = 51, score = 100 },',
            ["subjects", "department", "indicators", "filed_score", "bands", 0, "min"],
            "expected a number",
        ),
        # a key the schema does not know, in a band
        (
            "    { min = 0, max = 51, score = 100 },",
            "    { min = 0, max = 51, score = 100, points = 3 },",
            ["subjects", "department", "indicators", "filed_score", "bands", 0],
            "unknown key(s): points",
        ),
        # a subject type without its weights
        (
            "[subjects.department.weights]",
            "[subjects.department.weightings]",
            ["subjects", "department"],
            "missing key(s): weights",
        ),
        # control: the shipped file itself loads
        ("[subjects.department.indicators.filed_score]", "[subjects.department.indicators.filed_score]", None, None),
    ],
)
def test_a_bad_city_indicator_file_names_the_key(
    tmp_path: Path, old: str, new: str, loc: list[str | int] | None, message: str | None
) -> None:
    """A city's broken indicators_*.toml is refused with the stable code and the ``loc`` of the bad key."""
    text = SHIPPED_SET.read_text("utf-8")
    if loc is None:  # the untouched file loads: the cases above fail for their change alone
        (tmp_path / "indicators_v1.toml").write_text(text, "utf-8")
        assert indicator_loader.city_registry(tmp_path).get("v1").subject("department").indicators
        return
    assert text.count(old) == 1
    (tmp_path / "indicators_v1.toml").write_text(text.replace(old, new), "utf-8")
    with pytest.raises(InvalidInput) as err:
        indicator_loader.city_registry(tmp_path)
    assert err.value.code == "evaluation.invalid_indicator_set"
    assert err.value.loc == loc
    assert message in err.value.message
