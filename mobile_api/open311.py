"""Open311 GeoReport v2 server, mounted at ``/open311/v2`` (peers.md §4; spec: wiki.open311.org/GeoReport_v2).

Endpoints (every one with a ``.xml`` and a ``.json`` suffix; any other suffix is a 400 error body):

* ``GET discovery.{fmt}``: the discovery document.
* ``GET services.{fmt}``: the enabled component and event classes of the city's code generation
  (``GRIDCITY_OPEN311_GENERATION``, default CJ/T 214) as services, one per class name (``service_code`` =
  class key such as ``C0101``, Chinese name, ``group`` = kind and major class).
* ``GET services/{service_code}.{fmt}``: the service definition (attributes).
* ``POST requests.{fmt}``: a citizen report (``api_key`` required; form-encoded, or multipart with
  ``media`` or ``media[]`` files per the v2.1 draft); an unknown ``service_code`` is a 404, as the spec
  says. It becomes a 公众举报 case in ``public_reported``, which an inspector must verify on site before it
  can be filed. We create synchronously, so the response carries the
  ``service_request_id`` (never a token, as the spec requires).
* ``GET tokens/{token}.{fmt}``: the token of an Open311 request is its case number (no extra table): we
  never hand out a token, but a client that treats the id as a token still gets the spec's answer.
* ``GET requests.{fmt}``: filters ``service_request_id`` (comma list; overrides all others),
  ``service_code``, ``start_date``/``end_date`` (default: the last 90 days; a wider span is refused),
  ``status``; at most 1000 results. A list filter may be comma-delimited or repeated
  (``?status=open&status=closed``), as the spec's "can be declared multiple times, comma delimited".
  Extensions: ``page``/``page_size``, ``updated_after``/``updated_before``
  (when given without dates, the 90-day default window does not apply: a change feed must see old
  requests that changed), ``extensions=true`` (``extended_attributes`` with ``detailed_status`` and
  ``media_urls``, and the public ``notes`` on the request beside it, as on the Extensions page).
* ``GET requests/{service_request_id}.{fmt}``: one request (still a list of one).
* ``GET media/{token}.jpg``: the metadata-free display rendition of a photo that is public by rule
  (:func:`public_photo_clause`): a public report's own photos, and departments' after-photos only when
  the city publishes them (``GRIDCITY_OPEN311_PUBLISH_AFTER_PHOTOS``). Never an inspector's evidence. The
  token is the photo's SHA-256 (unguessable without the photo), never the sequential attachment id.

What is published is the city's choice, with a safe default: every request's status and the standard
public status texts; a public report's own description and photos. Staff free text (void and verify
reasons, inspectors' descriptions) only with ``GRIDCITY_OPEN311_PUBLISH_NOTES``. Absolute URLs come from
``GRIDCITY_PUBLIC_BASE_URL``, never from the request's Host header.

``service_request_id`` is the readable case number (``2026-000123``). Status: closed/voided/merged →
``closed``, everything else ``open``; ``status_notes`` is the Chinese text of the latest public-facing
event; ``expected_datetime`` is the deadline of the current timed stage (the cached value the deadline
engine derives from the log). Reporter name/phone/email/device and internal user ids are never output.

One jurisdiction per server: ``jurisdiction_id`` is accepted and ignored, as the spec allows. POST
answers 200 (what most Open311 clients expect) and needs ``lat``/``long``, or an ``address_id`` (a standard
address's id or code) or ``address_string`` located through the standard-address look-up
(:mod:`components.addresses`); a 400 says so when nothing matches. Unknown ``attribute[...]``
codes are ignored (FixMyStreet sends its own); ``media_url`` (http or https only) is stored and shown only
when no ``media`` file was sent (files win, per the v2.1 draft); remote URLs are never fetched. XML output
replaces every character XML 1.0 forbids (U+0001, U+000B ...) with U+FFFD, so it stays well-formed whatever
was stored. CORS for these routes: ``GRIDCITY_OPEN311_CORS_ORIGINS``.

Errors use the spec's body (``<errors><error><code/><description/>``, JSON a list) and status codes:
403 wrong or missing ``api_key``, 404 unknown resource, 400 everything else. They are rendered by
:class:`Open311Route` for this router only; the app-wide error shape is not used here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from casework import attachments as casework_attachments
from casework.deps import PipelineDep
from casework.models import Case
from casework.rules import CaseRules
from components import codes
from gridcity.deps import DbSession, SettingsDep, Store
from gridcity.errors import GridCityError, NotFound, PermissionDenied
from gridcity.settings import Settings
from mobile_api import open311_format as fmt311
from mobile_api.open311_service import (
    MAX_MEDIA,
    MAX_REQUESTS,
    SPEC_URL,
    Open311Error,
    Publish,
    bad_request,
    check_api_key,
    create_request,
    definition_doc,
    find_requests,
    optional,
    parse_post,
    parse_request_query,
    public_photo,
    requests_doc,
    service_doc,
    service_or_404,
    visible_services,
)

# --------------------------------------------------------------------------------------------------------
# Errors: the spec's body and status codes, for this router only
# --------------------------------------------------------------------------------------------------------


def _format_of(request: Request) -> str:
    fmt = request.path_params.get("fmt")
    return fmt if fmt in fmt311.FORMATS else "xml"


def error_response(fmt: str, status: int, errors: Sequence[tuple[int, str]]) -> Response:
    """The spec's error body (XML ``errors/error``, JSON a list of ``{code, description}``)."""
    body, media_type = fmt311.render(fmt, fmt311.error_doc(errors), "errors", "error")
    return Response(body, status_code=status, media_type=media_type)


