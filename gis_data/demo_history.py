"""A deterministic, seeded year of simulated case history for the demo city (so that rankings mean something).

Each case is simulated in Python (every step judged by :func:`casework.lifecycle.check_transition` so
that the simulation only takes legal paths), written as lines of the legacy-import format and loaded by
:func:`casework.legacy_import.import_records`, the same path as ``gridcity cases import``: the import
replays every event through the transition table with its original time and derives the case's cached
columns (status, department, reporter, assigned inspector, closed_at, the open stage and its deadline)
exactly as :func:`casework.service.apply_action` would.

What is simulated:

* cases at component locations (class from the component, dispatched to its main department) and event
  cases at random points inside unit grids (dispatched to the department whose owner kind is the class's,
  or to the grid's street office);
* reports by the grid's inspector (from the supervision areas); ~10 % public reports verified by the grid's
  inspector; ~8 % self-handled (自处理); ~3 % voided (作废 or 核实不属实); 2 % dispatched to a wrong
  department, sent back and redispatched; 5 % extension requests; 2 % suspensions with resume; 6 % rework
  (核查不通过); cases whose next step would fall after the end of the window stay open;
* every timestamp inside working hours of the rules' calendar (weekends and holidays skipped), stage times
  drawn as fractions of the handling-standard limits; departments have a fixed speed (most are on time,
  some are systematically slow), so the rankings differ;
* a handful of real small JPEGs stored once and linked as evidence of reports, self-handling and feedback.

The same seed, size and end of window give the same cases, numbers and actions. Nothing is loaded when the
database holds cases already (a real case log is never mixed with simulated history).
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import shapely
import sqlalchemy as sa
from PIL import Image, ImageDraw
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import attachments as casework_attachments
from casework import deadlines, legacy_import, lifecycle
from casework.lifecycle import Actor, CaseAction, CaseFacts, CaseStatus, Need, Stage
from casework.models import Case
from casework.rules import CaseRules, load_rules
from components import catalog as class_catalog
from components.models import Component, Grid, SupervisionArea, SupervisionGrid
from gridcity import org
from gridcity.roles import Role
from gridcity.settings import get_settings
from gridcity.storage import MediaStore

A = CaseAction
S = CaseStatus
Echo = Callable[[str], object]

BASE_CASES = 20_000
"""Cases of a year at city scale 1."""

# Branch frequencies (fractions of all cases; the event-case share and the urgent share of each case).
P_PUBLIC = 0.10
P_SELF = 0.08
P_VERIFY_FALSE = 0.10  # of public reports
P_VOID = 0.022  # of reported cases (with verify_false: ≈3 % voided)
P_SENDBACK = 0.025  # of filed cases (≈2 % of all)
P_EXTENSION = 0.062
P_SUSPENSION = 0.025
P_REWORK = 0.074
P_EVENT = 0.45
P_URGENT = 0.04
P_STUCK = 0.023  # cut short as still open (on top of the cases the window's end cuts), from the last STUCK_DAYS
STUCK_DAYS = 40
PHOTOS = 6

_ROLE_USERS = {  # username, display name of the user created when no user of the role exists
    Role.ACCEPTOR: ("slz01", "受理员01"),
    Role.SHIFT_LEADER: ("zbz01", "值班长01"),
    Role.DISPATCHER: ("pqy01", "派遣员01"),
}
NOTES = {
    A.VOID: ["重复上报，已有案件", "不属于受理范围", "现场照片与描述不符"],
    A.VERIFY_FALSE: ["现场核实无此问题", "问题已自行消失"],
    A.REQUEST_SENDBACK: ["不属于本单位职责，申请回退", "权属不清，请重新派遣"],
    A.REQUEST_EXTENSION: ["需采购材料，申请延期", "施工量大，申请延期"],
    A.REJECT_EXTENSION: ["延期理由不充分"],
    A.REQUEST_SUSPENSION: ["需协调多部门，申请挂账", "涉及拆迁，暂无法处置"],
    A.REJECT_SUSPENSION: ["挂账理由不充分"],
    A.CHECK_FAIL: ["问题未彻底处置，返工", "现场仍有遗留，返工"],
}


# --------------------------------------------------------------------------------------------------------
# The city as the simulation sees it


@dataclass(frozen=True)
class _Site:
    """Where a case is: its point, grid, class, component and the department routing would pick."""

    lon: float
    lat: float
    grid_code: str
    class_code: str
    kind: str
    component_code: str | None
    department_id: int


@dataclass
class _City:
    grid_codes: list[str]
    grid_geoms: dict[str, BaseGeometry]
    inspector_of_grid: dict[str, int]
    components: list[tuple[str, str, str, int | None, BaseGeometry]]  # code, class, grid, main dept, geom
    dept_of_kind: dict[str, int]  # top-level department per owner kind (lowest id)
    street_office: dict[str, int]  # street code → street office department
    dept_staff: dict[int, int] = field(default_factory=dict)  # department → a department user
    role_users: dict[Role, list[int]] = field(default_factory=dict)
    speed: dict[int, float] = field(default_factory=dict)  # department → median fraction of the handle limit


def _load_city(session: Session) -> _City | None:
    grids = _with_shapes(session, select(Grid.code, sa.func.ST_AsBinary(Grid.geom)).order_by(Grid.code))
    insp = dict(
        session.execute(
            select(SupervisionGrid.grid_code, SupervisionArea.inspector_id)
            .join(SupervisionArea, SupervisionArea.id == SupervisionGrid.supervision_area_id)
            .where(SupervisionArea.inspector_id.is_not(None))
            .order_by(SupervisionGrid.grid_code, SupervisionArea.id)
        ).all()
    )
    if not grids or not insp:
        return None
    depts = session.execute(
        select(
            org.Department.id,
            org.Department.code,
            org.Department.owner_kind,
            org.Department.parent_id,
            org.Department.kind,
        ).order_by(org.Department.id)
    ).all()
    dept_of_kind: dict[str, int] = {}
    street_office: dict[str, int] = {}
    for d in depts:
        if d.parent_id is None and d.owner_kind and d.owner_kind not in dept_of_kind:
            dept_of_kind[d.owner_kind] = d.id
        if d.kind == "street" and d.code.startswith("JD") and len(d.code) == 11:
            street_office[d.code[2:]] = d.id
    comps = _with_shapes(
        session,
        select(
            Component.code,
            Component.class_code,
            Component.grid_code,
            Component.main_department_id,
            sa.func.ST_AsBinary(Component.geom),
        )
        .where(Component.grid_code.is_not(None))
        .order_by(Component.code),
    )
    return _City(
        grid_codes=[g[0] for g in grids],
        grid_geoms={g[0]: g[1] for g in grids},
        inspector_of_grid={str(k): int(v) for k, v in insp.items()},
        components=comps,
        dept_of_kind=dept_of_kind,
        street_office=street_office,
    )


def _with_shapes(session: Session, stmt: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``stmt`` whose last column is ``ST_AsBinary(geom)``, that column parsed by shapely in one call."""
    rows = session.execute(stmt).all()
    if not rows:
        return []
    shapes = shapely.from_wkb([bytes(r[-1]) for r in rows]).tolist()
    return [(*r[:-1], g) for r, g in zip(rows, shapes, strict=True)]


