"""Which department is responsible for a case (pure: standard library and ``gridcity.errors`` only).

Two sources decide, in this order (standards.md §2.2, peers.md lesson 1):

1. **Component ownership.** A component problem is routed to the responsible unit of the component it is
   about: the 主管 (main) department, falling back to the 养护 (maintainer) and then the 权属 (owner) unit.
   :func:`choose_component` judges the candidates the service found near the point.
2. **Routing rules.** An effective-dated table *(class pattern × scope) → department*. :func:`choose` picks
   the most specific rule in force: scope grid > community > street > district > city, then exact class >
   major wildcard (``C01*``) > ``*``. Two rules tied at the best specificity that name different departments
   make the choice *ambiguous*: no department, both candidates, for the dispatcher to decide.

Validity is the half-open interval ``[valid_from, valid_to)``: a rule ending on 2026-07-01 and its successor
starting on 2026-07-01 do not overlap, and there is no day without a rule. ``valid_to=None`` is open-ended.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from gridcity.errors import InvalidInput

SCOPE_LEVELS: Final = ("grid", "community", "street", "district", "city")
"""Scope levels, most specific first."""

SCOPE_CODE_LENGTH: Final = {"grid": 15, "community": 12, "street": 9, "district": 6}
"""Digits of the area code of each level (standards.md §1: 6 district + 3 street + 3 community + 3 grid)."""

SCOPE_NAMES_ZH: Final = {"grid": "网格", "community": "社区", "street": "街道", "district": "区县", "city": "全市"}

_EXACT_CLASS = re.compile(r"^[CE]\d{4,5}$")
_MAJOR_WILDCARD = re.compile(r"^[CE]\d{2}\*$")


class Status(StrEnum):
    """How a choice came out (the three states Chinese routing tables report: 唯一 / 多个 / 未配置)."""

    UNIQUE = "unique"
    AMBIGUOUS = "ambiguous"
    NONE = "none"


def class_specificity(pattern: str) -> int:
    """0 for an exact class key (``C0101``), 1 for a major wildcard (``C01*``), 2 for ``*``.

    Raises:
        ValueError: ``pattern`` is none of the three forms.
    """
    if _EXACT_CLASS.match(pattern):
        return 0
    if _MAJOR_WILDCARD.match(pattern):
        return 1
    if pattern == "*":
        return 2
    raise ValueError(f"bad class pattern {pattern!r}")


def class_matches(pattern: str, class_code: str) -> bool:
    """Whether a class pattern covers a class key (a major wildcard covers both code generations)."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return class_code.startswith(pattern[:-1])
    return class_code == pattern


@dataclass(frozen=True)
class RoutingRule:
    """One row of the routing table: cases of ``class_code`` in the scope go to ``department_id``."""

    class_code: str
    scope_level: str
    scope_code: str
    department_id: int
    valid_from: dt.date
    valid_to: dt.date | None = None
    id: int | None = None

    @property
    def specificity(self) -> tuple[int, int]:
        """Smaller is more specific: (scope rank, class rank)."""
        return SCOPE_LEVELS.index(self.scope_level), class_specificity(self.class_code)

    def in_force(self, on: dt.date) -> bool:
        """Whether the rule applies on ``on``."""
        return self.valid_from <= on and (self.valid_to is None or on < self.valid_to)

    def overlaps(self, other: RoutingRule) -> bool:
        """Whether the two validity intervals share a day."""
        a_end = self.valid_to or dt.date.max
        b_end = other.valid_to or dt.date.max
        return self.valid_from < b_end and other.valid_from < a_end

    def label(self) -> str:
        """A short readable name for messages: ``规则 #12 (C0101 @ 网格 610302001001001, 2026-01-01起)``."""
        ident = f"规则 #{self.id}" if self.id is not None else "规则"
        where = SCOPE_NAMES_ZH[self.scope_level] + (f" {self.scope_code}" if self.scope_code else "")
        until = f"至 {self.valid_to.isoformat()}" if self.valid_to else "起"
        return f"{ident} ({self.class_code} @ {where}, {self.valid_from.isoformat()}{until})"


