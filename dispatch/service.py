"""Recommend the responsible department for a case, explain why, and dispatch automatically on filing.

The decision itself is pure (:mod:`dispatch.rules`); this module gathers its facts from the database with
the bounded, index-driven statements of :mod:`gridcity.spatial`, and turns the outcome into a readable
Chinese explanation (peers.md lesson 1: every routing decision says why).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import service as casework_service
from casework.lifecycle import Actor, CaseAction, CaseStatus
from casework.pipeline import CasePipeline
from casework.rules import CaseRules
from dispatch import rules as routing
from dispatch.models import RoutingRuleRow
from gridcity import spatial
from gridcity.errors import GridCityError, InvalidInput
from gridcity.org import Department
from gridcity.roles import Role
from gridcity.settings import Settings

log = logging.getLogger("gridcity.dispatch")

# Components in these states are gone from the street and cannot be what a report is about.
GONE_STATES = ("废弃", "移除")
# Two components whose distances differ by at most this much are equally near (positional accuracy of a
# surveyed component is ±0.5–1 m, standards.md §2.2).
TIE_M = 1.0
# Nearest components fetched per snap: enough to see a tie.
SNAP_LIMIT = 5


class RoutableCase(Protocol):
    """What routing reads from a case (``casework.models.Case`` has all of it)."""

    @property
    def class_code(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def lon(self) -> float: ...
    @property
    def lat(self) -> float: ...
    @property
    def grid_code(self) -> str | None: ...
    @property
    def component_id(self) -> str | None: ...


@dataclass(frozen=True)
class RoutingSettings:
    """The knobs routing uses (a subset of :class:`gridcity.settings.Settings`)."""

    snap_tolerance_m: float = 30.0
    duplicate_radius_m: float = 50.0
    duplicate_days: int = 7

    @classmethod
    def of(cls, settings: Settings | RoutingSettings) -> RoutingSettings:
        """Take the routing knobs from the app settings."""
        return cls(settings.snap_tolerance_m, settings.duplicate_radius_m, settings.duplicate_days)


@dataclass(frozen=True)
class CandidateView:
    """A department the dispatcher may choose, with the reason it is offered."""

    department_id: int
    name: str
    reason: str


@dataclass(frozen=True)
class Recommendation:
    """Who should handle the case, how that was decided, and why (in Chinese, for the dispatcher)."""

    department_id: int | None
    department_name: str | None
    method: str  # component | rule | none
    explanation: str
    candidates: list[CandidateView] = field(default_factory=list)
    component_code: str | None = None
    distance_m: float | None = None
    grid_code: str | None = None
    rule_id: int | None = None
    ambiguous: bool = False


def city_today(rules: CaseRules, now: dt.datetime | None = None) -> dt.date:
    """Today in the city's time zone (rules are effective-dated in local days)."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(ZoneInfo(rules.calendar.timezone)).date()


# ---- the statements routing issues (the plan test EXPLAINs exactly these) -------------------------------
# Each recommendation is one round trip in the common cases (two when a component case falls back to the
# rules): the component lookups carry the responsible department's name, and the grid lookup carries the
# routing rules of the grid's scopes with their departments' names. They run through ``Statement.run`` (the
# bare driver cursor of the session's connection, in its transaction): SQLAlchemy's per-call statement
# machinery cost 20-90× the index lookup itself (docs/performance.md, bench_routing).


def component_statement(session: Session, case: RoutableCase, cfg: RoutingSettings) -> spatial.Statement:
    """The component lookup for a component case: by its ID if it has one, else the bounded snap."""
    if case.component_id:
        return spatial.component_by_code_statement(
            spatial.dialect(session), code=case.component_id, lon=case.lon, lat=case.lat
        )
    return snap_statement(session, case, cfg)


def snap_statement(session: Session, case: RoutableCase, cfg: RoutingSettings) -> spatial.Statement:
    """Components of the case's class within the snap tolerance, nearest first."""
    return spatial.nearest_components_statement(
        spatial.dialect(session),
        lon=case.lon,
        lat=case.lat,
        class_code=case.class_code,
        radius_m=cfg.snap_tolerance_m,
        exclude_states=GONE_STATES,
        limit=SNAP_LIMIT,
    )


