"""What the field app (城管通 at ``/m/``) reads from the phone API besides the submissions.

Class search (both standard generations as the city configured them, each name once, my recent classes
first), the components of a class near a point (the snap the server itself does, so the phone can show and
keep the component), a case's detail with its photos and history, a department's actions from the phone
(accept, extension, send-back, once per idempotency key), and the limits the phone checks before queueing.
Services only flush; the request dependency commits.
"""

from __future__ import annotations

from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import service as casework_service
from casework.deadlines import LimitUnit
from casework.lifecycle import CaseAction, CaseStatus, Stage, allowed_actions
from casework.models import Case
from casework.pipeline import CasePipeline
from casework.rules import CaseRules
from components import catalog as class_catalog
from components import codes
from components import service as components_service
from components.models import Area, Component
from dispatch.service import GONE_STATES, TIE_M
from gridcity import coords, spatial
from gridcity.errors import InvalidInput
from gridcity.org import User
from gridcity.roles import Role
from gridcity.settings import Settings
from mobile_api import idempotency
from mobile_api.idempotency import Outcome
from mobile_api.schemas import (
    CaseDetailOut,
    ClassList,
    ClassOut,
    EventOut,
    EventPhotoOut,
    FieldConfigOut,
    NearComponentOut,
    NearComponents,
    PhoneActionIn,
    SubmissionOut,
)

#: How many components of the class the phone is offered (nearest first).
NEAR_LIMIT = 5
#: How many of my recently reported classes come first in the class list.
RECENT_CLASSES = 8
_TASKS: dict[CaseStatus, str] = {CaseStatus.VERIFYING: "verify", CaseStatus.CHECKING: "check"}


def _require(user: User, roles: frozenset[Role], what: str) -> None:
    from mobile_api.service import MobileRoleForbidden  # noqa: PLC0415 - one exception class for the phone API

    if user.role not in roles:
        raise MobileRoleForbidden(f"{what} is for {', '.join(sorted(roles))}")


# ---- classes ----------------------------------------------------------------------------------------------


def list_classes(session: Session, *, rules: CaseRules, user: User) -> ClassList:
    """Every enabled class once per Chinese name (the first generation in catalog order wins a shared name),
    and the keys of the classes I reported most recently."""
    seen: set[str] = set()
    items = []
    for c in rules.catalog.all():
        if c.name_zh in seen:
            continue
        seen.add(c.name_zh)
        items.append(
            ClassOut(
                key=c.key,
                name_zh=c.name_zh,
                name_en=c.name_en or None,
                kind=c.kind.value,
                generation=c.generation.value,
                major_name_zh=c.major_name_zh or None,
            )
        )
    offered = {i.key for i in items}
    recent: list[str] = []
    for key in session.scalars(
        select(Case.class_code).where(Case.reporter_id == user.id).order_by(Case.id.desc()).limit(100)
    ):
        if key in offered and key not in recent:
            recent.append(key)
            if len(recent) == RECENT_CLASSES:
                break
    return ClassList(items=items, recent=recent)


def component_classes(catalog: class_catalog.ClassCatalog, key: str) -> list[str]:
    """The component classes whose components a report of ``key`` may be about: the class, its counterpart
    in the other generation, and for a GB/T 47678 "<部件>异常" matter (E01xxx–E05xxx) that component class."""
    try:
        info = catalog.get(key)
    except InvalidInput:
        return []
    if info.kind is codes.ClassKind.EVENT:
        comp = "C" + info.code
        if info.generation is not codes.Generation.GBT47678 or info.major_code > "05":
            return []
        try:
            catalog.get(comp, include_disabled=True)
        except InvalidInput:
            return []
        key = comp
    out = [key]
    try:
        other = (
            catalog.mapping_old_to_new(key)
            if codes.parse_class_key(key).generation is codes.Generation.CJT214
            else catalog.mapping_new_to_old(key)
        )
    except InvalidInput:
        other = None
    if other:
        out.append(other)
    return out


def _near_rows(
    session: Session,
    catalog: class_catalog.ClassCatalog,
    *,
    lon: float,
    lat: float,
    class_code: str,
    radius_m: float,
    limit: int,
) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for key in component_classes(catalog, class_code):
        rows += spatial.nearest_components_statement(
            spatial.dialect(session),
            lon=lon,
            lat=lat,
            class_code=key,
            radius_m=radius_m,
            exclude_states=GONE_STATES,
            limit=limit,
        ).run(session)
    rows.sort(key=lambda r: (float(r[8]), r[1]))
    return rows[:limit]