def _ensure_users(session: Session, city: _City) -> None:
    """One user per needed centre role and one staff user per department (created only when missing).

    New users get the password of the demo inspectors (their stored hash is copied, so no hashing and no
    import of ``gridcity.root.demo``, which sits above this package).
    """
    pw_hash = session.scalar(select(org.User.password_hash).where(org.User.id == min(city.inspector_of_grid.values())))
    assert pw_hash is not None
    users = session.execute(
        select(org.User.id, org.User.role, org.User.department_id)
        .where(org.User.active.is_(True))
        .order_by(org.User.id)
    ).all()
    for role, (username, name) in _ROLE_USERS.items():
        ids = [u.id for u in users if u.role is role]
        if not ids:
            ids = [
                org.create_user(
                    session, username=username, password="", role=role, display_name=name, password_hash=pw_hash
                ).id
            ]
        city.role_users[role] = ids
    for u in users:
        if u.role is Role.DEPARTMENT and u.department_id is not None:
            city.dept_staff.setdefault(u.department_id, u.id)
    for dept_id, code in session.execute(select(org.Department.id, org.Department.code).order_by(org.Department.id)):
        if dept_id not in city.dept_staff:
            city.dept_staff[dept_id] = org.create_user(
                session,
                username=f"bm-{code.lower()}"[:64],
                password="",
                role=Role.DEPARTMENT,
                display_name=f"{code}值守",
                department_id=dept_id,
                password_hash=pw_hash,
            ).id


