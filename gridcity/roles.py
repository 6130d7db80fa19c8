"""The roles of the two centres, the departments and the leaders (pure; no framework)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a user does in the system. One role per login."""

    INSPECTOR = "inspector"  # 监督员
    ACCEPTOR = "acceptor"  # 受理员
    SHIFT_LEADER = "shift_leader"  # 值班长
    DISPATCHER = "dispatcher"  # 派遣员
    DEPARTMENT = "department"  # 专业部门 staff
    LEADER = "leader"  # 领导
    ADMIN = "admin"  # 系统管理员


ROLE_NAMES_ZH: dict[Role, str] = {
    Role.INSPECTOR: "监督员",
    Role.ACCEPTOR: "受理员",
    Role.SHIFT_LEADER: "值班长",
    Role.DISPATCHER: "派遣员",
    Role.DEPARTMENT: "专业部门",
    Role.LEADER: "领导",
    Role.ADMIN: "管理员",
}

# Roles that see every case of the city (the two centres, leaders, admins).
CITYWIDE_ROLES = frozenset({Role.ACCEPTOR, Role.SHIFT_LEADER, Role.DISPATCHER, Role.LEADER, Role.ADMIN})
