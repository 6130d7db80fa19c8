"""Replay a case history from another 数字城管 system (迁移): ``gridcity cases import FILE``.

The file is JSON Lines, one event per line, e.g.::

    {"case": "C01012019041101", "action": "report", "actor": "jdy01", "at": "2026-03-02T09:10:00+08:00",
     "class": "C0101", "location": {"lon": 107.14, "lat": 34.37}, "note": "井盖破损"}
    {"case": "C01012019041101", "action": "file", "actor": "shiftlead", "at": "2026-03-02T09:30:00+08:00"}
    {"case": "C01012019041101", "action": "dispatch", "actor": "dispatcher", "at": "2026-03-02T10:00:00+08:00",
     "department": "water"}

Fields: ``case`` (the case's key in the old system, ≤ 64 characters), ``action`` (a
:class:`casework.lifecycle.CaseAction`), ``actor`` (a login; null only together with ``"role"`` for an
action of the system, e.g. an automatic dispatch), ``at`` (ISO 8601 *with* a zone offset), and as the action
needs them: ``department`` (department code, 派遣), ``inspector`` (login, 发核实 / 发核查), ``class`` and
``location`` {lon, lat} (the creating event; optional ``urgency``, ``address``, ``description``,
``component``), ``note``, ``extension`` {value, unit} (延期), ``evidence`` (references to the photos in the
old system, kept in the event's data; they stand for the photos that 反馈 and 自处理 need), or
``attachments`` (ids of photos already stored here).

Every case's events go, in time order and with their original times, **through the transition table**
(:func:`casework.lifecycle.check_transition`: role, scope, source status, needed input) with the same effects
as :func:`casework.service.apply_action`, so every status, deadline and evaluation fact is derived exactly as
if the events had happened live. Any error anywhere refuses all of the file with a list of line-numbered
errors (:class:`ImportRefused`) and stores nothing; else everything is stored in the caller's transaction. The
cases are replayed in the order of their first event and written in batches of bulk statements while no error
has been found, inside a savepoint that a refusal rolls back, so that memory holds the parsed lines and a
batch of replays, not every replay. The parsing and replay run in a forked child process while this one
writes the batches it sends (:func:`_import_in_child`). A case key already imported is skipped (idempotent).
The evaluation facts of the imported cases are the caller's ``after`` hooks (evaluation sits above casework).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import multiprocessing
import operator
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import shapely
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import deadlines, lifecycle, timeline
from casework import service as casework_service
from casework.lifecycle import Actor, CaseAction, CaseFacts, CaseStatus, Need
from casework.models import EVENT_ORDER_LOCK, Attachment, Case, CaseCounter, CaseEvent, CaseLegacyKey, EventAttachment
from casework.rules import CaseRules, load_rules
from components import service as components_service
from gridcity import spatial
from gridcity.errors import GridCityError, InvalidInput
from gridcity.org import Department, User
from gridcity.roles import Role

A = CaseAction
S = CaseStatus
Echo = Callable[[str], Any]
MAX_ERRORS = 200
BATCH_CASES = 1000  # cases written per batch (bulk statements), and freed once written
BATCH_LOCATE = 100  # from this many new cases on, locate their points in memory (one read of the grids)
KEY_MAX = 64
_FIELDS = frozenset(
    {
        "case",
        "action",
        "actor",
        "role",
        "at",
        "department",
        "inspector",
        "class",
        "location",
        "urgency",
        "address",
        "description",
        "component",
        "note",
        "extension",
        "evidence",
        "attachments",
        "source",
    }
)
_EVENT_COLUMNS = (
    "case_id",
    "seq",
    "action",
    "from_status",
    "to_status",
    "actor_id",
    "actor_role",
    "department_id",
    "at",
    "lon",
    "lat",
    "note",
    "data",
)


class ImportRefused(InvalidInput):
    """The file was refused as a whole; ``errors`` lists ``{"line", "type", "loc", "msg"}``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        first = errors[0]
        super().__init__(
            f"line {first['line']}: {first['msg']} ({len(errors)} error(s); nothing imported)",
            code="import.refused",
            loc=["file"],
            extra={"errors": errors},
        )
        self.errors = errors


@dataclass(slots=True)
class Line:
    """One parsed line of the file; ``raw`` without the fields held here (case, action, at)."""

    no: int
    raw: dict[str, Any]
    key: str
    action: CaseAction
    at: dt.datetime


@dataclass(slots=True)
class _Replay:
    """A case being replayed: the case row and its events (as written)."""

    key: str
    row: dict[str, Any]
    status: CaseStatus = S.NEW
    dept: int | None = None
    reporter: int | None = None
    assigned: int | None = None
    last_extension: dict[str, Any] | None = None
    events: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[int, int, str]] = field(default_factory=list)  # (seq, attachment id, role)
    case_id: int | None = None  # once written