def _photos(session: Session, store: MediaStore, uploaded_by: int) -> list[int]:
    """A handful of small real JPEGs, stored once (the same content is the same attachment)."""
    ids = []
    for i in range(PHOTOS):
        img = Image.new("RGB", (320, 240), (60 + 30 * i, 120, 200 - 25 * i))
        draw = ImageDraw.Draw(img)
        draw.rectangle((40 + 10 * i, 60, 200 + 10 * i, 180), outline=(255, 255, 255), width=4)
        draw.text((20, 20), f"gridcity demo photo {i + 1}", fill=(255, 255, 255))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        ids.append(casework_attachments.store_photo(session, store, buf.getvalue(), uploaded_by=uploaded_by).id)
    return ids


# --------------------------------------------------------------------------------------------------------
# Playing one case through the lifecycle


@dataclass
class _Event:
    action: CaseAction
    from_status: CaseStatus
    to_status: CaseStatus
    actor_id: int
    actor_role: Role
    department_id: int | None
    at: dt.datetime
    lon: float | None
    lat: float | None
    note: str | None
    data: dict[str, Any]
    photo: tuple[int, str] | None  # (photo index, role)


class _Play:
    """One case's path; ``act`` judges each step with the lifecycle table and applies the service's effects."""

    def __init__(self, site: _Site) -> None:
        self.site = site
        self.status = S.NEW
        self.dept: int | None = None
        self.reporter: int | None = None
        self.assigned: int | None = None
        self.events: list[_Event] = []

    def act(
        self,
        action: CaseAction,
        actor: Actor,
        at: dt.datetime,
        *,
        department_id: int | None = None,
        inspector_id: int | None = None,
        note: str | None = None,
        extension: dict[str, Any] | None = None,
        photo: tuple[int, str] | None = None,
        on_site: bool = False,
    ) -> None:
        given = {
            n
            for n, ok in (
                (Need.DEPARTMENT, department_id is not None),
                (Need.INSPECTOR, inspector_id is not None),
                (Need.ATTACHMENT, photo is not None),
                (Need.NOTE, bool(note)),
                (Need.EXTENSION, extension is not None),
            )
            if ok
        }
        facts = CaseFacts(
            status=self.status, department_id=self.dept, reporter_id=self.reporter, assigned_inspector_id=self.assigned
        )
        row = lifecycle.check_transition(actor, facts, action, frozenset(given))
        data: dict[str, Any] = {}
        if action is A.DISPATCH:
            self.dept = department_id
            data["department_id"] = department_id
        elif action is A.APPROVE_SENDBACK:
            data["from_department_id"] = self.dept
            self.dept = None
        elif action in (A.SEND_VERIFY, A.SEND_CHECK):
            self.assigned = inspector_id
            data["inspector_id"] = inspector_id
        elif action in (A.REQUEST_EXTENSION, A.APPROVE_EXTENSION):
            data["extension"] = extension
        elif action is A.CHECK_FAIL:
            data["rework"] = True
        if self.status is S.NEW and actor.role is Role.INSPECTOR:
            self.reporter = actor.user_id
        self.events.append(
            _Event(
                action=action,
                from_status=self.status,
                to_status=row.target,
                actor_id=actor.user_id,
                actor_role=actor.role,
                department_id=self.dept,
                at=at,
                lon=self.site.lon if on_site else None,
                lat=self.site.lat if on_site else None,
                note=note,
                data=data,
                photo=photo,
            )
        )
        self.status = row.target


