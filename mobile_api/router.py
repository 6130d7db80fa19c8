"""The phone API (mounted at ``/mobile/v1``): thin endpoints over :mod:`mobile_api.service`.

Every POST except login needs an ``Idempotency-Key`` header; a retry with the same key gets the first
answer again (with the header ``Idempotent-Replayed: true``) and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ValidationError

from casework.deps import PipelineDep
from casework.rules import CaseRules
from gridcity.deps import CurrentUser, DbSession, SettingsDep, Store, password_login
from gridcity.errors import PayloadTooLarge
from gridcity.settings import Settings
from gridcity.types import BoundedDate, IdPath, IdQuery, OffsetQuery
from mobile_api import fieldapp, idempotency, maintenance, service
from mobile_api.forms import OffLoopFormRoute, SpooledUpload
from mobile_api.idempotency import KEY_HEADER, Outcome
from mobile_api.schemas import (
    BatchIn,
    BatchOut,
    CaseDetailOut,
    ClassList,
    CoverageOut,
    FieldConfigOut,
    NearComponents,
    PhoneActionIn,
    ReportIn,
    ReportPage,
    ResultIn,
    SubmissionOut,
    TaskList,
    TokenOut,
    TrackIn,
    TrackOut,
)

# Multipart bodies (photos) are parsed in the threadpool, not on the event loop (mobile_api.forms, G-I3).
router = APIRouter(tags=["mobile"], route_class=OffLoopFormRoute)


def setup(app: Any) -> None:
    """Housekeeping (orphan photos, old idempotency keys) on a schedule with the app's lifespan."""
    maintenance.setup(app)


M = TypeVar("M", bound=BaseModel)


def idempotency_key(
    key: Annotated[
        str | None, Header(alias=KEY_HEADER, description="Client-generated, 1–64 chars, per submission.")
    ] = None,
) -> str:
    """The submission's idempotency key (400 ``idempotency.missing_key`` without one)."""
    return idempotency.check_key(key, loc=["header", KEY_HEADER])


IdemKey = Annotated[str, Depends(idempotency_key)]


def _rules(request: Request) -> CaseRules:
    rules: CaseRules = request.app.state.rules
    return rules


def _respond(outcome: Outcome) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


def _parse(model: type[M], text: str, field: str) -> M:
    """A multipart JSON field validated like a body (422 in the usual error shape)."""
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", field, *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _read(files: list[UploadFile] | None, field: str, settings: Settings, spools: service.Spools) -> list[bytes]:
    out: list[bytes] = []
    for i, f in enumerate(files or []):
        if f.size is not None and f.size > settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"photo larger than {settings.max_upload_bytes} bytes", code="photo.too_large", loc=["body", field, i]
            )
        data = f.file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"photo larger than {settings.max_upload_bytes} bytes", code="photo.too_large", loc=["body", field, i]
            )
        if isinstance(f, SpooledUpload):  # under the photo store, hashed as it arrived: stored by linking
            spools[id(data)] = service.Spooled(sha256=f.sha256, path=f.path)
        out.append(data)
    return out


PhotoFiles = Annotated[list[UploadFile] | None, File(description="1–9 photos (JPEG, PNG, WebP)")]


