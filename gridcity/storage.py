"""Content-addressed file store for photos, tied to the database transaction.

A file is written under ``root/ab/cd/<sha256><suffix>``. Files created inside a session are remembered on
the session; if the session rolls back, they are deleted again, so a failed request leaves no orphan files.
A file that already existed (same content stored before) is never deleted by a rollback.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

_NEW_FILES = "gridcity.new_files"


class MediaStore:
    """Files by content hash under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str, suffix: str) -> Path:
        """Where the file with this hash and suffix lives."""
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}{suffix}"

    def put(
        self, data: bytes, suffix: str, *, session: Session | None = None, key: str | None = None
    ) -> tuple[str, Path]:
        """Store ``data`` under ``key`` (default: its sha256); return the key and path.

        With a session, a rollback of that session removes a file this call created.
        """
        sha = key or hashlib.sha256(data).hexdigest()
        path = self.path_for(sha, suffix)
        if path.exists():
            return sha, path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if session is not None:
            session.info.setdefault(_NEW_FILES, []).append(path)
        return sha, path

    def orphans(self, known: set[str]) -> list[Path]:
        """Files (and stale temp files) whose hash is not in ``known``."""
        out: list[Path] = []
        if not self.root.exists():
            return out
        for p in self.root.rglob("*"):
            if p.is_file() and (p.name.startswith(".tmp-") or p.name[:64] not in known):
                out.append(p)
        return out


@event.listens_for(Session, "after_commit")
def _forget_new_files(session: Session) -> None:
    session.info.pop(_NEW_FILES, None)


@event.listens_for(Session, "after_rollback")
def _remove_new_files(session: Session) -> None:
    for path in session.info.pop(_NEW_FILES, []):
        Path(path).unlink(missing_ok=True)