def _from_domain(exc: GridCityError) -> Open311Error:
    # The spec allows only 403 (api_key), 404 (missing resource) and 400 (anything else) as statuses;
    # the body code keeps a more specific number (413 too large, 415 unsupported media).
    if isinstance(exc, NotFound):
        return Open311Error(404, exc.message)
    if isinstance(exc, PermissionDenied):
        return Open311Error(403, exc.message)
    loc = ".".join(str(p) for p in exc.loc if p not in ("body", "query"))
    text = f"{loc}: {exc.message}" if loc else exc.message
    return Open311Error(400, text, code=exc.status_code if exc.status_code in (413, 415) else 400)


class Open311Route(APIRoute):
    """Turns every failure of an Open311 endpoint into an :class:`Open311Error`.

    The error is re-raised, not answered here: it must travel out through the request's session
    dependency, which then rolls back (and removes photo files stored by the request), so an error never
    leaves anything half-stored. :func:`setup` registers the handler that renders it in the spec's format;
    the app's own handlers are untouched.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except Open311Error:
                raise
            except GridCityError as exc:
                raise _from_domain(exc) from exc
            except RequestValidationError as exc:
                parts = [
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
                ]
                raise bad_request("; ".join(parts) or "invalid request") from exc
            except StarletteHTTPException as exc:
                status = exc.status_code if exc.status_code in (403, 404) else 400
                raise Open311Error(status, str(exc.detail), code=exc.status_code) from exc

        return handler


async def _render_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Open311Error)
    return error_response(_format_of(request), exc.status, [(exc.code, exc.description)])


class Open311CORS:
    """CORS for ``/open311/`` only (browser apps on other sites are the norm for Open311); the rest of the
    API stays same-origin. Origins: ``GRIDCITY_OPEN311_CORS_ORIGINS`` (default ``["*"]``, no credentials:
    Open311 authenticates by ``api_key``, never by cookie); ``[]`` sends no CORS headers at all."""

    PREFIX: Final = "/open311/"

    def __init__(self, app: Any, *, origins: list[str]) -> None:
        self.app = app
        self.cors = (
            CORSMiddleware(app, allow_origins=origins, allow_methods=["GET", "POST"], allow_headers=["*"], max_age=3600)
            if origins
            else None
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.cors is not None and scope["type"] == "http" and scope["path"].startswith(self.PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def setup(app: FastAPI) -> None:
    """Render :class:`Open311Error` (raised only by this router) in the spec's error format; Open311 CORS."""
    app.add_exception_handler(Open311Error, _render_error)
    app.add_middleware(Open311CORS, origins=list(app.state.settings.open311_cors_origins))  # type: ignore[arg-type]


