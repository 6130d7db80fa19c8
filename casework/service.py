"""Case pipeline services. ``apply_action`` is the only code that changes a case's status.

Services take the session as a keyword argument and only ``flush``; the edge (request dependency or CLI
command) owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.exc import StaleDataError

from casework import deadlines, effects, lifecycle
from casework.exceptions import AttachmentNotUsable, CaseNotFound, NotOnSite, StaleCase
from casework.lifecycle import Actor, CaseAction, CaseFacts, CaseStatus, Need, Stage
from casework.models import EVENT_ORDER_LOCK, Attachment, Case, CaseEvent, EventAttachment, PublicReporter
from casework.rules import CaseRules, load_rules
from casework.timeline import EventFact, StageRun, stage_runs
from components import service as components_service
from gridcity import spatial
from gridcity.coords import haversine_m
from gridcity.errors import InvalidInput, NotFound
from gridcity.org import Department, User
from gridcity.roles import Role
from gridcity.types import utcnow


@dataclass(frozen=True)
class ActionInput:
    """Everything an action may carry besides its name."""

    expected_version: int | None = None
    department_id: int | None = None
    inspector_id: int | None = None
    note: str | None = None
    attachment_ids: tuple[int, ...] = ()
    extension: dict[str, Any] | None = None  # {"value": 2, "unit": "work_day"}
    target_case_id: int | None = None
    lon: float | None = None
    lat: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def given(self) -> frozenset[Need]:
        """Which of the table's needs this input satisfies."""
        have = {
            Need.DEPARTMENT: self.department_id is not None,
            Need.INSPECTOR: self.inspector_id is not None,
            Need.ATTACHMENT: bool(self.attachment_ids),
            Need.NOTE: bool(self.note and self.note.strip()),
            Need.EXTENSION: self.extension is not None,
            Need.TARGET_CASE: self.target_case_id is not None,
        }
        return frozenset(n for n, ok in have.items() if ok)


@dataclass(frozen=True)
class NewCase:
    """A report as it arrives."""

    class_code: str
    lon: float
    lat: float
    urgency: str = "normal"
    address: str | None = None
    description: str | None = None
    component_id: str | None = None
    source: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_email: str | None = None
    reporter_device_id: str | None = None


@dataclass(frozen=True)
class CaseChange:
    """What one action (or the creation of a case) did, computed once: the case after it, its new event, the
    whole log reduced to timing facts (ending with the new event) and the stage runs derived from that log.

    The case pipeline hands it to its subscribers (:mod:`casework.pipeline`); responses are shaped from it.
    """

    case: Case
    event: CaseEvent
    rules: CaseRules
    log: tuple[EventFact, ...]
    runs: tuple[StageRun, ...]
    previous_runs: tuple[StageRun, ...] = ()
    version: int = 0  # the case's version right after the change

    @property
    def current(self) -> bool:
        """Whether the case is still as this change left it (no later action, e.g. auto-dispatch, moved it)."""
        return self.case.version == self.version

    @property
    def changed_runs(self) -> tuple[StageRun, ...]:
        """The runs this change created or altered (the others are as they were before it)."""
        before = set(self.previous_runs)
        return tuple(r for r in self.runs if r not in before)


def actor_of(user: User) -> Actor:
    """The lifecycle's view of a user."""
    return Actor(user_id=user.id, role=user.role, department_id=user.department_id)


def facts_of(case: Case) -> CaseFacts:
    """The lifecycle's view of a case."""
    return CaseFacts(
        status=case.status,
        department_id=case.department_id,
        reporter_id=case.reporter_id,
        assigned_inspector_id=case.assigned_inspector_id,
    )


def next_case_number(session: Session, *, at: dt.datetime, tz: str) -> str:
    """The next readable case number of the year (``2026-000123``); unique under concurrency."""
    year = at.astimezone(ZoneInfo(tz)).year
    value = session.execute(
        sa.text(
            "INSERT INTO case_counter (year, value) VALUES (:y, 1) "
            "ON CONFLICT (year) DO UPDATE SET value = case_counter.value + 1 RETURNING value"
        ),
        {"y": year},
    ).scalar_one()
    return f"{year}-{value:06d}"


def _order_events(session: Session) -> None:
    lock = spatial.xact_lock(session, EVENT_ORDER_LOCK)
    if lock is not None:
        session.execute(select(lock))


def _check_attachments(session: Session, ids: Sequence[int], actor: Actor) -> None:
    """The attachment list names each photo once. That each photo is the actor's own and not yet evidence of
    another action is checked when the photos are linked, in the same statement (:func:`_link_attachments`)."""
    if len(set(ids)) != len(ids):
        raise InvalidInput("an attachment is listed twice", code="attachment.duplicate", loc=["attachment_ids"])


