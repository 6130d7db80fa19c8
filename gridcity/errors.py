"""Domain error categories shared by every package.

Each error carries a stable dotted ``code`` (clients switch on it), a human message and an optional
``loc`` (where in the input the problem is). The app factory maps the category to an HTTP status and
renders the one error shape ``{"detail": [{"type": code, "loc": [...], "msg": message}]}``.
No framework is imported here, so pure domain modules may raise these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class GridCityError(Exception):
    """Base of every error the API reports on purpose."""

    status_code: ClassVar[int] = 400
    default_code: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        loc: Sequence[str | int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.loc = list(loc) if loc is not None else []
        self.extra = extra or {}

    def to_detail(self) -> dict[str, Any]:
        """Render one entry of the error body's ``detail`` list."""
        d: dict[str, Any] = {"type": self.code, "loc": self.loc, "msg": self.message}
        if self.extra:
            d["ctx"] = self.extra
        return d


class InvalidInput(GridCityError):
    """The request is well-formed but its content is not acceptable (422)."""

    status_code = 422
    default_code = "invalid_input"


class BadRequest(GridCityError):
    """The request cannot be parsed at all (400)."""

    status_code = 400
    default_code = "bad_request"


class NotAuthenticated(GridCityError):
    """No valid credentials (401)."""

    status_code = 401
    default_code = "auth.not_authenticated"


class PermissionDenied(GridCityError):
    """The user may not do this (403)."""

    status_code = 403
    default_code = "permission_denied"


class NotFound(GridCityError):
    """The thing named does not exist (or the user may not know it exists) (404)."""

    status_code = 404
    default_code = "not_found"


class Conflict(GridCityError):
    """The request conflicts with the current state (409)."""

    status_code = 409
    default_code = "conflict"


class PayloadTooLarge(GridCityError):
    """The upload exceeds a size limit (413)."""

    status_code = 413
    default_code = "payload_too_large"


class UnsupportedMedia(GridCityError):
    """The upload is not of an accepted type (415)."""

    status_code = 415
    default_code = "unsupported_media"


class TooManyRequests(GridCityError):
    """Too many attempts; ``extra["retry_after"]`` says after how many seconds to try again (429)."""

    status_code = 429
    default_code = "too_many_requests"
