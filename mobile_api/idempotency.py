"""Idempotency keys: a retried phone submission returns the first result and does nothing again.

Every POST of the phone API carries a client-generated ``Idempotency-Key``. :func:`run` claims the key by
inserting an :class:`~mobile_api.models.IdempotencyRecord` *in the same transaction as the work*, does the
work, and stores the response on the record. Consequences:

* A committed submission always has its record, and a rolled-back one never has (a failed request can
  simply be retried; it did nothing).
* A retry with the same key and the same payload, also one sent after the server committed but the phone
  never got the answer, finds the record and gets the stored status and body back, without doing anything.
* The same key with a different payload is refused (409 ``idempotency.key_reused``).
* :func:`peek` answers a finished retry before the caller does expensive work (photo processing, done
  before the write transaction begins); :func:`run` still decides.
* Two concurrent requests with the same key: on PostgreSQL the second ``INSERT … ON CONFLICT DO NOTHING``
  waits on the first transaction's uncommitted row (the unique constraint does the locking), then sees the
  committed record and replays it; if the first takes longer than ``wait_seconds`` the second gets 409
  ``idempotency.in_progress``. On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (see
  :mod:`gridcity.database`), so the second request only starts after the first committed.

The request hash is computed from the *meaning* of the submission (the parsed payload and the SHA-256 of
each photo), so a report first tried as a multipart POST and later re-sent from the offline queue through
``/batch`` (photos referenced by attachment id) hashes the same and is recognised as the same submission.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridcity import spatial
from gridcity.errors import BadRequest, Conflict
from mobile_api.models import PENDING, IdempotencyRecord

KEY_HEADER = "Idempotency-Key"
_KEY_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
DEFAULT_WAIT_SECONDS = 20.0


class MissingKey(BadRequest):
    """The submission carries no idempotency key (400)."""

    default_code = "idempotency.missing_key"


class BadKey(BadRequest):
    """The idempotency key is not 1–64 characters of ``A-Z a-z 0-9 . _ : -`` (400)."""

    default_code = "idempotency.bad_key"


class KeyReused(Conflict):
    """The key was used before for a different submission (409)."""

    default_code = "idempotency.key_reused"


class InProgress(Conflict):
    """A submission with this key is still being processed; retry later (409)."""

    default_code = "idempotency.in_progress"


# The statements of a keyed submission, built once (not per request): a report runs three of them.
_T = IdempotencyRecord.__table__
_LOOKUP = sa.select(IdempotencyRecord.request_hash, IdempotencyRecord.status_code, IdempotencyRecord.response).where(
    IdempotencyRecord.user_id == sa.bindparam("user_id"), IdempotencyRecord.key == sa.bindparam("key")
)
_CLAIM = {
    name: insert(_T)
    .values(
        user_id=sa.bindparam("user_id"),
        key=sa.bindparam("key"),
        kind=sa.bindparam("kind"),
        request_hash=sa.bindparam("request_hash"),
        status_code=PENDING,
    )
    .on_conflict_do_nothing(index_elements=["user_id", "key"])
    .returning(_T.c.id)
    for name, insert in spatial.inserts_by_dialect().items()
}
_FINISH = (
    sa.update(_T)
    .where(_T.c.id == sa.bindparam("record_id"))
    .values(
        status_code=sa.bindparam("new_status", type_=_T.c.status_code.type),
        response=sa.bindparam("new_response", type_=_T.c.response.type),
    )
)


@dataclass(frozen=True)
class Outcome:
    """What a keyed submission answered: the first result, possibly replayed."""

    status_code: int
    body: Any
    replayed: bool


def check_key(key: str | None, *, loc: list[str | int]) -> str:
    """Validate a client idempotency key.

    Raises:
        MissingKey: no key (400).
        BadKey: not 1–64 characters of letters, digits and ``._:-`` (400).
    """
    if key is None or key == "":
        raise MissingKey(f"every submission needs an {KEY_HEADER}", loc=loc)
    if not _KEY_RE.match(key):
        raise BadKey("the idempotency key must be 1–64 characters of A-Z a-z 0-9 . _ : -", loc=loc)
    return key


def request_hash(kind: str, payload: Any) -> str:
    """A stable hash of a submission's meaning (canonical JSON: sorted keys, no spaces)."""
    text = json.dumps({"kind": kind, "payload": payload}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _claim(session: Session, *, user_id: int, key: str, kind: str, req_hash: str, wait_seconds: float) -> int | None:
    """Insert the pending record; its id, or None when the key is already taken (committed or ours).

    The INSERT waits for a concurrent transaction holding the same key (PostgreSQL); the wait is bounded.
    """
    stmt = _CLAIM[spatial.dialect(session)]
    params = {"user_id": user_id, "key": key, "kind": kind, "request_hash": req_hash}
    try:
        record_id: int | None = spatial.scalar_with_lock_timeout(session, stmt, wait_seconds, params)
    except spatial.LockTimeout as exc:
        raise InProgress(
            "a submission with this key is still being processed; retry shortly", loc=["header", KEY_HEADER]
        ) from exc
    return record_id


def peek(
    session: Session, *, user_id: int, key: str, req_hash: str, loc: list[str | int] | None = None
) -> Outcome | None:
    """The stored result of a finished submission with this key, without claiming it (a read only).

    Lets a retry be answered before any expensive work (photo processing) is done. ``None`` when the key is
    unknown or still pending; :func:`run` remains the authority (it claims the key in the write transaction).

    Raises:
        KeyReused: the key was used for a different submission.
    """
    rec = session.execute(_LOOKUP, {"user_id": user_id, "key": key}).one_or_none()
    if rec is None or rec.status_code == PENDING:
        return None
    if rec.request_hash != req_hash:
        raise KeyReused(
            "this idempotency key was already used for a different submission", loc=loc or ["header", KEY_HEADER]
        )
    return Outcome(status_code=rec.status_code, body=rec.response, replayed=True)


def run(
    session: Session,
    *,
    user_id: int,
    key: str,
    kind: str,
    req_hash: str,
    work: Callable[[], tuple[int, Any]],
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    loc: list[str | int] | None = None,
) -> Outcome:
    """Do ``work`` once per (user, key): the first time for real, afterwards replay its stored result.

    Args:
        session: The request's session; the record is written in its transaction (never committed here).
        user_id: Whose key it is (keys are per user).
        key: The client's idempotency key (see :func:`check_key`).
        kind: What is submitted (``report``, ``result``, ``photos``, ``tracks``, ``batch``).
        req_hash: :func:`request_hash` of the submission.
        work: Does the submission; returns ``(status_code, JSON-able body)``. Its errors propagate and
            the caller's rollback removes the claim with everything else.
        wait_seconds: PostgreSQL only: how long to wait for a concurrent submission with the same key.
        loc: Where the key came from, for errors.

    Raises:
        KeyReused: the key was used for a different submission.
        InProgress: the same submission is still running elsewhere (or earlier in this transaction).
    """
    loc = loc or ["header", KEY_HEADER]
    record_id = _claim(session, user_id=user_id, key=key, kind=kind, req_hash=req_hash, wait_seconds=wait_seconds)
    if record_id is None:
        rec = session.execute(_LOOKUP, {"user_id": user_id, "key": key}).one()
        if rec.request_hash != req_hash:
            raise KeyReused("this idempotency key was already used for a different submission", loc=loc)
        if rec.status_code == PENDING:
            raise InProgress("a submission with this key is still being processed; retry shortly", loc=loc)
        return Outcome(status_code=rec.status_code, body=rec.response, replayed=True)
    status_code, body = work()
    session.execute(_FINISH, {"record_id": record_id, "new_status": status_code, "new_response": body})
    return Outcome(status_code=status_code, body=body, replayed=False)