@dataclass(frozen=True)
class ImportedCase:
    """A written case as the replay knows it, for the ``after`` callback (the facts) without re-reading it.

    ``events`` are the rows written to ``case_event`` in ``seq`` order, as tuples in ``EVENT_FIELDS`` order.
    """

    id: int
    class_code: str
    urgency: str
    grid_code: str | None
    events: Sequence[tuple[Any, ...]]


_CASE_COLUMNS = tuple(c.name for c in Case.__table__.c if c.name not in ("id", "geom"))
"""The columns of an imported case row (all but ``id`` and ``geom``), as :func:`_finish` leaves them."""

EVENT_FIELDS = _EVENT_COLUMNS[1:]  # an ImportedCase's event tuples (without case_id)
_LIFECYCLE_FIELDS = operator.itemgetter(
    *(EVENT_FIELDS.index(k) for k in ("action", "from_status", "to_status", "at", "data"))
)  # an event tuple's fields in the order of timeline.EventFact


def imported_cases(replays: Sequence[_Replay]) -> list[ImportedCase]:
    """A batch of cases, with the ids they are written with."""
    return [
        ImportedCase(rp.case_id or 0, rp.row["class_code"], rp.row["urgency"], rp.row["grid_code"], rp.events)
        for rp in replays
    ]


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    cases: int
    events: int
    skipped_cases: int
    case_ids: tuple[int, ...]
    seconds: float
    replay_seconds: float = 0.0
    """This process's time outside the writes: parsing, and replaying or (a big import, whose replay runs in a
    child process) waiting for the next batch."""
    write_seconds: float = 0.0
    """Writing the cases, their events and keys."""
    after_seconds: float = 0.0
    """Storing what the ``after`` hooks derived (the evaluation facts), and their ``finished``."""


@contextlib.contextmanager
def gc_paused() -> Generator[None, None, None]:
    """Hold off Python's cycle collector while a whole file is replayed, written and judged (nestable).

    An import keeps every line, replay and row alive until it is written, and makes a few objects per event:
    the collector would walk that growing heap again and again (in the profile of a 1,000-case import its
    passes showed up as time charged to trivial calls in the replay) to find next to nothing (a few dozen
    objects in cycles for 8,000 events). Reference counting still frees everything else; the collector runs
    as before afterwards.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Number the non-blank lines of a file (1-based)."""
    for no, text in enumerate(lines, start=1):
        if text.strip():
            yield no, text


def _err(errors: list[dict[str, Any]], line: int, code: str, msg: str, *loc: Any) -> None:
    if len(errors) < MAX_ERRORS:
        errors.append({"line": line, "type": code, "loc": ["line", line, *loc], "msg": msg})


_ACTIONS = {a.value: a for a in CaseAction}  # a dict lookup: the enum's own call costs ~1 µs a line
_HELD = frozenset({"case", "action", "at"})  # parsed into the Line itself
_SHARED = ("actor", "role", "inspector", "department", "class", "urgency", "source")  # few distinct values


def _parse(numbered: Iterable[tuple[int, str | Mapping[str, Any]]], errors: list[dict[str, Any]]) -> list[Line]:
    """Parse and check each line on its own. Every line is held until its case is replayed, so a line keeps
    only what the replay reads: ``raw`` without the fields parsed into the Line, and one string object per
    distinct case key, login, code or class (a ten-year file repeats them millions of times)."""
    out: list[Line] = []
    shared: dict[str, str] = {}
    for no, text in numbered:
        if isinstance(text, Mapping):
            raw: Any = dict(text)
        else:
            try:
                raw = json.loads(text)
            except ValueError as exc:
                _err(errors, no, "import.bad_json", f"not a JSON object: {exc}")
                continue
        if not isinstance(raw, dict):
            _err(errors, no, "import.bad_json", "each line must be a JSON object")
            continue
        if not _FIELDS.issuperset(raw):
            unknown = sorted(set(raw) - _FIELDS)
            _err(errors, no, "import.unknown_field", f"unknown field {unknown[0]!r}", unknown[0])
            continue
        key = raw.get("case")
        if not isinstance(key, str) or not key.strip() or len(key) > KEY_MAX or "\x00" in key:
            _err(errors, no, "import.bad_case_key", f"case must be a key of 1–{KEY_MAX} characters", "case")
            continue
        name = raw.get("action")
        action = _ACTIONS.get(name) if name.__class__ is str else None
        if action is None:
            _err(errors, no, "import.unknown_action", f"unknown action {name!r}", "action")
            continue
        at_raw = raw.get("at")
        try:
            at = dt.datetime.fromisoformat(at_raw) if isinstance(at_raw, str) else None
        except ValueError:
            at = None
        if at is None:
            _err(errors, no, "import.bad_time", "at must be an ISO 8601 time with its zone", "at")
            continue
        if at.tzinfo is None:
            _err(errors, no, "import.time_without_zone", "at has no zone offset (e.g. +08:00)", "at")
            continue
        key = key.strip()
        rest = {k: v for k, v in raw.items() if k not in _HELD}
        for k in _SHARED:
            v = rest.get(k)
            if v.__class__ is str:
                rest[k] = shared.setdefault(v, v)
        out.append(Line(no, rest, shared.setdefault(key, key), action, at.astimezone(dt.UTC)))
    return out