def _refuse_attachments(session: Session, ids: Sequence[int], actor: Actor) -> None:
    """Why photos could not be linked (only on that path): evidence belongs to its author and is used once.

    Another user's photo answers like a missing one (``attachment.unknown``), so ids cannot be probed.
    """
    rows = session.execute(
        select(Attachment.id, Attachment.uploaded_by, EventAttachment.attachment_id)
        .outerjoin(EventAttachment, EventAttachment.attachment_id == Attachment.id)
        .where(Attachment.id.in_(ids))
    ).all()
    owners = {r[0]: r[1] for r in rows}
    used = {r[0] for r in rows if r[2] is not None}
    for i, aid in enumerate(ids):
        # The system (user id 0: Open311 intake) owns the photos it stored with no uploader.
        if aid not in owners or (owners[aid] or 0) != actor.user_id:
            raise AttachmentNotUsable(f"unknown attachment {aid}", loc=["attachment_ids", i])
        if aid in used:
            raise AttachmentNotUsable(
                f"attachment {aid} is already evidence of another action; take a new photo",
                code="attachment.already_used",
                loc=["attachment_ids", i],
            )
    raise AttachmentNotUsable("an attachment could not be linked", loc=["attachment_ids"])


#: Results that can only be given on site (信息核实, 案件核查): a position within the radius, and photos.
ON_SITE_ACTIONS = frozenset(
    {CaseAction.VERIFY_TRUE, CaseAction.VERIFY_FALSE, CaseAction.CHECK_PASS, CaseAction.CHECK_FAIL}
)


def on_site_distance(
    case: Case, *, lon: float | None, lat: float | None, radius_m: float, loc: Sequence[str | int] = ("lon",)
) -> float:
    """The on-site rule, the one place it lives: the position must be given and within ``radius_m``.

    Returns the distance in metres; raises :class:`NotOnSite` (422 ``mobile.not_on_site``) otherwise. The
    phone API calls it early (before any photo work) and :func:`apply_action` calls it for every
    verify/check result, whichever route the result came through.
    """
    if lon is None or lat is None:
        raise NotOnSite(
            f"a result for case {case.number} needs the position it was sent from (lon, lat)",
            loc=list(loc),
            extra={"radius_m": radius_m},
        )
    distance = haversine_m(lon, lat, case.lon, case.lat)
    if distance > radius_m:
        raise NotOnSite(
            f"you are {distance:,.0f} m from case {case.number}; results must be sent from within {radius_m:,.0f} m",
            loc=list(loc),
            extra={"distance_m": round(distance, 1), "radius_m": radius_m},
        )
    return distance


def _reference(action: CaseAction, inp: ActionInput) -> tuple[str, int] | None:
    """The row the action names, read with the case in the same statement: (kind, id) or None."""
    if action is CaseAction.DISPATCH and inp.department_id is not None:
        return "department", inp.department_id
    if action in (CaseAction.SEND_VERIFY, CaseAction.SEND_CHECK) and inp.inspector_id is not None:
        return "inspector", inp.inspector_id
    return None


def _reference_query(kind: str) -> sa.ScalarSelect[Any]:
    """A scalar subquery that finds the referenced row (its id, bound as ``ref_id``), or NULL."""
    if kind == "department":
        return (
            select(Department.id)
            .where(Department.id == sa.bindparam("ref_id"), Department.active.is_(True))
            .scalar_subquery()
        )
    return (
        select(User.id)
        .where(User.id == sa.bindparam("ref_id"), User.role == Role.INSPECTOR, User.active.is_(True))
        .scalar_subquery()
    )


def _new_event(
    case: Case,
    *,
    seq: int,
    actor: Actor,
    action: CaseAction,
    from_status: CaseStatus,
    to_status: CaseStatus,
    at: dt.datetime,
    inp: ActionInput,
    data: dict[str, Any],
) -> CaseEvent:
    return CaseEvent(
        case_id=case.id,
        seq=seq,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor_id=actor.user_id if actor.user_id > 0 else None,  # 0 = the system (e.g. auto-dispatch)
        actor_role=actor.role,
        department_id=case.department_id,
        at=at,
        lon=inp.lon,
        lat=inp.lat,
        note=inp.note,
        data=data,
    )


