"""What the phone API does: login, task inbox, reports, task results, photos, batches, patrol tracks.

Every submission runs through :func:`mobile_api.idempotency.run`, so a retry with the same key returns
the first result. Photos are stored with :func:`casework.attachments.store_photo` (files removed again if
the transaction rolls back); their EXIF time and position are compared with the claim and the advisory
flags are kept on the attachment and in the event's data, where the operator sees them.
Services only flush; the request dependency commits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import attachments as casework_attachments
from casework import service as casework_service
from casework.lifecycle import CaseAction, CaseStatus
from casework.models import Attachment, Case, CaseEvent, EventAttachment
from casework.pipeline import CasePipeline
from casework.rules import CaseRules
from components import service as components_service
from components.models import PatrolPoint
from gridcity import coords, photos, security, spatial
from gridcity.errors import GridCityError, InvalidInput, PermissionDenied
from gridcity.org import User
from gridcity.roles import Role
from gridcity.settings import Settings
from gridcity.storage import MediaStore, remove_new_files, sync_in_background
from gridcity.types import utcnow
from mobile_api import fieldapp, idempotency, photo_claims
from mobile_api.idempotency import Outcome
from mobile_api.schemas import (
    BatchItemIn,
    BatchItemOut,
    BatchOut,
    CoverageOut,
    PhotoOut,
    RefusedPoint,
    ReportIn,
    ReportOut,
    ReportPage,
    ResultIn,
    SubmissionOut,
    TaskList,
    TaskOut,
    TokenOut,
    TrackIn,
    TrackOut,
    UserOut,
)

log = logging.getLogger(__name__)

MOBILE_ROLES = frozenset({Role.INSPECTOR, Role.DEPARTMENT})
COVERAGE_ROLES = frozenset({Role.ACCEPTOR, Role.SHIFT_LEADER, Role.LEADER, Role.ADMIN})
MAX_PHOTOS = 9
#: Breadcrumbs less accurate than this are refused (they cannot tell which ~100 m grid was visited).
MAX_TRACK_ACCURACY_M = 200.0
#: How far in the future (phone clock skew) and in the past (offline queue) a breadcrumb may be.
TRACK_FUTURE_SKEW = dt.timedelta(minutes=5)
TRACK_MAX_AGE = dt.timedelta(days=7)
RENDITION_SUFFIXES = (".orig", ".display.jpg", ".thumb.jpg")
#: A department's queue, as the console's department inbox shows it: to accept, in hand, and its open requests.
DEPARTMENT_QUEUE = (
    CaseStatus.DISPATCHED,
    CaseStatus.HANDLING,
    CaseStatus.SENDBACK_REQUESTED,
    CaseStatus.EXTENSION_REQUESTED,
    CaseStatus.SUSPENSION_REQUESTED,
    CaseStatus.SUSPENDED,
)

#: A photo is uploaded bytes (stored now), the same already validated and written (:func:`prepare_uploads`),
#: or the id of an attachment stored earlier (POST /photos).
PhotoInput = bytes | int | photos.PreparedPhoto


@dataclass(frozen=True, slots=True)
class Spooled:
    """Where an uploaded photo's bytes also sit (a temp file under the photo store) and their SHA-256.

    Made by the multipart parser (:class:`mobile_api.forms.SpooledUpload`), which hashes a file part while
    writing it: the service takes the hash from here (no second pass over the bytes) and stores the original
    by linking the file into the store (:meth:`gridcity.storage.MediaStore.put_file`), not by writing it again.
    """

    sha256: str
    path: Path


#: The spooled files of one request's uploads, by ``id()`` of the bytes read from each (they live as long
#: as the request's lists of photos).
Spools = dict[int, Spooled]


class MobileRoleForbidden(PermissionDenied):
    """The phone API (or this part of it) is not for the user's role (403)."""

    default_code = "mobile.role_forbidden"


class NoTask(InvalidInput):
    """The outcome does not fit the task the case is in (422)."""

    default_code = "mobile.no_task"


# ---- login -------------------------------------------------------------------------------------------------


def login_token(user: User, *, settings: Settings) -> TokenOut:
    """A bearer token for an inspector or department field staff whose password was checked (403 for other
    roles); see ``gridcity.deps.password_login``."""
    if user.role not in MOBILE_ROLES:
        raise MobileRoleForbidden(
            "the phone app is for inspectors and department field staff", loc=["body", "username"]
        )
    ttl = dt.timedelta(minutes=settings.token_ttl_minutes)
    token = security.create_token(user_id=user.id, role=user.role, secret=settings.resolved_secret_key(), ttl=ttl)
    return TokenOut(access_token=token, expires_in=int(ttl.total_seconds()), user=UserOut.model_validate(user))


def _require_role(user: User, roles: frozenset[Role], what: str) -> None:
    if user.role not in roles:
        raise MobileRoleForbidden(f"{what} is for {', '.join(sorted(roles))}")


