"""Content-addressed file store for photos, tied to the database transaction.

A file is written under ``root/ab/cd/<sha256><suffix>``, durably: into a temp file in the same folder,
``fsync``, ``rename`` over the final name, then ``fsync`` of the folder, so a power cut leaves either no file
or the whole file, never a torn one under its final name.

Files created through a session are remembered on the session (with the modification time they were given);
if the session rolls back, they are deleted again, so a failed request leaves no orphan files. A file that
already existed (same content stored before) is never deleted by a rollback: :meth:`MediaStore.put` of an
existing file refreshes its time instead, and a rollback only removes a file whose time is still the one this
session gave it. So a concurrent request that stored the same content meanwhile (and touched the file) keeps
it. Files may be written before the session's transaction begins (photo work outside the write lock); they
are still removed when that transaction rolls back. Only the outermost transaction counts: a savepoint's
commit or rollback changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

_NEW_FILES = "gridcity.new_files"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_in_background(path: Path) -> Callable[[], None]:
    """Start ``fsync`` of the file at ``path`` in a thread of its own; returns the wait for it.

    Writing a 4 MB photo to disk takes ~10-20 ms here, most of it waiting for the device. Started as soon as
    the upload is spooled, that wait passes while the photo is decoded (which releases the GIL), instead of
    after it. The returned wait joins the thread and raises what ``fsync`` raised; calling it again does
    nothing.
    """
    fd = os.open(path, os.O_RDONLY)
    failure: list[BaseException] = []
    waited: list[bool] = []

    def sync() -> None:
        try:
            os.fsync(fd)
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=sync, name="gridcity-fsync", daemon=True)
    thread.start()

    def wait() -> None:
        if waited:
            return
        thread.join()
        waited.append(True)
        if failure:
            raise failure[0]

    return wait


def _stamp(path: Path) -> int:
    """Set the file's times to now (ns precision, so two writers never get the same stamp); return it."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))
    return os.stat(path).st_mtime_ns  # as stored (a file system may keep less precision)


class MediaStore:
    """Files by content hash under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str, suffix: str) -> Path:
        """Where the file with this hash and suffix lives."""
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}{suffix}"

    def put(
        self,
        data: bytes,
        suffix: str,
        *,
        session: Session | None = None,
        key: str | None = None,
        sync_folder: bool = True,
    ) -> tuple[str, Path]:
        """Store ``data`` under ``key`` (default: its sha256) durably; return the key and path.

        An existing file is not rewritten; its modification time is refreshed (the orphan cleaner spares
        young files, and a concurrent rollback spares files someone touched). With a session, a rollback of
        that session removes a file this call created. ``sync_folder=False`` leaves the ``fsync`` of the
        file's folder (which makes its new name durable) to the caller's :meth:`sync_folder`, so that files
        of one key stored together cost one.
        """
        sha = key or hashlib.sha256(data).hexdigest()
        path = self.path_for(sha, suffix)
        try:
            self.touch(path, session=session)
        except FileNotFoundError:
            pass
        else:
            return sha, path
        folder = path.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_dir(folder.parent)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if sync_folder:
            _fsync_dir(folder)
        stamp = _stamp(path)
        if session is not None:
            session.info.setdefault(_NEW_FILES, {})[path] = stamp
        return sha, path

    def put_file(
        self,
        src: Path,
        sha256: str,
        suffix: str,
        *,
        session: Session | None = None,
        sync_folder: bool = True,
        synced: Callable[[], None] | None = None,
    ) -> Path:
        """Store the finished file ``src`` (whose content hashes to ``sha256``) by hard-linking it; return the path.

        For an upload already spooled to disk under this store's root: its bytes are made durable
        (``fsync``), linked under their final name (atomically; an existing file is never replaced, only
        its time refreshed, as in :meth:`put`), and the folder is ``fsync``'d (unless ``sync_folder`` is
        False, as in :meth:`put`); nothing is copied. ``src`` keeps its own name (the caller removes it).
        Where a link is impossible (another file system, a file system without hard links), the bytes are
        copied through :meth:`put`. ``synced``: the wait of a :func:`sync_in_background` of ``src`` started by the
        caller, which then stands for this method's own ``fsync`` (it is waited for in any case).
        """
        try:
            return self._put_file(src, sha256, suffix, session=session, sync_folder=sync_folder, synced=synced)
        finally:
            if synced is not None:
                synced()  # a no-op when _put_file waited already; never leave the thread behind

    def _put_file(
        self,
        src: Path,
        sha256: str,
        suffix: str,
        *,
        session: Session | None,
        sync_folder: bool,
        synced: Callable[[], None] | None,
    ) -> Path:
        path = self.path_for(sha256, suffix)
        try:
            self.touch(path, session=session)
        except FileNotFoundError:
            pass
        else:
            return path
        folder = path.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_dir(folder.parent)
        if synced is not None:
            synced()
        else:
            fd = os.open(src, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        try:
            os.link(src, path)
        except FileExistsError:  # a concurrent request stored the same content meanwhile
            self.touch(path, session=session)
            return path
        except OSError:
            return self.put(Path(src).read_bytes(), suffix, session=session, key=sha256, sync_folder=sync_folder)[1]
        if sync_folder:
            _fsync_dir(folder)
        stamp = _stamp(path)
        if session is not None:
            session.info.setdefault(_NEW_FILES, {})[path] = stamp
        return path

    def sync_folder(self, sha256: str) -> None:
        """``fsync`` the folder of the files of ``sha256``: their names, stored with ``sync_folder=False``,
        become durable."""
        _fsync_dir(self.path_for(sha256, "").parent)

    def spool_dir(self) -> Path:
        """Where uploads are spooled while they arrive (on the store's file system, so they can be linked)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def touch(self, path: Path, *, session: Session | None = None) -> None:
        """Refresh a file's time (``FileNotFoundError`` if it is missing).

        A file this session created stays the session's to remove on rollback; anyone else's touch makes a
        rollback of the creating session leave it in place.
        """
        stamp = _stamp(path)
        new = session.info.get(_NEW_FILES) if session is not None else None
        if new is not None and path in new:
            new[path] = stamp

    def orphans(self, known: set[str]) -> list[Path]:
        """Files (and stale temp files) whose hash is not in ``known``."""
        out: list[Path] = []
        if not self.root.exists():
            return out
        for p in self.root.rglob("*"):
            if p.is_file() and (p.name.startswith(".tmp-") or p.name[:64] not in known):
                out.append(p)
        return out


def forget_new_files(session: Session) -> None:
    """Keep the files this session created whatever happens to it (they are referenced elsewhere)."""
    session.info.pop(_NEW_FILES, None)


def remove_new_files(session: Session) -> None:
    """Delete the files this session created that nobody touched since (see the module docstring)."""
    for path, stamp in session.info.pop(_NEW_FILES, {}).items():
        try:
            if os.stat(path).st_mtime_ns == stamp:
                Path(path).unlink(missing_ok=True)
        except FileNotFoundError:
            pass


# SQLAlchemy fires after_commit / after_rollback for savepoints too; only the outermost transaction decides
# (a savepoint released inside a transaction that then rolls back must not make its files permanent). A
# rolled-back savepoint leaves its files to the orphan cleaner.
@event.listens_for(Session, "after_commit")
def _forget_new_files(session: Session) -> None:
    if not session.in_nested_transaction():
        forget_new_files(session)


@event.listens_for(Session, "after_rollback")
def _remove_new_files(session: Session) -> None:
    if not session.in_nested_transaction():
        remove_new_files(session)