@dataclass(frozen=True, kw_only=True)
class CaseFacts:
    """What routing needs to know about a case. Area codes are None where unknown; ``on`` is the local date."""

    class_code: str
    on: dt.date
    grid_code: str | None = None
    community_code: str | None = None
    street_code: str | None = None
    district_code: str | None = None

    @classmethod
    def from_grid(cls, class_code: str, grid_code: str | None, on: dt.date) -> CaseFacts:
        """Facts whose community/street/district codes are the prefixes of the 15-digit grid code."""
        if grid_code is None or len(grid_code) != 15:
            return cls(class_code=class_code, on=on)
        return cls(
            class_code=class_code,
            grid_code=grid_code,
            community_code=grid_code[:12],
            street_code=grid_code[:9],
            district_code=grid_code[:6],
            on=on,
        )

    def code_at(self, level: str) -> str | None:
        """The case's area code at a scope level ("" for the city)."""
        if level == "city":
            return ""
        return {
            "grid": self.grid_code,
            "community": self.community_code,
            "street": self.street_code,
            "district": self.district_code,
        }[level]


@dataclass(frozen=True)
class Candidate:
    """A department that could take the case, and why."""

    department_id: int
    rule: RoutingRule


@dataclass(frozen=True)
class Choice:
    """The outcome of :func:`choose`."""

    department_id: int | None
    rule: RoutingRule | None
    candidates: list[Candidate]
    reason: str
    status: Status


class RuleSet:
    """Validated, conflict-free rules indexed by scope (build with :func:`load_rules`)."""

    __slots__ = ("_by_scope", "_rules")

    def __init__(self, rules: Sequence[RoutingRule]) -> None:
        """Index rules that :func:`load_rules` already checked."""
        self._rules = tuple(rules)
        self._by_scope: dict[tuple[str, str], list[RoutingRule]] = {}
        for r in self._rules:
            self._by_scope.setdefault((r.scope_level, r.scope_code), []).append(r)

    def __iter__(self) -> Iterator[RoutingRule]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def at_scope(self, level: str, code: str) -> Sequence[RoutingRule]:
        """The rules of one scope."""
        return self._by_scope.get((level, code), ())


def _parse_date(value: Any, loc: list[str | int]) -> dt.date:
    if isinstance(value, dt.datetime):
        raise InvalidInput("a date is needed, not a date-time", code="routing.bad_date", loc=loc)
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(f"{value!r} is not a date (YYYY-MM-DD)", code="routing.bad_date", loc=loc)


