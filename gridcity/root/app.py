"""The app factory: one place that builds the engine, mounts every router and renders every error."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from casework import live_router
from casework import router as casework_router
from casework.rules import load_rules
from components import router as components_router
from dispatch import router as dispatch_router
from evaluation import router as evaluation_router
from gis_data import map_router, tiles_router
from gridcity import guard, logredact, org_router, phoneapp
from gridcity.database import make_engine, make_read_session_factory, make_session_factory, refuse_nul_parameters
from gridcity.deps import DbGate
from gridcity.errors import GridCityError
from gridcity.root import console, wiring
from gridcity.security import LoginThrottle
from gridcity.settings import Settings, get_settings
from gridcity.storage import MediaStore
from mobile_api import open311
from mobile_api import router as mobile_router

log = logging.getLogger("gridcity")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": desc,
        "content": {
            "application/json": {"example": {"detail": [{"type": example, "loc": ["body", "action"], "msg": "..."}]}}
        },
    }
    for code, desc, example in [
        (400, "Malformed request (e.g. a body that cannot be parsed)", "bad_request"),
        (401, "Not authenticated", "auth.missing_token"),
        (403, "Not allowed for this user", "case.role_forbidden"),
        (404, "Not found", "case.not_found"),
        (409, "Conflicts with the current state", "case.invalid_transition"),
        (413, "Request body too large (limits in the README)", "request.too_large"),
        (415, "Unsupported media type (e.g. a file that is not a photo)", "photo.unsupported"),
        (422, "Invalid input", "department.unknown"),
    ]
}


def _error(status: int, code: str, msg: str, loc: list[Any] | None = None) -> JSONResponse:
    return JSONResponse({"detail": [{"type": code, "loc": loc or [], "msg": msg}]}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Render every failure in the one shape ``{"detail": [{"type", "loc", "msg"}]}``."""

    @app.exception_handler(GridCityError)
    async def _domain(request: Request, exc: GridCityError) -> JSONResponse:
        retry = exc.extra.get("retry_after") if exc.status_code == 429 else None
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return JSONResponse({"detail": [exc.to_detail()]}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"type": e.get("type", "invalid"), "loc": list(e.get("loc", [])), "msg": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "http.not_found",
            405: "http.method_not_allowed",
            401: "auth.missing_token",
            413: "request.too_large",
        }.get(exc.status_code, f"http.{exc.status_code}")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if not exc.connection_invalidated:
            log.exception("unhandled database error", exc_info=exc)
            return _error(500, "internal", "internal error")
        # The server dropped a pooled connection in use (a database restart, a terminated backend): SQLAlchemy
        # has already discarded the pool, so the retry gets a fresh connection. Nothing was committed (the
        # transaction died with its connection); a client with an idempotency key may resend as it is.
        log.warning("database connection lost during a request; the pool starts over")
        response = _error(503, "database.unavailable", "database connection lost; retry")
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal", "internal error")


# Routers of the packages built on the spine, in mounting order: (module, prefix). Each module exposes
# ``router`` and may expose ``setup(app)`` for startup work (e.g. background tasks, exception handlers). Plain
# imports: a router that is missing fails the app's import, it is never skipped.
ROUTERS: tuple[tuple[ModuleType, str], ...] = (
    (components_router, "/api/v1"),
    (map_router, "/api/v1"),
    (tiles_router, ""),
    (dispatch_router, "/api/v1"),
    (evaluation_router, "/api/v1"),
    (mobile_router, "/mobile/v1"),
    (open311, "/open311/v2"),
    (live_router, ""),
    (console, ""),
    (phoneapp, ""),  # the field app 城管通 at /m/
)


def _include(app: FastAPI, module: ModuleType, prefix: str) -> None:
    setup = getattr(module, "setup", None)
    if setup is not None:
        setup(app)
    app.include_router(module.router, prefix=prefix)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url(), echo=settings.sql_echo, pool_size=settings.db_pool_size)
    app = FastAPI(
        title="gridcity",
        version="0.1.0",
        description="数字化城管 — grid city management: report, file, dispatch, handle, feed back, check, "
        "close, evaluate. Errors always have the shape {detail: [{type, loc, msg}]} with a stable type.",
        responses=ERROR_RESPONSES,
        docs_url=None,
        redoc_url=None,  # Swagger UI is served below from npm, not from a CDN
    )
    refuse_nul_parameters(engine)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.read_session_factory = make_read_session_factory(engine)
    app.state.db_gate = DbGate(settings.db_pool_size)  # requests admitted to the database at a time
    app.state.login_throttle = LoginThrottle(
        per_account=settings.login_max_failures_per_account,
        per_address=settings.login_max_failures_per_address,
        window_s=settings.login_failure_window_seconds,
    )
    app.state.store = MediaStore(Path(settings.media_dir))
    # The on-site radius is part of the case rules, so that every route judges results by the same rule.
    app.state.rules = dataclasses.replace(load_rules(settings.city_dir), onsite_radius_m=settings.onsite_radius_m)
    app.state.pipeline = wiring.case_pipeline(settings, app.state.rules)  # this app's, with its settings
    install_error_handlers(app)
    guard.install(app)
    logredact.install()  # tokens never reach a log line, also the server stack's DEBUG lines

    api = "/api/v1"
    app.include_router(org_router.router, prefix=api)
    app.include_router(casework_router.router, prefix=api)
    app.include_router(casework_router.attachments_router, prefix=api)
    app.include_router(casework_router.classes_router, prefix=api)
    for module, prefix in ROUTERS:
        _include(app, module, prefix)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="gridcity — API",
            swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png",
        )

    # async: a liveness probe does no I/O, so it is answered on the event loop without a threadpool hop;
    # its latency is then what it should measure, the loop's responsiveness (G-I3).
    @app.get("/healthz", tags=["meta"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