class _Simulator:
    def __init__(self, city: _City, rules: CaseRules, rng: random.Random) -> None:
        self.city = city
        self.rules = rules
        self.cal = rules.calendar
        self.rng = rng

    # time
    def work_minutes(self, t: dt.datetime, lo: float, hi: float) -> dt.datetime:
        return deadlines.add_work_seconds(self.cal, t, self.rng.uniform(lo, hi) * 60)

    def in_stage(self, t: dt.datetime, site: _Site, urgency: str, stage: Stage, frac: float) -> dt.datetime:
        """``frac`` of the stage's limit after ``t`` (in the limit's measure; 30 work minutes without one)."""
        lim = self.rules.standards.lookup(site.class_code, urgency).limit(stage.value)
        if lim is None:
            return deadlines.add_work_seconds(self.cal, t, 1800 * frac)
        secs = deadlines.limit_seconds(self.cal, lim.value, lim.unit) * frac
        return deadlines.add_measured_seconds(self.cal, t, max(secs, 60.0), lim.unit)

    def quick(self) -> float:
        """A fraction of a limit for a centre step: mostly well inside, sometimes late."""
        r = self.rng.random()
        return self.rng.uniform(1.05, 2.0) if r < 0.03 else self.rng.uniform(0.05, 0.7)

    def handle_frac(self, dept: int) -> float:
        return self.city.speed[dept] * self.rng.lognormvariate(0.0, 0.45)

    def actor(self, role: Role, user_id: int | None = None, dept: int | None = None) -> Actor:
        uid = user_id if user_id is not None else self.rng.choice(self.city.role_users[role])
        return Actor(user_id=uid, role=role, department_id=dept)

    def staff(self, dept: int) -> Actor:
        return Actor(user_id=self.city.dept_staff[dept], role=Role.DEPARTMENT, department_id=dept)

    def extension_for(self, site: _Site, urgency: str) -> dict[str, Any]:
        lim = self.rules.standards.lookup(site.class_code, urgency).limit(Stage.HANDLE.value)
        if lim is None or lim.unit.counts_working_time:
            return {"value": float(self.rng.choice([1, 2, 3])), "unit": "work_day"}
        return {"value": float(self.rng.choice([4, 8, 24])), "unit": "hour"}

    # the paths
    def play(self, site: _Site, created: dt.datetime, urgency: str) -> tuple[_Play, str]:
        rng = self.rng
        p = _Play(site)
        inspector = Actor(self.city.inspector_of_grid[site.grid_code], Role.INSPECTOR)
        photo = rng.randrange(PHOTOS)
        r = rng.random()
        if r < P_SELF:
            p.act(A.SELF_HANDLE, inspector, created, photo=(photo, "evidence"), on_site=True)
            p.act(A.APPROVE_SELF_HANDLED, self.actor(Role.SHIFT_LEADER), self.work_minutes(created, 10, 180))
            return p, "self"
        t = created
        source = "inspector"
        if r < P_SELF + P_PUBLIC:
            source = rng.choice(["hotline", "hotline", "open311", "public"])
            p.act(A.PUBLIC_REPORT, self.actor(Role.ACCEPTOR), t)
            t = self.work_minutes(t, 3, 40)
            p.act(A.SEND_VERIFY, self.actor(Role.ACCEPTOR), t, inspector_id=inspector.user_id)
            t = self.in_stage(t, site, urgency, Stage.VERIFY, self.quick())
            if rng.random() < P_VERIFY_FALSE:
                p.act(
                    A.VERIFY_FALSE,
                    inspector,
                    t,
                    note=rng.choice(NOTES[A.VERIFY_FALSE]),
                    on_site=True,
                    photo=(rng.randrange(PHOTOS), "evidence"),
                )
                return p, source
            p.act(A.VERIFY_TRUE, inspector, t, on_site=True, photo=(rng.randrange(PHOTOS), "evidence"))
        else:
            p.act(A.REPORT, inspector, t, photo=(photo, "before"), on_site=True)
        t = self.in_stage(t, site, urgency, Stage.FILE, self.quick())
        leader = self.actor(Role.SHIFT_LEADER)
        if rng.random() < P_VOID:
            p.act(A.VOID, leader, t, note=rng.choice(NOTES[A.VOID]))
            return p, source
        p.act(A.FILE, leader, t)
        self._work(p, t, site, urgency, inspector)
        return p, source

    def _wrong_department(self, site: _Site) -> int | None:
        for d in (
            self.city.street_office.get(site.grid_code[:9]),
            self.city.dept_of_kind.get("urban_management"),
            self.city.dept_of_kind.get("sanitation"),
        ):
            if d is not None and d != site.department_id and d in self.city.dept_staff:
                return d
        return None

    def _work(self, p: _Play, t: dt.datetime, site: _Site, urgency: str, inspector: Actor) -> None:
        rng = self.rng
        dispatcher = self.actor(Role.DISPATCHER)
        dept = site.department_id
        t = self.in_stage(t, site, urgency, Stage.DISPATCH, self.quick())
        wrong = self._wrong_department(site) if rng.random() < P_SENDBACK else None
        if wrong is not None:
            p.act(A.DISPATCH, dispatcher, t, department_id=wrong)
            t = self.work_minutes(t, 10, 240)
            if rng.random() < 0.5:
                p.act(A.ACCEPT, self.staff(wrong), t)
                t = self.work_minutes(t, 10, 120)
            p.act(A.REQUEST_SENDBACK, self.staff(wrong), t, note=rng.choice(NOTES[A.REQUEST_SENDBACK]))
            t = self.work_minutes(t, 10, 120)
            p.act(A.APPROVE_SENDBACK, dispatcher, t)
            t = self.in_stage(t, site, urgency, Stage.DISPATCH, self.quick())
        p.act(A.DISPATCH, dispatcher, t, department_id=dept)
        extension = rng.random() < P_EXTENSION
        suspension = rng.random() < P_SUSPENSION
        rework = rng.random() < P_REWORK
        for round_ in range(2):
            staff = self.staff(dept)
            frac = self.handle_frac(dept)
            start = t
            t = self.work_minutes(t, 5, 90 * self.city.speed[dept])
            p.act(A.ACCEPT, staff, t)
            if round_ == 0 and suspension:
                t = self.in_stage(t, site, urgency, Stage.HANDLE, frac * 0.3)
                p.act(A.REQUEST_SUSPENSION, staff, t, note=rng.choice(NOTES[A.REQUEST_SUSPENSION]))
                t = self.work_minutes(t, 10, 120)
                if rng.random() < 0.15:
                    p.act(A.REJECT_SUSPENSION, dispatcher, t, note=NOTES[A.REJECT_SUSPENSION][0])
                else:
                    p.act(A.APPROVE_SUSPENSION, dispatcher, t)
                    t = deadlines.add_work_seconds(self.cal, t + dt.timedelta(days=rng.uniform(3, 25)), 60)
                    p.act(A.RESUME, dispatcher, t)
                frac *= 0.7
            if round_ == 0 and extension:
                t = self.in_stage(t, site, urgency, Stage.HANDLE, min(frac, 0.9) * 0.6)
                ext = self.extension_for(site, urgency)
                p.act(A.REQUEST_EXTENSION, staff, t, note=rng.choice(NOTES[A.REQUEST_EXTENSION]), extension=ext)
                t = self.work_minutes(t, 10, 120)
                if rng.random() < 0.2:
                    p.act(A.REJECT_EXTENSION, dispatcher, t, note=NOTES[A.REJECT_EXTENSION][0])
                else:
                    p.act(A.APPROVE_EXTENSION, dispatcher, t, extension=ext)
                frac = frac * 0.4 + rng.uniform(0.3, 0.9)  # the extension is used
            t = max(t, self.in_stage(start, site, urgency, Stage.HANDLE, frac))
            t = self.work_minutes(t, 1, 5)
            p.act(A.FEEDBACK, staff, t, photo=(rng.randrange(PHOTOS), "after"))
            t = self.work_minutes(t, 3, 60)
            p.act(A.SEND_CHECK, self.actor(Role.ACCEPTOR), t, inspector_id=inspector.user_id)
            t = self.in_stage(t, site, urgency, Stage.CHECK, self.quick())
            if round_ == 0 and rework:
                p.act(
                    A.CHECK_FAIL,
                    inspector,
                    t,
                    note=rng.choice(NOTES[A.CHECK_FAIL]),
                    on_site=True,
                    photo=(rng.randrange(PHOTOS), "evidence"),
                )
                continue
            p.act(A.CHECK_PASS, inspector, t, on_site=True, photo=(rng.randrange(PHOTOS), "evidence"))
            t = self.work_minutes(t, 5, 120)
            p.act(A.CLOSE, self.actor(Role.SHIFT_LEADER), t)
            return