_ERROR_CONTENT: Final = {
    "text/xml": {
        "schema": {"type": "string"},
        "example": '<?xml version="1.0" encoding="UTF-8"?>\n<errors><error>'
        "<code>404</code><description>service_code 'X' not found</description></error></errors>",
    },
    "application/json": {
        "schema": {
            "type": "array",
            "items": {"type": "object", "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}},
        }
    },
}
OPEN311_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The document, as XML (``.xml``) or JSON (``.json``)",
        "content": {"text/xml": {"schema": {"type": "string"}}, "application/json": {}},
    },
    400: {
        "description": "Bad request (the spec's error body; code 413/415 for a too large or unsupported photo)",
        "content": _ERROR_CONTENT,
    },
    403: {"description": "Wrong or missing api_key", "content": _ERROR_CONTENT},
    404: {"description": "Unknown resource, service_code or service_request_id", "content": _ERROR_CONTENT},
}
"""The statuses and content types every Open311 operation answers (the spec allows 400, 403 and 404 only)."""

router = APIRouter(
    tags=["open311"], route_class=Open311Route, default_response_class=Response, responses=OPEN311_RESPONSES
)


def _check_format(fmt: str) -> str:
    if fmt not in fmt311.FORMATS:
        raise bad_request(f"unsupported format {fmt!r}: use .xml or .json")
    return fmt


def _rules(request: Request) -> CaseRules:
    rules: CaseRules = request.app.state.rules
    return rules


def _respond(fmt: str, doc: Any, root: str, item: str | None = None, status: int = 200) -> Response:
    body, media_type = fmt311.render(fmt, doc, root, item)
    return Response(body, status_code=status, media_type=media_type)


# --------------------------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------------------------


def _base(settings: Settings) -> str:
    # The configured public origin, never the request's Host header (which any client may set).
    return settings.public_url("/open311/v2")


def _changeset(settings: Settings) -> str:
    # The catalogue files' last change: sortable, and it moves when a city edits its classes.
    files = list((Path(codes.__file__).parent / "data").glob("*.csv"))
    if settings.city_dir is not None:
        files += [settings.city_dir / n for n in ("classes.csv", "handling_standards.csv")]
    mtimes = [f.stat().st_mtime for f in files if f.exists()]
    stamp = dt.datetime.fromtimestamp(max(mtimes) if mtimes else 0, dt.UTC)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