@dataclass(slots=True)
class _Needs:
    """What the replay asks of the database, from the parsed file."""

    logins: set[str]
    codes: set[str]
    attachments: set[int]
    keys: set[str]
    points: list[tuple[float, float]]  # of each case's first line


@dataclass(slots=True)
class _Known:
    """The database's answer to :class:`_Needs`, and what the rows of the new cases start from."""

    users: dict[str, Actor]
    depts: dict[str, int]
    attachments: set[int]
    existing: set[str]
    located: dict[tuple[float, float], Any] | None  # None: few cases, each point is looked up in the database
    counters: dict[int, int]
    ids: list[int]  # reserved for the new cases


def _number(v: Any) -> bool:
    """A JSON number (``true`` is not one)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def _needs(lines: Sequence[Line], by_case: Mapping[str, Sequence[Line]]) -> _Needs:
    return _Needs(
        logins={str(v) for ln in lines for k in ("actor", "inspector") if isinstance(v := ln.raw.get(k), str)},
        codes={str(v) for ln in lines if isinstance(v := ln.raw.get("department"), str)},
        attachments={int(a) for ln in lines for a in (ln.raw.get("attachments") or []) if isinstance(a, int)},
        keys=set(by_case),
        points=sorted(
            {
                (float(loc["lon"]), float(loc["lat"]))
                for evs in by_case.values()
                if isinstance(loc := evs[0].raw.get("location"), dict)
                and _number(loc.get("lon"))
                and _number(loc.get("lat"))
            }
        ),
    )


def _answer(session: Session, needs: _Needs, *, locate: bool) -> _Known:
    """Look up what the replay needs; reserve the ids of the new cases. ``locate``: locate every point in
    memory (one read of the grids) even for a few cases."""
    users: dict[str, Actor] = {}
    for chunk in _chunks(sorted(needs.logins), 900):
        users.update(
            {
                u.username: casework_service.actor_of(u)
                for u in session.scalars(select(User).where(User.username.in_(chunk)))
            }
        )
    depts: dict[str, int] = {}
    for chunk in _chunks(sorted(needs.codes), 900):
        rows = session.execute(select(Department.code, Department.id).where(Department.code.in_(chunk)))
        depts.update(dict(rows.all()))
    found: set[int] = set()
    for chunk in _chunks(sorted(needs.attachments), 900):
        found.update(session.scalars(select(Attachment.id).where(Attachment.id.in_(chunk))))
    existing: set[str] = set()
    for chunk in _chunks(sorted(needs.keys), 900):
        existing.update(session.scalars(select(CaseLegacyKey.key).where(CaseLegacyKey.key.in_(chunk))))
    new = len(needs.keys) - len(existing)
    located = None
    if locate or new >= BATCH_LOCATE:  # many cases: read the grids once instead of one spatial query a case
        located = dict(zip(needs.points, components_service.locate_points(session, needs.points), strict=True))
    counters = dict(session.execute(select(CaseCounter.year, CaseCounter.value)).all())
    return _Known(users, depts, found, existing, located, counters, spatial.reserve_ids(session, Case.__table__, new))


def _chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class _LineError(Exception):
    def __init__(self, code: str, msg: str, *loc: Any) -> None:
        super().__init__(msg)
        self.code, self.msg, self.loc = code, msg, loc


def _location(raw: Any, *, required: bool) -> tuple[float | None, float | None]:
    if raw is None and not required:
        return None, None
    if not isinstance(raw, dict):
        raise _LineError("import.bad_location", "location must be {lon, lat}", "location")
    lon, lat = raw.get("lon"), raw.get("lat")
    if not (_number(lon) and _number(lat)) or not (-180 <= lon <= 180 and -90 <= lat <= 90):  # type: ignore[operator]
        raise _LineError("import.bad_location", "location needs numeric lon (±180) and lat (±90)", "location")
    return float(lon), float(lat)  # type: ignore[arg-type]


class _Importer:
    def __init__(
        self,
        session: Session | None,
        rules: CaseRules,
        known: _Known,
    ) -> None:
        self.session = session  # None: every point is located in memory (known.located)
        self.rules = rules
        self.users = known.users
        self.depts = known.depts
        self.attachments = known.attachments
        self.located = known.located or {}

    def actor(self, ln: Line) -> Actor:
        login = ln.raw.get("actor")
        if login is None:
            try:
                role = Role(ln.raw.get("role"))
            except ValueError:
                raise _LineError(
                    "import.unknown_actor", "actor is missing (null needs a role: the system)", "actor"
                ) from None
            return Actor(user_id=0, role=role)
        if not isinstance(login, str):
            raise _LineError("import.unknown_actor", f"unknown actor {login!r}", "actor")
        actor = self.users.get(login)
        if actor is None:
            raise _LineError("import.unknown_actor", f"unknown actor {login!r}", "actor")
        return actor

    def start(self, ln: Line) -> _Replay:
        """The case row of a creating event (validated)."""
        raw = ln.raw
        if ln.action not in lifecycle.CREATING_ACTIONS:
            raise _LineError(
                "import.no_creating_event",
                f"a case starts with report, public_report or self_handle, not {ln.action}",
                "action",
            )
        try:
            cls = self.rules.catalog.get(str(raw.get("class") or ""), loc=["class"])
        except InvalidInput as exc:
            raise _LineError(exc.code, exc.message, "class") from None
        urgency = raw.get("urgency", "normal")
        if urgency not in ("normal", "urgent"):
            raise _LineError("case.bad_urgency", "urgency must be normal or urgent", "urgency")
        lon, lat = _location(raw.get("location"), required=True)
        located = self.located.get((lon, lat))  # type: ignore[arg-type]
        if located is not None:
            if not located.inside_city:
                raise _LineError("geo.outside_city", f"the point ({lon}, {lat}) is outside the city", "location")
            grid = located.grid_code
        else:
            assert self.session is not None, "a replay without the database has every point located"
            try:
                grid = components_service.check_point_in_city(self.session, lon=lon, lat=lat)  # type: ignore[arg-type]
            except InvalidInput as exc:
                raise _LineError(exc.code, exc.message, "location") from None
        for name, limit in (("address", 256), ("component", 17), ("source", 20)):
            v = raw.get(name)
            if v is not None and (not isinstance(v, str) or len(v) > limit):
                raise _LineError("import.bad_field", f"{name} must be text of at most {limit} characters", name)
        source = raw.get("source") or ("public" if ln.action is A.PUBLIC_REPORT else "inspector")
        row = {
            "source": source,
            "class_code": cls.key,
            "kind": cls.kind,
            "urgency": urgency,
            "lon": lon,
            "lat": lat,
            "address": raw.get("address"),
            "description": raw.get("description"),
            "grid_code": grid,
            "component_id": raw.get("component"),
            "merged_into_id": None,
            "created_at": ln.at,
        }
        return _Replay(ln.key, row)

    def step(self, rp: _Replay, ln: Line) -> None:
        """Judge one event with the transition table and apply apply_action's effects to the replay."""
        raw = ln.raw
        actor = self.actor(ln)
        if ln.action is A.MERGE:
            raise _LineError("import.unsupported_action", "merge cannot be imported; import both cases", "action")
        if ln.action in lifecycle.CREATING_ACTIONS and rp.events and ln.action is not A.SELF_HANDLE:
            raise _LineError("import.duplicate_creation", f"{ln.action} again for case {ln.key!r}", "action")
        note = raw.get("note")
        if note is not None and not isinstance(note, str):
            raise _LineError("import.bad_field", "note must be text", "note")
        evidence = raw.get("evidence") or []
        atts = raw.get("attachments") or []
        if not isinstance(evidence, list) or not all(isinstance(x, str) and len(x) <= 500 for x in evidence):
            raise _LineError("import.bad_field", "evidence must be a list of references (text)", "evidence")
        if not isinstance(atts, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in atts):
            raise _LineError("import.bad_field", "attachments must be a list of photo ids", "attachments")
        for i, a in enumerate(atts):
            if a not in self.attachments:
                raise _LineError("attachment.unknown", f"unknown attachment {a}", "attachments", i)
        dept_code = raw.get("department")
        dept = None
        if dept_code is not None:
            dept = self.depts.get(dept_code) if isinstance(dept_code, str) else None
            if dept is None:
                raise _LineError("department.not_found", f"unknown department {dept_code!r}", "department")
        insp_login = raw.get("inspector")
        insp = None
        if insp_login is not None:
            insp = self.users.get(insp_login) if isinstance(insp_login, str) else None
            if insp is None or insp.role is not Role.INSPECTOR:
                raise _LineError("user.not_inspector", f"{insp_login!r} is not an inspector", "inspector")
        ext = raw.get("extension")
        given = {
            n
            for n, ok in (
                (Need.DEPARTMENT, dept is not None),
                (Need.INSPECTOR, insp is not None),
                (Need.ATTACHMENT, bool(evidence or atts)),
                (Need.NOTE, bool(note and note.strip())),
                (Need.EXTENSION, ext is not None),
                (Need.TARGET_CASE, False),
            )
            if ok
        }
        facts = CaseFacts(
            status=rp.status, department_id=rp.dept, reporter_id=rp.reporter, assigned_inspector_id=rp.assigned
        )
        try:
            row = lifecycle.check_transition(actor, facts, ln.action, frozenset(given))
        except GridCityError as exc:
            raise _LineError(exc.code, exc.message, "action") from None
        data: dict[str, Any] = {}
        if evidence:
            data["legacy_evidence"] = list(evidence)
        if ln.action is A.DISPATCH:
            assert dept is not None
            rp.dept = dept
            data["department_id"] = dept
        elif ln.action is A.APPROVE_SENDBACK:
            data["from_department_id"] = rp.dept
            rp.dept = None
        elif ln.action in (A.SEND_VERIFY, A.SEND_CHECK):
            assert insp is not None
            rp.assigned = insp.user_id
            data["inspector_id"] = insp.user_id
        elif ln.action in (A.REQUEST_EXTENSION, A.APPROVE_EXTENSION):
            granted = ext if ext is not None else rp.last_extension
            data["extension"] = self.extension(granted, rp)
            rp.last_extension = data["extension"]
        elif ln.action is A.CHECK_FAIL:
            data["rework"] = True
        if rp.status is S.NEW and actor.role is Role.INSPECTOR:
            rp.reporter = actor.user_id
        lon, lat = _location(raw.get("location"), required=False) if rp.events else (rp.row["lon"], rp.row["lat"])
        if not rp.events and ln.action is A.PUBLIC_REPORT:
            lon, lat = None, None  # as create_case: the centre's registration has no position of its own
        seq = len(rp.events) + 1
        rp.events.append(
            (
                seq,
                ln.action,
                rp.status,
                row.target,
                actor.user_id or None,
                actor.role,
                rp.dept,
                ln.at,
                lon,
                lat,
                note,
                data,
            )
        )
        role = (
            "before"
            if seq == 1 and ln.action is not A.SELF_HANDLE
            else "after"
            if ln.action in (A.FEEDBACK, A.SELF_HANDLE)
            else "evidence"
        )
        rp.links += [(seq, a, role) for a in atts]
        rp.status = row.target

    def extension(self, ext: Any, rp: _Replay) -> dict[str, Any]:
        if not isinstance(ext, dict):
            raise _LineError("case.bad_extension", "extension must be {value, unit}", "extension")
        try:
            value = float(ext["value"])
            unit = deadlines.LimitUnit(ext["unit"])
        except (KeyError, ValueError, TypeError):
            raise _LineError("case.bad_extension", "extension must be {value, unit}", "extension") from None
        if not 0 < value <= 10_000:
            raise _LineError("case.bad_extension", "extension must be positive", "extension", "value")
        lim = self.rules.standards.lookup(rp.row["class_code"], rp.row["urgency"]).limit("handle")
        if lim is not None and unit.counts_working_time != lim.unit.counts_working_time:
            raise _LineError("deadline.unit_mismatch", "working and elapsed time do not mix", "extension", "unit")
        return {"value": value, "unit": unit.value}