@functools.cache
def _link_statement(system: bool) -> sa.Insert:
    """Link the actor's own, still unused photos to an event (built once: building it cost more than running it).

    Bound: ``event_id``, ``role``, ``owner`` and ``ids`` (expanding). ``system``: the system actor (user id 0,
    Open311 intake) also owns the photos stored with no uploader.
    """
    att, links = Attachment.__table__, EventAttachment.__table__
    earlier = links.alias("earlier")
    owner = att.c.uploaded_by == sa.bindparam("owner")
    if system:
        owner = sa.or_(owner, att.c.uploaded_by.is_(None))
    return (
        links.insert()
        .from_select(
            ["event_id", "attachment_id", "role"],
            select(sa.bindparam("event_id", type_=sa.Integer), att.c.id, sa.bindparam("role", type_=sa.String)).where(
                att.c.id.in_(sa.bindparam("ids", expanding=True)),
                owner,
                ~select(earlier.c.attachment_id).where(earlier.c.attachment_id == att.c.id).exists(),
            ),
        )
        .returning(links.c.attachment_id)
    )


def _link_attachments(session: Session, ev: CaseEvent, ids: Sequence[int], role: str, actor: Actor) -> None:
    """Link the actor's own, still unused photos to the event in one statement; anything else refuses the action
    (the caller's transaction then stores nothing)."""
    if not ids:
        return
    linked = set(
        session.scalars(
            _link_statement(actor.user_id == 0),
            {"event_id": ev.id, "role": role, "owner": actor.user_id, "ids": list(ids)},
        )
    )
    if len(linked) != len(ids):
        _refuse_attachments(session, ids, actor)


def event_facts(session: Session, case_id: int) -> list[EventFact]:
    """The case's log reduced to what timing needs."""
    return _log_facts(session, case_id)[0]


_LOG_COLUMNS = (
    CaseEvent.seq,
    CaseEvent.action,
    CaseEvent.from_status,
    CaseEvent.to_status,
    CaseEvent.at,
    CaseEvent.data,
    CaseEvent.actor_id,
    CaseEvent.department_id,
)


def _fact_of(r: Any) -> EventFact:
    return EventFact(r.action, r.from_status, r.to_status, r.at, r.data or {}, r.actor_id, r.department_id)


def _log_facts(session: Session, case_id: int) -> tuple[list[EventFact], int]:
    """The case's log reduced to what timing needs, and the last sequence number (0 for none)."""
    rows = session.execute(select(*_LOG_COLUMNS).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)).all()
    return [_fact_of(r) for r in rows], (rows[-1].seq if rows else 0)


@functools.cache
def _case_with_log_statement(ref: str | None, dialect: str) -> sa.Select[Any]:
    """The statement of :func:`_case_with_log` (built once per reference kind and dialect; bound: ``case_id``
    and, with a reference, ``ref_id``)."""
    lock = _LOCK_EXPRESSIONS[dialect]
    q = (
        select(Case, *_LOG_COLUMNS, *((_reference_query(ref).label("ref"),) if ref else ()))
        .outerjoin(CaseEvent, CaseEvent.case_id == Case.id)
        .where(Case.id == sa.bindparam("case_id"))
        .order_by(CaseEvent.seq)
    )
    return q if lock is None else q.add_columns(lock)


_LOCK_EXPRESSIONS: dict[str, sa.ColumnElement[Any] | None] = {}


def _case_with_log(
    session: Session, case_id: int, ref: tuple[str, int] | None = None
) -> tuple[Case | None, list[EventFact], int, int | None]:
    """The case, its log's timing facts, its last sequence number and the id of the row ``ref`` names (None
    when there is none, or no such active row), in one statement.

    On PostgreSQL the same statement takes the advisory lock that orders event commits (see ``_order_events``).
    """
    dialect = spatial.dialect(session)
    if dialect not in _LOCK_EXPRESSIONS:
        _LOCK_EXPRESSIONS[dialect] = spatial.xact_lock(session, EVENT_ORDER_LOCK)
    params: dict[str, Any] = {"case_id": case_id}
    if ref is not None:
        params["ref_id"] = ref[1]
    rows = session.execute(_case_with_log_statement(ref[0] if ref else None, dialect), params).all()
    if not rows:
        return None, [], 0, None
    facts = [_fact_of(r) for r in rows if r.seq is not None]
    return rows[0][0], facts, (rows[-1].seq or 0), (rows[0].ref if ref is not None else None)


def _limit(rules: CaseRules, case: Case, stage: Stage) -> tuple[float, str] | None:
    std = rules.standards.lookup(case.class_code, case.urgency)
    lim = std.limit(stage.value)
    return None if lim is None else (lim[0], str(lim[1]))


def run_clock(
    rules: CaseRules, case: Case, run: StageRun, now: dt.datetime, *, share: float = 1.0
) -> deadlines.Clock | None:
    """The deadline clock of one stage run (None when the class has no limit for the stage).

    With ``share`` < 1 the clock runs against that share of the limit (and of the extensions), so its
    ``deadline`` is the instant the stage turns yellow.
    """
    lim = _limit(rules, case, run.stage)
    if lim is None:
        return None
    value, unit = lim
    ext = sum(deadlines.convert_extension(rules.calendar, v, u, stage_unit=unit) for v, u in run.extensions)
    return deadlines.stage_clock(
        rules.calendar,
        start=run.started_at,
        value=value * share,
        unit=deadlines.LimitUnit(unit),
        now=now,
        pauses=[deadlines.Pause(s, e) for s, e in run.pauses],
        extension_seconds=ext * share,
        end=run.ended_at,
        yellow_at=YELLOW_AT,
    )