@router.get("/discovery.{fmt}", summary="Open311 service discovery")
def discovery(fmt: str, request: Request, settings: SettingsDep) -> Response:
    """Where the GeoReport v2 endpoint is and which formats it speaks."""
    _check_format(fmt)
    changeset = _changeset(settings)
    doc = {
        "changeset": changeset,
        "contact": f"{settings.city_name}数字化城市管理监督指挥中心",
        "key_service": f"向{settings.city_name}数字化城市管理监督指挥中心申请 Open311 api_key（提交举报时需要）",
        "max_requests": MAX_REQUESTS,
        "endpoints": [
            {
                "specification": SPEC_URL,
                "url": _base(settings),
                "changeset": changeset,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return _respond(fmt, doc, "discovery")


@router.get("/services.{fmt}", summary="Open311 service list (the class catalogue)")
def services(fmt: str, request: Request, settings: SettingsDep) -> Response:
    """The enabled classes of the city's code generation, one service per name, grouped by kind and major."""
    _check_format(fmt)
    return _respond(fmt, [service_doc(c) for c in visible_services(_rules(request), settings)], "services", "service")


@router.get("/services/{service_code}.{fmt}", summary="Open311 service definition")
def service_definition(service_code: str, fmt: str, request: Request, settings: SettingsDep) -> Response:
    """The attributes of one service (404 for an unknown service_code)."""
    _check_format(fmt)
    rules = _rules(request)
    return _respond(fmt, definition_doc(rules, service_or_404(rules, settings, service_code)), "service_definition")


async def _form(request: Request) -> FormData:
    return await request.form(max_files=MAX_MEDIA + 1, max_fields=200)


@router.post("/requests.{fmt}", summary="Open311 POST service request (a public report)")
def post_request(
    fmt: str,
    request: Request,
    form: Annotated[FormData, Depends(_form)],
    session: DbSession,
    settings: SettingsDep,
    store: Store,
    pipeline: PipelineDep,
) -> Response:
    """A citizen report; becomes a 公众举报 case awaiting on-site verification."""
    _check_format(fmt)
    check_api_key(settings, optional(form.get("api_key")) or optional(request.query_params.get("api_key")))
    case = create_request(
        session, posted=parse_post(form, pipeline.rules, settings), pipeline=pipeline, settings=settings, store=store
    )
    doc = [
        {
            "service_request_id": case.number,
            "service_notice": f"举报已受理（编号 {case.number}），将由城市管理监督员到现场核实",
        }
    ]
    return _respond(fmt, doc, "service_requests", "request")


@router.get("/requests.{fmt}", summary="Open311 GET service requests")
def get_requests(fmt: str, request: Request, session: DbSession, settings: SettingsDep) -> Response:
    """Requests by id list, service code, date window (default 90 days), status; at most 1000."""
    _check_format(fmt)
    rules = _rules(request)
    q = parse_request_query(request.query_params, rules, dt.datetime.now(dt.UTC))
    doc = requests_doc(
        session,
        find_requests(session, q),
        rules=rules,
        media_base=_base(settings),
        extensions=q.extensions,
        publish=Publish.of(settings),
    )
    return _respond(fmt, doc, "service_requests", "request")


@router.get("/requests/{service_request_id}.{fmt}", summary="Open311 GET service request")
def get_request(
    service_request_id: str, fmt: str, request: Request, session: DbSession, settings: SettingsDep
) -> Response:
    """One request, as a list of one (404 for an unknown id)."""
    _check_format(fmt)
    case = session.scalars(select(Case).where(Case.number == service_request_id)).first()
    if case is None:
        raise Open311Error(404, f"service_request_id {service_request_id!r} not found")
    ext = (optional(request.query_params.get("extensions")) or "false").lower() == "true"
    doc = requests_doc(
        session, [case], rules=_rules(request), media_base=_base(settings), extensions=ext, publish=Publish.of(settings)
    )
    return _respond(fmt, doc, "service_requests", "request")


@router.get("/tokens/{token}.{fmt}", summary="Open311 GET service_request_id from a token")
def get_token(token: str, fmt: str, session: DbSession) -> Response:
    """The token of an Open311 request is its case number (we create synchronously)."""
    _check_format(fmt)
    number = session.scalars(select(Case.number).where(Case.number == token, Case.source == "open311")).first()
    if number is None:
        raise Open311Error(404, f"token {token!r} not found")
    return _respond(fmt, [{"service_request_id": number, "token": token}], "service_requests", "request")


@router.get(
    "/media/{token}.jpg",
    summary="A public photo of a request",
    response_class=FileResponse,
    responses={
        200: {"description": "The photo", "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
def media(token: str, session: DbSession, store: Store, settings: SettingsDep) -> FileResponse:
    """The metadata-free display rendition of a photo that is public by rule; anything else is 404."""
    attachment_id = public_photo(session, token, Publish.of(settings))
    if attachment_id is None:
        raise Open311Error(404, "media not found")
    path = casework_attachments.rendition_path(session, store, attachment_id, "display")
    return FileResponse(path, media_type="image/jpeg")


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def not_found(rest: str) -> Response:
    """Anything else under /open311/v2 is a 404 in the spec's error format."""
    raise Open311Error(404, f"no such resource: {rest}")