def _finish(rules: CaseRules, rp: _Replay) -> None:
    """The cached columns of the case after its last event (as apply_action's cache)."""
    last = rp.events[-1]
    row = rp.row
    row.update(
        status=rp.status,
        version=len(rp.events),
        department_id=rp.dept,
        reporter_id=rp.reporter,
        assigned_inspector_id=rp.assigned,
        updated_at=last[7],
        closed_at=last[7] if rp.status is S.CLOSED else None,
        stage=None,
        stage_started_at=None,
        deadline_at=None,
        warn_at=None,
    )
    # the lifecycle facts of the log, made for this once (not held beside each event until the write)
    runs = timeline.stage_runs([timeline.EventFact(*_LIFECYCLE_FIELDS(e)) for e in rp.events])
    if runs and runs[-1].ended_at is None:
        run = runs[-1]
        probe = Case(class_code=row["class_code"], urgency=row["urgency"])
        clock = casework_service.run_clock(rules, probe, run, last[7])
        warn = casework_service.run_clock(rules, probe, run, last[7], share=casework_service.YELLOW_AT)
        row.update(
            stage=run.stage.value,
            stage_started_at=run.started_at,
            deadline_at=clock.deadline.astimezone(dt.UTC) if clock and clock.deadline else None,
            warn_at=warn.deadline.astimezone(dt.UTC) if warn and warn.deadline else None,
        )