YELLOW_AT = 0.8  # the share of a limit after which a stage turns yellow


def _set_cache(case: Case, rules: CaseRules, runs: Sequence[StageRun], now: dt.datetime) -> None:
    """Cache the open stage and its deadline and yellow instant on the case, from its stage runs."""
    open_run = runs[-1] if runs and runs[-1].ended_at is None else None
    if open_run is None:
        case.stage, case.stage_started_at, case.deadline_at, case.warn_at = None, None, None, None
        return
    clock = run_clock(rules, case, open_run, now)
    case.stage = open_run.stage.value
    case.stage_started_at = open_run.started_at
    case.deadline_at = clock.deadline if clock else None
    warn = run_clock(rules, case, open_run, now, share=YELLOW_AT)
    case.warn_at = warn.deadline if warn else None


def light_of(case: Case, now: dt.datetime) -> str:
    """The traffic light of the case's current stage from its cached clock (exact in working time)."""
    return light_from(stage=case.stage, status=case.status, deadline_at=case.deadline_at, warn_at=case.warn_at, now=now)


def light_from(
    *,
    stage: str | None,
    status: CaseStatus,
    deadline_at: dt.datetime | None,
    warn_at: dt.datetime | None,
    now: dt.datetime,
) -> str:
    """The traffic light from a case's cached clock columns (for callers holding rows, not entities)."""
    if stage is None:
        return "none"
    if deadline_at is None:
        return "paused" if status is CaseStatus.SUSPENDED else "none"
    if deadline_at < now:
        return "red"
    if warn_at is not None and warn_at <= now:
        return "yellow"
    return "green"


def create_case(
    session: Session,
    *,
    actor: Actor,
    action: CaseAction,
    new: NewCase,
    inp: ActionInput = ActionInput(),
    rules: CaseRules | None = None,
    at: dt.datetime | None = None,
    located: components_service.Located | None = None,
) -> Case:
    """Take in a report as a new case, without subscribers (the app goes through its :class:`CasePipeline`)."""
    return open_case(session, actor=actor, action=action, new=new, inp=inp, rules=rules, at=at, located=located).case


def open_case(
    session: Session,
    *,
    actor: Actor,
    action: CaseAction,
    new: NewCase,
    inp: ActionInput = ActionInput(),
    rules: CaseRules | None = None,
    at: dt.datetime | None = None,
    located: components_service.Located | None = None,
) -> CaseChange:
    """Take in a report (inspector report, public report, or self-handled) as a new case; returns the change.

    ``located`` is where ``new``'s point lies (:func:`components.service.locate_point`) when the caller has
    located it already, e.g. in a check before photo work; the point is then not looked up again.
    """
    rules = rules or load_rules()
    at = at or utcnow()
    if action not in lifecycle.CREATING_ACTIONS:
        raise InvalidInput(f"{action} does not create a case", code="case.not_a_report", loc=["action"])
    row = lifecycle.check_transition(actor, CaseFacts(status=CaseStatus.NEW), action, inp.given())
    cls = rules.catalog.get(new.class_code)
    if new.urgency not in ("normal", "urgent"):
        raise InvalidInput("urgency must be normal or urgent", code="case.bad_urgency", loc=["urgency"])
    grid_code = components_service.check_point_in_city(session, lon=new.lon, lat=new.lat, located=located)
    if new.component_id:
        components_service.check_component_for_case(session, component_id=new.component_id, class_code=cls.key)
    _check_attachments(session, inp.attachment_ids, actor)
    _order_events(session)
    case = Case(
        number=next_case_number(session, at=at, tz=rules.calendar.timezone),
        source=new.source or ("public" if action is CaseAction.PUBLIC_REPORT else "inspector"),
        class_code=cls.key,
        kind=cls.kind,
        urgency=new.urgency,
        status=row.target,
        lon=new.lon,
        lat=new.lat,
        geom=from_shape(Point(new.lon, new.lat), srid=4326),
        address=new.address,
        description=new.description,
        grid_code=grid_code,
        component_id=new.component_id,
        reporter_id=actor.user_id if actor.role is Role.INSPECTOR else None,
        created_at=at,
        updated_at=at,
    )
    data = dict(inp.data)
    log = (EventFact(action, CaseStatus.NEW, row.target, at, data, actor.user_id if actor.user_id > 0 else None, None),)
    runs = tuple(stage_runs(log))
    _set_cache(case, rules, runs, at)
    session.add(case)
    session.flush()
    if action is CaseAction.PUBLIC_REPORT and any(
        (new.reporter_name, new.reporter_phone, new.reporter_email, new.reporter_device_id)
    ):
        session.add(
            PublicReporter(
                case_id=case.id,
                name=new.reporter_name,
                phone=new.reporter_phone,
                email=new.reporter_email,
                device_id=new.reporter_device_id,
            )
        )
    ev = _new_event(
        case,
        seq=1,
        actor=actor,
        action=action,
        from_status=CaseStatus.NEW,
        to_status=row.target,
        at=at,
        inp=inp,
        data=data,
    )
    session.add(ev)
    session.flush()
    _link_attachments(
        session,
        ev,
        inp.attachment_ids,
        actor=actor,
        role="before" if action is not CaseAction.SELF_HANDLE else "evidence",
    )
    return CaseChange(case, ev, rules, log, runs, version=case.version)


