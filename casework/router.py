"""HTTP endpoints of the case pipeline (thin: parse, call one service, shape the answer)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse

from casework import attachments, lifecycle, service
from casework.deps import PipelineDep
from casework.lifecycle import CaseAction, CaseStatus
from casework.models import Case
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
)
from components import service as components_service
from gridcity import coords, photos
from gridcity.deps import CurrentUser, DbSession, SettingsDep, Store
from gridcity.errors import BadRequest, InvalidInput, PayloadTooLarge

router = APIRouter(prefix="/cases", tags=["cases"])
attachments_router = APIRouter(prefix="/attachments", tags=["attachments"])


def _rules(request: Request) -> CaseRules:
    rules: CaseRules = request.app.state.rules
    return rules


def case_read(session: DbSession, case: Case, user: CurrentUser, rules: CaseRules) -> CaseRead:
    """Shape a case for the current user, with its clocks and allowed actions."""
    now = dt.datetime.now(dt.UTC)
    views = service.case_clocks(session, case, rules=rules, now=now)
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
    try:
        out.class_name = rules.catalog.get(case.class_code).name_zh
    except InvalidInput:
        out.class_name = None
    return out


def _limit_text(rules: CaseRules, case: Case, stage: lifecycle.Stage) -> str | None:
    lim = rules.standards.lookup(case.class_code, case.urgency).limit(stage.value)
    return None if lim is None else f"{lim[0]:g} {lim[1]}"


@router.post("", response_model=CaseRead, status_code=201, summary="Report a problem (creates a case)")
def create_case(body: CaseCreate, session: DbSession, user: CurrentUser, pipeline: PipelineDep) -> CaseRead:
    """An inspector reports, an operator registers a public report, or an inspector self-handles."""
    rules = pipeline.rules
    lon, lat = coords.to_wgs84(body.lon, body.lat, coords.CoordSystem(body.coord_system))
    rep = body.reporter
    change = pipeline.create_case(
        session,
        actor=service.actor_of(user),
        action=CaseAction(body.action),
        new=service.NewCase(
            class_code=body.class_code, lon=lon, lat=lat, urgency=body.urgency, address=body.address,
            description=body.description, component_id=body.component_id,
            reporter_name=rep.name if rep else None, reporter_phone=rep.phone if rep else None,
            reporter_email=rep.email if rep else None,
            source="hotline" if body.action == "public_report" else None,
        ),
        inp=service.ActionInput(attachment_ids=tuple(body.attachment_ids), lon=lon, lat=lat),
    )
    return case_read(session, change.case, user, rules)


@router.get("", response_model=CasePage, summary="List cases")
def list_cases(
    session: DbSession,
    user: CurrentUser,
    status: Annotated[list[CaseStatus] | None, Query()] = None,
    department_id: int | None = None,
    class_code: str | None = None,
    grid_code: str | None = None,
    number: str | None = None,
    overdue: bool | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CasePage:
    """Cases the user may see, filtered and paged, newest first."""
    flt = service.CaseFilter(
        status=tuple(status or ()), department_id=department_id, class_code=class_code, grid_code=grid_code,
        overdue=overdue, created_from=created_from, created_to=created_to, bbox=components_service.parse_bbox(bbox),
        number=number,
    )
    rows, total = service.list_cases(session, actor=service.actor_of(user), flt=flt, offset=offset, limit=limit)
    now = dt.datetime.now(dt.UTC)
    items = []
    for c in rows:
        item = CaseListItem.model_validate(c)
        item.light = service.light_of(c, now)
        items.append(item)
    return CasePage(items=items, total=total, offset=offset, limit=limit)


@router.get("/{case_id}", response_model=CaseRead, summary="One case with deadlines and allowed actions")
def get_case(case_id: int, session: DbSession, user: CurrentUser, request: Request) -> CaseRead:
    """A case, its clocks, and what the current user may do to it."""
    case = service.get_case(session, case_id, actor=service.actor_of(user))
    return case_read(session, case, user, _rules(request))


@router.post("/{case_id}/actions", response_model=CaseRead, summary="Act on a case")
def act(case_id: int, body: ActionIn, session: DbSession, user: CurrentUser, pipeline: PipelineDep) -> CaseRead:
    """File, void, dispatch, accept, feed back, check, close ... (409 names the allowed actions)."""
    rules = pipeline.rules
    change = pipeline.apply_action(
        session,
        case_id=case_id,
        actor=service.actor_of(user),
        action=body.action,
        inp=service.ActionInput(
            expected_version=body.version, department_id=body.department_id, inspector_id=body.inspector_id,
            note=body.note, attachment_ids=tuple(body.attachment_ids),
            extension=body.extension.model_dump() if body.extension else None,
            target_case_id=body.target_case_id, lon=body.lon, lat=body.lat,
        ),
    )
    return case_read(session, change.case, user, rules)


@router.get("/{case_id}/events", response_model=list[EventRead], summary="A case's timeline")
def events(case_id: int, session: DbSession, user: CurrentUser) -> list[EventRead]:
    """The append-only log of the case, oldest first, with each event's photos."""
    case = service.get_case(session, case_id, actor=service.actor_of(user))
    return [
        EventRead(
            id=e.id, seq=e.seq, action=e.action, from_status=e.from_status, to_status=e.to_status,
            actor_id=e.actor_id, actor_role=e.actor_role, department_id=e.department_id, at=e.at, lon=e.lon,
            lat=e.lat, note=e.note, data=e.data or {},
            attachments=[{"id": aid, "role": role, "thumb_url": f"/api/v1/attachments/{aid}/thumb",
                          "display_url": f"/api/v1/attachments/{aid}/display"} for aid, role in atts],
        )
        for e, atts in service.case_events(session, case.id)
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
            attachments.store_photo, session, store, data, uploaded_by=user.id, limits=limits,
            loc=["body", "files", i],
        )
        out.append(attachment_read(att))
    return out


@attachments_router.get("/{attachment_id}/{kind}", summary="A rendition of a photo (display or thumb)")
def rendition(attachment_id: int, kind: str, session: DbSession, user: CurrentUser, store: Store) -> FileResponse:
    """The metadata-free JPEG rendition of a photo the user may see (its uploader, or who may see its case).

    A photo belongs to its case: a photo of a case the user may not see answers 404 like a missing one.
    """
    att = service.visible_attachment(session, attachment_id, actor=service.actor_of(user))
    return FileResponse(attachments.rendition_path(session, store, att.id, kind), media_type="image/jpeg")