class ImportHooks(Protocol):
    """What runs beside the import (evaluation sits above casework, so it is passed in: ``after``)."""

    def derive(self, cases: Sequence[ImportedCase]) -> Any:
        """What to store for a batch of cases about to be written (e.g. their evaluation facts), from the
        replay alone: it runs where the replay runs (a child process, beside the writing of the batch before),
        and must not touch the session."""

    def written(self, session: Session, derived: Any) -> Any:
        """Store what :meth:`derive` gave, once its batch of cases is written."""

    def finished(self, session: Session) -> Any:
        """Every batch was written (e.g. rebuild the rollup once)."""


@dataclass(slots=True)
class _Batch:
    """The rows of one batch of cases, made by the replay for the writer."""

    cases: list[tuple[Any, ...]]
    points: list[shapely.Point]
    events: list[tuple[Any, ...]]
    keys: list[tuple[str, int]]
    links: list[tuple[int, int, int, str]]  # (case id, seq, attachment id, role)
    derived: Any


class _Replayer:
    """The import's work that needs no database: parse the file (:meth:`parse`, which says what it needs to
    know), then, given the answer, replay the cases in order and make the rows of each batch (:meth:`run`).
    Cases are numbered and given their (reserved) ids in the order of their first event, then key."""

    def __init__(self, rules: CaseRules, after: ImportHooks | None, echo: Echo | None, batch: int) -> None:
        self.rules, self.after, self.echo, self.batch = rules, after, echo, batch
        self.errors: list[dict[str, Any]] = []
        self.by_case: dict[str, list[Line]] = {}
        self.counters: dict[int, int] = {}
        self.tz = ZoneInfo(rules.calendar.timezone)

    def parse(self, records: Iterable[tuple[int, str | Mapping[str, Any]]]) -> _Needs:
        lines = _parse(records, self.errors)
        if self.echo:
            self.echo(f"read {len(lines)} events")
        by_case = self.by_case
        for ln in lines:
            by_case.setdefault(ln.key, []).append(ln)
        return _needs(lines, by_case)

    def run(self, known: _Known, session: Session | None) -> Iterator[_Batch]:
        """The rows of each full batch, until the first error (then every other case is still judged, for the
        list of errors, but nothing more is made to be written)."""
        imp = _Importer(session, self.rules, known)
        by_case, errors, rules = self.by_case, self.errors, self.rules
        self.counters = dict(known.counters)
        ids = iter(known.ids)
        # a case whose times go backwards is refused anyway
        order = sorted((k for k in by_case if k not in known.existing), key=lambda k: (by_case[k][0].at, k))
        part: list[_Replay] = []
        for n, key in enumerate(order, start=1):
            rp = _replay(imp, key, by_case[key], errors)
            by_case[key] = []  # its lines are no longer needed (the replay holds what is written)
            if errors:
                part.clear()
            elif rp is not None:
                _finish(rules, rp)
                part.append(rp)
                if len(part) >= self.batch:
                    yield self.rows(part, ids)
                    part = []
            if self.echo and n % 10_000 == 0:
                self.echo(f"validated {n}/{len(order)} cases")
        if not errors and part:
            yield self.rows(part, ids)

    def rows(self, part: Sequence[_Replay], ids: Iterator[int]) -> _Batch:
        counters = self.counters
        for rp in part:
            year = rp.row["created_at"].astimezone(self.tz).year
            counters[year] = counters.get(year, 0) + 1
            rp.row["number"] = f"{year}-{counters[year]:06d}"
            rp.case_id = next(ids)
        return _Batch(
            cases=[(rp.case_id, *(rp.row[c] for c in _CASE_COLUMNS)) for rp in part],
            points=[shapely.Point(rp.row["lon"], rp.row["lat"]) for rp in part],
            events=[(rp.case_id, *ev) for rp in part for ev in rp.events],
            keys=[(rp.key, rp.case_id) for rp in part],  # type: ignore[misc]
            links=[(rp.case_id, seq, a, role) for rp in part for seq, a, role in rp.links],  # type: ignore[misc]
            derived=None if self.after is None else self.after.derive(imported_cases(part)),
        )


