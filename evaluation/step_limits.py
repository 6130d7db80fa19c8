"""The limits of the steps that casework does not time as stages (发核实, 发核查, 结案), used only by evaluation.

Shipped in ``evaluation/data/step_limits.toml`` and overridden key by key by a city's file of the same name
(``GRIDCITY_CITY_DIR``). The file's shape is checked by pydantic models (``[working]`` and ``[elapsed]``
tables of ``{value, unit}`` per step); every failure is ``evaluation.invalid_step_limits`` (422) with the
key path in ``loc``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from casework import deadlines as casework_deadlines
from gridcity.errors import InvalidInput

STEP_NAMES = ("send_verify", "send_check", "close")
StepName = Literal["send_verify", "send_check", "close"]
INVALID = "evaluation.invalid_step_limits"


@dataclass(frozen=True)
class StepLimits:
    """Limits of the untimed steps, per family (``working`` or ``elapsed``)."""

    working: Mapping[str, casework_deadlines.Limit]
    elapsed: Mapping[str, casework_deadlines.Limit]

    def family(self, working: bool) -> Mapping[str, casework_deadlines.Limit]:
        """The limits of one family."""
        return self.working if working else self.elapsed


class LimitIn(BaseModel):
    """One step's limit as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: float = Field(ge=0, allow_inf_nan=False)
    unit: casework_deadlines.LimitUnit


class StepLimitsFile(BaseModel):
    """A ``step_limits.toml``: either family may be partial (a city's file overrides key by key)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    working: dict[StepName, LimitIn] = Field(default_factory=dict)
    elapsed: dict[StepName, LimitIn] = Field(default_factory=dict)


def parse_step_limits(text: str, base: StepLimits | None = None) -> StepLimits:
    """The limits of one file's text over ``base`` (key by key); without ``base`` every step must be given.

    Raises:
        InvalidInput: ``evaluation.invalid_step_limits`` naming the key.
    """
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"not TOML: {exc}", code=INVALID, loc=["toml"]) from exc
    try:
        parsed = StepLimitsFile.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [p for p in first["loc"] if isinstance(p, str | int) and p != "[key]"]  # a bad key: its name
        raise InvalidInput(f"{'.'.join(map(str, loc))}: {first['msg']}", code=INVALID, loc=loc) from exc
    out: dict[str, dict[str, casework_deadlines.Limit]] = {}
    for fam in ("working", "elapsed"):
        limits = dict(base.family(fam == "working")) if base else {}
        for name, lim in getattr(parsed, fam).items():
            if lim.unit.counts_working_time != (fam == "working"):
                raise InvalidInput(f"{fam}.{name}: a non-negative {fam} limit is needed", code=INVALID, loc=[fam, name])
            limits[name] = casework_deadlines.Limit(lim.value, lim.unit)
        missing = [n for n in STEP_NAMES if n not in limits]
        if missing:
            raise InvalidInput(f"[{fam}] lacks {', '.join(missing)}", code=INVALID, loc=[fam])
        out[fam] = limits
    return StepLimits(out["working"], out["elapsed"])


@lru_cache(maxsize=8)
def load_step_limits(city_dir: Path | None = None) -> StepLimits:
    """The shipped step limits, overridden key by key by ``<city_dir>/step_limits.toml`` if present (cached)."""
    limits = parse_step_limits((resources.files("evaluation") / "data" / "step_limits.toml").read_text("utf-8"))
    if city_dir is not None and (city_dir / "step_limits.toml").exists():
        limits = parse_step_limits((city_dir / "step_limits.toml").read_text("utf-8"), limits)
    return limits