# --------------------------------------------------------------------------------------------------------
# Sites and times


def _point_in(geom: BaseGeometry, rng: random.Random) -> tuple[float, float]:
    x0, y0, x1, y1 = geom.bounds
    inner = geom.buffer(-(x1 - x0) * 0.05)
    for _ in range(50):
        pt = Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
        if inner.contains(pt):
            return round(pt.x, 7), round(pt.y, 7)
    c = geom.representative_point()
    return round(c.x, 7), round(c.y, 7)


def _on(geom: BaseGeometry) -> tuple[float, float]:
    pt = (
        geom
        if geom.geom_type == "Point"
        else (
            geom.interpolate(0.5, normalized=True)
            if geom.geom_type in ("LineString", "MultiLineString")
            else geom.representative_point()
        )
    )
    return round(pt.x, 7), round(pt.y, 7)


def _sites(city: _City, catalog: class_catalog.ClassCatalog, rng: random.Random, n: int) -> list[_Site]:
    events = [c for c in catalog.all("event", generation="cjt214") if c.enabled]
    event_w = [rng.uniform(0.2, 3.0) for _ in events]
    out: list[_Site] = []
    for _ in range(n):
        if city.components and rng.random() >= P_EVENT:
            code, cls, grid, main, geom = city.components[rng.randrange(len(city.components))]
            info = catalog.get(cls)
            dept = main if main in city.dept_staff else _route(city, info.owner_kind, grid)
            lon, lat = _on(geom)
            out.append(_Site(lon, lat, grid, info.key, info.kind.value, code, dept))
        else:
            info = rng.choices(events, weights=event_w)[0]
            grid = city.grid_codes[rng.randrange(len(city.grid_codes))]
            lon, lat = _point_in(city.grid_geoms[grid], rng)
            out.append(_Site(lon, lat, grid, info.key, info.kind.value, None, _route(city, info.owner_kind, grid)))
    return out