def grid_statement(session: Session, case: RoutableCase, on: dt.date) -> spatial.Statement:
    """The unit grids in force that contain the case's point (or its stored grid), with the routing rules that
    could apply there (one statement; rows as :func:`gridcity.spatial.grid_rules_statement`)."""
    return spatial.grid_rules_statement(
        spatial.dialect(session),
        lon=case.lon,
        lat=case.lat,
        on=on,
        class_code=case.class_code,
        grid_code=case.grid_code or None,
    )


def to_rule(row: Any) -> routing.RoutingRule:
    """The pure rule of a stored row (an ORM row or a Core row with the same columns)."""
    return routing.RoutingRule(
        class_code=row.class_code,
        scope_level=row.scope_level,
        scope_code=row.scope_code or "",
        department_id=row.department_id,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        id=row.id,
    )


# ---- recommendation -------------------------------------------------------------------------------------


def _date(value: Any) -> dt.date | None:
    """A date column from the driver (SQLite returns the ISO text SQLAlchemy stored)."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _dept_name(dept_id: int, name: str | None) -> str:
    return name if name is not None else f"部门 {dept_id}"


def _class_name(rules: CaseRules, class_code: str) -> str:
    try:
        return rules.catalog.get(class_code, include_disabled=True).name_zh
    except InvalidInput:
        return class_code


def _component_text(class_name: str, comp: routing.ComponentFact, by_id: bool) -> str:
    how = "案件所报部件" if by_id else f"距离 {comp.distance_m:.1f} 米"
    return f"{class_name} {comp.code}，{how}"


def _components(
    rows: Sequence[tuple[Any, ...]],
) -> tuple[list[routing.ComponentFact], dict[int, str | None]]:
    """Component facts and the names of their responsible departments (rows: ``spatial.COMPONENT_ROW``)."""
    facts = []
    names: dict[int, str | None] = {}
    for _id, code, class_code, name, main, maint, owner, _state, distance_m, dept_name in rows:
        fact = routing.ComponentFact(
            code=code,
            class_code=class_code,
            distance_m=float(distance_m),
            main_department_id=main,
            maintainer_department_id=maint,
            owner_department_id=owner,
            name=name,
        )
        resp = fact.responsible()
        if resp is not None:
            names[resp[0]] = dept_name
        facts.append(fact)
    return facts, names


def _by_component(
    session: Session, case: RoutableCase, cfg: RoutingSettings, class_name: str
) -> tuple[Recommendation | None, str]:
    """Route by component ownership; (None, why not) when no component decides."""
    by_id = bool(case.component_id)
    rows = component_statement(session, case, cfg).run(session)
    prefix = ""
    if by_id and not rows:
        prefix = f"部件 {case.component_id} 不在部件库中；"
        by_id = False
        rows = snap_statement(session, case, cfg).run(session)
    facts, found = _components(rows)
    choice = routing.choose_component(facts, tie_m=TIE_M)
    if choice.status is routing.Status.NONE:
        if rows:
            return None, prefix + f"{cfg.snap_tolerance_m:g} 米内的{class_name}部件没有主管、养护或权属单位；"
        return None, prefix + f"{cfg.snap_tolerance_m:g} 米内没有{class_name}部件；"
    names = {c.department_id: _dept_name(c.department_id, found.get(c.department_id)) for c in choice.candidates}
    cands = [
        CandidateView(
            c.department_id,
            names[c.department_id],
            f"{_component_text(class_name, c.component, by_id)}，"
            f"{routing.RESPONSIBILITY_NAMES_ZH[c.responsibility]} {names[c.department_id]}",
        )
        for c in choice.candidates
    ]
    comp = choice.component
    assert comp is not None
    if choice.status is routing.Status.AMBIGUOUS:
        text = (
            prefix + f"{len(cands)} 个{class_name}部件距离相近（相差不到 {TIE_M:g} 米）但责任单位不同，"
            "请派遣员选择：" + "；".join(c.reason for c in cands)
        )
        return Recommendation(
            None, None, "component", text, cands, comp.code, comp.distance_m, case.grid_code, None, ambiguous=True
        ), ""
    assert choice.department_id is not None and choice.responsibility is not None
    return Recommendation(
        choice.department_id,
        names[choice.department_id],
        "component",
        prefix + cands[0].reason,
        cands,
        comp.code,
        comp.distance_m,
        case.grid_code,
    ), ""


def _grid_and_rules(
    session: Session, case: RoutableCase, on: dt.date
) -> tuple[str | None, list[str], list[routing.RoutingRule], dict[int, str | None]]:
    """The case's grid (its stored grid code, else the lowest code of the grids containing the point: a point
    on a border lies in several), every grid found, the rules that could apply there and their departments'
    names — one statement."""
    found: list[str] = []
    rules: list[routing.RoutingRule] = []
    names: dict[int, str | None] = {}
    for kind, code, rule_id, pattern, level, dept_id, valid_from, valid_to, dept_name in grid_statement(
        session, case, on
    ).run(session):
        if kind == "g":
            found.append(code)
            continue
        rules.append(
            routing.RoutingRule(
                class_code=pattern,
                scope_level=level,
                scope_code=code or "",
                department_id=dept_id,
                valid_from=_date(valid_from),  # type: ignore[arg-type]
                valid_to=_date(valid_to),
                id=rule_id,
            )
        )
        names[dept_id] = dept_name
    found.sort()
    grid_code = case.grid_code or (found[0] if found else None)
    return grid_code, found, rules, names


def _by_rule(session: Session, case: RoutableCase, on: dt.date, class_name: str, prefix: str) -> Recommendation:
    grid_code, found, rules, found_names = _grid_and_rules(session, case, on)
    facts = routing.CaseFacts.from_grid(case.class_code, grid_code, on)
    where = f"位于网格 {grid_code}" if grid_code else "不在任何单元网格内"
    if len(found) > 1:
        where = f"位于网格边界（{'、'.join(found)}），按网格 {grid_code}"
    choice = routing.choose(facts, rules)
    subject = f"{class_name}（{case.class_code}）{where}"
    if choice.status is routing.Status.NONE:
        return Recommendation(
            None,
            None,
            "none",
            prefix + f"{subject}，没有适用的派遣规则，请派遣员人工选择部门",
            [],
            None,
            None,
            grid_code,
        )
    names = {c.department_id: _dept_name(c.department_id, found_names.get(c.department_id)) for c in choice.candidates}
    cands = [
        CandidateView(c.department_id, names[c.department_id], f"{c.rule.label()} → {names[c.department_id]}")
        for c in choice.candidates
    ]
    if choice.status is routing.Status.AMBIGUOUS:
        return Recommendation(
            None,
            None,
            "rule",
            prefix + f"{subject}，同等具体的规则指向不同部门，请派遣员选择：" + "；".join(c.reason for c in cands),
            cands,
            None,
            None,
            grid_code,
            ambiguous=True,
        )
    rule = choice.rule
    assert rule is not None and choice.department_id is not None
    return Recommendation(
        choice.department_id,
        names[choice.department_id],
        "rule",
        prefix + f"{subject}，{rule.label()} → {names[choice.department_id]}",
        cands,
        None,
        None,
        grid_code,
        rule.id,
    )


def recommend(
    session: Session,
    *,
    case: RoutableCase,
    rules: CaseRules,
    settings: Settings | RoutingSettings,
    on: dt.date | None = None,
) -> Recommendation:
    """The department that should handle ``case``, with the method and a readable explanation.

    Component problems go to the responsible unit of the component (by the case's component ID, else the
    nearest component of the same class within ``snap_tolerance_m``); event problems, and component
    problems no component decides, go by the routing rules of the grid containing the point. Ambiguous
    outcomes name no department and list the candidates.
    """
    cfg = RoutingSettings.of(settings)
    on = on or city_today(rules)
    class_name = _class_name(rules, case.class_code)
    prefix = ""
    if case.kind == "component":
        rec, prefix = _by_component(session, case, cfg, class_name)
        if rec is not None:
            return rec
    return _by_rule(session, case, on, class_name, prefix)


def recommend_for_case(
    session: Session, *, case_id: int, actor: Actor, rules: CaseRules, settings: Settings | RoutingSettings
) -> Recommendation:
    """The recommendation for a case the actor may see (404/403 as ``casework.service.get_case``)."""
    case = casework_service.get_case(session, case_id, actor=actor)
    return recommend(session, case=case, rules=rules, settings=settings)


# ---- auto-dispatch on filing ----------------------------------------------------------------------------

SYSTEM_DISPATCHER = Actor(user_id=0, role=Role.DISPATCHER)
"""The system acting as dispatcher (the event stores actor_id NULL)."""


class AutoDispatcher:
    """Case pipeline subscriber: dispatch a freshly filed case when its class allows it and routing is unambiguous.

    Built with the app's routing settings where the app's pipeline is assembled (one per app, never shared).
    """

    def __init__(self, settings: RoutingSettings) -> None:
        """Route with ``settings`` (snap tolerance, ...)."""
        self.settings = settings

    def __call__(self, session: Session, change: casework_service.CaseChange, pipeline: CasePipeline) -> None:
        """Run after every case action, inside its transaction."""
        case, event, rules = change.case, change.event, change.rules
        # Recursion guard: the DISPATCH below runs the subscribers again, with a DISPATCH event, which stops here.
        if event.action is not CaseAction.FILE or case.status is not CaseStatus.FILED:
            return
        try:
            auto = rules.catalog.get(case.class_code, include_disabled=True).auto_dispatch
        except InvalidInput:
            return
        if not auto:
            return
        rec = recommend(session, case=case, rules=rules, settings=self.settings)
        if rec.department_id is None:
            return
        try:
            # A savepoint, so that a refused dispatch (e.g. a department deactivated meanwhile) leaves the
            # filing intact for a human dispatcher.
            with session.begin_nested():
                pipeline.apply_action(
                    session,
                    case_id=case.id,
                    actor=SYSTEM_DISPATCHER,
                    action=CaseAction.DISPATCH,
                    inp=casework_service.ActionInput(
                        department_id=rec.department_id,
                        data={"auto": True, "method": rec.method, "explanation": rec.explanation},
                    ),
                )
        except GridCityError as exc:
            log.warning("auto-dispatch of case %s refused: %s", case.id, exc.message)


# ---- routing rules --------------------------------------------------------------------------------------


def list_rules(session: Session) -> list[RoutingRuleRow]:
    """Every stored routing rule, in id order."""
    return list(session.scalars(select(RoutingRuleRow).order_by(RoutingRuleRow.id)))


def load_rules(session: Session, *, rows: Sequence[dict[str, Any]], replace: bool = False) -> list[RoutingRuleRow]:
    """Add routing rules (or replace all of them); refuse the whole batch if any row is bad or conflicts.

    New rows are checked together with the stored ones (unless ``replace``), so a new rule cannot conflict
    with an existing one either.

    Raises:
        InvalidInput: a malformed row, an unknown department (``department.unknown``), or
            ``routing.conflicting_rules``; ``loc`` names the row of ``rows``. Nothing is stored.
    """
    new_rules = [routing.parse_rule(r, loc=[i]) for i, r in enumerate(rows)]
    known = set(session.scalars(select(Department.id).where(Department.active.is_(True))))
    for i, r in enumerate(new_rules):
        if r.department_id not in known:
            raise InvalidInput(
                f"unknown department {r.department_id}", code="department.unknown", loc=[i, "department_id"]
            )
    existing = [] if replace else [to_rule(r) for r in list_rules(session)]
    conflict = routing.find_conflict([*new_rules, *existing])
    if conflict is not None:
        n = len(new_rules)
        a, b = conflict
        both = [*new_rules, *existing]

        def name(x: int) -> str:
            return f"row {x} {both[x].label()}" if x < n else f"stored {both[x].label()}"

        raise InvalidInput(
            f"conflicting routing rules: {name(a)} → 部门 {both[a].department_id} and {name(b)} → 部门 "
            f"{both[b].department_id} overlap in time",
            code="routing.conflicting_rules",
            loc=[a],
            extra={
                "rows": [x if x < n else None for x in (a, b)],
                "stored_rule_ids": [both[x].id for x in (a, b) if x >= n],
                "departments": [both[a].department_id, both[b].department_id],
            },
        )
    if replace:
        session.execute(sa.delete(RoutingRuleRow))
    stored = [
        RoutingRuleRow(
            class_code=r.class_code,
            scope_level=r.scope_level,
            scope_code=r.scope_code,
            department_id=r.department_id,
            valid_from=r.valid_from,
            valid_to=r.valid_to,
        )
        for r in new_rules
    ]
    session.add_all(stored)
    session.flush()
    return stored