def snapped_component(
    session: Session, catalog: class_catalog.ClassCatalog, *, lon: float, lat: float, class_code: str, radius_m: float
) -> str | None:
    """The component a report without one is about: the nearest of its class within the tolerance, unless
    another is as near (within :data:`dispatch.service.TIE_M`), which the dispatcher must then decide."""
    rows = _near_rows(session, catalog, lon=lon, lat=lat, class_code=class_code, radius_m=radius_m, limit=2)
    if not rows or (len(rows) > 1 and float(rows[1][8]) - float(rows[0][8]) <= TIE_M):
        return None
    return str(rows[0][1])


def nearest_components(
    session: Session,
    *,
    settings: Settings,
    rules: CaseRules,
    user: User,
    class_code: str,
    lon: float,
    lat: float,
    coord_system: str = "wgs84",
) -> NearComponents:
    """Components of the class (and its counterpart) within the snap tolerance of the point, nearest first."""
    _require(user, frozenset({Role.INSPECTOR, Role.DEPARTMENT}), "component search")
    rules.catalog.get(class_code, loc=["query", "class_code"])
    lon, lat = coords.check_lonlat(lon, lat, loc=["query", "lon"])
    lon, lat = coords.to_wgs84(lon, lat, coords.CoordSystem(coord_system))
    located = components_service.locate_point(session, lon=lon, lat=lat)
    if not located.inside_city:
        return NearComponents(inside_city=False, tolerance_m=settings.snap_tolerance_m, items=[])
    rows = _near_rows(
        session,
        rules.catalog,
        lon=lon,
        lat=lat,
        class_code=class_code,
        radius_m=settings.snap_tolerance_m,
        limit=NEAR_LIMIT,
    )
    where: dict[str, tuple[float, float]] = {}
    if rows:
        for code, geom in session.execute(
            select(Component.code, Component.geom).where(Component.code.in_([r[1] for r in rows]))
        ):
            p = to_shape(geom).representative_point()
            where[code] = (round(p.x, 7), round(p.y, 7))
    items = [
        NearComponentOut(
            code=r[1],
            class_code=r[2],
            name=r[3],
            distance_m=round(float(r[8]), 1),
            lon=where.get(r[1], (None, None))[0],
            lat=where.get(r[1], (None, None))[1],
            department_name=r[9],
        )
        for r in rows
    ]
    return NearComponents(
        inside_city=True, grid_code=located.grid_code, tolerance_m=settings.snap_tolerance_m, items=items
    )


# ---- case detail -----------------------------------------------------------------------------------------


def _photo(aid: int, role: str) -> EventPhotoOut:
    return EventPhotoOut(
        id=aid,
        role=role,
        thumb_url=f"/api/v1/attachments/{aid}/thumb",
        display_url=f"/api/v1/attachments/{aid}/display",
    )


def extension_units(rules: CaseRules, case: Case) -> tuple[list[str], str | None]:
    """The units an extension of the case's handling limit may be given in, and that limit as text."""
    lim = rules.standards.lookup(case.class_code, case.urgency).limit(Stage.HANDLE.value)
    if lim is None:
        return [u.value for u in LimitUnit], None
    working = LimitUnit(lim[1]).counts_working_time
    return [u.value for u in LimitUnit if u.counts_working_time == working], f"{lim[0]:g} {lim[1]}"


def _task(user: User, case: Case) -> str | None:
    from mobile_api.service import DEPARTMENT_QUEUE  # noqa: PLC0415

    if user.role is Role.INSPECTOR:
        return _TASKS.get(case.status)
    return "handle" if case.status in DEPARTMENT_QUEUE else None