class _Writer:
    """Writes the batches the replay makes, and at the end the case-number counters."""

    def __init__(self, session: Session, after: ImportHooks | None, echo: Echo | None, known: _Known) -> None:
        self.session, self.after, self.echo = session, after, echo
        self.total = len(known.ids)
        self.start_counters = dict(known.counters)
        self.ids: list[int] = []
        self.events = 0
        self.write_s = self.after_s = 0.0

    def write(self, batch: _Batch) -> None:
        t0 = time.perf_counter()
        session = self.session
        # one bulk append (COPY on PostgreSQL), not an executemany: one statement, so the statement-level
        # triggers on "case" (the case tiles' revision) fire once per batch instead of once per case
        spatial.bulk_append(session, Case.__table__, ("id", *_CASE_COLUMNS), batch.cases, batch.points)
        spatial.bulk_append(session, CaseEvent.__table__, _EVENT_COLUMNS, batch.events)
        spatial.bulk_append(session, CaseLegacyKey.__table__, ("key", "case_id"), batch.keys)
        if batch.links:
            conn = session.connection()
            cids = sorted({x[0] for x in batch.links})
            ev_ids = {
                (c, s): i
                for i, c, s in conn.execute(
                    select(CaseEvent.id, CaseEvent.case_id, CaseEvent.seq).where(CaseEvent.case_id.in_(cids))
                )
            }
            conn.execute(
                sa.insert(EventAttachment),
                [{"event_id": ev_ids[(c, s)], "attachment_id": a, "role": r} for c, s, a, r in batch.links],
            )
        self.events += len(batch.events)
        self.ids += [row[0] for row in batch.cases]  # each case row starts with its id
        if self.echo:
            self.echo(f"imported {len(self.ids)}/{self.total} cases ({self.events} events)")
        t1 = time.perf_counter()
        self.write_s += t1 - t0
        if self.after is not None:
            self.after.written(session, batch.derived)
            self.after_s += time.perf_counter() - t1

    def close(self, counters: Mapping[int, int]) -> None:
        t0 = time.perf_counter()
        conn = self.session.connection()
        for year, value in sorted(counters.items()):
            if year in self.start_counters:
                if value != self.start_counters[year]:
                    conn.execute(sa.update(CaseCounter).where(CaseCounter.year == year).values(value=value))
            elif value:
                conn.execute(sa.insert(CaseCounter).values(year=year, value=value))
        t1 = time.perf_counter()
        self.write_s += t1 - t0
        if self.after is not None and self.ids:
            self.after.finished(self.session)
            self.after_s += time.perf_counter() - t1