# ---- photos ------------------------------------------------------------------------------------------------


def photo_limits(settings: Settings) -> photos.PhotoLimits:
    """The upload budgets of the deployment."""
    return photos.PhotoLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_photo_pixels)


def _check_count(items: Sequence[Any], field: str, *, required: bool) -> None:
    if required and not 1 <= len(items) <= MAX_PHOTOS:
        raise InvalidInput(f"send 1 to {MAX_PHOTOS} photos in {field}", code="mobile.photo_count", loc=["body", field])
    if not required and items:
        raise InvalidInput(f"{field} is not expected here", code="mobile.unexpected_photos", loc=["body", field])


def _touch(session: Session, store: MediaStore, sha256: str) -> None:
    # A photo whose bytes were already on disk (an orphan left by a crash) is not rewritten by the store;
    # refreshing its time keeps the orphan cleaner, which only removes old files, away from it. The display
    # rendition is made on demand, so it may not exist yet.
    for suffix in RENDITION_SUFFIXES:
        try:
            store.touch(store.path_for(sha256, suffix), session=session)
        except FileNotFoundError:
            if suffix in casework_attachments.REQUIRED_SUFFIXES:
                raise


@dataclass(frozen=True, slots=True)
class Claim:
    """Where and when a submission says its photos were taken (WGS84), and how far off a photo may be."""

    lon: float
    lat: float
    at: dt.datetime
    max_distance_m: float


def claim_flags(info: photos.PhotoInfo, claim: Claim) -> list[dict[str, Any]]:
    """The advisory flags of one photo against the claim (:func:`mobile_api.photo_claims.compare_claim`)."""
    return [
        {"code": f.code, "msg": f.message, "value": f.value}
        for f in photo_claims.compare_claim(
            info, claimed_lon=claim.lon, claimed_lat=claim.lat, claimed_at=claim.at, max_distance_m=claim.max_distance_m
        )
    ]


def _resolve_photos(
    session: Session,
    store: MediaStore,
    settings: Settings,
    user: User,
    items: Sequence[PhotoInput],
    field: str,
    claim: Claim | None = None,
) -> list[Attachment]:
    """Store uploaded (or prepared) photos, or look up attachments stored earlier by this user.

    With a ``claim``, a prepared photo's row is inserted with its flags already (no UPDATE afterwards).
    """
    limits = photo_limits(settings)
    out: list[Attachment] = []
    for i, item in enumerate(items):
        loc: list[str | int] = ["body", field, i]
        if isinstance(item, (bytes, photos.PreparedPhoto)):
            flags = claim_flags(item.info, claim) if claim and isinstance(item, photos.PreparedPhoto) else None
            att = casework_attachments.store_photo(
                session, store, item, uploaded_by=user.id, limits=limits, loc=loc, flags=flags
            )
            _touch(session, store, att.sha256)
        else:
            found = session.get(Attachment, item)
            if found is None or found.uploaded_by != user.id:
                raise InvalidInput(f"unknown photo {item}", code="attachment.unknown", loc=loc)
            att = found
        out.append(att)
    return out


def _sha_of(data: bytes, cache: dict[int, str] | None) -> str:
    """The SHA-256 of uploaded bytes, computed once per request (a 4 MB photo costs ~10 ms per hash)."""
    if cache is None:
        return hashlib.sha256(data).hexdigest()
    sha = cache.get(id(data))
    if sha is None:
        sha = cache[id(data)] = hashlib.sha256(data).hexdigest()
    return sha


