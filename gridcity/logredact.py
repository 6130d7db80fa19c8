"""Secrets never reach a log line: a filter that redacts bearer tokens from the server's own log records.

The app never logs a token, a password or a phone number itself, and SQL parameters are hidden from the
engine's log (``hide_parameters``). What remains is the server stack: at DEBUG the websocket library logs
every handshake header (``Authorization``, ``Sec-WebSocket-Protocol: bearer.<token>``) and every frame (the
``auth`` frame), and the access log records query strings. :func:`install` puts :class:`RedactSecrets` on
those loggers (filters on a logger see the records logged through it; logging configuration added later,
e.g. by uvicorn, keeps them).
"""

from __future__ import annotations

import logging
import re
from typing import Final

#: Loggers that carry request data: uvicorn's (its websocket protocol logs through ``uvicorn.error``) and
#: the websockets library's own.
LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "websockets", "websockets.server",
                  "websockets.protocol", "gridcity")

_PATTERNS: Final = [
    # A JWT, whole or as its head (every token we issue starts with the base64 of '{"').
    (re.compile(r"eyJ[\w-]*(?:\.[\w-]*){0,2}"), "[redacted]"),
    # "token": "...", also when the frame's log form elides its middle or its end.
    (re.compile(r'("(?:access_)?token"\s*:\s*")[^"]*("|$)'), r"\1[redacted]\2"),
    # Authorization: Bearer ..., and the subprotocol bearer.<token>.
    (re.compile(r"(bearer[ .])[^\s,;'\"]+", re.IGNORECASE), r"\1[redacted]"),
    # Secrets in a query string or a form.
    (re.compile(r"((?:token|api_key|password)=)[^&\s'\"]+", re.IGNORECASE), r"\1[redacted]"),
]


def redact(text: str) -> str:
    """``text`` with every bearer token and query-string secret replaced by ``[redacted]``."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message with :func:`redact` (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the formatted message in place."""
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactSecrets()


def install() -> None:
    """Put the filter on every logger of :data:`LOGGERS` (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