_FORK = "fork" in multiprocessing.get_all_start_methods()


def import_records(
    session: Session,
    records: Iterable[tuple[int, str | Mapping[str, Any]]],
    *,
    rules: CaseRules | None = None,
    echo: Echo | None = None,
    after: ImportHooks | None = None,
    batch: int = BATCH_CASES,
    in_child: bool | None = None,
) -> ImportResult:
    """Validate every case and write it, or refuse the whole file and write nothing.

    ``records`` are ``(line number, JSON text or already-parsed object)``. The cases are replayed in the
    order of their first event and written in batches of ``batch`` cases as long as no error has been found,
    inside a savepoint of the caller's transaction: any error anywhere rolls the savepoint back, so a refusal
    leaves nothing behind (the caller's transaction stays usable), and a replayed case is freed once it is
    written. ``after.derive`` makes what the hooks store for a batch (e.g. the evaluation facts) from what the
    replay knows of each case (:class:`ImportedCase`), so nothing is read back; ``after.written`` stores it
    once the batch is written, ``after.finished`` runs once at the end.

    ``in_child`` (default: where the platform forks): parse and replay in a forked child process, which
    asks this one for what it needs from the database and sends it the rows of each batch, so that the
    replay of one batch and the write of the one before run at once, on two CPUs.

    Raises:
        ImportRefused: ``import.refused`` with the line-numbered errors (up to ``MAX_ERRORS``).
    """
    rules = rules or load_rules()
    t0 = time.perf_counter()
    # One case_event writer at a time (PostgreSQL): taken before anything is read, so the events commit in id
    # order with the live ones, and a concurrent import of the same file finds this one's keys and skips them.
    spatial.transaction_lock(session, EVENT_ORDER_LOCK)
    replayer = _Replayer(rules, after, echo, batch)
    run = _import_in_child if (_FORK if in_child is None else in_child) else _import_here
    with gc_paused():
        savepoint = session.begin_nested()
        try:
            writer, skipped = run(session, records, replayer)
        except BaseException:
            savepoint.rollback()
            raise
        savepoint.commit()
    seconds = time.perf_counter() - t0
    return ImportResult(
        len(writer.ids),
        writer.events,
        skipped,
        tuple(writer.ids),
        seconds,
        replay_seconds=seconds - writer.write_s - writer.after_s,  # the rest: reading, or waiting for the replay
        write_seconds=writer.write_s,
        after_seconds=writer.after_s,
    )


def _import_here(
    session: Session, records: Iterable[tuple[int, str | Mapping[str, Any]]], replayer: _Replayer
) -> tuple[_Writer, int]:
    """Parse, replay and write in this process, one after the other; returns the writer and the number of
    cases skipped (already imported)."""
    known = _answer(session, replayer.parse(records), locate=False)
    writer = _Writer(session, replayer.after, replayer.echo, known)
    for b in replayer.run(known, session):
        writer.write(b)
    _refuse_if(replayer.errors)
    writer.close(replayer.counters)
    return writer, len(known.existing)


def _import_in_child(
    session: Session, records: Iterable[tuple[int, str | Mapping[str, Any]]], replayer: _Replayer
) -> tuple[_Writer, int]:
    """:func:`_import_here` with the parsing and replay in a forked child process.

    The child inherits the records, the rules and the hooks, touches no database and holds the parsed lines
    (this process never does); it sends what it needs to know (:class:`_Needs`), gets the answer
    (:class:`_Known`), then sends the rows of each batch (the pipe holds it back while this process is a
    batch behind), and finally its errors and counters; a failure there is raised here."""
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_child, args=(replayer, records, there), name="import-replay", daemon=True)
    child.start()
    there.close()
    finished = False

    def receive(expect: str) -> Any:
        try:
            kind, payload = here.recv()
        except EOFError:
            raise RuntimeError("the import's replay process ended without an answer") from None
        if kind == "failed":
            if isinstance(payload, BaseException):
                raise payload  # as it would have been raised here (e.g. a file that is not UTF-8)
            raise RuntimeError(f"the import's replay failed: {payload}")
        assert kind in (expect, "done"), kind
        return kind, payload

    try:
        _, needs = receive("needs")
        known = _answer(session, needs, locate=True)
        here.send(known)
        writer = _Writer(session, replayer.after, replayer.echo, known)
        while True:
            kind, payload = receive("batch")
            if kind == "done":
                break
            writer.write(payload)
        finished = True
    finally:
        here.close()
        if not finished:
            child.terminate()
        child.join()
    errors, counters = payload
    _refuse_if(errors)
    writer.close(counters)
    return writer, len(known.existing)


