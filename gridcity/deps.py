"""Shared FastAPI dependencies: the database session, the settings, the current user.

Why a request can never stall the server (the burst of issue 15): FastAPI runs each sync dependency, the
endpoint and the response validation as separate hops to the worker-thread pool, and a request waits for a
free thread before each hop. If a request held a pooled connection (PostgreSQL "idle in transaction", or the
SQLite write lock) across such a wait while every thread was blocked waiting for a connection, nobody could
move until the pool timed out. Two rules make that cycle impossible:

1. **Admission** (:class:`DbGate`): a request takes one of ``pool_size`` slots, waiting on the event loop
   (holding nothing), before its first database work, and keeps it until its session is closed. So at
   most ``pool_size`` requests hold or want a connection, the pool (``pool_size`` + as many overflow) always
   has one for them and for the background tasks, and no thread ever waits for a connection.
2. The worker-thread pool is larger than the slots (:data:`THREAD_HEADROOM` more), so an admitted request
   always gets its next thread, even when every other admitted request is waiting for SQLite's write lock.

Authentication reads the user in its own short read unit, so it holds no connection while the request
waits for the thread of its endpoint. GET/HEAD requests get a read unit (a deferred WAL snapshot on
SQLite, read-only on both databases, see ``gridcity.database``); other methods get a write unit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session, sessionmaker

from gridcity import org, security
from gridcity.database import make_single_read_session_factory
from gridcity.errors import NotAuthenticated, PermissionDenied
from gridcity.org import User
from gridcity.roles import Role
from gridcity.settings import Settings
from gridcity.storage import MediaStore

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_settings_dep(request: Request) -> Settings:
    """The app's settings (async: no I/O, so no hop to a worker thread)."""
    settings: Settings = request.app.state.settings
    return settings


READ_METHODS = frozenset({"GET", "HEAD"})
THREAD_HEADROOM = 16  # worker threads beyond the request slots (static files, multipart parsing, photos)


class DbGate:
    """Admission of requests to the database: ``slots`` at a time (see the module docstring).

    The semaphore belongs to the running event loop (a test may run the app on several loops in turn); on
    first use in a loop the loop's worker-thread limit is raised to ``slots + THREAD_HEADROOM`` if lower.
    """

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._sem: RunVar[anyio.Semaphore] = RunVar(f"gridcity_db_gate_{id(self)}")

    def semaphore(self) -> anyio.Semaphore:
        """This loop's semaphore."""
        try:
            return self._sem.get()
        except LookupError:
            sem = anyio.Semaphore(self.slots)
            self._sem.set(sem)
            limiter = anyio.to_thread.current_default_thread_limiter()
            limiter.total_tokens = max(limiter.total_tokens, self.slots + THREAD_HEADROOM)
            return sem


async def db_slot(request: Request) -> AsyncIterator[None]:
    """Hold one of the app's database slots for the rest of the request (waiting holds nothing)."""
    gate: DbGate = request.app.state.db_gate
    async with gate.semaphore():
        yield


DbSlot = Annotated[None, Depends(db_slot, scope="function")]


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _rollback_and_close(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


async def get_session(request: Request, _slot: DbSlot) -> AsyncIterator[Session]:
    """One session per request: committed before the response is sent, rolled back on any error.

    GET and HEAD get a read unit (no write lock on SQLite, read-only on both databases); other methods a
    write unit. A GET that must write uses a write unit of its own.

    A new session does no I/O (it connects on first use, in the endpoint's thread), so it is made on the
    event loop; only its end (commit or rollback, and close) goes to a worker thread: one hop instead of
    two. That hop runs to its end even if the request is cancelled meanwhile (anyio does not abandon it),
    so a session is always closed and its connection given back.
    """
    factory = (
        request.app.state.read_session_factory if request.method in READ_METHODS else request.app.state.session_factory
    )
    session: Session = factory()
    try:
        yield session
    except BaseException:
        await anyio.to_thread.run_sync(_rollback_and_close, session)
        raise
    await anyio.to_thread.run_sync(_commit_and_close, session)


async def get_store(request: Request) -> MediaStore:
    """The media store (async: no I/O)."""
    store: MediaStore = request.app.state.store
    return store


DbSession = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
Store = Annotated[MediaStore, Depends(get_store)]


def user_from_token(session: Session, settings: Settings, token: str | None) -> User:
    """The active user a bearer token names; 401 otherwise."""
    if not token:
        raise NotAuthenticated("not authenticated", code="auth.missing_token")
    claims = security.decode_token(token, secret=settings.resolved_secret_key())
    try:
        user_id = int(claims["sub"])
    except (KeyError, ValueError) as exc:
        raise NotAuthenticated("invalid token", code="auth.invalid_token") from exc
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise NotAuthenticated("user unknown or disabled", code="auth.user_inactive")
    return user


def _user_reader(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] | None = getattr(request.app.state, "user_read_session_factory", None)
    if factory is None:
        factory = make_single_read_session_factory(request.app.state.engine)
        request.app.state.user_read_session_factory = factory
    return factory


def get_current_user(
    request: Request, _slot: DbSlot, settings: SettingsDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    """The user of the request's bearer token, read on its own (its connection is back in the pool before
    the request waits for its next thread); the user object is detached.

    One statement needs no transaction around it: on PostgreSQL it runs in autocommit, one round trip
    instead of three (``BEGIN``, the read, ``ROLLBACK``); see :func:`make_single_read_session_factory`.
    """
    with _user_reader(request)() as session:
        return user_from_token(session, settings, token)


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that admits only users of ``roles`` (403 for others)."""

    def _dep(user: CurrentUser) -> User:
        if user.role not in roles:
            raise PermissionDenied(f"this needs one of the roles {', '.join(roles)}", code="auth.role_forbidden")
        return user

    return Depends(_dep)


_password_limiter: RunVar[anyio.CapacityLimiter] = RunVar("gridcity_password_limiter")


def _password_threads() -> anyio.CapacityLimiter:
    """Argon2 checks at a time in this loop: one per CPU (each is CPU- and memory-bound)."""
    import os  # noqa: PLC0415

    try:
        return _password_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(os.cpu_count() or 2)
        _password_limiter.set(limiter)
        return limiter


def _read_login(request: Request, username: str) -> User | None:
    with request.app.state.read_session_factory() as session:
        return org.get_user_by_username(session, username)


async def password_login(request: Request, username: str, password: str) -> User:
    """The active user these credentials name; 401 ``auth.bad_credentials`` or 429 ``auth.too_many_attempts``.

    The throttle (``security.LoginThrottle``) answers before any password is checked. The user is read in a
    short read unit under a database slot, and the slot and the connection are given back *before* argon2
    runs: no transaction is open, no write lock is held and no request slot is taken while a password is
    checked (a handful of wrong-password logins used to stall every request on SQLite). Password checks run
    on their own limiter, one per CPU.
    """
    throttle: security.LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else "unknown"
    throttle.check(username, address)
    async with request.app.state.db_gate.semaphore():
        user = await anyio.to_thread.run_sync(_read_login, request, username)
    ok = await anyio.to_thread.run_sync(
        security.verify_password, password, user.password_hash if user else None, limiter=_password_threads()
    )
    if user is None or not ok or not user.active:
        throttle.failed(username, address)
        raise NotAuthenticated("wrong username or password", code="auth.bad_credentials")
    throttle.succeeded(username)
    return user
