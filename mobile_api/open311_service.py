"""The Open311 GeoReport v2 service behind :mod:`mobile_api.open311` (the router): the class catalogue as
services, cases as requests (what is published, and to whom), the parsing of the spec's parameters and of a
POSTed request, and creating a public report from it.

Failures are :class:`Open311Error` (the spec's statuses 400/403/404 with a body code); the router renders
them in the spec's format.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from casework import attachments as casework_attachments
from casework import service as casework_service
from casework.lifecycle import TERMINAL, Actor, CaseAction, CaseStatus
from casework.models import Attachment, Case, CaseEvent, EventAttachment
from casework.pipeline import CasePipeline
from casework.rules import CaseRules
from components import addresses, codes
from components import catalog as class_catalog
from components.models import Address
from gridcity import photos
from gridcity.errors import GridCityError
from gridcity.org import Department
from gridcity.roles import Role
from gridcity.settings import Settings
from gridcity.types import MAX_DATE, MIN_DATE
from mobile_api import open311_format as fmt311

SPEC_URL: Final = "http://wiki.open311.org/GeoReport_v2"
MAX_REQUESTS: Final = 1000
WINDOW: Final = dt.timedelta(days=90)
MAX_DESCRIPTION: Final = 4000
MAX_MEDIA: Final = 9
SYSTEM_ACCEPTOR: Final = Actor(user_id=0, role=Role.ACCEPTOR)
"""Open311 intake acts as the system (user id 0, stored as a NULL actor) in the acceptor role."""

KIND_ZH: Final = {codes.ClassKind.COMPONENT: "部件", codes.ClassKind.EVENT: "事件"}
UNIT_ZH: Final = {"work_hour": "工作小时", "work_day": "个工作日", "hour": "小时", "day": "天", "minute": "分钟"}
DETAILED_STATUS_ZH: Final = {
    CaseStatus.PUBLIC_REPORTED: "公众举报，待核实",
    CaseStatus.VERIFYING: "现场核实中",
    CaseStatus.REPORTED: "已核实，待立案",
    CaseStatus.FILED: "已立案，待派遣",
    CaseStatus.DISPATCHED: "已派遣，待签收",
    CaseStatus.HANDLING: "处置中",
    CaseStatus.SENDBACK_REQUESTED: "处置中",
    CaseStatus.EXTENSION_REQUESTED: "处置中",
    CaseStatus.SUSPENSION_REQUESTED: "处置中",
    CaseStatus.SUSPENDED: "暂缓处置（挂账）",
    CaseStatus.FEEDBACK: "已处置，待核查",
    CaseStatus.CHECKING: "核查中",
    CaseStatus.CHECKED: "核查通过，待结案",
    CaseStatus.SELF_HANDLED: "监督员已自行处置，待审核",
    CaseStatus.CLOSED: "已结案",
    CaseStatus.VOIDED: "已作废",
    CaseStatus.MERGED: "已合并",
}


# --------------------------------------------------------------------------------------------------------
# Errors: the spec's statuses and body codes (rendered by the router)
# --------------------------------------------------------------------------------------------------------


class Open311Error(Exception):
    """An error with the spec's HTTP status (400/403/404) and a body code and description."""

    def __init__(self, status: int, description: str, code: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = code if code is not None else status
        self.description = description


def bad_request(description: str) -> Open311Error:
    """A 400 with the spec's body code 400."""
    return Open311Error(400, description)


# --------------------------------------------------------------------------------------------------------
# Small parsers (empty parameter = absent parameter, as the spec says)
# --------------------------------------------------------------------------------------------------------


def optional(value: Any) -> str | None:
    """A parameter's text, or None when it is absent or empty (the spec: empty = absent)."""
    if value is None or isinstance(value, UploadFile):
        return None
    value = str(value).strip()
    return value or None


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _list_param(params: Any, name: str) -> list[str]:
    """A list filter: "can be declared multiple times, comma delimited" (GeoReport v2), so
    ``?status=open&status=closed`` means the same as ``?status=open,closed``."""
    values = params.getlist(name) if hasattr(params, "getlist") else [params.get(name)]
    return [item for v in values if v is not None for item in _csv(str(v))]


def parse_w3c(value: str, name: str, tz: ZoneInfo) -> dt.datetime:
    """A W3C-DTF date or datetime; a value without zone is read in the city's zone."""
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            parsed = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tz)
        else:
            parsed = dt.datetime.fromisoformat(text.replace(" ", "+") if "T" in text else text)
    except ValueError:
        raise bad_request(f"{name}: {value!r} is not a W3C datetime (e.g. 2026-03-01T09:30:00+08:00)") from None
    if not MIN_DATE <= parsed.date() <= MAX_DATE:  # year 1 or 9999 would overflow the window arithmetic
        raise bad_request(f"{name}: {value!r} is outside {MIN_DATE.year}..{MAX_DATE.year}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(dt.UTC)


def _coordinate(value: str | None, name: str, bound: float) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise bad_request(f"{name}: {value!r} is not a number") from None
    if not math.isfinite(number) or not -bound <= number <= bound:
        raise bad_request(f"{name}: {value} is out of range (WGS84 degrees, ±{bound:g})")
    return number


def _positive_int(value: str | None, name: str, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not re.fullmatch(r"\d{1,9}", value) or not 1 <= int(value) <= maximum:
        raise bad_request(f"{name}: must be an integer from 1 to {maximum}")
    return int(value)


def _tz(rules: CaseRules) -> ZoneInfo:
    return ZoneInfo(rules.calendar.timezone)


# --------------------------------------------------------------------------------------------------------
# Services (the class catalogue)
# --------------------------------------------------------------------------------------------------------


def _group(info: class_catalog.ClassInfo) -> str:
    return f"{KIND_ZH[info.kind]}/{info.major_name_zh}"


def service_doc(info: class_catalog.ClassInfo) -> dict[str, Any]:
    """One entry of the service list."""
    keywords = [*info.aliases_zh, info.name_en] if info.name_en else list(info.aliases_zh)
    return {
        "service_code": info.key,
        "service_name": info.name_zh,
        "description": f"{KIND_ZH[info.kind]}：{info.major_name_zh} — {info.name_zh}"
        + (f"（{info.name_en}）" if info.name_en else ""),
        "metadata": True,
        "type": "realtime",
        "keywords": ",".join(k.replace(",", " ") for k in keywords),
        "group": _group(info),
    }


def visible_services(rules: CaseRules, settings: Settings) -> list[class_catalog.ClassInfo]:
    """The services Open311 lists: the enabled classes of the city's code generation
    (``GRIDCITY_OPEN311_GENERATION``), one per name, so no name appears twice."""
    seen: set[str] = set()
    out = []
    for info in rules.catalog.all(generation=settings.open311_generation):
        if info.name_zh not in seen:
            seen.add(info.name_zh)
            out.append(info)
    return out


def service_or_404(rules: CaseRules, settings: Settings, service_code: str) -> class_catalog.ClassInfo:
    """A listed service; 404 for any other code ("404 - service_code ... was not found")."""
    for info in visible_services(rules, settings):
        if info.key == service_code:
            return info
    raise Open311Error(404, f"service_code {service_code!r} not found")


def definition_doc(rules: CaseRules, info: class_catalog.ClassInfo) -> dict[str, Any]:
    """The service definition: an optional component id, and the handling time limit as information."""
    attributes: list[dict[str, Any]] = []
    if info.kind is codes.ClassKind.COMPONENT:
        attributes.append(
            {
                "variable": True,
                "code": "component_id",
                "datatype": "string",
                "required": False,
                "datatype_description": "16 或 17 位数字（部件上的标识码）",
                "order": len(attributes) + 1,
                "description": "部件标识码：部件（如井盖、路灯）上标注的编号，不清楚可不填",
            }
        )
    lim = rules.standards.lookup(info.key, "normal").limit("handle")
    if lim is not None:
        value, unit = lim[0], str(lim[1])
        attributes.append(
            {
                "variable": False,
                "code": "handling_time_limit",
                "datatype": "string",
                "required": False,
                "datatype_description": "",
                "order": len(attributes) + 1,
                "description": f"处置时限：立案派遣后 {value:g} {UNIT_ZH.get(unit, unit)}内处置完毕（一般案件）",
            }
        )
    return {"service_code": info.key, "attributes": attributes}


# --------------------------------------------------------------------------------------------------------
# Requests (cases) as Open311 documents
# --------------------------------------------------------------------------------------------------------

_NOTE_ACTIONS: Final = frozenset(CaseAction) - {
    CaseAction.REQUEST_SENDBACK,
    CaseAction.REJECT_SENDBACK,
    CaseAction.REQUEST_EXTENSION,
    CaseAction.REJECT_EXTENSION,
    CaseAction.REQUEST_SUSPENSION,
    CaseAction.REJECT_SUSPENSION,
}
"""Actions whose event is public-facing (internal requests and refusals are not)."""


@dataclass(frozen=True)
class _EventRow:
    case_id: int
    action: CaseAction
    from_status: CaseStatus
    to_status: CaseStatus
    at: dt.datetime
    note: str | None
    data: dict[str, Any]


def note_text(
    ev: _EventRow, *, dept_name: str | None, merged_into: str | None, publish_notes: bool = False
) -> str | None:
    """The public Chinese note of one event (None: the event says nothing to the public).

    Staff's free-text reasons are appended only when the city publishes them (``publish_notes``).
    """
    a = CaseAction
    reason = (ev.note or "").strip() if publish_notes else ""
    if ev.action is a.MERGE and ev.from_status == ev.to_status:
        return None  # the mirror entry on the merge target
    texts: dict[CaseAction, str] = {
        a.REPORT: "城市管理监督员已上报，等待立案",
        a.PUBLIC_REPORT: "已收到您的举报，等待监督员现场核实",
        a.SELF_HANDLE: "监督员已现场自行处置，等待审核",
        a.SEND_VERIFY: "已派监督员到现场核实",
        a.VERIFY_TRUE: "经现场核实属实，等待立案",
        a.VERIFY_FALSE: "经现场核实不属实，已作废" + (f"：{reason}" if reason else ""),
        a.FILE: "已立案，等待派遣",
        a.VOID: "案件已作废" + (f"：{reason}" if reason else ""),
        a.MERGE: (f"与 {merged_into} 号案件" if merged_into else "与其他案件") + "为同一问题，已合并处理",
        a.DISPATCH: f"已派遣至{dept_name}处置" if dept_name else "已派遣至责任单位处置",
        a.ACCEPT: "责任单位已签收，正在处置",
        a.APPROVE_SENDBACK: "正在重新派遣责任单位",
        a.APPROVE_EXTENSION: "责任单位处置期限已延长",
        a.APPROVE_SUSPENSION: "暂缓处置（挂账）" + (f"：{reason}" if reason else ""),
        a.RESUME: "恢复处置",
        a.FEEDBACK: "责任单位已反馈处置结果，等待核查",
        a.SEND_CHECK: "已派监督员到现场核查处置结果",
        a.CHECK_PASS: "核查通过，等待结案",
        a.CHECK_FAIL: "核查未通过，已退回责任单位重新处置",
        a.CLOSE: "问题已处置并核查通过，已结案",
        a.APPROVE_SELF_HANDLED: "监督员已现场处置，已结案",
    }
    return texts.get(ev.action)


def public_photo_clause(*, after_photos: bool) -> sa.ColumnElement[bool]:
    """Which photo links are public by rule (over ``event_attachment`` joined to its ``case_event``).

    A public report's own photos (the photos of its ``public_report`` event) are public; a department's
    after-photos (``feedback`` event, role ``after``) only if the city opts in. Inspectors' evidence (report,
    verify, check, self-handle photos) never is.
    """
    rule = CaseEvent.action == CaseAction.PUBLIC_REPORT
    if after_photos:
        rule = sa.or_(rule, sa.and_(CaseEvent.action == CaseAction.FEEDBACK, EventAttachment.role == "after"))
    return rule


@dataclass(frozen=True)
class Publish:
    """What this city's Open311 publishes (settings ``GRIDCITY_OPEN311_PUBLISH_*``)."""

    after_photos: bool = False
    notes: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Publish:
        """The choices of the deployment."""
        return cls(after_photos=settings.open311_publish_after_photos, notes=settings.open311_publish_notes)


@dataclass(frozen=True)
class _PageFacts:
    """What the documents of a page of cases need besides the cases: fetched in a few queries."""

    dept_names: dict[int, str]
    events: dict[int, list[_EventRow]]
    photos: dict[int, list[str]]  # case id -> SHA-256 of its public photos
    merged_into: dict[int, str]


def _page_facts(session: Session, cases: Sequence[Case], publish: Publish) -> _PageFacts:
    ids = [c.id for c in cases]
    events: dict[int, list[_EventRow]] = {}
    photos_of: dict[int, list[str]] = {}
    merged_ids = {c.merged_into_id for c in cases if c.merged_into_id is not None}
    merged_into = (
        dict(session.execute(select(Case.id, Case.number).where(Case.id.in_(merged_ids))).all()) if merged_ids else {}
    )
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = session.execute(
            select(
                CaseEvent.case_id,
                CaseEvent.action,
                CaseEvent.from_status,
                CaseEvent.to_status,
                CaseEvent.at,
                CaseEvent.note,
                CaseEvent.data,
            )
            .where(CaseEvent.case_id.in_(chunk), CaseEvent.action.in_(_NOTE_ACTIONS))
            .order_by(CaseEvent.case_id, CaseEvent.seq)
        ).all()
        for r in rows:
            events.setdefault(r.case_id, []).append(
                _EventRow(r.case_id, r.action, r.from_status, r.to_status, r.at, r.note, r.data or {})
            )
        links = session.execute(
            select(CaseEvent.case_id, Attachment.sha256)
            .join(EventAttachment, EventAttachment.event_id == CaseEvent.id)
            .join(Attachment, Attachment.id == EventAttachment.attachment_id)
            .where(CaseEvent.case_id.in_(chunk), public_photo_clause(after_photos=publish.after_photos))
            .order_by(CaseEvent.case_id, CaseEvent.seq, EventAttachment.attachment_id)
        ).all()
        for case_id, sha in links:
            lst = photos_of.setdefault(case_id, [])
            if sha not in lst:
                lst.append(sha)
    dept_ids = {c.department_id for c in cases if c.department_id is not None}
    dept_ids |= {
        int(e.data["department_id"])
        for evs in events.values()
        for e in evs
        if isinstance(e.data.get("department_id"), int)
    }
    dept_names = (
        dict(session.execute(select(Department.id, Department.name).where(Department.id.in_(dept_ids))).all())
        if dept_ids
        else {}
    )
    return _PageFacts(dept_names, events, photos_of, merged_into)


def _status(case: Case) -> str:
    return "closed" if case.status in TERMINAL else "open"


def request_doc(
    case: Case, facts: _PageFacts, *, rules: CaseRules, media_base: str, extensions: bool, publish: Publish = Publish()
) -> dict[str, Any]:
    """One ``request`` of GET requests (spec field order; ``None`` → null / empty element)."""
    tz = _tz(rules)
    try:
        info: class_catalog.ClassInfo | None = rules.catalog.get(case.class_code, include_disabled=True)
    except GridCityError:
        info = None
    dept_name = facts.dept_names.get(case.department_id) if case.department_id is not None else None
    merged_into = facts.merged_into.get(case.merged_into_id) if case.merged_into_id is not None else None
    notes: list[dict[str, Any]] = []
    for ev in facts.events.get(case.id, []):
        dept_of_event = ev.data.get("department_id")
        text = note_text(
            ev,
            dept_name=facts.dept_names.get(dept_of_event) if isinstance(dept_of_event, int) else dept_name,
            merged_into=merged_into,
            publish_notes=publish.notes,
        )
        if text is not None:
            notes.append({"datetime": fmt311.w3c(ev.at, tz), "description": text, "type": ev.action.value})
    media_urls = [f"{media_base}/media/{sha}.jpg" for sha in facts.photos.get(case.id, [])]
    first = (facts.events.get(case.id) or [None])[0]
    public_report = first is not None and first.action is CaseAction.PUBLIC_REPORT
    fallback_url = first.data.get("media_url") if first is not None and public_report else None
    doc: dict[str, Any] = {
        "service_request_id": case.number,
        "status": _status(case),
        "status_notes": notes[-1]["description"] if notes else None,
        "service_name": info.name_zh if info else None,
        "service_code": case.class_code,
        # The public's own words are theirs to see; an inspector's description is staff text.
        "description": case.description if public_report or publish.notes else None,
        "agency_responsible": dept_name,
        "service_notice": None,
        "requested_datetime": fmt311.w3c(case.created_at, tz),
        "updated_datetime": fmt311.w3c(case.updated_at, tz),
        "expected_datetime": None if case.status in TERMINAL else fmt311.w3c(case.deadline_at, tz),
        "address": case.address,
        "address_id": None,
        "zipcode": None,
        "lat": case.lat,
        "long": case.lon,
        "media_url": media_urls[0] if media_urls else fallback_url,
    }
    if extensions:
        doc["extended_attributes"] = {
            "detailed_status": case.status.value,
            "detailed_status_zh": DETAILED_STATUS_ZH.get(case.status, case.status.value),
            "media_urls": media_urls,
        }
        doc["notes"] = notes
    return doc


def requests_doc(
    session: Session,
    cases: Sequence[Case],
    *,
    rules: CaseRules,
    media_base: str,
    extensions: bool = False,
    publish: Publish = Publish(),
) -> list[dict[str, Any]]:
    """The ``service_requests`` list of a page of cases."""
    facts = _page_facts(session, cases, publish)
    return [
        request_doc(c, facts, rules=rules, media_base=media_base, extensions=extensions, publish=publish) for c in cases
    ]


@dataclass(frozen=True)
class RequestQuery:
    """GET requests, parsed."""

    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    statuses: tuple[str, ...] = ()
    updated_after: dt.datetime | None = None
    updated_before: dt.datetime | None = None
    page: int = 1
    page_size: int = MAX_REQUESTS
    extensions: bool = False


def parse_request_query(params: Any, rules: CaseRules, now: dt.datetime) -> RequestQuery:
    """Validate the query of GET requests and apply the spec's defaults (400 on bad input)."""
    tz = _tz(rules)
    get = lambda name: optional(params.get(name))  # noqa: E731
    ext = (get("extensions") or "false").lower()
    if ext not in ("true", "false"):
        raise bad_request("extensions: must be true or false")
    page = _positive_int(get("page"), "page", 1, 1_000_000)
    page_size = _positive_int(get("page_size"), "page_size", MAX_REQUESTS, MAX_REQUESTS)
    ids = _list_param(params, "service_request_id")
    if ids:
        if len(ids) > MAX_REQUESTS:
            raise bad_request(f"service_request_id: at most {MAX_REQUESTS} ids")
        # The spec: service_request_id overrides all other arguments.
        return RequestQuery(ids=tuple(ids), extensions=ext == "true")
    service_codes = _list_param(params, "service_code")
    for code in service_codes:
        try:
            rules.catalog.get(code, include_disabled=True)
        except GridCityError:
            raise bad_request(f"service_code: unknown service_code {code!r}") from None
    statuses = _list_param(params, "status")
    for s in statuses:
        if s not in ("open", "closed"):
            raise bad_request(f"status: {s!r} is not open or closed")
    start = parse_w3c(v, "start_date", tz) if (v := get("start_date")) else None
    end = parse_w3c(v, "end_date", tz) if (v := get("end_date")) else None
    upd_after = parse_w3c(v, "updated_after", tz) if (v := get("updated_after")) else None
    upd_before = parse_w3c(v, "updated_before", tz) if (v := get("updated_before")) else None
    if start and end and end < start:
        raise bad_request("end_date is before start_date")
    if upd_after and upd_before and upd_before < upd_after:
        raise bad_request("updated_before is before updated_after")
    if start and end and end - start > WINDOW:
        raise bad_request("start_date to end_date may not span more than 90 days")
    change_feed = (upd_after or upd_before) is not None
    if start is None and end is None and not change_feed:
        end = now
        start = now - WINDOW
    elif start is not None and end is None:
        end = start + WINDOW
    elif end is not None and start is None:
        start = end - WINDOW
    return RequestQuery(
        service_codes=tuple(service_codes),
        start=start,
        end=end,
        statuses=tuple(statuses),
        updated_after=upd_after,
        updated_before=upd_before,
        page=page,
        page_size=page_size,
        extensions=ext == "true",
    )


def find_requests(session: Session, q: RequestQuery) -> list[Case]:
    """The cases a query selects, newest first, one page (at most 1000)."""
    stmt = select(Case)
    if q.ids:
        stmt = stmt.where(Case.number.in_(q.ids))
        return list(session.scalars(stmt.order_by(Case.created_at.desc(), Case.id.desc())))
    if q.service_codes:
        stmt = stmt.where(Case.class_code.in_(q.service_codes))
    if q.start is not None:
        stmt = stmt.where(Case.created_at >= q.start)
    if q.end is not None:
        stmt = stmt.where(Case.created_at <= q.end)
    if q.updated_after is not None:
        stmt = stmt.where(Case.updated_at >= q.updated_after)
    if q.updated_before is not None:
        stmt = stmt.where(Case.updated_at <= q.updated_before)
    if len(set(q.statuses)) == 1:
        closed = Case.status.in_(TERMINAL)
        stmt = stmt.where(closed if q.statuses[0] == "closed" else sa.not_(closed))
    stmt = stmt.order_by(Case.created_at.desc(), Case.id.desc())
    return list(session.scalars(stmt.offset((q.page - 1) * q.page_size).limit(q.page_size)))


# --------------------------------------------------------------------------------------------------------
# POST requests
# --------------------------------------------------------------------------------------------------------

_ATTRIBUTE_RE: Final = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
_FIELD_LIMITS: Final = {
    "address_string": 256,
    "address_id": 40,
    "email": 200,
    "phone": 40,
    "device_id": 100,
    "first_name": 50,
    "last_name": 50,
    "media_url": 1000,
}


def check_api_key(settings: Settings, key: str | None) -> None:
    """403 with the spec's message unless ``key`` is one of the configured Open311 keys."""
    if not key or not any(secrets.compare_digest(key.encode(), k.encode()) for k in settings.open311_api_keys):
        raise Open311Error(403, "Invalid api_key received -- can't proceed with create_request.")


@dataclass(frozen=True)
class PostedRequest:
    """A POST requests body, validated."""

    info: class_catalog.ClassInfo
    lon: float | None  # None: located from address_id / address_string by create_request
    lat: float | None
    address: str | None
    description: str | None
    component_id: str | None
    name: str | None
    phone: str | None
    email: str | None
    device_id: str | None
    media_url: str | None
    media: tuple[UploadFile, ...]
    address_id: str | None = None


MEDIA_FIELDS: Final = ("media", "media[]")
"""The v2.1 draft's file field: "the equivalent of having multiple <input type="file" name="media[]" /> inputs"."""


def parse_post(form: FormData, rules: CaseRules, settings: Settings) -> PostedRequest:
    """Validate a POST requests body (form-encoded or multipart), collecting every problem (400).

    An unknown ``service_code`` is a 404, as the spec says ("404 - service_code or jurisdiction_id was not
    found"); a missing one is a 400 ("400 - service_code or jurisdiction_id was not provided").
    """
    problems: list[str] = []
    get = lambda name: optional(form.get(name))  # noqa: E731
    info: class_catalog.ClassInfo | None = None
    code = get("service_code")
    if code is None:
        problems.append("service_code: required")
    else:
        info = service_or_404(rules, settings, code)
    lat_s, lon_s = get("lat"), get("long")
    lat = lon = None
    try:
        lat = _coordinate(lat_s, "lat", 90)
        lon = _coordinate(lon_s, "long", 180)
    except Open311Error as exc:
        problems.append(exc.description)
    if (lat_s is None) != (lon_s is None):
        problems.append("lat and long: give both")
    elif lat_s is None and not (get("address_string") or get("address_id")):
        problems.append("location: lat and long, address_string or address_id is required")
    description = form.get("description")
    description = description.strip() if isinstance(description, str) and description.strip() else None
    if description and len(description) > MAX_DESCRIPTION:
        problems.append(f"description: at most {MAX_DESCRIPTION} characters")
    for name, limit in _FIELD_LIMITS.items():
        v = get(name)
        if v and len(v) > limit:
            problems.append(f"{name}: at most {limit} characters")
    media_url = get("media_url")
    if media_url is not None and not _is_http_url(media_url):
        problems.append("media_url: must be an http:// or https:// URL")
    attributes: dict[str, str] = {}
    for key, value in form.multi_items():
        m = _ATTRIBUTE_RE.match(key)
        if m and isinstance(value, str) and value.strip():
            attributes[m.group(1)] = value.strip()  # unknown attribute codes are ignored (FMS sends its own)
    component_id = attributes.get("component_id")
    if component_id is not None:
        if info is not None and info.kind is not codes.ClassKind.COMPONENT:
            problems.append("attribute[component_id]: only for component services")
        elif not re.fullmatch(r"\d{16,17}", component_id):
            problems.append("attribute[component_id]: 16 or 17 digits")
    media = tuple(v for k, v in form.multi_items() if k in MEDIA_FIELDS and isinstance(v, UploadFile))
    if any(k in MEDIA_FIELDS and isinstance(v, str) and v for k, v in form.multi_items()):
        problems.append("media: send files as multipart/form-data (use media_url for a link)")
    if len(media) > MAX_MEDIA:
        problems.append(f"media: at most {MAX_MEDIA} files")
    if problems:
        raise Open311Error(400, "; ".join(problems))
    assert info is not None
    names = [n for n in (get("first_name"), get("last_name")) if n]
    return PostedRequest(
        info=info,
        lon=lon,
        lat=lat,
        address=get("address_string"),
        description=description,
        component_id=component_id,
        name=" ".join(names) or None,
        phone=get("phone"),
        email=get("email"),
        device_id=get("device_id"),
        media_url=None if media else media_url,
        media=media,
        address_id=get("address_id"),
    )


def locate_posted(session: Session, posted: PostedRequest) -> tuple[float, float, str | None]:
    """The WGS84 position and address text of a request: its lat/long, else its standard address (400 if none)."""
    if posted.lon is not None and posted.lat is not None:
        return posted.lon, posted.lat, posted.address
    addr = None
    if posted.address_id:
        key = posted.address_id.strip()
        addr = session.scalars(select(Address).where(Address.code == key)).first()
        if addr is None and key.isdigit() and int(key) < 2**31:
            addr = session.get(Address, int(key))
        if addr is None:
            raise Open311Error(400, f"address_id: unknown address {key!r}")
    else:
        addr = addresses.best_match(session, posted.address or "")
        if addr is None:
            raise Open311Error(400, "address_string: no standard address matches; send lat and long")
    return addr.lon, addr.lat, posted.address or addr.full_name


def _is_http_url(value: str) -> bool:
    try:
        url = urlsplit(value)
    except ValueError:
        return False
    return (
        url.scheme.lower() in ("http", "https")
        and bool(url.hostname)
        and not any(c.isspace() or ord(c) < 0x20 for c in value)
    )


def create_request(
    session: Session, *, posted: PostedRequest, pipeline: CasePipeline, settings: Settings, store: Any
) -> Case:
    """Store the photos and take the report in as a 公众举报 case (``public_reported``)."""
    limits = photos.PhotoLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_photo_pixels)
    # Every photo is validated and rendered before the first statement, so that work never runs inside the
    # transaction (on SQLite: under the write lock), and a bad photo is refused before anything is stored.
    prepared = []
    for i, upload in enumerate(posted.media):
        data = upload.file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise Open311Error(400, f"media[{i}]: photo larger than {settings.max_upload_bytes} bytes", code=413)
        prepared.append(casework_attachments.prepare(data, limits, ["media", i]))
    lon, lat, address = locate_posted(session, posted)
    attachment_ids: list[int] = []
    for photo in prepared:
        att = casework_attachments.store_photo(session, store, photo, uploaded_by=None)
        if att.id not in attachment_ids:
            attachment_ids.append(att.id)
    return pipeline.create_case(
        session,
        actor=SYSTEM_ACCEPTOR,
        action=CaseAction.PUBLIC_REPORT,
        new=casework_service.NewCase(
            class_code=posted.info.key,
            lon=lon,
            lat=lat,
            address=address,
            description=posted.description,
            component_id=posted.component_id,
            source="open311",
            reporter_name=posted.name,
            reporter_phone=posted.phone,
            reporter_email=posted.email,
            reporter_device_id=posted.device_id,
        ),
        inp=casework_service.ActionInput(
            attachment_ids=tuple(attachment_ids),
            lon=lon,
            lat=lat,
            data={"media_url": posted.media_url} if posted.media_url else {},
        ),
    ).case


_MEDIA_TOKEN: Final = re.compile(r"^[0-9a-f]{64}$")


def public_photo(session: Session, token: str, publish: Publish) -> int | None:
    """The attachment a media token names, if it is public by rule (else None: answered as missing)."""
    if not _MEDIA_TOKEN.match(token):
        return None
    return session.scalar(
        select(Attachment.id)
        .join(EventAttachment, EventAttachment.attachment_id == Attachment.id)
        .join(CaseEvent, CaseEvent.id == EventAttachment.event_id)
        .where(Attachment.sha256 == token, public_photo_clause(after_photos=publish.after_photos))
        .limit(1)
    )
