"""Photos as evidence: validated by content, stored content-addressed, public renditions stripped.

The original stays private (``<sha>.orig``); the app serves only ``display`` and ``thumb`` JPEGs, which
carry no metadata. At ingest only the original and the thumbnail are written (:func:`gridcity.photos.
prepare_photo`, goal G-I1); the 2048 px display rendition is rendered from the original on its first request
and kept in the store (:func:`rendition_path`). Files written here are removed again if the request's
transaction rolls back (:mod:`gridcity.storage`).

The CPU work can be done before the database transaction begins: :func:`prepare` (no session) validates the
photo and renders its thumbnail, :func:`write_files` stores the files and registers them on the session,
and :func:`store_photo` then only adds the row (and makes sure the files are still there).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.models import Attachment
from gridcity import photos
from gridcity.errors import NotFound
from gridcity.storage import MediaStore

ORIGINAL = ".orig"
THUMB = ".thumb.jpg"
DISPLAY = ".display.jpg"
#: The files every stored photo has; the display rendition is made on demand.
REQUIRED_SUFFIXES = (ORIGINAL, THUMB)


def prepare(
    data: bytes,
    limits: photos.PhotoLimits = photos.DEFAULT_LIMITS,
    loc: list[str | int] | None = None,
    *,
    sha256: str | None = None,
) -> photos.PreparedPhoto:
    """Validate a photo and render its thumbnail (pure CPU; no session, no files); ``sha256`` is the bytes'
    hash when the caller has it already (not computed again)."""
    return photos.prepare_photo(data, limits, loc=loc, sha256=sha256)


def write_files(store: MediaStore, prepared: photos.PreparedPhoto, *, session: Session | None) -> None:
    """Write the original and the thumbnail (or refresh them if present); a rollback of ``session`` removes
    the ones this call created, also when the session's transaction begins only after this call."""
    sha = prepared.info.sha256
    store.put(prepared.data, ORIGINAL, session=session, key=sha)
    store.put(prepared.thumbnail.data, THUMB, session=session, key=sha)


def store_photo(
    session: Session,
    store: MediaStore,
    data: bytes | photos.PreparedPhoto,
    *,
    uploaded_by: int | None,
    limits: photos.PhotoLimits = photos.DEFAULT_LIMITS,
    loc: list[str | int] | None = None,
    flags: list[dict[str, Any]] | None = None,
) -> Attachment:
    """Validate, render and store one photo; the same content stored twice is one attachment.

    ``data`` is the uploaded bytes, or the result of :func:`prepare` (then only the files are checked and
    the row is added). ``flags``: the advisory flags a new row starts with (an existing one keeps its own).
    """
    sha = data.info.sha256 if isinstance(data, photos.PreparedPhoto) else hashlib.sha256(data).hexdigest()
    existing = session.scalars(select(Attachment).where(Attachment.sha256 == sha)).first()
    if existing is not None:
        return existing
    prepared = data if isinstance(data, photos.PreparedPhoto) else prepare(data, limits, loc)
    info = prepared.info
    # Also for a prepared photo: put() rewrites a file a concurrent rollback removed in the meantime, and
    # refreshes the time of the others.
    write_files(store, prepared, session=session)
    taken = info.taken_at
    if taken is not None and taken.tzinfo is None:
        # We keep a naive EXIF time as-is but mark it UTC-less by assuming the city's offset (+08:00).
        taken = taken.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
    att = Attachment(
        sha256=info.sha256,
        media_type=info.content_type,
        size=info.size_bytes,
        width=info.oriented_size[0],
        height=info.oriented_size[1],
        uploaded_by=uploaded_by,
        taken_at=taken,
        exif_lon=info.gps.lon if info.gps else None,
        exif_lat=info.gps.lat if info.gps else None,
        flags=list(flags or []),
    )
    session.add(att)
    session.flush()
    return att


def ensure_display(store: MediaStore, sha256: str) -> str:
    """The display rendition's file, rendered from the original (and kept) if it is not there yet.

    Call it from a worker thread (sync endpoints run in the threadpool): the first call decodes the original.
    Concurrent first calls both render and the atomic rename keeps one identical file.
    """
    path = store.path_for(sha256, DISPLAY)
    if path.exists():
        return str(path)
    original = store.path_for(sha256, ORIGINAL)
    data = photos.read_photo_source(original, photos.PhotoLimits(max_bytes=max(1, original.stat().st_size)))
    # The original was validated at ingest (under the deployment's limits); only check it is still itself.
    limits = photos.PhotoLimits(max_bytes=len(data), max_pixels=2**40)
    info = photos.inspect_photo(data, limits)
    store.put(photos.render_display(data, info).data, DISPLAY, key=sha256)
    return str(path)


def end_read_transaction(session: Session) -> None:
    """Commit the session's transaction before slow work, so the work does not hold it.

    On SQLite every transaction begins with ``BEGIN IMMEDIATE`` (the write lock), also the one a request
    opens to authenticate; photo work inside it would serialise every other writer. Call this only where
    the transaction has written nothing yet (it is not done inside a savepoint: a batch item's work stays in
    its batch's transaction). Loaded objects stay usable (the session factory does not expire on commit).
    """
    if (
        session.in_transaction()
        and not session.in_nested_transaction()
        and not (session.new or session.dirty or session.deleted)
    ):
        session.commit()


def rendition_path(session: Session, store: MediaStore, attachment_id: int, kind: str) -> str:
    """The file of a public rendition (``display`` or ``thumb``)."""
    att = session.get(Attachment, attachment_id)
    if att is None or kind not in ("display", "thumb"):
        raise NotFound(f"attachment {attachment_id} not found", code="attachment.not_found")
    if kind == "display":
        if not store.path_for(att.sha256, DISPLAY).exists():
            end_read_transaction(session)  # rendering takes ~0.1–0.3 s; not under the write lock
        return ensure_display(store, att.sha256)
    return str(store.path_for(att.sha256, THUMB))
