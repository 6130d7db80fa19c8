"""HTTP endpoints of the case pipeline (thin: parse, call one service, shape the answer)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy import select

from casework import attachments, effects, lifecycle, service
from casework import export as case_export
from casework.deps import PipelineDep
from casework.lifecycle import CaseAction, CaseStatus
from casework.models import Case, PublicReporter
from casework.rules import CaseRules
from casework.schemas import (
    ActionIn,
    AttachmentRead,
    CaseCreate,
    CaseListItem,
    CasePage,
    CaseRead,
    ClockRead,
    EventRead,
    ReporterIn,
)
from components import addresses
from components import service as components_service
from gridcity import coords, photos
from gridcity.deps import CurrentUser, DbSession, SettingsDep, Store
from gridcity.errors import BadRequest, InvalidInput, PayloadTooLarge
from gridcity.org import Department
from gridcity.roles import Role
from gridcity.types import BoundedDatetime, IdPath, OffsetQuery, OptionalIdQuery, localize

router = APIRouter(prefix="/cases", tags=["cases"])
attachments_router = APIRouter(prefix="/attachments", tags=["attachments"])


def _rules(request: Request) -> CaseRules:
    rules: CaseRules = request.app.state.rules
    return rules


def case_read(
    session: DbSession, case: Case, user: CurrentUser, rules: CaseRules, change: service.CaseChange | None = None
) -> CaseRead:
    """Shape a case for the current user, with its clocks and allowed actions (from ``change``'s stage runs
    when the case is still as that change left it, else derived from the log)."""
    now = dt.datetime.now(dt.UTC)
    runs = change.runs if change is not None and change.current else None
    views = service.case_clocks(session, case, rules=rules, now=now, runs=runs)
    clocks = [
        ClockRead(
            stage=v.run.stage.value,
            started_at=v.run.started_at,
            ended_at=v.run.ended_at,
            limit=_limit_text(rules, case, v.run.stage),
            deadline=v.clock.deadline if v.clock else None,
            light=v.clock.light if v.clock else "none",
            fraction=v.clock.fraction if v.clock else None,
            paused=v.clock.paused if v.clock else False,
            overdue_seconds=v.clock.overdue_seconds if v.clock else 0.0,
            extensions=[{"value": val, "unit": unit} for val, unit in v.run.extensions],
        )
        for v in views
    ]
    out = CaseRead.model_validate(case)
    out.allowed_actions = lifecycle.allowed_actions(service.actor_of(user), service.facts_of(case))
    out.clocks = clocks
    out.light = clocks[-1].light if clocks and clocks[-1].ended_at is None else "none"
    out.class_name = _class_name(rules, case.class_code)
    # After an action its change already holds the log: the first event says whether a public reporter can
    # exist, and the last extension asked is in the log's data (no query; G-P1's statement budget).
    log = change.log if change is not None else None
    if user.role in SUPERVISION_CENTRE and (log is None or log[0].action is CaseAction.PUBLIC_REPORT):
        rep = session.get(PublicReporter, case.id)
        if rep is not None:
            out.reporter = ReporterIn(name=rep.name, phone=rep.phone, email=rep.email)
    out.requested_extension = (
        effects.last_requested_extension(log) if log is not None else service.last_requested_extension(session, case.id)
    )
    out.extension_units = service.extension_units(rules, case)
    return out


# The supervision centre (受理员, 值班长) and the administrator see a public reporter's contact data.
SUPERVISION_CENTRE = frozenset({Role.ACCEPTOR, Role.SHIFT_LEADER, Role.ADMIN})


def _class_name(rules: CaseRules, class_code: str) -> str | None:
    try:
        return rules.catalog.get(class_code).name_zh
    except InvalidInput:
        return None


def _limit_text(rules: CaseRules, case: Case, stage: lifecycle.Stage) -> str | None:
    lim = rules.standards.lookup(case.class_code, case.urgency).limit(stage.value)
    return None if lim is None else f"{lim[0]:g} {lim[1]}"


@router.post("", response_model=CaseRead, status_code=201, summary="Report a problem (creates a case)")
def create_case(body: CaseCreate, session: DbSession, user: CurrentUser, pipeline: PipelineDep) -> CaseRead:
    """An inspector reports, an operator registers a public report, or an inspector self-handles."""
    rules = pipeline.rules
    address = body.address
    if body.lon is not None and body.lat is not None:
        lon, lat = coords.to_wgs84(body.lon, body.lat, coords.CoordSystem(body.coord_system))
    elif body.address_id is not None:
        std = addresses.get_address(session, body.address_id, loc=["body", "address_id"])
        lon, lat, address = std.lon, std.lat, address or std.full_name
    else:
        raise InvalidInput("give lon and lat, or address_id", code="case.no_location", loc=["body", "lon"])
    rep = body.reporter
    change = pipeline.create_case(
        session,
        actor=service.actor_of(user),
        action=CaseAction(body.action),
        new=service.NewCase(
            class_code=body.class_code,
            lon=lon,
            lat=lat,
            urgency=body.urgency,
            address=address,
            description=body.description,
            component_id=body.component_id,
            reporter_name=rep.name if rep else None,
            reporter_phone=rep.phone if rep else None,
            reporter_email=rep.email if rep else None,
            source=(body.channel or "hotline") if body.action == "public_report" else None,
        ),
        inp=service.ActionInput(attachment_ids=tuple(body.attachment_ids), lon=lon, lat=lat),
    )
    return case_read(session, change.case, user, rules, change)


def case_filter(
    request: Request,
    status: Annotated[list[CaseStatus] | None, Query()] = None,
    department_id: OptionalIdQuery = None,
    class_code: Annotated[list[str] | None, Query(max_length=12)] = None,
    grid_code: Annotated[str | None, Query(max_length=15)] = None,
    area_code: Annotated[
        str | None,
        Query(max_length=15, pattern=r"^[0-9]{6,15}$", description="district/street/community/grid code prefix"),
    ] = None,
    number: Annotated[str | None, Query(max_length=20)] = None,
    overdue: bool | None = None,
    light: Annotated[list[Literal["red", "yellow", "green", "paused", "none"]] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=100, description="free text: number, description, address")] = None,
    created_from: Annotated[BoundedDatetime | None, Query(description="date or datetime; no zone: the city's")] = None,
    created_to: Annotated[BoundedDatetime | None, Query(description="date or datetime; no zone: the city's")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
) -> service.CaseFilter:
    """The case-list filters shared by the list and its exports."""
    tz = _rules(request).calendar.timezone
    codes = tuple(class_code or ())
    return service.CaseFilter(
        status=tuple(status or ()),
        department_id=department_id,
        class_codes=codes,
        grid_code=grid_code,
        area_code=area_code,
        overdue=overdue,
        light=tuple(light or ()),
        q=q,
        created_from=localize(created_from, tz),
        created_to=localize(created_to, tz),
        bbox=components_service.parse_bbox(bbox),
        number=number,
    )


CaseFilterDep = Annotated[service.CaseFilter, Depends(case_filter)]
SortQ = Annotated[
    Literal["overdue", "deadline", "-deadline", "created", "-created"] | None,
    Query(description="overdue (most overdue first) | deadline | -deadline | created | -created; default newest first"),
]


def _list_item(c: Case, rules: CaseRules, now: dt.datetime) -> CaseListItem:
    item = CaseListItem.model_validate(c)
    item.light = service.light_of(c, now)
    item.class_name = _class_name(rules, c.class_code)
    return item


@router.get("", response_model=CasePage, summary="List cases")
def list_cases(
    session: DbSession,
    user: CurrentUser,
    request: Request,
    flt: CaseFilterDep,
    sort: SortQ = None,
    offset: OffsetQuery = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CasePage:
    """Cases the user may see, filtered, sorted and paged on the server, with the total count."""
    now = dt.datetime.now(dt.UTC)
    rows, total = service.list_cases(
        session, actor=service.actor_of(user), flt=flt, offset=offset, limit=limit, sort=sort, now=now
    )
    rules = _rules(request)
    return CasePage(items=[_list_item(c, rules, now) for c in rows], total=total, offset=offset, limit=limit)


classes_router = APIRouter(tags=["cases"])


@classes_router.get("/case-classes", summary="The class catalogue (for forms and filters)")
def case_classes(request: Request, user: CurrentUser) -> list[dict[str, str]]:
    """Every enabled class with its Chinese and English names (the console shows names, not codes)."""
    return [
        {
            "key": c.key,
            "kind": str(c.kind.value),
            "major": c.major_code,
            "major_name": c.major_name_zh,
            "name": c.name_zh,
            "name_en": c.name_en,
            "generation": str(c.generation.value),
        }
        for c in _rules(request).catalog.all()
    ]


EXPORT_MAX = 100_000


@router.get("/export.{ext}", summary="The case list as CSV or xlsx (same filters as the list)", response_class=Response)
def export_cases(
    ext: Literal["csv", "xlsx"],
    session: DbSession,
    user: CurrentUser,
    request: Request,
    flt: CaseFilterDep,
    sort: SortQ = None,
) -> Response:
    """Every matching case (up to 100,000; more is refused, never cut) with Chinese headers."""
    now = dt.datetime.now(dt.UTC)
    rows, total = service.list_cases(
        session, actor=service.actor_of(user), flt=flt, offset=0, limit=EXPORT_MAX, sort=sort or "overdue", now=now
    )
    if total > EXPORT_MAX:
        raise InvalidInput(
            f"{total} cases match; narrow the filter to at most {EXPORT_MAX}",
            code="case.export_too_large",
            loc=["query"],
        )
    rules = _rules(request)
    items = [_list_item(c, rules, now) for c in rows]
    dept_names = dict(session.execute(select(Department.id, Department.name)).all())
    body = case_export.render(items, ext=ext, dept_names=dept_names, tz=rules.calendar.timezone)
    media = "text/csv; charset=utf-8" if ext == "csv" else case_export.XLSX_MEDIA
    name = f"cases_{now.strftime('%Y%m%d_%H%M')}.{ext}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/{case_id}", response_model=CaseRead, summary="One case with deadlines and allowed actions")
def get_case(case_id: IdPath, session: DbSession, user: CurrentUser, request: Request) -> CaseRead:
    """A case, its clocks, and what the current user may do to it."""
    case = service.get_case(session, case_id, actor=service.actor_of(user))
    return case_read(session, case, user, _rules(request))


@router.post("/{case_id}/actions", response_model=CaseRead, summary="Act on a case")
def act(case_id: IdPath, body: ActionIn, session: DbSession, user: CurrentUser, pipeline: PipelineDep) -> CaseRead:
    """File, void, dispatch, accept, feed back, check, close ... (409 names the allowed actions)."""
    rules = pipeline.rules
    change = pipeline.apply_action(
        session,
        case_id=case_id,
        actor=service.actor_of(user),
        action=body.action,
        inp=service.ActionInput(
            expected_version=body.version,
            department_id=body.department_id,
            inspector_id=body.inspector_id,
            note=body.note,
            attachment_ids=tuple(body.attachment_ids),
            extension=body.extension.model_dump() if body.extension else None,
            target_case_id=body.target_case_id,
            lon=body.lon,
            lat=body.lat,
        ),
    )
    return case_read(session, change.case, user, rules, change)


@router.get("/{case_id}/events", response_model=list[EventRead], summary="A case's timeline")
def events(case_id: IdPath, session: DbSession, user: CurrentUser) -> list[EventRead]:
    """The append-only log of the case, oldest first, with each event's photos."""
    case = service.get_case(session, case_id, actor=service.actor_of(user))
    log = service.case_events(session, case.id)
    info = service.attachment_info(session, [aid for _, atts in log for aid, _ in atts])
    return [
        EventRead(
            id=e.id,
            seq=e.seq,
            action=e.action,
            from_status=e.from_status,
            to_status=e.to_status,
            actor_id=e.actor_id,
            actor_role=e.actor_role,
            department_id=e.department_id,
            at=e.at,
            lon=e.lon,
            lat=e.lat,
            note=e.note,
            data=e.data or {},
            attachments=[
                {
                    "id": aid,
                    "role": role,
                    "thumb_url": f"/api/v1/attachments/{aid}/thumb",
                    "display_url": f"/api/v1/attachments/{aid}/display",
                    **info.get(aid, {}),
                }
                for aid, role in atts
            ],
        )
        for e, atts in log
    ]