def get_case(session: Session, case_id: int, *, actor: Actor, for_update: bool = False) -> Case:
    """A case the actor may see; 404 if there is none *or* the actor may not see it.

    A hidden case answers exactly like a missing one (same status, code and message), so that ids cannot be
    probed for existence (OWASP API1).
    """
    return _visible(session, session.get(Case, case_id, with_for_update=for_update or None), case_id, actor)


def _visible(session: Session, case: Case | None, case_id: int, actor: Actor) -> Case:
    if case is None or not lifecycle.can_view(
        actor, facts_of(case), has_merged_report=_has_merged_report(session, actor, case)
    ):
        raise CaseNotFound(f"case {case_id} not found", loc=["case_id"])
    return case


def visible_attachment(session: Session, attachment_id: int, *, actor: Actor) -> Attachment:
    """A photo the actor may see: one they uploaded, or one attached to an event of a case they may see.

    Anything else answers 404 ``attachment.not_found``, as a missing photo does (a photo belongs to its case).
    """
    att = session.get(Attachment, attachment_id)
    if att is not None and att.uploaded_by is not None and att.uploaded_by == actor.user_id:
        return att
    if att is not None:
        visible_ids = visible_cases(actor).with_only_columns(Case.id)
        linked = session.scalar(
            select(EventAttachment.attachment_id)
            .join(CaseEvent, CaseEvent.id == EventAttachment.event_id)
            .where(EventAttachment.attachment_id == attachment_id, CaseEvent.case_id.in_(visible_ids))
            .limit(1)
        )
        if linked is not None:
            return att
    raise NotFound(f"attachment {attachment_id} not found", code="attachment.not_found", loc=["attachment_id"])


def _has_merged_report(session: Session, actor: Actor, case: Case) -> bool:
    """Whether an inspector reported a case that was merged into ``case`` (they see its outcome)."""
    if actor.role is not Role.INSPECTOR or actor.user_id in (case.reporter_id, case.assigned_inspector_id):
        return False
    return (
        session.scalar(
            select(Case.id).where(Case.merged_into_id == case.id, Case.reporter_id == actor.user_id).limit(1)
        )
        is not None
    )


def apply_action(
    session: Session,
    *,
    case_id: int,
    actor: Actor,
    action: CaseAction,
    inp: ActionInput = ActionInput(),
    rules: CaseRules | None = None,
    at: dt.datetime | None = None,
) -> tuple[Case, CaseEvent]:
    """Judge and perform one action on a case, without subscribers (the app goes through its pipeline)."""
    change = perform_action(session, case_id=case_id, actor=actor, action=action, inp=inp, rules=rules, at=at)
    return change.case, change.event