def case_detail(
    session: Session,
    *,
    settings: Settings,
    rules: CaseRules,
    user: User,
    case_id: int,
    lon: float | None = None,
    lat: float | None = None,
    coord_system: str = "wgs84",
) -> CaseDetailOut:
    """A case I have a task on or reported: photos, history, distance, the on-site rule, what I may do."""
    _require(user, frozenset({Role.INSPECTOR, Role.DEPARTMENT}), "case detail")
    actor = casework_service.actor_of(user)
    case = casework_service.get_case(session, case_id, actor=actor)
    distance = None
    if lon is not None and lat is not None:
        here = coords.to_wgs84(*coords.check_lonlat(lon, lat, loc=["query", "lon"]), coords.CoordSystem(coord_system))
        distance = round(coords.haversine_m(here[0], here[1], case.lon, case.lat), 1)
    events, photos = [], []
    for ev, atts in casework_service.case_events(session, case.id):
        ev_photos = [_photo(aid, role) for aid, role in atts]
        photos += ev_photos
        events.append(
            EventOut(
                seq=ev.seq,
                action=str(ev.action),
                from_status=ev.from_status or None,
                to_status=str(ev.to_status),
                at=ev.at,
                actor_role=ev.actor_role,
                note=ev.note,
                photos=ev_photos,
            )
        )
    try:
        class_name = rules.catalog.get(case.class_code, include_disabled=True).name_zh
    except InvalidInput:
        class_name = None
    units, handle_limit = extension_units(rules, case)
    mine = (user.role is Role.INSPECTOR and case.assigned_inspector_id == user.id) or (
        user.role is Role.DEPARTMENT and case.department_id == user.department_id
    )
    return CaseDetailOut(
        id=case.id,
        number=case.number,
        status=case.status,
        version=case.version,
        task=_task(user, case) if mine else None,
        class_code=case.class_code,
        class_name=class_name,
        urgency=case.urgency,
        lon=case.lon,
        lat=case.lat,
        address=case.address,
        description=case.description,
        component_id=case.component_id,
        grid_code=case.grid_code,
        created_at=case.created_at,
        deadline_at=case.deadline_at,
        distance_m=distance,
        onsite_radius_m=settings.onsite_radius_m,
        allowed_actions=[str(a) for a in allowed_actions(actor, casework_service.facts_of(case))],
        extension_units=units,
        handle_limit=handle_limit,
        photos=photos,
        events=events,
    )


# ---- department actions ------------------------------------------------------------------------------------


def submit_action(
    session: Session, *, pipeline: CasePipeline, user: User, key: str, case_id: int, action_in: PhoneActionIn
) -> Outcome:
    """Accept (签收), request an extension (延期) or a send-back (回退) from the phone, once per key."""
    _require(user, frozenset({Role.DEPARTMENT}), "case actions from the phone")
    req_hash = idempotency.request_hash("action", {"case_id": case_id, "action": action_in.model_dump(mode="json")})

    def work() -> tuple[int, Any]:
        action = CaseAction(action_in.action)
        actor = casework_service.actor_of(user)
        version = action_in.version
        if action is CaseAction.REQUEST_EXTENSION:
            case = casework_service.get_case(session, case_id, actor=actor)
            if case.status is CaseStatus.DISPATCHED:
                # Staff asking for more time on site have taken the case on: accept it on the spot (as feedback does).
                pipeline.apply_action(
                    session,
                    case_id=case_id,
                    actor=actor,
                    action=CaseAction.ACCEPT,
                    inp=casework_service.ActionInput(expected_version=version, data={"via": "mobile"}),
                )
                version = None
        case = pipeline.apply_action(
            session,
            case_id=case_id,
            actor=actor,
            action=action,
            inp=casework_service.ActionInput(
                expected_version=version, note=action_in.note, extension=action_in.extension, data={"via": "mobile"}
            ),
        ).case
        body = SubmissionOut(
            case_id=case.id, number=case.number, status=case.status, version=case.version, action=action
        )
        return 200, body.model_dump(mode="json", exclude_none=True)

    return idempotency.run(session, user_id=user.id, key=key, kind="action", req_hash=req_hash, work=work)


# ---- limits -----------------------------------------------------------------------------------------------


def field_config(session: Session, *, settings: Settings) -> FieldConfigOut:
    """What the phone checks before queueing: photo limits, the on-site radius, the city's extent."""
    from mobile_api.service import MAX_PHOTOS  # noqa: PLC0415

    bbox = None
    bounds = [to_shape(g).bounds for g in session.scalars(select(Area.geom).where(Area.level == "district"))]
    if bounds:
        bbox = [
            min(b[0] for b in bounds),
            min(b[1] for b in bounds),
            max(b[2] for b in bounds),
            max(b[3] for b in bounds),
        ]
    return FieldConfigOut(
        max_upload_bytes=settings.max_upload_bytes,
        max_photo_pixels=settings.max_photo_pixels,
        max_photos=MAX_PHOTOS,
        onsite_radius_m=settings.onsite_radius_m,
        snap_tolerance_m=settings.snap_tolerance_m,
        city_bbox=bbox,
    )
