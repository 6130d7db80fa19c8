"""The handling-standards table (立案条件 / 处置时限 / 结案条件) and its most-specific-row lookup. Its CSV file is
read and checked by :func:`casework.tables.load_handling_standards`.

Pure: standard library and :mod:`gridcity.errors` only; reads no files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from casework.deadlines.units import LimitUnit
from gridcity.errors import InvalidInput, NotFound

ANY = "*"
"""Wildcard: the global default class code, or "any urgency" in the urgency column."""

STAGES: tuple[str, ...] = ("file", "dispatch", "handle", "check", "verify")
"""Stages with a limit: 立案, 派遣, 处置, 核查, 核实."""

URGENCIES: tuple[str, ...] = ("normal", "urgent")

STANDARDS_COLUMNS: tuple[str, ...] = (
    "class_code",
    "urgency",
    "region_class",
    *(f"{stage}_{part}" for stage in STAGES for part in ("value", "unit")),
    "filing_condition",
    "close_condition",
)
"""Columns of the handling-standards CSV, in the shipped order."""

_MAJOR_RE = re.compile(r"^([CE]\d{2})")


class Limit(NamedTuple):
    """A time limit ``(value, unit)``."""

    value: float
    unit: LimitUnit


def _standards_error(message: str, line: int | None = None, column: str | None = None) -> InvalidInput:
    loc: list[str | int] = ["csv"]
    if line is not None:
        loc.append(line)
        message = f"line {line}: {message}"
    if column is not None:
        loc.append(column)
    return InvalidInput(message, code="standards.invalid", loc=loc)


@dataclass(frozen=True)
class HandlingStandard:
    """One row of the handling-standards table.

    Attributes:
        class_code: ``C`` + component code or ``E`` + event code (``C0101``, ``E0102``); ``C01*`` /
            ``E01*`` for the default of a major class; ``*`` for the global default.
        urgency: ``normal`` (一般), ``urgent`` (紧急) or ``*`` (any urgency).
        region_class: Region class (``A`` 核心区 …) or ``""`` for any region.
        file: Limit of 立案 (from report to filing), or None.
        dispatch: Limit of 派遣 (from filing to dispatch), or None.
        handle: Limit of 处置 (from dispatch to the department's feedback), or None.
        check: Limit of 核查 (inspector checks the result), or None.
        verify: Limit of 核实 (inspector verifies a public report), or None.
        filing_condition: 立案条件 text.
        close_condition: 结案条件 text.
    """

    class_code: str
    urgency: str
    region_class: str = ""
    file: Limit | None = None
    dispatch: Limit | None = None
    handle: Limit | None = None
    check: Limit | None = None
    verify: Limit | None = None
    filing_condition: str = ""
    close_condition: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """``(class_code, urgency, region_class)``: unique within a table."""
        return (self.class_code, self.urgency, self.region_class)

    def limit(self, stage: str) -> Limit | None:
        """The limit of ``stage`` (one of :data:`STAGES`).

        Args:
            stage: ``file``, ``dispatch``, ``handle``, ``check`` or ``verify``.

        Returns:
            The limit, or None if the stage has no limit.

        Raises:
            InvalidInput: ``standards.invalid_stage`` for an unknown stage.
        """
        if stage not in STAGES:
            raise InvalidInput(
                f"unknown stage {stage!r} (allowed: {', '.join(STAGES)})",
                code="standards.invalid_stage",
                loc=["stage"],
            )
        limit: Limit | None = getattr(self, stage)
        return limit


def _major_code(class_code: str) -> str | None:
    m = _MAJOR_RE.match(class_code)
    return f"{m[1]}*" if m else None


class StandardsTable:
    """An immutable table of :class:`HandlingStandard` rows keyed by (class_code, urgency, region_class)."""

    def __init__(self, rows: Iterable[HandlingStandard] = ()) -> None:
        """Build a table.

        Args:
            rows: The rows; keys must be unique.

        Raises:
            InvalidInput: ``standards.invalid`` on a duplicate key.
        """
        table: dict[tuple[str, str, str], HandlingStandard] = {}
        for row in rows:
            if row.key in table:
                raise _standards_error(f"duplicate row for {row.key}")
            table[row.key] = row
        self._rows = table
        # lookup() answers by arguments (the table never changes): replaying a history asks the same few
        # questions for every stage of every case.
        self._found: dict[tuple[str, str, str], HandlingStandard] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[HandlingStandard]:
        return iter(self._rows.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StandardsTable) and self._rows == other._rows

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StandardsTable({len(self._rows)} rows)"

    def get(self, class_code: str, urgency: str, region_class: str = "") -> HandlingStandard | None:
        """The row with exactly this key, or None (no fallback).

        Args:
            class_code: Class code as written in the table (``C0101``, ``C01*``, ``*``).
            urgency: ``normal``, ``urgent`` or ``*``.
            region_class: Region class or ``""``.

        Returns:
            The row or None.
        """
        return self._rows.get((class_code.strip().upper(), urgency.strip().lower(), region_class.strip()))

    def lookup(self, class_code: str, urgency: str, region_class: str = "") -> HandlingStandard:
        """The most specific row for a case.

        Class levels are tried in order: the exact class, the major-class default (``C01*`` for ``C0101``),
        the global default ``*``. Within a level: (urgency, region), (urgency, any region), (any urgency,
        region), (any urgency, any region). The first row found wins.

        Args:
            class_code: ``C`` + component code or ``E`` + event code, e.g. ``C0101``.
            urgency: ``normal`` or ``urgent``.
            region_class: The case's region class (``A``/``B``/``C`` …) or ``""``.

        Returns:
            The row.

        Raises:
            InvalidInput: ``standards.invalid_urgency`` for an unknown urgency.
            NotFound: ``standards.not_found`` when not even a global default row exists.
        """
        found = self._found.get((class_code, urgency, region_class))
        if found is not None:
            return found
        row = self._lookup(class_code, urgency, region_class)
        if len(self._found) < 10_000:
            self._found[(class_code, urgency, region_class)] = row
        return row

    def _lookup(self, class_code: str, urgency: str, region_class: str) -> HandlingStandard:
        code = class_code.strip().upper()
        urg = urgency.strip().lower()
        region = region_class.strip()
        if region == ANY:
            region = ""
        if urg not in URGENCIES:
            raise InvalidInput(
                f"unknown urgency {urgency!r} (allowed: {', '.join(URGENCIES)})",
                code="standards.invalid_urgency",
                loc=["urgency"],
            )
        levels = [code]
        major = _major_code(code)
        if major is not None and major != code:
            levels.append(major)
        if code != ANY:
            levels.append(ANY)
        regions = (region, "") if region else ("",)
        for c in levels:
            for u in (urg, ANY):
                for r in regions:
                    row = self._rows.get((c, u, r))
                    if row is not None:
                        return row
        raise NotFound(
            f"no handling standard for {code} ({urg}) and no default row",
            code="standards.not_found",
            loc=["class_code"],
        )


def merge(base: StandardsTable, override: StandardsTable) -> StandardsTable:
    """Overlay a city's table on a base table: override rows replace base rows with the same key.

    Args:
        base: The base table (e.g. the shipped defaults).
        override: The city's rows.

    Returns:
        A new table with the base rows not overridden plus all override rows.
    """
    rows = {row.key: row for row in base}
    rows.update((row.key, row) for row in override)
    return StandardsTable(rows.values())
