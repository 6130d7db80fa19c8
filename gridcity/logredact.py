"""Secrets never reach a log line: a filter that redacts bearer tokens from the server's own log records.

The app never logs a token, a password or a phone number itself, and SQL parameters are hidden from the
engine's log (``hide_parameters``). What remains is the server stack: at DEBUG the websocket library logs
every handshake header (``Authorization``, ``Sec-WebSocket-Protocol: bearer.<token>``) and every frame (the
``auth`` frame), and the access log records query strings; at DEBUG the SQL engine also logs every result row
(``hide_parameters`` covers bound values only), which would print a caller's contact row as the case file reads
it. :func:`install` puts :class:`RedactSecrets` on those loggers and :class:`NoResultRows` on the engine's
(filters on a logger see the records logged through it; logging configuration added later,
e.g. by uvicorn, keeps them).
"""

from __future__ import annotations

import logging
import re
from typing import Final

#: Loggers that carry request data: uvicorn's (its websocket protocol logs through ``uvicorn.error``) and
#: the websockets library's own.
LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "websockets",
    "websockets.server",
    "websockets.protocol",
    "gridcity",
)

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


class NoResultRows(logging.Filter):
    """Drops the SQL engine's DEBUG records of result rows (``Row (...)``, ``Col (...)``): rows hold personal
    data (callers' names and phone numbers) and password hashes; the statements themselves are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but a result row's."""
        return not (
            record.levelno <= logging.DEBUG and isinstance(record.msg, str) and record.msg.startswith(("Row ", "Col "))
        )


_FILTER = RedactSecrets()
_NO_ROWS = NoResultRows()
#: SQLAlchemy logs rows through the engine class's logger, or an instance's child logger when echo is set.
ENGINE_LOGGERS: Final = ("sqlalchemy.engine", "sqlalchemy.engine.Engine")


def install() -> None:
    """Put the filter on every logger of :data:`LOGGERS` (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for name in ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if _NO_ROWS not in logger.filters:
            logger.addFilter(_NO_ROWS)
