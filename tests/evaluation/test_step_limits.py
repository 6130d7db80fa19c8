"""The step-limits loader (evaluation/step_limits.py): the file's shape is checked by its pydantic models."""

from __future__ import annotations

from pathlib import Path

import pytest

from casework.deadlines import Limit, LimitUnit
from evaluation.step_limits import load_step_limits, parse_step_limits
from gridcity.errors import InvalidInput

FULL = """
[working]
send_verify = { value = 1, unit = "work_hour" }
send_check = { value = 2, unit = "work_hour" }
close = { value = 1, unit = "work_day" }

[elapsed]
send_verify = { value = 30, unit = "minute" }
send_check = { value = 30, unit = "minute" }
close = { value = 1, unit = "hour" }
"""


def test_a_full_file_is_read() -> None:
    limits = parse_step_limits(FULL)
    assert limits.working["send_check"] == Limit(2.0, LimitUnit.WORK_HOUR)
    assert limits.family(False)["close"] == Limit(1.0, LimitUnit.HOUR)


def test_a_city_file_overrides_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "step_limits.toml").write_text('[elapsed]\nclose = { value = 2, unit = "hour" }\n', encoding="utf-8")
    shipped, city = load_step_limits(None), load_step_limits(tmp_path)
    assert city.elapsed["close"] == Limit(2.0, LimitUnit.HOUR)
    assert city.working == shipped.working and city.elapsed["send_check"] == shipped.elapsed["send_check"]


@pytest.mark.parametrize(
    ("old", "new", "loc"),
    [
        (
            'send_check = { value = 2, unit = "work_hour" }',
            'send_chek = { value = 2, unit = "work_hour" }',
            ["working", "send_chek"],
        ),
        ('value = 2, unit = "work_hour"', 'value = -2, unit = "work_hour"', ["working", "send_check", "value"]),
        ('value = 2, unit = "work_hour"', 'value = 2, unit = "fortnight"', ["working", "send_check", "unit"]),
        (
            'value = 2, unit = "work_hour"',
            'value = 2, unit = "work_hour", note = "x"',
            ["working", "send_check", "note"],
        ),
        ('value = 2, unit = "work_hour"', 'value = 2, unit = "hour"', ["working", "send_check"]),  # wrong family
        ('close = { value = 1, unit = "hour" }', "", ["elapsed"]),  # a step missing with no base to fall back on
        ("[elapsed]", "[elapsed", ["toml"]),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(old: str, new: str, loc: list[str]) -> None:
    assert old in FULL
    with pytest.raises(InvalidInput) as exc:
        parse_step_limits(FULL.replace(old, new, 1))
    assert exc.value.code == "evaluation.invalid_step_limits"
    assert exc.value.loc == loc, exc.value.message