def perform_action(
    session: Session,
    *,
    case_id: int,
    actor: Actor,
    action: CaseAction,
    inp: ActionInput = ActionInput(),
    rules: CaseRules | None = None,
    at: dt.datetime | None = None,
) -> CaseChange:
    """Judge and perform one action on a case, appending its event; returns the change. The only status writer."""
    rules = rules or load_rules()
    at = at or utcnow()
    if action in lifecycle.CREATING_ACTIONS and action is not CaseAction.SELF_HANDLE:
        raise InvalidInput(f"{action} creates a case; POST /cases instead", code="case.not_an_action", loc=["action"])
    ref = _reference(action, inp)
    loaded, facts, last_seq, found = _case_with_log(session, case_id, ref)
    case = _visible(session, loaded, case_id, actor)
    if inp.expected_version is not None and inp.expected_version != case.version:
        raise StaleCase(
            f"case {case.number} is at version {case.version}, not {inp.expected_version}",
            loc=["version"],
            extra={"current_version": case.version},
        )
    row = lifecycle.check_transition(actor, facts_of(case), action, inp.given())
    if action in ON_SITE_ACTIONS:
        on_site_distance(case, lon=inp.lon, lat=inp.lat, radius_m=rules.onsite_radius_m)
    _check_attachments(session, inp.attachment_ids, actor)
    from_status = case.status

    # The references the action names must exist; what it then does is data (casework.effects).
    extension: dict[str, Any] | None = None
    target_id: int | None = None
    if action is CaseAction.DISPATCH and (ref is None or found is None):
        raise InvalidInput(f"unknown department {inp.department_id}", code="department.unknown", loc=["department_id"])
    if action in (CaseAction.SEND_VERIFY, CaseAction.SEND_CHECK) and (ref is None or found is None):
        raise InvalidInput(
            f"user {inp.inspector_id} is not an active inspector", code="user.not_inspector", loc=["inspector_id"]
        )
    if action is CaseAction.REQUEST_EXTENSION:
        extension = _valid_extension(inp.extension, rules, case)
    elif action is CaseAction.APPROVE_EXTENSION:
        granted = inp.extension or effects.last_requested_extension(facts)
        extension = _valid_extension(granted, rules, case)
    elif action is CaseAction.MERGE:
        assert inp.target_case_id is not None
        target_id = _merge_target(session, case, inp.target_case_id, actor).id
    effect = effects.effect_of(
        facts_of(case),
        action,
        row.target,
        effects.EffectInput(
            department_id=inp.department_id,
            inspector_id=inp.inspector_id,
            target_case_id=target_id,
            extension=extension,
            data=inp.data,
        ),
    )
    for attr, value in effect.changes.items():
        setattr(case, attr, value)
    data = dict(effect.data)

    case.status = effect.target
    case.updated_at = at
    if effect.closes:
        case.closed_at = at
    ev = _new_event(
        case,
        seq=last_seq + 1,
        actor=actor,
        action=action,
        from_status=from_status,
        to_status=effect.target,
        at=at,
        inp=inp,
        data=data,
    )
    log = (*facts, EventFact(action, from_status, effect.target, at, data, ev.actor_id, case.department_id))
    runs = tuple(stage_runs(log))
    _set_cache(case, rules, runs, at)
    session.add(ev)
    try:
        # One flush: the case's UPDATE (version-checked) and the event's INSERT.
        session.flush()
    except StaleDataError as exc:
        raise StaleCase(f"case {case_id} was changed by someone else", loc=["version"]) from exc
    _link_attachments(
        session,
        ev,
        inp.attachment_ids,
        actor=actor,
        role="after" if action in (CaseAction.FEEDBACK, CaseAction.SELF_HANDLE) else "evidence",
    )
    if action is CaseAction.MERGE:
        _note_merge_on_target(session, case, ev, actor, at)
    return CaseChange(case, ev, rules, log, runs, previous_runs=tuple(stage_runs(facts)), version=case.version)