def _route(city: _City, owner_kind: str, grid: str) -> int:
    """The department the routing would pick for a class without a component: owner kind, else the street."""
    dept = city.dept_of_kind.get(owner_kind) or city.street_office.get(grid[:9])
    if dept is None:
        dept = min(city.street_office.values()) if city.street_office else min(city.dept_staff)
    return dept


def _creation_times(
    cal: deadlines.WorkCalendar, start: dt.date, end: dt.date, rng: random.Random, n: int
) -> list[dt.datetime]:
    days = [start + dt.timedelta(days=k) for k in range((end - start).days)]
    work_days = [d for d in days if cal.is_working_day(d)]
    tz = ZoneInfo(cal.timezone)
    span = cal.work_seconds_per_day * 0.97
    out = []
    for _ in range(n):
        day = work_days[rng.randrange(len(work_days))]
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
        out.append(deadlines.add_work_seconds(cal, midnight, rng.uniform(1, span)))
    return sorted(out)


# --------------------------------------------------------------------------------------------------------
# Writing


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t.astimezone(dt.UTC)


def load_history(
    session: Session,
    *,
    cases: int = BASE_CASES,
    days: int = 365,
    seed: int = 7,
    echo: Echo = print,
    end: dt.datetime | None = None,
    rules: CaseRules | None = None,
    store: MediaStore | None = None,
) -> int:
    """Load ``cases`` simulated cases over the ``days`` before ``end`` (default: today 00:00 local time).

    Returns the number of cases loaded (0 when the database holds cases already or has no demo city).
    """
    if cases <= 0 or days <= 0:
        return 0
    if session.scalar(select(Case.id).limit(1)) is not None:
        echo("cases exist already; no simulated history loaded")
        return 0
    rules = rules or load_rules(get_settings().city_dir)
    cal = rules.calendar
    tz = ZoneInfo(cal.timezone)
    end = end or dt.datetime.combine(dt.datetime.now(tz).date(), dt.time(0), tzinfo=tz)
    city = _load_city(session)
    if city is None:
        echo("no grids with inspectors; no simulated history loaded")
        return 0
    _ensure_users(session, city)
    rng = random.Random(seed)
    for dept in sorted(city.dept_staff):  # most departments are on time, some systematically slow
        city.speed[dept] = rng.uniform(0.65, 1.1) if rng.random() < 0.3 else rng.uniform(0.25, 0.55)
    store = store or MediaStore(get_settings().media_dir)
    photo_ids = _photos(session, store, uploaded_by=next(iter(sorted(city.inspector_of_grid.values()))))

    sites = _sites(city, rules.catalog, rng, cases)
    created = _creation_times(
        cal, (end - dt.timedelta(days=days)).astimezone(tz).date(), end.astimezone(tz).date(), rng, cases
    )
    sim = _Simulator(city, rules, rng)
    logins = dict(session.execute(select(org.User.id, org.User.username)).all())
    dcodes = dict(session.execute(select(org.Department.id, org.Department.code)).all())
    records: list[dict[str, Any]] = []
    for n, (site, t0) in enumerate(zip(sites, created, strict=True), start=1):
        urgency = "urgent" if rng.random() < P_URGENT else "normal"
        p, source = sim.play(site, t0, urgency)
        p.events = [e for e in p.events if e.at < end]  # what has not happened yet stays open
        if (end - t0).days < STUCK_DAYS and len(p.events) > 1 and rng.random() < P_STUCK * days / STUCK_DAYS:
            p.events = p.events[: rng.randrange(1, len(p.events))]  # stuck somewhere on its way
        records += _records(f"DEMO-{n:06d}", p, site, source, urgency, rules, logins, dcodes, photo_ids, tz)

    # The simulated log goes through the same path as a city's legacy history (gridcity cases import).
    result = legacy_import.import_records(session, enumerate(records, start=1), rules=rules)
    echo(f"case history: {result.cases} cases, {result.events} events over {days} days")
    _rebuild_facts(session, rules, echo)
    return result.cases