def prepare_uploads(
    session: Session,
    *,
    store: MediaStore,
    settings: Settings,
    groups: dict[str, Sequence[PhotoInput]],
    shas: dict[int, str] | None = None,
    spools: Spools | None = None,
) -> dict[str, list[PhotoInput]]:
    """Do the photo work of a submission before its write transaction (goal G-I3).

    Ends the session's transaction (it has only read so far), so that on SQLite no write lock is held during
    the work; then validates each new photo, renders its thumbnail and writes its files. The files are
    registered on the session: when the write transaction that follows rolls back, they are removed.
    Photos already stored stay bytes (no work; :func:`casework.attachments.store_photo` finds them). When a
    photo is refused nothing has been written yet. Returns the groups with prepared photos for the bytes.
    Inside a savepoint (a batch) the transaction is kept and the work simply happens in it.
    """
    uploaded = {_sha_of(item, shas) for items in groups.values() for item in items if isinstance(item, bytes)}
    if not uploaded:
        return {name: list(items) for name, items in groups.items()}
    known = set(session.scalars(select(Attachment.sha256).where(Attachment.sha256.in_(sorted(uploaded)))))
    casework_attachments.end_read_transaction(session)
    limits = photo_limits(settings)
    done: dict[str, photos.PreparedPhoto] = {}
    linkable: dict[str, Path] = {}
    syncing: dict[str, Callable[[], None]] = {}
    out: dict[str, list[PhotoInput]] = {}
    try:
        for name, items in groups.items():
            out[name] = []
            for i, item in enumerate(items):
                if isinstance(item, bytes):
                    sha = _sha_of(item, shas)
                    if sha not in known:
                        if sha not in done:
                            # A spooled upload was hashed as it arrived (that is ``sha``): not hashed again here.
                            spooled = (spools or {}).get(id(item))
                            if spooled is not None:
                                linkable[sha] = spooled.path
                                # Its bytes reach the disk while the photo is decoded, not after.
                                syncing[sha] = sync_in_background(spooled.path)
                            done[sha] = casework_attachments.prepare(
                                item, limits, ["body", name, i], sha256=spooled.sha256 if spooled else None
                            )
                        item = done[sha]
                out[name].append(item)
        for sha, prepared in done.items():
            if sha in linkable:  # the upload's own temp file becomes the original: linked, not written again
                # Original and thumbnail share a folder: one fsync of it makes both names durable.
                store.put_file(
                    linkable[sha],
                    sha,
                    casework_attachments.ORIGINAL,
                    session=session,
                    sync_folder=False,
                    synced=syncing[sha],
                )
                store.put(
                    prepared.thumbnail.data, casework_attachments.THUMB, session=session, key=sha, sync_folder=False
                )
                store.sync_folder(sha)
            else:
                casework_attachments.write_files(store, prepared, session=session)
    except BaseException:
        remove_new_files(session)
        raise
    finally:
        for wait in syncing.values():  # a refused photo's sync, or one after a failure: never left running
            with contextlib.suppress(OSError):
                wait()
    return out


def photo_shas(
    session: Session, user: User, items: Sequence[PhotoInput], field: str, cache: dict[int, str] | None = None
) -> list[str]:
    """The SHA-256 of each photo: of the bytes, or of the stored original (same value for the same photo)."""
    ids = [i for i in items if isinstance(i, int)]
    known: dict[int, str] = {}
    if ids:
        rows = session.execute(
            select(Attachment.id, Attachment.sha256).where(Attachment.id.in_(ids), Attachment.uploaded_by == user.id)
        ).all()
        known = {int(r[0]): str(r[1]) for r in rows}
    out = []
    for i, item in enumerate(items):
        if isinstance(item, bytes):
            out.append(_sha_of(item, cache))
        elif isinstance(item, photos.PreparedPhoto):
            out.append(item.info.sha256)
        elif item in known:
            out.append(known[item])
        else:
            raise InvalidInput(f"unknown photo {item}", code="attachment.unknown", loc=["body", field, i])
    return out


_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/heic": "HEIF"}


def _info_of(att: Attachment) -> photos.PhotoInfo:
    """The capture metadata kept in the attachment's columns, in the shape compare_claim takes."""
    gps = photos.GeoPoint(att.exif_lon, att.exif_lat) if att.exif_lon is not None and att.exif_lat is not None else None
    return photos.PhotoInfo(
        format=_FORMATS.get(att.media_type, "JPEG"),
        width=att.width,
        height=att.height,
        mode="RGB",
        orientation=1,
        sha256=att.sha256,
        size_bytes=att.size,
        taken_at=att.taken_at,
        gps=gps,
    )