def _child(replayer: _Replayer, records: Iterable[tuple[int, str | Mapping[str, Any]]], conn: Any) -> None:
    """The forked child's work (:func:`_import_in_child`)."""
    try:
        conn.send(("needs", replayer.parse(records)))
        known = conn.recv()
        for b in replayer.run(known, None):
            conn.send(("batch", b))
        conn.send(("done", (replayer.errors, replayer.counters)))
    except BaseException as exc:  # everything goes back to the parent, which raises it
        # a built-in exception as itself; another (its class may need more to be rebuilt) as its text
        failure: Any = exc if type(exc).__module__ == "builtins" else f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            conn.send(("failed", failure))
    finally:
        conn.close()


def _refuse_if(errors: list[dict[str, Any]]) -> None:
    if errors:
        errors.sort(key=lambda e: e["line"])
        raise ImportRefused(errors)


def _replay(imp: _Importer, key: str, evs: Sequence[Line], errors: list[dict[str, Any]]) -> _Replay | None:
    """One case's lines through the transition table; None (and its error recorded) if one is refused."""
    rp: _Replay | None = None
    prev: dt.datetime | None = None
    for ln in evs:
        try:
            if prev is not None and ln.at < prev:
                raise _LineError(
                    "import.time_backwards",
                    f"{ln.at.isoformat()} is before the case's previous event ({prev.isoformat()})",
                    "at",
                )
            prev = ln.at
            if rp is None:
                rp = imp.start(ln)
            imp.step(rp, ln)
        except _LineError as exc:
            _err(errors, ln.no, exc.code, f"case {key!r}: {exc.msg}", *exc.loc)
            return None  # the rest of this case cannot be judged once one event failed
    return rp if rp is not None and rp.events else None


def export_records(
    session: Session, *, rules: CaseRules | None = None, case_ids: Sequence[int] | None = None
) -> Iterator[dict[str, Any]]:
    """The case history in the import format (one dict per event, in case and sequence order).

    A case's key is its legacy key if it was imported, else its number. Photos become ``evidence``
    references (``attachment:<sha256>``). Merged cases and merge notes are left out (not importable).
    """
    rules = rules or load_rules()
    tz = ZoneInfo(rules.calendar.timezone)
    logins = dict(session.execute(select(User.id, User.username)).all())
    dcodes = dict(session.execute(select(Department.id, Department.code)).all())
    keys = dict(session.execute(select(CaseLegacyKey.case_id, CaseLegacyKey.key)).all())
    q = select(Case).where(Case.merged_into_id.is_(None)).order_by(Case.id)
    if case_ids is not None:
        q = q.where(Case.id.in_(case_ids))
    for case in session.scalars(q):
        events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.seq)).all()
        shas = dict(
            session.execute(
                select(EventAttachment.event_id, Attachment.sha256)
                .join(Attachment, Attachment.id == EventAttachment.attachment_id)
                .where(EventAttachment.event_id.in_([e.id for e in events]))
            ).all()
        )
        if any(e.action is A.MERGE for e in events):
            continue
        for i, e in enumerate(events):
            rec: dict[str, Any] = {
                "case": keys.get(case.id, case.number),
                "action": e.action.value,
                "actor": logins.get(e.actor_id) if e.actor_id else None,
                "at": e.at.astimezone(tz).isoformat(),
            }
            if e.actor_id is None:
                rec["role"] = e.actor_role.value if e.actor_role else None
            data = e.data or {}
            if i == 0:
                rec.update(
                    {
                        "class": case.class_code,
                        "urgency": case.urgency,
                        "source": case.source,
                        "location": {"lon": case.lon, "lat": case.lat},
                    }
                )
                for name, v in (
                    ("address", case.address),
                    ("description", case.description),
                    ("component", case.component_id),
                ):
                    if v is not None:
                        rec[name] = v
            elif e.lon is not None and e.lat is not None:
                rec["location"] = {"lon": e.lon, "lat": e.lat}
            if e.action is A.DISPATCH:
                rec["department"] = dcodes.get(data.get("department_id"))
            if e.action in (A.SEND_VERIFY, A.SEND_CHECK):
                rec["inspector"] = logins.get(data.get("inspector_id"))
            if "extension" in data and e.action in (A.REQUEST_EXTENSION, A.APPROVE_EXTENSION):
                rec["extension"] = data["extension"]
            if e.note is not None:
                rec["note"] = e.note
            evidence = list(data.get("legacy_evidence") or [])
            if e.id in shas:
                evidence.append(f"attachment:{shas[e.id]}")
            if evidence:
                rec["evidence"] = evidence
            yield rec
