"""Housekeeping: orphan photo files, photos that never became evidence, and old idempotency keys.

Why orphans exist at all: a photo's files are written before its row is committed (so a committed row
never points at a missing file). A rolled-back request deletes its files again (``gridcity.storage``), but a
process killed between writing and committing leaves files nobody refers to. Phones also upload photos
(``POST /photos``) for queued items that may never arrive.

:func:`clean_orphans` removes, in one transaction of the caller:

1. attachment rows that no row of any table refers to (today: ``event_attachment``) and that are older
   than ``unreferenced_after`` (default one day), and their files;
2. media files with no attachment row, and stale temp files, older than ``older_than`` (the files of the
   rows removed in step 1 included).

Files are deleted only *after* the transaction commits, so a failed or rolled-back clean never leaves a
row without its files; a crash after the commit leaves files without rows, which the next run removes.
Only files older than ``older_than`` are touched, so a request that is writing files right now (its row
not yet visible) is left alone; ``mobile_api.service`` refreshes the time of a photo whose bytes were
already on disk for the same reason.

Who runs them: :func:`run_maintenance` (both jobs in one write unit) runs on a schedule inside every server
process (:func:`setup`, every ``GRIDCITY_MAINTENANCE_INTERVAL_SECONDS``; 0 = off) and from the command line
(``gridcity maintenance run | clean-orphans | purge-idempotency``). When several workers share a PostgreSQL
database, one at a time does the work: the run takes an advisory lock and a worker that does not get it
skips that run. On SpatiaLite (one server process) the write unit's lock serialises runs anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from casework.models import Attachment
from gridcity import spatial
from gridcity.database import transaction
from gridcity.storage import MediaStore
from gridcity.types import utcnow
from mobile_api.models import IdempotencyRecord

_DELETE_AFTER_COMMIT = "mobile_api.delete_after_commit"


@dataclass(frozen=True)
class CleanReport:
    """What a clean removed (files are removed once the transaction commits)."""

    attachments_removed: int
    files_removed: int


def _references_to_attachment(session: Session) -> list[sa.ColumnClause[int]]:
    """Every column, in the database itself, that is a foreign key to ``attachment.id``.

    Read from the database (not from the imported models) so that a table added by a package this
    process did not import still protects the photos it refers to.
    """
    insp = sa.inspect(session.connection())
    cols = []
    for table in insp.get_table_names():
        for fk in insp.get_foreign_keys(table):
            if fk["referred_table"] == Attachment.__tablename__ and fk["referred_columns"] == ["id"]:
                cols.append(sa.column(fk["constrained_columns"][0], sa.Integer, _selectable=sa.table(table)))
    return cols


def _files_of(store: MediaStore, sha256: str) -> list[Path]:
    folder = store.path_for(sha256, "").parent
    return sorted(folder.glob(f"{sha256}*")) if folder.exists() else []


def clean_orphans(
    session: Session,
    store: MediaStore,
    older_than: dt.timedelta = dt.timedelta(hours=1),
    *,
    unreferenced_after: dt.timedelta = dt.timedelta(days=1),
    now: dt.datetime | None = None,
) -> CleanReport:
    """Remove unreferenced old attachments and orphan media files (see the module docstring).

    Args:
        session: A session whose transaction the caller commits (the files go after the commit).
        store: The media store.
        older_than: Files younger than this are never touched (a request may be writing them).
        unreferenced_after: Attachments referenced by nothing are removed when older than this.
        now: The current time (tests).

    Returns:
        How many attachment rows and files are removed.
    """
    now = now or utcnow()
    unreferenced = select(Attachment.id, Attachment.sha256).where(Attachment.created_at < now - unreferenced_after)
    for col in _references_to_attachment(session):
        unreferenced = unreferenced.where(~sa.exists().where(col == Attachment.id))
    doomed = session.execute(unreferenced).all()
    doomed_files: list[Path] = []
    if doomed:
        session.execute(sa.delete(Attachment).where(Attachment.id.in_([r.id for r in doomed])))
        for r in doomed:
            doomed_files.extend(_files_of(store, r.sha256))
    known = set(session.scalars(select(Attachment.sha256)))
    cutoff = (now - older_than).timestamp()
    for path in store.orphans(known):
        try:
            if path.stat().st_mtime < cutoff and path not in doomed_files:
                doomed_files.append(path)
        except FileNotFoundError:
            continue
    session.info.setdefault(_DELETE_AFTER_COMMIT, []).extend((p, cutoff) for p in doomed_files)
    session.flush()
    return CleanReport(attachments_removed=len(doomed), files_removed=len(doomed_files))


def purge_idempotency_records(
    session: Session, *, older_than: dt.timedelta = dt.timedelta(days=30), now: dt.datetime | None = None
) -> int:
    """Forget idempotency keys older than ``older_than`` (far beyond any phone's offline queue); how many."""
    cutoff = (now or utcnow()) - older_than
    result = session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@event.listens_for(Session, "after_commit")
def _delete_files(session: Session) -> None:
    for path, cutoff in session.info.pop(_DELETE_AFTER_COMMIT, []):
        # Checked again at the last moment: a request that reused these bytes meanwhile refreshed the time.
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
        except FileNotFoundError:
            continue


@event.listens_for(Session, "after_rollback")
def _keep_files(session: Session) -> None:
    session.info.pop(_DELETE_AFTER_COMMIT, None)


# ---- running them ------------------------------------------------------------------------------------------

log = logging.getLogger("gridcity.maintenance")

MAINTENANCE_LOCK_KEY = 0x67636D74  # pg_try_advisory_xact_lock key ("gcmt"): one maintenance run at a time
TASKS = ("orphans", "idempotency")


@dataclass(frozen=True)
class MaintenanceReport:
    """One run: ``ran`` is False when another worker was running maintenance (nothing was done)."""

    ran: bool
    attachments_removed: int = 0
    files_removed: int = 0
    idempotency_removed: int = 0


def run_maintenance(
    factory: sessionmaker[Session],
    store: MediaStore,
    *,
    tasks: tuple[str, ...] = TASKS,
    orphan_older_than: dt.timedelta = dt.timedelta(hours=1),
    idempotency_older_than: dt.timedelta = dt.timedelta(days=30),
    now: dt.datetime | None = None,
) -> MaintenanceReport:
    """Run the housekeeping ``tasks`` (``orphans``, ``idempotency``) in one write unit, one worker at a time."""
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown maintenance tasks {sorted(unknown)}")
    with transaction(factory) as session:
        if not spatial.try_singleton_lock(session, MAINTENANCE_LOCK_KEY):
            return MaintenanceReport(ran=False)
        clean = CleanReport(0, 0)
        if "orphans" in tasks:
            clean = clean_orphans(session, store, orphan_older_than, now=now)
        purged = (
            purge_idempotency_records(session, older_than=idempotency_older_than, now=now)
            if "idempotency" in tasks
            else 0
        )
    return MaintenanceReport(
        ran=True,
        attachments_removed=clean.attachments_removed,
        files_removed=clean.files_removed,
        idempotency_removed=purged,
    )


async def _maintenance_loop(app: Any, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            report = await asyncio.to_thread(run_maintenance, app.state.session_factory, app.state.store)
            app.state.maintenance_runs.append(report)
            del app.state.maintenance_runs[:-10]
            if report.ran and (report.files_removed or report.attachments_removed or report.idempotency_removed):
                log.info("maintenance: %s", report)
        except Exception:  # retried on the next tick
            log.exception("maintenance run failed")


def setup(app: Any) -> None:
    """Run :func:`run_maintenance` every ``settings.maintenance_interval_seconds`` with the app's lifespan."""
    interval = float(app.state.settings.maintenance_interval_seconds)
    app.state.maintenance_runs = []  # the last reports (for operators and tests)
    if interval <= 0:
        return
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        task = asyncio.create_task(_maintenance_loop(app, interval), name="gridcity-maintenance")
        try:
            async with previous(a) as state:
                yield state
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.router.lifespan_context = lifespan
