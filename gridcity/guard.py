"""The request guard: an ASGI middleware that refuses hostile requests before any endpoint reads them.

It runs for every HTTP request, in front of routing, and answers in the app's error shape
``{"detail": [{"type", "loc", "msg"}]}``:

* **NUL in the URL** (the decoded path, or ``%00`` in the query string): 422 ``input.nul_character``
  (not under ``/open311/``, which answers with the spec's 400 body). No
  text the API accepts may contain U+0000 (PostgreSQL cannot store it); NUL inside bodies is refused at the
  database boundary (:func:`gridcity.database.refuse_nul_parameters`), which sees every decoded value.
* **Authentication before the body**: a request with a body to an operation that needs a bearer token (read
  from the OpenAPI document's ``security`` requirements) is answered 401 when the token is missing, forged or
  expired, before a byte of the body is read. So an anonymous caller cannot make the server hold or spool a
  body at all. (Whether the user is still active is checked by the endpoint, as for every request.)
* **Body size before the body**: a ``Content-Length`` above the limit is 413 ``request.too_large`` at once;
  a chunked body is counted as it streams and refused with the same 413 as soon as it passes the limit.
  Limits (README, "Request limits"): multipart bodies ``Settings.max_multipart_bytes`` (18 photos at
  ``GRIDCITY_MAX_UPLOAD_BYTES`` plus 1 MiB of fields, the phone API's own limit); every other body
  ``GRIDCITY_MAX_JSON_BYTES``; the GIS imports (admin only) ``10 × GRIDCITY_MAX_UPLOAD_BYTES``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridcity import security
from gridcity.errors import NotAuthenticated
from gridcity.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LARGE_BODY_PREFIXES: Final = ("/api/v1/gis/",)
"""Operations whose bodies are data files (admin imports): limited to 10 × the photo limit."""


class BodyTooLarge(StarletteHTTPException):
    """The body grew past its limit while it was being read (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


def _answer(
    status: int, code: str, msg: str, loc: list[Any], headers: dict[str, str] | None = None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps({"detail": [{"type": code, "loc": loc, "msg": msg}]}, ensure_ascii=False).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return status, body, raw


def authenticated_operations(openapi: dict[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    """(method, path pattern) of every operation that needs a bearer token, read from the OpenAPI document
    (FastAPI marks each operation that depends on the OAuth2 scheme with a ``security`` requirement)."""
    out = []
    for path, item in openapi.get("paths", {}).items():
        pattern = re.compile(
            "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", path))
        )
        for method, op in item.items():
            if isinstance(op, dict) and op.get("security"):
                out.append((method.upper(), pattern))
    return out


def body_limit(settings: Settings, path: str, content_type: str) -> int:
    """The largest body the guard lets through to ``path`` for this content type."""
    if path.startswith(LARGE_BODY_PREFIXES):
        return settings.max_upload_bytes * 10
    if content_type.startswith("multipart/"):
        return settings.max_multipart_bytes
    return settings.max_json_bytes


class RequestGuard:
    """The ASGI middleware (add it with :func:`install`)."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._auth_routes: dict[str, re.Pattern[str]] | None = None
        # Built on the first request that needs it. Several event loops may serve one app (a TestClient per
        # thread), and FastAPI's OpenAPI generation is not thread-safe (it silences a pydantic warning with
        # warnings.catch_warnings, which swaps the process-wide filters): one thread builds it, the others wait.
        self._auth_routes_lock = threading.Lock()

    def _auth_patterns(self) -> dict[str, re.Pattern[str]]:
        with self._auth_routes_lock:
            if self._auth_routes is None:
                # One alternation per method, matched in C, instead of a Python loop over every operation.
                by_method: dict[str, list[str]] = {}
                for m, pattern in authenticated_operations(self.fastapi_app.openapi()):
                    by_method.setdefault(m, []).append(f"(?:{pattern.pattern})")
                self._auth_routes = {m: re.compile("|".join(ps)) for m, ps in by_method.items()}
            return self._auth_routes

    def _needs_auth(self, scope: Scope) -> bool:
        routes = self._auth_routes if self._auth_routes is not None else self._auth_patterns()
        pattern = routes.get(scope["method"].upper())
        return pattern is not None and pattern.fullmatch(scope["path"]) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _send(send, *refusal)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if "content-length" not in headers and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        settings: Settings = self.fastapi_app.state.settings
        limit = body_limit(settings, scope["path"], headers.get("content-type", "").lower())
        length_text = headers.get("content-length")
        if length_text is not None:
            if not length_text.isdigit():
                await _send(
                    send,
                    *_answer(
                        400,
                        "request.bad_content_length",
                        "Content-Length is not a number",
                        ["header", "content-length"],
                    ),
                )
                return
            if int(length_text) == 0:
                await self.app(scope, receive, send)
                return
            if int(length_text) > limit:
                await _send(send, *_too_large(limit))
                return
        if self._needs_auth(scope):
            try:
                token = _bearer(headers.get("authorization"))
                security.decode_token(token, secret=settings.resolved_secret_key())
            except NotAuthenticated as exc:
                await _send(
                    send,
                    *_answer(401, exc.code, exc.message, ["header", "Authorization"], {"WWW-Authenticate": "Bearer"}),
                )
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await _send(send, *_too_large(limit))

    def _refusal(self, scope: Scope) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        if scope["path"].startswith("/open311/"):
            return None  # Open311 answers bad input with the spec's 400 body (NUL is refused at the database)
        if "\x00" in scope["path"]:
            return _answer(422, "input.nul_character", "the path may not contain the NUL character", ["path"])
        qs: bytes = scope.get("query_string", b"")
        if b"\x00" in qs or b"%00" in qs:
            return _answer(422, "input.nul_character", "the query may not contain the NUL character", ["query"])
        return None


def _bearer(value: str | None) -> str:
    scheme, _, token = (value or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("not authenticated", code="auth.missing_token")
    return token.strip()


def _too_large(limit: int) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    return _answer(413, "request.too_large", f"the request body is larger than {limit} bytes", ["body"])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI) -> None:
    """Put the guard in front of every route of ``app``."""
    app.add_middleware(RequestGuard, fastapi_app=app)  # type: ignore[arg-type]