def flag_photos(atts: Sequence[Attachment], claim: Claim) -> dict[int, list[dict[str, Any]]]:
    """Compare each photo's EXIF time/position with the claim; store the advisory flags on the attachment
    (only where that adds a flag: a photo stored by this submission has them already)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for att in atts:
        flags = claim_flags(_info_of(att), claim)
        out[att.id] = flags
        merged = list(att.flags or [])
        merged.extend(f for f in flags if f not in merged)
        if merged != (att.flags or []):
            att.flags = merged  # a new list, so the JSON column is seen as changed
    return out


def _photo_out(atts: Sequence[Attachment], flags: dict[int, list[dict[str, Any]]] | None = None) -> list[PhotoOut]:
    return [
        PhotoOut(
            id=a.id,
            sha256=a.sha256,
            taken_at=a.taken_at,
            flags=[f["code"] for f in flags[a.id]] if flags is not None else None,
        )
        for a in atts
    ]


def _flags_data(flags: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"attachment_id": aid, "code": f["code"], "msg": f["msg"]} for aid, fl in flags.items() for f in fl]


def upload_photos(
    session: Session,
    *,
    store: MediaStore,
    settings: Settings,
    user: User,
    key: str,
    files: Sequence[bytes],
    spools: Spools | None = None,
) -> Outcome:
    """Store 1–9 photos for later use by batch items (idempotent)."""
    _require_role(user, MOBILE_ROLES, "uploading photos")
    _check_count(files, "photos", required=True)
    shas: dict[int, str] = {k: v.sha256 for k, v in (spools or {}).items()}
    req_hash = idempotency.request_hash("photos", [_sha_of(f, shas) for f in files])
    replay = idempotency.peek(session, user_id=user.id, key=key, req_hash=req_hash)
    if replay is not None:
        return replay
    items = prepare_uploads(
        session, store=store, settings=settings, groups={"photos": files}, shas=shas, spools=spools
    )["photos"]

    def work() -> tuple[int, Any]:
        atts = _resolve_photos(session, store, settings, user, items, "photos")
        return 201, {"photos": [p.model_dump(mode="json", exclude_none=True) for p in _photo_out(atts)]}

    return idempotency.run(session, user_id=user.id, key=key, kind="photos", req_hash=req_hash, work=work)


# ---- reports -----------------------------------------------------------------------------------------------


def _to_wgs84(lon: float, lat: float, system: str, loc: list[str | int]) -> tuple[float, float]:
    lon, lat = coords.check_lonlat(lon, lat, loc=loc)
    return coords.to_wgs84(lon, lat, coords.CoordSystem(system))


def _locate_in_city(session: Session, lon: float, lat: float, loc: list[str | int]) -> components_service.Located:
    located = components_service.locate_point(session, lon=lon, lat=lat)
    if not located.inside_city:
        raise InvalidInput(
            f"the point ({lon:.6f}, {lat:.6f}) (WGS84) is outside the city", code="geo.outside_city", loc=loc
        )
    return located


def _claimed_at(value: dt.datetime | None, tz: str) -> dt.datetime:
    if value is None:
        return utcnow()
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


def report_hash(report_in: ReportIn, shas: dict[str, list[str]]) -> str:
    """The hash of a report: its fields and the SHA-256 of its photos per role."""
    return idempotency.request_hash("report", {"report": report_in.model_dump(mode="json"), "photos": shas})


@dataclass(frozen=True, slots=True)
class CheckedReport:
    """A report that passed its cheap checks: its WGS84 position and where that lies (grid, inside the city).

    Made once per report and handed on to the case's creation, so the point is located once, not again in
    the write transaction.
    """

    lon: float
    lat: float
    located: components_service.Located


def _precheck_report(session: Session, rules: CaseRules, report_in: ReportIn) -> CheckedReport:
    """The cheap checks of a report (position, city, class)."""
    loc_r: list[str | int] = ["body", "report"]
    lon, lat = _to_wgs84(report_in.lon, report_in.lat, report_in.coord_system, [*loc_r, "lon"])
    located = _locate_in_city(session, lon, lat, [*loc_r, "lon"])
    rules.catalog.get(report_in.class_code, loc=[*loc_r, "class_code"])
    return CheckedReport(lon=lon, lat=lat, located=located)


def _create_report(
    session: Session,
    *,
    store: MediaStore,
    settings: Settings,
    pipeline: CasePipeline,
    user: User,
    report_in: ReportIn,
    photo_items: Sequence[PhotoInput],
    before: Sequence[PhotoInput],
    after: Sequence[PhotoInput],
    checked: CheckedReport | None = None,
) -> tuple[int, Any]:
    # Cheap checks first, so that a doomed report costs no photo processing (done already before photo work).
    checked = checked or _precheck_report(session, pipeline.rules, report_in)
    lon, lat = checked.lon, checked.lat
    claimed_at = _claimed_at(report_in.captured_at, pipeline.rules.calendar.timezone)
    claim = Claim(lon=lon, lat=lat, at=claimed_at, max_distance_m=settings.onsite_radius_m)
    if report_in.self_handled:
        before_atts = _resolve_photos(session, store, settings, user, before, "before", claim)
        after_atts = _resolve_photos(session, store, settings, user, after, "after", claim)
        atts = before_atts + after_atts
    else:
        atts = _resolve_photos(session, store, settings, user, photo_items, "photos", claim)
    flags = flag_photos(atts, claim)
    action = CaseAction.SELF_HANDLE if report_in.self_handled else CaseAction.REPORT
    component_id = report_in.component_id
    if component_id is None:
        # The case keeps the component the server snapped it to (as the dispatcher will see it).
        component_id = fieldapp.snapped_component(
            session,
            pipeline.rules.catalog,
            lon=lon,
            lat=lat,
            class_code=report_in.class_code,
            radius_m=settings.snap_tolerance_m,
        )
    case = pipeline.create_case(
        session,
        actor=casework_service.actor_of(user),
        action=action,
        new=casework_service.NewCase(
            class_code=report_in.class_code,
            lon=lon,
            lat=lat,
            urgency=report_in.urgency,
            address=report_in.address,
            description=report_in.description,
            component_id=component_id,
            source="self" if report_in.self_handled else "inspector",
        ),
        inp=casework_service.ActionInput(
            attachment_ids=tuple(a.id for a in atts),
            lon=lon,
            lat=lat,
            note=report_in.note,
            data={
                "via": "mobile",
                "coord_system": report_in.coord_system,
                "captured_at": claimed_at.isoformat(),
                "photo_flags": _flags_data(flags),
            },
        ),
        located=checked.located,
    ).case
    if report_in.self_handled:
        _mark_before_after(session, case.id, {a.id for a in before_atts}, {a.id for a in after_atts})
    body = SubmissionOut(
        case_id=case.id,
        number=case.number,
        status=case.status,
        version=case.version,
        action=action,
        grid_code=case.grid_code,
        lon=case.lon,
        lat=case.lat,
        component_id=case.component_id,
        photos=_photo_out(atts, flags),
    )
    return 201, body.model_dump(mode="json", exclude_none=True)


def _mark_before_after(session: Session, case_id: int, before_ids: set[int], after_ids: set[int]) -> None:
    # create_case gives every photo of the self-handle event one role; the phone knows which were taken
    # before and which after the fix, and the reviewer needs that distinction.
    event_id = session.scalars(select(CaseEvent.id).where(CaseEvent.case_id == case_id)).one()
    for link in session.scalars(select(EventAttachment).where(EventAttachment.event_id == event_id)):
        link.role = (
            "before" if link.attachment_id in before_ids else "after" if link.attachment_id in after_ids else link.role
        )
    session.flush()


def submit_report(
    session: Session,
    *,
    store: MediaStore,
    settings: Settings,
    pipeline: CasePipeline,
    user: User,
    key: str,
    report_in: ReportIn,
    photo_items: Sequence[PhotoInput] = (),
    before: Sequence[PhotoInput] = (),
    after: Sequence[PhotoInput] = (),
    spools: Spools | None = None,
) -> Outcome:
    """Report a problem (or a self-handled one with before/after photos), once per idempotency key."""
    _require_role(user, frozenset({Role.INSPECTOR}), "reporting")
    _check_count(photo_items, "photos", required=not report_in.self_handled)
    _check_count(before, "before", required=report_in.self_handled)
    _check_count(after, "after", required=report_in.self_handled)
    shas: dict[int, str] = {k: v.sha256 for k, v in (spools or {}).items()}
    req_hash = report_hash(
        report_in,
        {
            "photos": photo_shas(session, user, photo_items, "photos", shas),
            "before": photo_shas(session, user, before, "before", shas),
            "after": photo_shas(session, user, after, "after", shas),
        },
    )
    replay = idempotency.peek(session, user_id=user.id, key=key, req_hash=req_hash)
    if replay is not None:
        return replay
    checked = None
    if any(isinstance(p, bytes) for p in (*photo_items, *before, *after)):
        checked = _precheck_report(session, pipeline.rules, report_in)  # a doomed report costs no photo work
        prepared = prepare_uploads(
            session,
            store=store,
            settings=settings,
            groups={"photos": photo_items, "before": before, "after": after},
            shas=shas,
            spools=spools,
        )
        photo_items, before, after = prepared["photos"], prepared["before"], prepared["after"]

    def work() -> tuple[int, Any]:
        return _create_report(
            session,
            store=store,
            settings=settings,
            pipeline=pipeline,
            user=user,
            report_in=report_in,
            photo_items=photo_items,
            before=before,
            after=after,
            checked=checked,
        )

    return idempotency.run(session, user_id=user.id, key=key, kind="report", req_hash=req_hash, work=work)


# ---- task results ------------------------------------------------------------------------------------------

_INSPECTOR_OUTCOMES: dict[tuple[CaseStatus, str], CaseAction] = {
    (CaseStatus.VERIFYING, "pass"): CaseAction.VERIFY_TRUE,
    (CaseStatus.VERIFYING, "fail"): CaseAction.VERIFY_FALSE,
    (CaseStatus.CHECKING, "pass"): CaseAction.CHECK_PASS,
    (CaseStatus.CHECKING, "fail"): CaseAction.CHECK_FAIL,
}


def _result_action(user: User, case: Case, outcome: str) -> CaseAction:
    if user.role is Role.INSPECTOR:
        action = _INSPECTOR_OUTCOMES.get((case.status, outcome))
    else:
        action = (
            CaseAction.FEEDBACK
            if outcome == "done" and case.status in (CaseStatus.DISPATCHED, CaseStatus.HANDLING)
            else None
        )
    if action is None:
        raise NoTask(
            f"case {case.number} is {case.status}; outcome {outcome!r} does not apply",
            loc=["body", "result", "outcome"],
            extra={"status": str(case.status)},
        )
    return action


def _result_context(
    session: Session, *, radius_m: float, user: User, case_id: int, result_in: ResultIn
) -> tuple[float, float, Case, CaseAction, float]:
    """The cheap checks of a task result (task, on site): position, case, action, distance."""
    loc_r: list[str | int] = ["body", "result"]
    lon, lat = _to_wgs84(result_in.lon, result_in.lat, result_in.coord_system, [*loc_r, "lon"])
    case = casework_service.get_case(session, case_id, actor=casework_service.actor_of(user))
    action = _result_action(user, case, result_in.outcome)
    # The one on-site rule (casework.service.on_site_distance); apply_action checks it again for
    # verify/check, here it refuses early, before any photo work, and also covers on-site feedback.
    distance = casework_service.on_site_distance(case, lon=lon, lat=lat, radius_m=radius_m, loc=[*loc_r, "lon"])
    return lon, lat, case, action, distance


def _submit_result(
    session: Session,
    *,
    store: MediaStore,
    settings: Settings,
    pipeline: CasePipeline,
    user: User,
    case_id: int,
    result_in: ResultIn,
    photo_items: Sequence[PhotoInput],
) -> tuple[int, Any]:
    actor = casework_service.actor_of(user)
    lon, lat, case, action, distance = _result_context(
        session, radius_m=pipeline.rules.onsite_radius_m, user=user, case_id=case_id, result_in=result_in
    )
    claimed_at = _claimed_at(result_in.captured_at, pipeline.rules.calendar.timezone)
    claim = Claim(lon=lon, lat=lat, at=claimed_at, max_distance_m=settings.onsite_radius_m)
    atts = _resolve_photos(session, store, settings, user, photo_items, "photos", claim)
    flags = flag_photos(atts, claim)
    version = result_in.version
    if action is CaseAction.FEEDBACK and case.status is CaseStatus.DISPATCHED:
        # Field staff who fix a case they have not yet accepted in the office accept it on the spot.
        case = pipeline.apply_action(
            session,
            case_id=case.id,
            actor=actor,
            action=CaseAction.ACCEPT,
            inp=casework_service.ActionInput(expected_version=version, lon=lon, lat=lat, data={"via": "mobile"}),
        ).case
        version = None
    case = pipeline.apply_action(
        session,
        case_id=case.id,
        actor=actor,
        action=action,
        inp=casework_service.ActionInput(
            expected_version=version,
            note=result_in.note,
            attachment_ids=tuple(a.id for a in atts),
            lon=lon,
            lat=lat,
            data={
                "via": "mobile",
                "coord_system": result_in.coord_system,
                "distance_m": round(distance, 1),
                "captured_at": claimed_at.isoformat(),
                "photo_flags": _flags_data(flags),
            },
        ),
    ).case
    body = SubmissionOut(
        case_id=case.id,
        number=case.number,
        status=case.status,
        version=case.version,
        action=action,
        photos=_photo_out(atts, flags),
    )
    return 200, body.model_dump(mode="json", exclude_none=True)


def submit_result(
    session: Session,
    *,
    store: MediaStore,
    settings: Settings,
    pipeline: CasePipeline,
    user: User,
    key: str,
    case_id: int,
    result_in: ResultIn,
    photo_items: Sequence[PhotoInput],
    spools: Spools | None = None,
) -> Outcome:
    """Send a verify/check outcome (inspector) or a handled-on-site feedback (department), on site, once."""
    _require_role(user, MOBILE_ROLES, "task results")
    _check_count(photo_items, "photos", required=True)
    shas: dict[int, str] = {k: v.sha256 for k, v in (spools or {}).items()}
    req_hash = idempotency.request_hash(
        "result",
        {
            "case_id": case_id,
            "result": result_in.model_dump(mode="json"),
            "photos": photo_shas(session, user, photo_items, "photos", shas),
        },
    )
    replay = idempotency.peek(session, user_id=user.id, key=key, req_hash=req_hash)
    if replay is not None:
        return replay
    if any(isinstance(p, bytes) for p in photo_items):
        _result_context(
            session, radius_m=pipeline.rules.onsite_radius_m, user=user, case_id=case_id, result_in=result_in
        )
        photo_items = prepare_uploads(
            session, store=store, settings=settings, groups={"photos": photo_items}, shas=shas, spools=spools
        )["photos"]

    def work() -> tuple[int, Any]:
        return _submit_result(
            session,
            store=store,
            settings=settings,
            pipeline=pipeline,
            user=user,
            case_id=case_id,
            result_in=result_in,
            photo_items=photo_items,
        )

    return idempotency.run(session, user_id=user.id, key=key, kind="result", req_hash=req_hash, work=work)


# ---- reads -------------------------------------------------------------------------------------------------


def list_tasks(
    session: Session, *, user: User, lon: float | None, lat: float | None, coord_system: str = "wgs84", limit: int = 200
) -> TaskList:
    """My open tasks, by deadline (none last), then distance from where I stand, then age."""
    _require_role(user, MOBILE_ROLES, "the task inbox")
    here = _to_wgs84(lon, lat, coord_system, ["query", "lon"]) if lon is not None and lat is not None else None
    if user.role is Role.INSPECTOR:
        q = select(Case).where(
            Case.assigned_inspector_id == user.id, Case.status.in_([CaseStatus.VERIFYING, CaseStatus.CHECKING])
        )
    else:
        q = select(Case).where(Case.department_id == user.department_id, Case.status.in_(DEPARTMENT_QUEUE))
    rows = session.scalars(q.order_by(Case.deadline_at.is_(None), Case.deadline_at, Case.id).limit(limit)).all()
    items = []
    for c in rows:
        task = {CaseStatus.VERIFYING: "verify", CaseStatus.CHECKING: "check"}.get(c.status, "handle")
        dist = coords.haversine_m(here[0], here[1], c.lon, c.lat) if here else None
        items.append(
            TaskOut(
                id=c.id,
                number=c.number,
                task=task,
                status=c.status,
                version=c.version,
                class_code=c.class_code,
                urgency=c.urgency,
                lon=c.lon,
                lat=c.lat,
                address=c.address,
                description=c.description,
                deadline_at=c.deadline_at,
                distance_m=round(dist, 1) if dist is not None else None,
            )
        )
    far = float("inf")
    items.sort(
        key=lambda t: (
            t.deadline_at is None,
            t.deadline_at or dt.datetime.max.replace(tzinfo=dt.UTC),
            t.distance_m if t.distance_m is not None else far,
            t.id,
        )
    )
    return TaskList(items=items)


def list_my_reports(session: Session, *, user: User, offset: int = 0, limit: int = 50) -> ReportPage:
    """The reports I made (including self-handled ones) and their state, newest first."""
    q = select(Case).where(Case.reporter_id == user.id)
    total = session.scalar(select(sa.func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Case.id.desc()).offset(offset).limit(limit)).all()
    return ReportPage(
        total=total,
        items=[
            ReportOut(
                id=c.id,
                number=c.number,
                status=c.status,
                class_code=c.class_code,
                lon=c.lon,
                lat=c.lat,
                created_at=c.created_at,
                grid_code=c.grid_code,
                self_handled=c.source == "self" or None,
                deadline_at=c.deadline_at,
            )
            for c in rows
        ],
    )


# ---- patrol tracks -----------------------------------------------------------------------------------------


def _refuse(i: int, code: str, msg: str) -> RefusedPoint:
    return RefusedPoint(index=i, type=code, msg=msg)


def _record_track(session: Session, *, user: User, track_in: TrackIn, tz: str, now: dt.datetime) -> TrackOut:
    rows: list[dict[str, Any]] = []
    refused: list[RefusedPoint] = []
    for i, p in enumerate(track_in.points):
        try:
            lon, lat = _to_wgs84(p.lon, p.lat, track_in.coord_system, ["body", "points", i])
        except InvalidInput as exc:
            refused.append(_refuse(i, exc.code, exc.message))
            continue
        at = p.at if p.at.tzinfo else p.at.replace(tzinfo=ZoneInfo(tz))
        if at > now + TRACK_FUTURE_SKEW:
            refused.append(_refuse(i, "track.future_time", "the point's time is in the future"))
            continue
        if at < now - TRACK_MAX_AGE:
            refused.append(_refuse(i, "track.too_old", "the point is older than the upload window"))
            continue
        if p.accuracy_m is not None and not 0 <= p.accuracy_m <= MAX_TRACK_ACCURACY_M:
            refused.append(_refuse(i, "track.inaccurate", f"accuracy must be between 0 and {MAX_TRACK_ACCURACY_M:g} m"))
            continue
        located = components_service.locate_point(session, lon=lon, lat=lat)
        if not located.inside_city:
            refused.append(_refuse(i, "geo.outside_city", "the point is outside the city"))
            continue
        rows.append(
            {
                "inspector_id": user.id,
                "at": at,
                "lon": lon,
                "lat": lat,
                "accuracy_m": p.accuracy_m,
                "grid_code": located.grid_code,
            }
        )
    inserted = 0
    if rows:
        table = PatrolPoint.__table__
        insert = spatial.insert_for(session)
        stmt = (
            insert(table)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["inspector_id", "at"])
            .returning(table.c.id)
        )
        inserted = len(session.execute(stmt).all())
    return TrackOut(accepted=inserted, duplicates=len(rows) - inserted, refused=refused)


def record_track(session: Session, *, user: User, rules: CaseRules, key: str, track_in: TrackIn) -> Outcome:
    """Store patrol breadcrumbs; bad points are refused one by one; re-sent points are not stored twice."""
    _require_role(user, frozenset({Role.INSPECTOR}), "patrol tracks")
    req_hash = idempotency.request_hash("tracks", track_in.model_dump(mode="json"))

    def work() -> tuple[int, Any]:
        out = _record_track(session, user=user, track_in=track_in, tz=rules.calendar.timezone, now=utcnow())
        return 200, out.model_dump(mode="json")

    return idempotency.run(session, user_id=user.id, key=key, kind="tracks", req_hash=req_hash, work=work)


def day_bounds(day: dt.date, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where a local calendar day starts and ends."""
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(0), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def coverage(session: Session, *, viewer: User, inspector_id: int, day: dt.date, tz: str) -> CoverageOut:
    """The share of an inspector's supervision-area grids visited on a local day, with the missed grids."""
    if viewer.role not in COVERAGE_ROLES and not (viewer.role is Role.INSPECTOR and viewer.id == inspector_id):
        raise MobileRoleForbidden(
            "patrol coverage is for the supervision centre, leaders, and the inspector", loc=["query", "inspector_id"]
        )
    start, end = day_bounds(day, tz)
    by_inspector = components_service.coverage_by_inspector(session, start=start, end=end, inspector_id=inspector_id)
    total, seen = by_inspector.get(inspector_id, (0, 0))
    points = (
        session.scalar(
            select(sa.func.count())
            .select_from(PatrolPoint)
            .where(PatrolPoint.inspector_id == inspector_id, PatrolPoint.at >= start, PatrolPoint.at < end)
        )
        or 0
    )
    # The grids the inspector held that day, as assigned at the time (a reassignment in the middle of the day
    # splits the grid between the two inspectors), not as assigned today.
    missed = components_service.missed_grids(session, inspector_id=inspector_id, start=start, end=end)
    return CoverageOut(
        inspector_id=inspector_id,
        date=day,
        grids_total=total,
        grids_visited=seen,
        coverage=round(seen / total, 4) if total else None,
        points=points,
        missed=list(missed),
    )