def parse_rule(row: Mapping[str, Any] | RoutingRule, *, loc: Sequence[str | int] = ()) -> RoutingRule:
    """Validate one rule given as a mapping (API/CSV/DB row) or as a :class:`RoutingRule`.

    Raises:
        InvalidInput: ``routing.bad_class`` / ``routing.bad_scope`` / ``routing.bad_department`` /
            ``routing.bad_date`` / ``routing.bad_validity``, with ``loc`` naming the field.
    """
    base = list(loc)
    if isinstance(row, RoutingRule):
        row = {
            "class_code": row.class_code,
            "scope_level": row.scope_level,
            "scope_code": row.scope_code,
            "department_id": row.department_id,
            "valid_from": row.valid_from,
            "valid_to": row.valid_to,
            "id": row.id,
        }
    pattern = row.get("class_code")
    if not isinstance(pattern, str):
        raise InvalidInput("class_code is required", code="routing.bad_class", loc=[*base, "class_code"])
    try:
        class_specificity(pattern)
    except ValueError:
        raise InvalidInput(
            f"class_code {pattern!r} must be a class key (C0101, E06010), a major wildcard (C01*, E01*) or *",
            code="routing.bad_class",
            loc=[*base, "class_code"],
        ) from None
    level = row.get("scope_level")
    if level not in SCOPE_LEVELS:
        raise InvalidInput(
            f"scope_level must be one of {', '.join(SCOPE_LEVELS)}",
            code="routing.bad_scope",
            loc=[*base, "scope_level"],
        )
    code = row.get("scope_code") or ""
    if not isinstance(code, str):
        raise InvalidInput("scope_code must be a string", code="routing.bad_scope", loc=[*base, "scope_code"])
    if level == "city":
        if code:
            raise InvalidInput(
                "a city-wide rule has no scope_code", code="routing.bad_scope", loc=[*base, "scope_code"]
            )
    elif not (code.isascii() and code.isdigit() and len(code) == SCOPE_CODE_LENGTH[level]):
        raise InvalidInput(
            f"a {level} scope_code has {SCOPE_CODE_LENGTH[level]} digits, not {code!r}",
            code="routing.bad_scope",
            loc=[*base, "scope_code"],
        )
    dept = row.get("department_id")
    if not isinstance(dept, int) or isinstance(dept, bool) or dept <= 0:
        raise InvalidInput(
            "department_id must be a positive integer", code="routing.bad_department", loc=[*base, "department_id"]
        )
    valid_from = _parse_date(row.get("valid_from"), [*base, "valid_from"])
    raw_to = row.get("valid_to")
    valid_to = None if raw_to is None else _parse_date(raw_to, [*base, "valid_to"])
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidInput(
            "valid_to must be after valid_from (validity is [valid_from, valid_to))",
            code="routing.bad_validity",
            loc=[*base, "valid_to"],
        )
    rid = row.get("id")
    return RoutingRule(
        class_code=pattern,
        scope_level=level,
        scope_code=code,
        department_id=dept,
        valid_from=valid_from,
        valid_to=valid_to,
        id=rid if isinstance(rid, int) else None,
    )


def load_rules(rows: Iterable[Mapping[str, Any] | RoutingRule]) -> RuleSet:
    """Validate rules and refuse conflicts.

    Two rules conflict when they have the same class pattern and the same scope, overlapping validity and
    different departments: the table would then not say who is responsible. (Same department twice is
    harmless and kept.)

    Raises:
        InvalidInput: a malformed row (see :func:`parse_rule`; ``loc`` starts with the row index), or
            ``routing.conflicting_rules`` naming both rules (``ctx.rows`` holds their indexes).
    """
    rules = [parse_rule(r, loc=[i]) for i, r in enumerate(rows)]
    conflict = find_conflict(rules)
    if conflict is not None:
        a, b = conflict
        ra, rb = rules[a], rules[b]
        raise InvalidInput(
            f"conflicting routing rules: row {a} {ra.label()} → 部门 {ra.department_id} and "
            f"row {b} {rb.label()} → 部门 {rb.department_id} overlap in time",
            code="routing.conflicting_rules",
            loc=[b],
            extra={"rows": [a, b], "departments": [ra.department_id, rb.department_id]},
        )
    return RuleSet(rules)


