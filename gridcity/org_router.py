"""Login, the current user, departments and users."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from gridcity import org, security
from gridcity.deps import CurrentUser, DbSession, SettingsDep, password_login, require_roles
from gridcity.roles import Role
from gridcity.types import IdPath, Name, PositiveId

router = APIRouter(tags=["organisation"])


class Token(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserRead


class UserRead(BaseModel):
    """A user as others see them."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    role: Role
    department_id: int | None
    active: bool


class UserCreate(BaseModel):
    """A new login."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=8, max_length=200)
    role: Role
    display_name: Name | None = Field(default=None, max_length=100)
    department_id: PositiveId | None = None


class DepartmentRead(BaseModel):
    """A department."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    code: str
    name: str
    kind: str
    owner_kind: str | None
    parent_id: int | None
    active: bool


class DepartmentCreate(BaseModel):
    """A new department."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=32)
    name: Name = Field(min_length=1, max_length=100)
    kind: str = Field(default="professional", max_length=32)
    owner_kind: str | None = Field(default=None, max_length=32)
    parent_id: PositiveId | None = None


class UserUpdate(BaseModel):
    """Changes to a login (admin)."""

    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    role: Role | None = None
    department_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    clear_department: bool = False


class PasswordReset(BaseModel):
    """A new password set by the admin."""

    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=8, max_length=200)


class DepartmentUpdate(BaseModel):
    """Changes to a department (admin)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    parent_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    clear_parent: bool = False
    active: bool | None = None


Token.model_rebuild()
ADMIN_ONLY = [require_roles(Role.ADMIN)]


@router.post(
    "/auth/token",
    response_model=Token,
    summary="Log in (OAuth2 password flow)",
    responses={
        429: {
            "description": "Too many failed logins for this account or address "
            "(`auth.too_many_attempts`, with `Retry-After`)"
        }
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, settings: SettingsDep
) -> Token:
    """Exchange username and password for a bearer token (failed logins are throttled, see the README)."""
    user = await password_login(request, form.username, form.password)
    ttl = dt.timedelta(minutes=settings.token_ttl_minutes)
    token = security.create_token(user_id=user.id, role=user.role, secret=settings.resolved_secret_key(), ttl=ttl)
    return Token(access_token=token, expires_in=int(ttl.total_seconds()), user=UserRead.model_validate(user))


@router.get("/auth/me", response_model=UserRead, summary="Who am I")
def me(user: CurrentUser) -> UserRead:
    """The current user."""
    return UserRead.model_validate(user)


@router.get("/departments", response_model=list[DepartmentRead], summary="Departments")
def departments(session: DbSession, user: CurrentUser) -> list[DepartmentRead]:
    """Every department."""
    rows = session.scalars(select(org.Department).order_by(org.Department.code)).all()
    return [DepartmentRead.model_validate(d) for d in rows]


@router.post(
    "/departments",
    response_model=DepartmentRead,
    status_code=201,
    dependencies=[require_roles(Role.ADMIN)],
    summary="Add a department",
)
def create_department(body: DepartmentCreate, session: DbSession) -> DepartmentRead:
    """Add a department (admin)."""
    return DepartmentRead.model_validate(org.create_department(session, **body.model_dump()))


@router.get(
    "/users",
    response_model=list[UserRead],
    summary="Users",
    dependencies=[require_roles(Role.ADMIN, Role.ACCEPTOR, Role.SHIFT_LEADER, Role.DISPATCHER, Role.LEADER)],
)
def users(session: DbSession, role: Role | None = None) -> list[UserRead]:
    """Users, optionally of one role (the centres use it to pick an inspector)."""
    q = select(org.User).order_by(org.User.id)
    if role is not None:
        q = q.where(org.User.role == role)
    return [UserRead.model_validate(u) for u in session.scalars(q)]


@router.post(
    "/users", response_model=UserRead, status_code=201, dependencies=[require_roles(Role.ADMIN)], summary="Add a user"
)
def create_user(body: UserCreate, session: DbSession) -> UserRead:
    """Add a login (admin)."""
    return UserRead.model_validate(org.create_user(session, **body.model_dump()))


@router.patch(
    "/departments/{department_id}",
    response_model=DepartmentRead,
    dependencies=ADMIN_ONLY,
    summary="Change a department",
)
def update_department(department_id: IdPath, body: DepartmentUpdate, session: DbSession) -> DepartmentRead:
    """Rename, move in the tree or (de)activate a department (admin)."""
    dept = org.get_department(session, department_id)
    return DepartmentRead.model_validate(org.update_department(session, dept, **body.model_dump()))


@router.patch("/users/{user_id}", response_model=UserRead, dependencies=ADMIN_ONLY, summary="Change a user")
def update_user(user_id: IdPath, body: UserUpdate, session: DbSession) -> UserRead:
    """Change a user's display name, role or department (admin)."""
    user = org.get_user(session, user_id)
    return UserRead.model_validate(org.update_user(session, user, **body.model_dump()))


@router.post("/users/{user_id}/password", status_code=204, dependencies=ADMIN_ONLY, summary="Reset a password")
def reset_password(user_id: IdPath, body: PasswordReset, session: DbSession) -> None:
    """Set a new password for a user (admin)."""
    org.set_password(session, org.get_user(session, user_id), body.password)


@router.post(
    "/users/{user_id}/deactivate", response_model=UserRead, summary="Deactivate a user", dependencies=ADMIN_ONLY
)
def deactivate_user(user_id: IdPath, session: DbSession, admin: CurrentUser) -> UserRead:
    """Deactivate a login (admin): every later request with its tokens is refused (401 auth.user_inactive)."""
    return UserRead.model_validate(org.set_active(session, org.get_user(session, user_id), False, by=admin))


@router.post("/users/{user_id}/activate", response_model=UserRead, summary="Reactivate a user", dependencies=ADMIN_ONLY)
def activate_user(user_id: IdPath, session: DbSession, admin: CurrentUser) -> UserRead:
    """Reactivate a login (admin)."""
    return UserRead.model_validate(org.set_active(session, org.get_user(session, user_id), True, by=admin))