@router.post(
    "/auth/token",
    response_model=TokenOut,
    summary="Log in on the phone (inspectors, field staff)",
    responses={
        429: {
            "description": "Too many failed logins for this account or address "
            "(`auth.too_many_attempts`, with `Retry-After`)"
        }
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, settings: SettingsDep
) -> TokenOut:
    """Exchange username and password for a bearer token; other roles get 403 (failed logins are throttled)."""
    user = await password_login(request, form.username, form.password)
    return service.login_token(user, settings=settings)


@router.get("/tasks", response_model=TaskList, response_model_exclude_none=True, summary="My task inbox")
def tasks(
    session: DbSession,
    user: CurrentUser,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    coord_system: Annotated[str, Query(pattern="^(wgs84|gcj02)$")] = "wgs84",
) -> TaskList:
    """Verify/check tasks (inspectors) or dispatched cases (department staff), by deadline then distance."""
    return service.list_tasks(session, user=user, lon=lon, lat=lat, coord_system=coord_system)


@router.post("/reports", response_model=SubmissionOut, status_code=201, summary="Report a problem with photos")
def post_report(
    session: DbSession,
    user: CurrentUser,
    store: Store,
    settings: SettingsDep,
    pipeline: PipelineDep,
    key: IdemKey,
    report: Annotated[
        str,
        Form(
            description="JSON: class_code, lon, lat, coord_system, description, "
            "component_id, captured_at, self_handled, note"
        ),
    ],
    photos: PhotoFiles = None,
    before: PhotoFiles = None,
    after: PhotoFiles = None,
) -> Any:
    """A report with 1–9 photos, or a self-handled (自处理) one with before and after photos."""
    spools: service.Spools = {}
    return _respond(
        service.submit_report(
            session,
            store=store,
            settings=settings,
            pipeline=pipeline,
            user=user,
            key=key,
            report_in=_parse(ReportIn, report, "report"),
            photo_items=_read(photos, "photos", settings, spools),
            before=_read(before, "before", settings, spools),
            after=_read(after, "after", settings, spools),
            spools=spools,
        )
    )


@router.post("/tasks/{case_id}/result", response_model=SubmissionOut, summary="Send a task result from the site")
def post_result(
    case_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    store: Store,
    settings: SettingsDep,
    pipeline: PipelineDep,
    key: IdemKey,
    result: Annotated[str, Form(description="JSON: outcome (pass|fail|done), lon, lat, coord_system, note")],
    photos: PhotoFiles = None,
) -> Any:
    """Verify (核实) or check (核查) outcome, or a department's on-site feedback; refused when not on site."""
    spools: service.Spools = {}
    return _respond(
        service.submit_result(
            session,
            store=store,
            settings=settings,
            pipeline=pipeline,
            user=user,
            key=key,
            case_id=case_id,
            result_in=_parse(ResultIn, result, "result"),
            photo_items=_read(photos, "photos", settings, spools),
            spools=spools,
        )
    )


@router.get("/reports", response_model=ReportPage, response_model_exclude_none=True, summary="My reports")
def my_reports(
    session: DbSession,
    user: CurrentUser,
    offset: OffsetQuery = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ReportPage:
    """The reports I made and their state, newest first."""
    return service.list_my_reports(session, user=user, offset=offset, limit=limit)


@router.post("/photos", status_code=201, summary="Upload photos for queued items")
def post_photos(
    session: DbSession, user: CurrentUser, store: Store, settings: SettingsDep, key: IdemKey, photos: PhotoFiles = None
) -> Any:
    """Store 1–9 photos; batch items reference them by id."""
    spools: service.Spools = {}
    files = _read(photos, "photos", settings, spools)
    return _respond(
        service.upload_photos(session, store=store, settings=settings, user=user, key=key, files=files, spools=spools)
    )


@router.post("/batch", response_model=BatchOut, summary="Upload the offline queue")
def post_batch(
    body: BatchIn,
    session: DbSession,
    user: CurrentUser,
    store: Store,
    settings: SettingsDep,
    pipeline: PipelineDep,
    key: IdemKey,
) -> Any:
    """Each item (report, result, tracks) carries its own key and gets its own status and result."""
    return _respond(
        service.run_batch(
            session, store=store, settings=settings, pipeline=pipeline, user=user, key=key, items=body.items
        )
    )


@router.post("/tracks", response_model=TrackOut, summary="Upload patrol breadcrumbs")
def post_tracks(body: TrackIn, session: DbSession, user: CurrentUser, request: Request, key: IdemKey) -> Any:
    """Store GPS points; points out of range or outside the city are refused one by one."""
    return _respond(service.record_track(session, user=user, rules=_rules(request), key=key, track_in=body))


@router.get("/tracks/coverage", response_model=CoverageOut, summary="Patrol coverage of a day")
def track_coverage(
    session: DbSession,
    user: CurrentUser,
    request: Request,
    inspector_id: IdQuery,
    date: Annotated[BoundedDate, Query()],
) -> CoverageOut:
    """Share of the inspector's supervision-area grids visited on that day (local time)."""
    return service.coverage(
        session, viewer=user, inspector_id=inspector_id, day=date, tz=_rules(request).calendar.timezone
    )


# ---- what the field app (城管通, /m/) reads and sends besides the above ---------------------------------------

Lon = Annotated[float, Query(ge=-180, le=180)]
Lat = Annotated[float, Query(ge=-90, le=90)]
CoordSystemQ = Annotated[str, Query(pattern="^(wgs84|gcj02)$")]


@router.get("/config", response_model=FieldConfigOut, summary="Limits the phone checks before queueing")
def field_config(session: DbSession, user: CurrentUser, settings: SettingsDep) -> FieldConfigOut:
    """Photo size and pixel limits, photos per report, the on-site radius, the snap tolerance, the city extent."""
    return fieldapp.field_config(session, settings=settings)


@router.get(
    "/classes", response_model=ClassList, response_model_exclude_none=True, summary="Classes to report, by Chinese name"
)
def classes(session: DbSession, user: CurrentUser, request: Request) -> ClassList:
    """Every enabled class of both generations as the city configured them, no name twice; my recent ones."""
    return fieldapp.list_classes(session, rules=_rules(request), user=user)


@router.get(
    "/components/nearest",
    response_model=NearComponents,
    response_model_exclude_none=True,
    summary="Components of a class near a point",
)
def nearest_components(
    session: DbSession,
    user: CurrentUser,
    settings: SettingsDep,
    request: Request,
    class_code: Annotated[str, Query(min_length=2, max_length=12)],
    lon: Lon,
    lat: Lat,
    coord_system: CoordSystemQ = "wgs84",
) -> NearComponents:
    """Components of the class (or its counterpart in the other generation) within the snap tolerance,
    nearest first; ``inside_city`` false when the point is outside the city."""
    return fieldapp.nearest_components(
        session,
        settings=settings,
        rules=_rules(request),
        user=user,
        class_code=class_code,
        lon=lon,
        lat=lat,
        coord_system=coord_system,
    )


@router.get(
    "/tasks/{case_id}",
    response_model=CaseDetailOut,
    response_model_exclude_none=True,
    summary="A task (or one of my reports) with photos and history",
)
def task_detail(
    case_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    settings: SettingsDep,
    request: Request,
    lon: Lon | None = None,
    lat: Lat | None = None,
    coord_system: CoordSystemQ = "wgs84",
) -> CaseDetailOut:
    """The case's photos, history, distance from the phone, the on-site radius and the allowed actions."""
    return fieldapp.case_detail(
        session,
        settings=settings,
        rules=_rules(request),
        user=user,
        case_id=case_id,
        lon=lon,
        lat=lat,
        coord_system=coord_system,
    )


@router.post(
    "/tasks/{case_id}/action", response_model=SubmissionOut, summary="Accept, ask for an extension or a send-back"
)
def post_action(
    case_id: IdPath, body: PhoneActionIn, session: DbSession, user: CurrentUser, pipeline: PipelineDep, key: IdemKey
) -> Any:
    """A department's action on a dispatched case from the phone, once per idempotency key."""
    return _respond(
        fieldapp.submit_action(session, pipeline=pipeline, user=user, key=key, case_id=case_id, action_in=body)
    )