def _valid_extension(ext: dict[str, Any] | None, rules: CaseRules, case: Case) -> dict[str, Any]:
    if not isinstance(ext, dict):
        raise InvalidInput("extension must be {value, unit}", code="case.bad_extension", loc=["extension"])
    try:
        value = float(ext["value"])
        unit = deadlines.LimitUnit(ext["unit"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput("extension must be {value, unit}", code="case.bad_extension", loc=["extension"]) from exc
    if not 0 < value <= 10_000:
        raise InvalidInput("extension must be positive", code="case.bad_extension", loc=["extension", "value"])
    lim = _limit(rules, case, Stage.HANDLE)
    if lim is not None:
        # We refuse an extension in a unit that cannot be added to the handling limit (work vs wall time).
        deadlines.convert_extension(rules.calendar, value, unit, stage_unit=lim[1])
    return {"value": value, "unit": unit.value}


def last_requested_extension(session: Session, case_id: int) -> dict[str, Any] | None:
    """The extension last asked for on the case (None if none was ever asked)."""
    return _last_requested_extension(session, case_id)


def extension_units(rules: CaseRules, case: Case) -> list[str]:
    """The units an extension of this case's handling limit may be given in (work units with work units)."""
    lim = _limit(rules, case, Stage.HANDLE)
    units = list(deadlines.LimitUnit)
    if lim is None:
        return [u.value for u in units]
    stage_unit = deadlines.LimitUnit(lim[1])
    return [u.value for u in units if u.counts_working_time == stage_unit.counts_working_time]


def attachment_info(session: Session, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Each attachment's advisory flags and EXIF facts, for the case file."""
    if not ids:
        return {}
    rows = session.execute(
        select(Attachment.id, Attachment.flags, Attachment.taken_at, Attachment.exif_lon, Attachment.exif_lat).where(
            Attachment.id.in_(set(ids))
        )
    ).all()
    return {
        r.id: {
            "flags": list(r.flags or []),
            "taken_at": r.taken_at.isoformat() if r.taken_at else None,
            "exif_lon": r.exif_lon,
            "exif_lat": r.exif_lat,
        }
        for r in rows
    }


def _last_requested_extension(session: Session, case_id: int) -> dict[str, Any] | None:
    data = session.scalars(
        select(CaseEvent.data)
        .where(CaseEvent.case_id == case_id, CaseEvent.action == CaseAction.REQUEST_EXTENSION)
        .order_by(CaseEvent.seq.desc())
    ).first()
    return (data or {}).get("extension")


def _merge_target(session: Session, case: Case, target_id: int, actor: Actor) -> Case:
    if target_id == case.id:
        raise InvalidInput("a case cannot be merged into itself", code="case.merge_self", loc=["target_case_id"])
    target = session.get(Case, target_id)
    if target is None:
        raise InvalidInput(f"unknown case {target_id}", code="case.merge_unknown_target", loc=["target_case_id"])
    if target.status in lifecycle.TERMINAL and target.status is not CaseStatus.CLOSED:
        raise InvalidInput(
            "cannot merge into a voided or merged case", code="case.merge_target_ended", loc=["target_case_id"]
        )
    return target


def _note_merge_on_target(session: Session, merged: Case, ev: CaseEvent, actor: Actor, at: dt.datetime) -> None:
    # We record the merge on the target's log too, so its timeline shows the attached report.
    target = session.get(Case, merged.merged_into_id)
    assert target is not None
    seq = (session.scalar(select(sa.func.max(CaseEvent.seq)).where(CaseEvent.case_id == target.id)) or 0) + 1
    session.add(
        CaseEvent(
            case_id=target.id,
            seq=seq,
            action=CaseAction.MERGE,
            from_status=target.status,
            to_status=target.status,
            actor_id=actor.user_id,
            actor_role=actor.role,
            department_id=target.department_id,
            at=at,
            data={"merged_case_id": merged.id, "merged_case_number": merged.number},
        )
    )


@dataclass(frozen=True)
class CaseFilter:
    """Filters of the case list (every queue of the console is one of these)."""

    status: tuple[CaseStatus, ...] = ()
    department_id: int | None = None
    class_code: str | None = None
    grid_code: str | None = None
    overdue: bool | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    number: str | None = None
    # A district (6 digits), street (9), community (12) or grid (15) code: cases whose grid lies inside it
    # (grid codes begin with their community's code, GB/T 30428).
    area_code: str | None = None
    light: tuple[str, ...] = ()  # red | yellow | green | paused | none
    q: str | None = None  # free text over number, description and address
    class_codes: tuple[str, ...] = ()


CASE_SORTS = ("overdue", "deadline", "-deadline", "created", "-created")
"""Queue orders: most overdue first (default), by deadline either way, by reported time either way."""


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _light_clause(light: str, now: dt.datetime) -> sa.ColumnElement[bool]:
    timed = sa.and_(Case.stage.is_not(None), Case.deadline_at.is_not(None))
    if light == "red":
        return sa.and_(timed, Case.deadline_at < now)
    if light == "yellow":
        return sa.and_(timed, Case.deadline_at >= now, Case.warn_at.is_not(None), Case.warn_at <= now)
    if light == "green":
        return sa.and_(timed, Case.deadline_at >= now, sa.or_(Case.warn_at.is_(None), Case.warn_at > now))
    if light == "paused":
        return sa.and_(Case.stage.is_not(None), Case.deadline_at.is_(None), Case.status == CaseStatus.SUSPENDED)
    if light == "none":
        return sa.or_(Case.stage.is_(None), sa.and_(Case.deadline_at.is_(None), Case.status != CaseStatus.SUSPENDED))
    raise InvalidInput(f"unknown light {light}", code="case.bad_light", loc=["query", "light"])


def _order(sort: str, now: dt.datetime) -> list[Any]:
    no_deadline_last = sa.case((Case.deadline_at.is_(None), 1), else_=0)
    if sort == "overdue":
        severity = sa.case(
            (sa.and_(Case.deadline_at.is_not(None), Case.deadline_at < now), 0),
            (sa.and_(Case.warn_at.is_not(None), Case.warn_at <= now), 1),
            (Case.deadline_at.is_not(None), 2),
            else_=3,
        )
        return [severity, Case.deadline_at.asc(), Case.created_at.asc(), Case.id.asc()]
    if sort == "deadline":
        return [no_deadline_last, Case.deadline_at.asc(), Case.id.asc()]
    if sort == "-deadline":
        return [no_deadline_last, Case.deadline_at.desc(), Case.id.desc()]
    if sort == "created":
        return [Case.created_at.asc(), Case.id.asc()]
    if sort == "-created":
        return [Case.created_at.desc(), Case.id.desc()]
    raise InvalidInput(
        f"unknown sort {sort}; use one of {', '.join(CASE_SORTS)}", code="case.bad_sort", loc=["query", "sort"]
    )


def visible_cases(actor: Actor) -> sa.Select[tuple[Case]]:
    """A select of the cases the actor may see."""
    q = select(Case)
    if actor.role is Role.DEPARTMENT:
        q = q.where(Case.department_id == actor.department_id)
    elif actor.role is Role.INSPECTOR:
        report = aliased(Case)  # the inspector's own reports that were merged into other cases
        merged_into = select(report.merged_into_id).where(
            report.reporter_id == actor.user_id, report.merged_into_id.is_not(None)
        )
        q = q.where(
            sa.or_(
                Case.reporter_id == actor.user_id, Case.assigned_inspector_id == actor.user_id, Case.id.in_(merged_into)
            )
        )
    return q


def filtered_cases(actor: Actor, flt: CaseFilter, *, session: Session, now: dt.datetime) -> sa.Select[tuple[Case]]:
    """The visible cases matching the filter (unordered)."""
    q = visible_cases(actor)
    if flt.status:
        q = q.where(Case.status.in_(flt.status))
    if flt.department_id is not None:
        q = q.where(Case.department_id == flt.department_id)
    if flt.class_code:
        q = q.where(Case.class_code == flt.class_code)
    if flt.class_codes:
        q = q.where(Case.class_code.in_(flt.class_codes))
    if flt.grid_code:
        q = q.where(Case.grid_code == flt.grid_code)
    if flt.area_code:
        q = q.where(Case.grid_code.like(_like_escape(flt.area_code) + "%", escape="\\"))
    if flt.number:
        q = q.where(Case.number == flt.number)
    if flt.overdue is not None:
        overdue = sa.and_(Case.deadline_at.is_not(None), Case.deadline_at < now)
        q = q.where(overdue if flt.overdue else sa.not_(overdue))
    if flt.light:
        q = q.where(sa.or_(*(_light_clause(x, now) for x in flt.light)))
    if flt.created_from:
        q = q.where(Case.created_at >= flt.created_from)
    if flt.created_to:
        q = q.where(Case.created_at < flt.created_to)
    if flt.bbox:
        q = q.where(components_service.bbox_clause(session, Case.geom, flt.bbox))
    if flt.q and flt.q.strip():
        pattern = "%" + _like_escape(flt.q.strip()) + "%"
        q = q.where(
            sa.or_(
                Case.number.ilike(pattern, escape="\\"),
                Case.description.ilike(pattern, escape="\\"),
                Case.address.ilike(pattern, escape="\\"),
            )
        )
    return q


def list_cases(
    session: Session,
    *,
    actor: Actor,
    flt: CaseFilter,
    offset: int = 0,
    limit: int = 50,
    now: dt.datetime | None = None,
    sort: str | None = None,
) -> tuple[list[Case], int]:
    """A page of visible cases matching the filter and the total count.

    Without ``sort`` the order is newest first (the historic default of the API); the console's queues
    ask for ``overdue`` (most overdue first).
    """
    now = now or utcnow()
    q = filtered_cases(actor, flt, session=session, now=now)
    order = _order(sort, now) if sort else [Case.id.desc()]
    total = session.scalar(select(sa.func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(*order).offset(offset).limit(limit)).all()
    return list(rows), total


def case_events(session: Session, case_id: int) -> list[tuple[CaseEvent, list[tuple[int, str]]]]:
    """The case's log with each event's attachments (id, role)."""
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)).all()
    links = session.execute(
        select(EventAttachment.event_id, EventAttachment.attachment_id, EventAttachment.role)
        .where(EventAttachment.event_id.in_([e.id for e in events]))
        .order_by(EventAttachment.attachment_id)
    ).all()
    by_event: dict[int, list[tuple[int, str]]] = {}
    for eid, aid, role in links:
        by_event.setdefault(eid, []).append((aid, role))
    return [(e, by_event.get(e.id, [])) for e in events]


@dataclass(frozen=True)
class StageClockView:
    """A stage run with its clock, for the API."""

    run: StageRun
    clock: deadlines.Clock | None


def case_clocks(
    session: Session,
    case: Case,
    *,
    rules: CaseRules | None = None,
    now: dt.datetime | None = None,
    runs: Sequence[StageRun] | None = None,
) -> list[StageClockView]:
    """Every stage run of the case with its deadline and traffic light (``runs``: already derived, e.g. by
    the change that was just made; else derived from the log)."""
    rules = rules or load_rules()
    now = now or utcnow()
    if runs is None:
        runs = stage_runs(event_facts(session, case.id))
    return [StageClockView(r, run_clock(rules, case, r, now)) for r in runs]
