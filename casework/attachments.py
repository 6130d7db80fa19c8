"""Photos as evidence: validated by content, stored content-addressed, public renditions stripped.

The original stays private (``<sha>.orig``); the app serves only ``display`` and ``thumb`` JPEGs, which
carry no metadata. Files written here are removed again if the request's transaction rolls back.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.models import Attachment
from gridcity import photos
from gridcity.errors import NotFound
from gridcity.storage import MediaStore


def store_photo(
    session: Session,
    store: MediaStore,
    data: bytes,
    *,
    uploaded_by: int | None,
    limits: photos.PhotoLimits = photos.DEFAULT_LIMITS,
    loc: list[str | int] | None = None,
) -> Attachment:
    """Validate, render and store one photo; the same content stored twice is one attachment."""
    processed = photos.process_photo(data, limits, loc=loc)
    info = processed.info
    existing = session.scalars(select(Attachment).where(Attachment.sha256 == info.sha256)).first()
    if existing is not None:
        return existing
    store.put(data, ".orig", session=session, key=info.sha256)
    store.put(processed.renditions.display.data, ".display.jpg", session=session, key=info.sha256)
    store.put(processed.renditions.thumbnail.data, ".thumb.jpg", session=session, key=info.sha256)
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
        flags=[],
    )
    session.add(att)
    session.flush()
    return att


def rendition_path(session: Session, store: MediaStore, attachment_id: int, kind: str) -> str:
    """The file of a public rendition (``display`` or ``thumb``)."""
    att = session.get(Attachment, attachment_id)
    if att is None or kind not in ("display", "thumb"):
        raise NotFound(f"attachment {attachment_id} not found", code="attachment.not_found")
    return str(store.path_for(att.sha256, f".{kind}.jpg"))