def find_conflict(rules: Sequence[RoutingRule]) -> tuple[int, int] | None:
    """The positions of the first two conflicting rules, or None (see :func:`load_rules`)."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, r in enumerate(rules):
        groups.setdefault((r.class_code, r.scope_level, r.scope_code), []).append(i)
    found: list[tuple[int, int]] = []
    for idxs in groups.values():
        for pos, a in enumerate(idxs):
            for b in idxs[pos + 1 :]:
                if rules[a].department_id != rules[b].department_id and rules[a].overlaps(rules[b]):
                    found.append((a, b))
                    break
    return min(found) if found else None


def _matching(facts: CaseFacts, rules: Iterable[RoutingRule] | RuleSet) -> list[RoutingRule]:
    if isinstance(rules, RuleSet):
        pool: list[RoutingRule] = []
        for level in SCOPE_LEVELS:
            code = facts.code_at(level)
            if code is not None:
                pool.extend(rules.at_scope(level, code))
    else:
        pool = [r for r in rules if facts.code_at(r.scope_level) == r.scope_code]
    return [r for r in pool if r.in_force(facts.on) and class_matches(r.class_code, facts.class_code)]


def _where(facts: CaseFacts) -> str:
    return f"网格 {facts.grid_code}" if facts.grid_code else "未知网格"


def choose(facts: CaseFacts, rules: Iterable[RoutingRule] | RuleSet) -> Choice:
    """The department the routing rules give for the case.

    The most specific rule in force wins (scope grid > community > street > district > city, then exact
    class > major wildcard > ``*``). Rules tied at that specificity that name different departments make
    the choice ambiguous (no department; every tied department is a candidate).
    """
    matching = _matching(facts, rules)
    if not matching:
        return Choice(
            None,
            None,
            [],
            f"没有适用于 {facts.class_code}（{_where(facts)}，{facts.on.isoformat()}）的派遣规则",
            Status.NONE,
        )
    best = min(r.specificity for r in matching)
    top = sorted(
        (r for r in matching if r.specificity == best), key=lambda r: (r.department_id, r.valid_from, r.id or 0)
    )
    by_dept: dict[int, RoutingRule] = {}
    for r in top:
        by_dept.setdefault(r.department_id, r)
    candidates = [Candidate(d, r) for d, r in by_dept.items()]
    if len(candidates) == 1:
        rule = candidates[0].rule
        return Choice(rule.department_id, rule, candidates, f"{rule.label()} 适用于 {facts.class_code}", Status.UNIQUE)
    labels = "；".join(c.rule.label() for c in candidates)
    return Choice(None, None, candidates, f"{len(candidates)} 条同等具体的规则指向不同部门：{labels}", Status.AMBIGUOUS)


# ---- component ownership --------------------------------------------------------------------------------

RESPONSIBILITY_ORDER: Final = ("main", "maintainer", "owner")
RESPONSIBILITY_NAMES_ZH: Final = {"main": "主管单位", "maintainer": "养护单位", "owner": "权属单位"}


@dataclass(frozen=True)
class ComponentFact:
    """A component near the case, as the service found it."""

    code: str
    class_code: str
    distance_m: float
    main_department_id: int | None = None
    maintainer_department_id: int | None = None
    owner_department_id: int | None = None
    name: str | None = None

    def responsible(self) -> tuple[int, str] | None:
        """(department id, ``main``/``maintainer``/``owner``): 主管, else 养护, else 权属; None if none."""
        for role in RESPONSIBILITY_ORDER:
            dept = getattr(self, f"{role}_department_id")
            if dept is not None:
                return dept, role
        return None


@dataclass(frozen=True)
class ComponentCandidate:
    """A department a nearby component points to."""

    department_id: int
    responsibility: str
    component: ComponentFact


@dataclass(frozen=True)
class ComponentChoice:
    """The outcome of :func:`choose_component`."""

    department_id: int | None
    component: ComponentFact | None
    responsibility: str | None
    candidates: list[ComponentCandidate]
    status: Status


def choose_component(components: Iterable[ComponentFact], *, tie_m: float = 1.0) -> ComponentChoice:
    """The responsible department of the nearest component that has one.

    Components within ``tie_m`` metres of the nearest one's distance count as equally near; when they
    point to different departments the choice is ambiguous and every such department is a candidate.
    Components with no department at all are skipped (they cannot route anything).
    """
    usable = sorted(
        ((c, c.responsible()) for c in components if c.responsible() is not None),
        key=lambda cr: (cr[0].distance_m, cr[0].code),
    )
    if not usable:
        return ComponentChoice(None, None, None, [], Status.NONE)
    nearest, first = usable[0]
    assert first is not None
    dept, role = first
    candidates: dict[int, ComponentCandidate] = {dept: ComponentCandidate(dept, role, nearest)}
    for comp, resp in usable[1:]:
        if comp.distance_m - nearest.distance_m > tie_m:
            break
        assert resp is not None
        candidates.setdefault(resp[0], ComponentCandidate(resp[0], resp[1], comp))
    if len(candidates) > 1:
        return ComponentChoice(None, nearest, None, list(candidates.values()), Status.AMBIGUOUS)
    return ComponentChoice(dept, nearest, role, list(candidates.values()), Status.UNIQUE)
