"""Shared FastAPI dependencies: the database session, the settings, the current user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from gridcity import security
from gridcity.errors import NotAuthenticated, PermissionDenied
from gridcity.org import User
from gridcity.roles import Role
from gridcity.settings import Settings
from gridcity.storage import MediaStore

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: committed before the response is sent, rolled back on any error."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_store(request: Request) -> MediaStore:
    """The media store."""
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


def get_current_user(
    session: DbSession, settings: SettingsDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    """The user of the request's bearer token."""
    return user_from_token(session, settings, token)


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that admits only users of ``roles`` (403 for others)."""

    def _dep(user: CurrentUser) -> User:
        if user.role not in roles:
            raise PermissionDenied(
                f"this needs one of the roles {', '.join(roles)}", code="auth.role_forbidden"
            )
        return user

    return Depends(_dep)