# ---- the offline queue -------------------------------------------------------------------------------------


def _item_error(key: str | None, exc: GridCityError, prefix: list[str | int]) -> BatchItemOut:
    detail = exc.to_detail()
    loc = detail.get("loc") or []
    # The item's own errors name body fields; inside a batch they live under the item.
    detail["loc"] = [*prefix, *loc[1:]] if loc[:1] == ["body"] else [*prefix, *loc]
    return BatchItemOut(key=key, status=exc.status_code, error=detail)


def _run_item(
    session: Session,
    *,
    store: MediaStore,
    settings: Settings,
    pipeline: CasePipeline,
    user: User,
    item: BatchItemIn,
    loc: list[str | int],
) -> Outcome:
    key = idempotency.check_key(item.key, loc=[*loc, "key"])
    if item.kind == "report":
        if item.report is None:
            raise InvalidInput("a report item needs report", code="mobile.item_incomplete", loc=[*loc, "report"])
        return submit_report(
            session,
            store=store,
            settings=settings,
            pipeline=pipeline,
            user=user,
            key=key,
            report_in=item.report,
            photo_items=item.photo_ids,
            before=item.before_ids,
            after=item.after_ids,
        )
    if item.kind == "result":
        if item.result is None or item.case_id is None:
            raise InvalidInput(
                "a result item needs case_id and result", code="mobile.item_incomplete", loc=[*loc, "result"]
            )
        return submit_result(
            session,
            store=store,
            settings=settings,
            pipeline=pipeline,
            user=user,
            key=key,
            case_id=item.case_id,
            result_in=item.result,
            photo_items=item.photo_ids,
        )
    if item.tracks is None:
        raise InvalidInput("a tracks item needs tracks", code="mobile.item_incomplete", loc=[*loc, "tracks"])
    return record_track(session, user=user, rules=pipeline.rules, key=key, track_in=item.tracks)