def _records(
    key: str,
    p: _Play,
    site: _Site,
    source: str,
    urgency: str,
    rules: CaseRules,
    logins: dict[int, str],
    dcodes: dict[int, str],
    photo_ids: list[int],
    tz: ZoneInfo,
) -> list[dict[str, Any]]:
    """One simulated case as lines of the import format."""
    out: list[dict[str, Any]] = []
    for i, e in enumerate(p.events):
        rec: dict[str, Any] = {
            "case": key,
            "action": e.action.value,
            "actor": logins[e.actor_id],
            "at": e.at.astimezone(tz).isoformat(),
        }
        if i == 0:
            rec.update(
                {
                    "class": site.class_code,
                    "urgency": urgency,
                    "source": source,
                    "location": {"lon": site.lon, "lat": site.lat},
                    "description": rules.catalog.get(site.class_code).name_zh,
                }
            )
            if site.component_code:
                rec["component"] = site.component_code
        elif e.lon is not None and e.lat is not None:
            rec["location"] = {"lon": e.lon, "lat": e.lat}
        if e.action is A.DISPATCH:
            rec["department"] = dcodes[e.data["department_id"]]
        if e.action in (A.SEND_VERIFY, A.SEND_CHECK):
            rec["inspector"] = logins[e.data["inspector_id"]]
        if e.action in (A.REQUEST_EXTENSION, A.APPROVE_EXTENSION):
            rec["extension"] = e.data["extension"]
        if e.note is not None:
            rec["note"] = e.note
        if e.photo is not None:
            rec["attachments"] = [photo_ids[e.photo[0]]]
        out.append(rec)
    return out


def _rebuild_facts(session: Session, rules: CaseRules, echo: Echo) -> None:
    try:
        from evaluation import facts as evaluation_facts  # noqa: PLC0415
    except ImportError:
        return
    rebuild = getattr(evaluation_facts, "rebuild_all", None)
    if rebuild is None:
        return
    n = rebuild(session, rules=rules, echo=None)
    echo(f"evaluation facts: {n} rows")
