"""The demo organisation (one login per role); the full demo city comes from ``gis_data``."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from gis_data import demo_city
from gis_data.demo_city import DEMO_PASSWORD, DemoLogin
from gridcity import org
from gridcity.roles import ROLE_NAMES_ZH, Role

DEMO_DEPARTMENTS = [
    ("SZ", "市自来水公司", "professional", "water_supply"),
    ("PS", "市排水管理处", "professional", "drainage"),
    ("LD", "市路灯管理所", "professional", "street_lighting"),
    ("HW", "市环境卫生管理处", "professional", "sanitation"),
    ("YL", "市园林绿化局", "professional", "landscaping"),
    ("SZGL", "市政设施管理处", "professional", "roads"),
    ("CG", "城市管理综合执法局", "professional", "urban_management"),
]

DEMO_USERS = [
    ("inspector", Role.INSPECTOR, "张监督", None),
    ("inspector2", Role.INSPECTOR, "李监督", None),
    ("acceptor", Role.ACCEPTOR, "王受理", None),
    ("shiftlead", Role.SHIFT_LEADER, "赵值班长", None),
    ("dispatcher", Role.DISPATCHER, "刘派遣", None),
    ("water", Role.DEPARTMENT, "自来水公司值守", "SZ"),
    ("lighting", Role.DEPARTMENT, "路灯所值守", "LD"),
    ("sanitation", Role.DEPARTMENT, "环卫处值守", "HW"),
    ("leader", Role.LEADER, "陈领导", None),
    ("admin", Role.ADMIN, "管理员", None),
]


def load_demo_org(session: Session) -> list[DemoLogin]:
    """Create the demo departments and users if they are missing (idempotent)."""
    codes: dict[str, int] = {}
    for code, name, kind, owner_kind in DEMO_DEPARTMENTS:
        dept = session.scalars(select(org.Department).where(org.Department.code == code)).first()
        if dept is None:
            dept = org.create_department(session, code=code, name=name, kind=kind, owner_kind=owner_kind)
        codes[code] = dept.id
    logins = []
    for username, role, name, dept_code in DEMO_USERS:
        if org.get_user_by_username(session, username) is None:
            org.create_user(
                session,
                username=username,
                password=DEMO_PASSWORD,
                role=role,
                display_name=name,
                department_id=codes[dept_code] if dept_code else None,
            )
        logins.append(DemoLogin(username, DEMO_PASSWORD, role, name))
    return logins


def load_demo(
    session: Session, *, scale: float | None, small: bool, echo: Callable[[str], object] = print
) -> list[DemoLogin]:
    """Load the demo city (or only the organisation with ``small``)."""
    logins = load_demo_org(session)
    if not small:
        logins += demo_city.load(session, scale=scale or 1.0, echo=echo)
    return logins


def print_logins(logins: list[DemoLogin], echo: Callable[[str], object] = print) -> None:
    """Print the demo logins, one per line."""
    echo("demo logins (username / password / role):")
    seen = set()
    for lg in logins:
        if lg.username in seen:
            continue
        seen.add(lg.username)
        echo(f"  {lg.username:12s} {lg.password:16s} {lg.role.value:13s} {ROLE_NAMES_ZH[lg.role]} {lg.name}")