def attachment_read(att: object) -> AttachmentRead:
    """Shape an attachment with its rendition URLs."""
    out = AttachmentRead.model_validate(att)
    out.display_url = f"/api/v1/attachments/{out.id}/display"
    out.thumb_url = f"/api/v1/attachments/{out.id}/thumb"
    return out


@attachments_router.post("", response_model=list[AttachmentRead], status_code=201, summary="Upload photos")
async def upload(
    files: Annotated[list[UploadFile], File(description="1–9 photos (JPEG, PNG, WebP)")],
    session: DbSession,
    user: CurrentUser,
    store: Store,
    settings: SettingsDep,
) -> list[AttachmentRead]:
    """Store photos (validated by content, not name); returns their ids to reference in actions."""
    from starlette.concurrency import run_in_threadpool  # noqa: PLC0415

    if not 1 <= len(files) <= 9:
        raise BadRequest("send 1 to 9 photos", code="attachment.count", loc=["body", "files"])
    limits = photos.PhotoLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_photo_pixels)
    out = []
    for i, f in enumerate(files):
        data = await f.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise PayloadTooLarge("photo too large", code="photo.too_large", loc=["body", "files", i])
        att = await run_in_threadpool(
            attachments.store_photo,
            session,
            store,
            data,
            uploaded_by=user.id,
            limits=limits,
            loc=["body", "files", i],
        )
        out.append(attachment_read(att))
    return out


@attachments_router.get("/{attachment_id}/{kind}", summary="A rendition of a photo (display or thumb)")
def rendition(attachment_id: IdPath, kind: str, session: DbSession, user: CurrentUser, store: Store) -> FileResponse:
    """The metadata-free JPEG rendition of a photo the user may see (its uploader, or who may see its case).

    A photo belongs to its case: a photo of a case the user may not see answers 404 like a missing one.
    """
    att = service.visible_attachment(session, attachment_id, actor=service.actor_of(user))
    return FileResponse(attachments.rendition_path(session, store, att.id, kind), media_type="image/jpeg")
