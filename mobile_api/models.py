"""Tables of the phone API: idempotency records of submissions, and patrol breadcrumbs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gridcity.database import Base
from gridcity.types import BigId, UTCDateTime, utcnow

#: ``status_code`` of a record whose work has not finished. On PostgreSQL other transactions never see it
#: (the record is inserted in the same, still open, transaction as the work); only the transaction itself
#: can meet it, e.g. when a batch reuses its own key for an item.
PENDING = 0


class IdempotencyRecord(Base):
    """The first result of a phone submission, per user and client-generated key.

    Written in the same transaction as the work it records, so a committed report always has its record
    and a rolled-back one never has.
    """

    __tablename__ = "idempotency_record"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # report | result | photos | tracks | batch
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(default=PENDING)
    response: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_record_user_key"),)