def _batch_item(
    session: Session, *, store: MediaStore, settings: Settings, pipeline: CasePipeline, user: User, raw: Any, index: int
) -> BatchItemOut:
    prefix: list[str | int] = ["body", "items", index]
    key = raw.get("key") if isinstance(raw, dict) and isinstance(raw.get("key"), str) else None
    try:
        item = BatchItemIn.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        return BatchItemOut(
            key=key, status=422, error={"type": err["type"], "loc": [*prefix, *err["loc"]], "msg": err["msg"]}
        )
    try:
        # A savepoint per item: a refused item rolls back only its own work and its own key.
        with session.begin_nested():
            outcome = _run_item(
                session, store=store, settings=settings, pipeline=pipeline, user=user, item=item, loc=prefix
            )
    except GridCityError as exc:
        return _item_error(key, exc, prefix)
    except Exception:  # noqa: BLE001 - one item's failure must not sink the others
        log.exception("batch item %s failed", index)
        return BatchItemOut(key=key, status=500, error={"type": "internal", "loc": prefix, "msg": "internal error"})
    return BatchItemOut(key=key, status=outcome.status_code, replayed=outcome.replayed, result=outcome.body)


def run_batch(
    session: Session,
    *,
    store: MediaStore,
    settings: Settings,
    pipeline: CasePipeline,
    user: User,
    key: str,
    items: list[Any],
) -> Outcome:
    """Upload an offline queue in one call; each item is accepted or refused on its own, with its own key."""
    _require_role(user, MOBILE_ROLES, "the offline queue")
    req_hash = idempotency.request_hash("batch", items)

    def work() -> tuple[int, Any]:
        out = BatchOut(
            items=[
                _batch_item(session, store=store, settings=settings, pipeline=pipeline, user=user, raw=raw, index=i)
                for i, raw in enumerate(items)
            ]
        )
        return 200, out.model_dump(mode="json", exclude_none=True)

    return idempotency.run(session, user_id=user.id, key=key, kind="batch", req_hash=req_hash, work=work)
