"""Organisation: departments and users (the kernel every domain package refers to)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from gridcity.database import Base
from gridcity.errors import Conflict, InvalidInput, NotFound
from gridcity.roles import Role
from gridcity.types import UTCDateTime, enum_type, utcnow


class Department(Base):
    """A unit that owns components and handles cases (专业部门), or a centre/street office."""

    __tablename__ = "department"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32), default="professional")
    owner_kind: Mapped[str | None] = mapped_column(String(32))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    active: Mapped[bool] = mapped_column(default=True)


class User(Base):
    """A login. Department staff belong to exactly one department."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(enum_type(Role, 20))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


def get_department_or_raise(session: Session, department_id: int, *, loc: list[str | int]) -> Department:
    """The active department with this id, or a 422 naming the field."""
    dept = session.get(Department, department_id)
    if dept is None or not dept.active:
        raise InvalidInput(f"unknown department {department_id}", code="department.unknown", loc=loc)
    return dept


def get_user(session: Session, user_id: int) -> User:
    """A user by id, or 404."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", code="user.not_found")
    return user


def get_user_by_username(session: Session, username: str) -> User | None:
    """A user by login name."""
    return session.scalars(select(User).where(User.username == username)).first()


def create_department(
    session: Session,
    *,
    code: str,
    name: str,
    kind: str = "professional",
    owner_kind: str | None = None,
    parent_id: int | None = None,
) -> Department:
    """Add a department; its code must be new."""
    if session.scalars(select(Department.id).where(Department.code == code)).first() is not None:
        raise Conflict(f"department code {code} exists", code="department.exists", loc=["code"])
    if parent_id is not None:  # an unknown parent would be a foreign-key error (a 500) at the flush
        get_department_or_raise(session, parent_id, loc=["body", "parent_id"])
    dept = Department(code=code, name=name, kind=kind, owner_kind=owner_kind, parent_id=parent_id)
    session.add(dept)
    session.flush()
    return dept


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str | None = None,
    department_id: int | None = None,
    password_hash: str | None = None,
) -> User:
    """Add a user with an argon2 password hash. Department staff must name their department.

    ``password_hash`` (an argon2 hash made earlier) skips hashing, for bulk loads of many users.
    """
    from gridcity import security  # noqa: PLC0415

    if role is Role.DEPARTMENT and department_id is None:
        raise InvalidInput("department staff need a department", code="user.department_required", loc=["department_id"])
    if department_id is not None:
        get_department_or_raise(session, department_id, loc=["department_id"])
    if get_user_by_username(session, username) is not None:
        raise Conflict(f"username {username} exists", code="user.exists", loc=["username"])
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        department_id=department_id,
        password_hash=password_hash or security.hash_password(password),
    )
    session.add(user)
    session.flush()
    return user


def update_user(
    session: Session,
    user: User,
    *,
    display_name: str | None = None,
    role: Role | None = None,
    department_id: int | None = None,
    clear_department: bool = False,
) -> User:
    """Change a user's name, role or department (department staff keep a department)."""
    new_role = role or user.role
    new_dept = None if clear_department else (department_id if department_id is not None else user.department_id)
    if new_role is Role.DEPARTMENT and new_dept is None:
        raise InvalidInput("department staff need a department", code="user.department_required", loc=["department_id"])
    if department_id is not None:
        get_department_or_raise(session, department_id, loc=["department_id"])
    if display_name is not None:
        user.display_name = display_name
    user.role = new_role
    user.department_id = new_dept
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Reset a user's password (argon2)."""
    from gridcity import security  # noqa: PLC0415

    user.password_hash = security.hash_password(password)
    session.flush()


def set_active(session: Session, user: User, active: bool, *, by: User) -> User:
    """Deactivate (or reactivate) a login. An inactive user is refused on every request from then on."""
    if not active and user.id == by.id:
        raise InvalidInput("you cannot deactivate your own account", code="user.self_deactivate", loc=["user_id"])
    user.active = active
    session.flush()
    return user


def update_department(
    session: Session,
    dept: Department,
    *,
    name: str | None = None,
    parent_id: int | None = None,
    clear_parent: bool = False,
    active: bool | None = None,
) -> Department:
    """Rename, move in the tree (no cycles) or (de)activate a department."""
    if parent_id is not None:
        parent = session.get(Department, parent_id)
        if parent is None:
            raise InvalidInput(f"unknown department {parent_id}", code="department.unknown", loc=["parent_id"])
        seen = set()
        node: Department | None = parent
        while node is not None and node.id not in seen:
            if node.id == dept.id:
                raise InvalidInput(
                    "a department cannot be below itself", code="department.parent_cycle", loc=["parent_id"]
                )
            seen.add(node.id)
            node = session.get(Department, node.parent_id) if node.parent_id is not None else None
        dept.parent_id = parent_id
    elif clear_parent:
        dept.parent_id = None
    if name is not None:
        dept.name = name
    if active is not None:
        dept.active = active
    session.flush()
    return dept


def get_department(session: Session, department_id: int) -> Department:
    """A department by id, or 404."""
    dept = session.get(Department, department_id)
    if dept is None:
        raise NotFound(f"department {department_id} not found", code="department.not_found")
    return dept
