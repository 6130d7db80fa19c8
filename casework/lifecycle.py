"""The case lifecycle as one transition table (pure: no framework, no database).

Read the table top to bottom: it is the whole machine. ``check_transition`` is the only judge of whether
an action may happen; ``casework.service.apply_action`` is the only code that then changes a case's status.
Names follow standards.md §5.3 (七步闭环: 信息采集 → 立案 → 派遣 → 处置 → 反馈 → 核查结案 → 综合评价).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from casework.exceptions import ActionForbidden, InvalidTransition, MissingActionInput
from gridcity.roles import CITYWIDE_ROLES, Role


class CaseStatus(StrEnum):
    """Where a case stands."""

    NEW = "new"  # pseudo-state before the first event
    PUBLIC_REPORTED = "public_reported"  # 公众举报, awaiting on-site verification
    VERIFYING = "verifying"  # 信息核实 task with an inspector
    REPORTED = "reported"  # 监督员上报 / verified, awaiting 立案
    FILED = "filed"  # 立案, awaiting 派遣
    DISPATCHED = "dispatched"  # 派遣 to a department, awaiting 签收
    HANDLING = "handling"  # 处置中
    SENDBACK_REQUESTED = "sendback_requested"  # 回退申请
    EXTENSION_REQUESTED = "extension_requested"  # 延期申请
    SUSPENSION_REQUESTED = "suspension_requested"  # 挂账申请
    SUSPENDED = "suspended"  # 挂账: the clock is paused
    FEEDBACK = "feedback"  # 处置反馈, awaiting 核查
    CHECKING = "checking"  # 案件核查 task with an inspector
    CHECKED = "checked"  # 核查通过, awaiting 结案
    SELF_HANDLED = "self_handled"  # 自处理, awaiting 自处理审核
    CLOSED = "closed"  # 结案
    VOIDED = "voided"  # 作废
    MERGED = "merged"  # merged into another case as a duplicate


TERMINAL: Final = frozenset({CaseStatus.CLOSED, CaseStatus.VOIDED, CaseStatus.MERGED})


class CaseAction(StrEnum):
    """What a user can do to a case."""

    REPORT = "report"  # 监督员上报 (creates the case)
    PUBLIC_REPORT = "public_report"  # 受理员登记 / Open311 (creates the case)
    SELF_HANDLE = "self_handle"  # 自处理 (creates or converts a report)
    SEND_VERIFY = "send_verify"  # 发核实
    VERIFY_TRUE = "verify_true"  # 核实属实
    VERIFY_FALSE = "verify_false"  # 核实不属实
    FILE = "file"  # 立案
    VOID = "void"  # 作废
    MERGE = "merge"  # 合并 into an open case
    DISPATCH = "dispatch"  # 派遣
    ACCEPT = "accept"  # 签收
    REQUEST_SENDBACK = "request_sendback"  # 回退申请
    APPROVE_SENDBACK = "approve_sendback"  # 回退审批通过
    REJECT_SENDBACK = "reject_sendback"  # 回退审批驳回
    REQUEST_EXTENSION = "request_extension"  # 延期申请
    APPROVE_EXTENSION = "approve_extension"
    REJECT_EXTENSION = "reject_extension"
    REQUEST_SUSPENSION = "request_suspension"  # 挂账申请
    APPROVE_SUSPENSION = "approve_suspension"
    REJECT_SUSPENSION = "reject_suspension"
    RESUME = "resume"  # 挂账恢复
    FEEDBACK = "feedback"  # 处置反馈
    SEND_CHECK = "send_check"  # 发核查
    CHECK_PASS = "check_pass"  # 核查通过
    CHECK_FAIL = "check_fail"  # 核查不通过 → 返工
    CLOSE = "close"  # 结案
    APPROVE_SELF_HANDLED = "approve_self_handled"  # 自处理审核 → 结案
    RETURN_SELF_HANDLED = "return_self_handled"  # 自处理审核退回 → an ordinary report to file


class Scope(StrEnum):
    """Which users of a permitted role may act on a given case."""

    ANY = "any"  # any user of the role
    OWN_DEPARTMENT = "own_department"  # staff of the department the case is dispatched to
    ASSIGNED = "assigned"  # the inspector the verify/check task was sent to
    REPORTER = "reporter"  # the inspector who reported the case


class Need(StrEnum):
    """Input an action cannot do without."""

    DEPARTMENT = "department_id"
    INSPECTOR = "inspector_id"
    ATTACHMENT = "attachment_ids"
    NOTE = "note"
    EXTENSION = "extension"
    TARGET_CASE = "target_case_id"


@dataclass(frozen=True)
class Transition:
    """One row of the machine: ``action`` takes a case from any of ``sources`` to ``target``."""

    action: CaseAction
    sources: frozenset[CaseStatus]
    target: CaseStatus
    roles: frozenset[Role]
    scope: Scope = Scope.ANY
    needs: frozenset[Need] = frozenset()


def _t(
    action: CaseAction,
    sources: set[CaseStatus],
    target: CaseStatus,
    roles: set[Role],
    scope: Scope = Scope.ANY,
    needs: set[Need] | None = None,
) -> Transition:
    return Transition(action, frozenset(sources), target, frozenset(roles), scope, frozenset(needs or ()))


S = CaseStatus
A = CaseAction
R = Role
_OPEN_WORK = {S.DISPATCHED, S.HANDLING}

TRANSITIONS: Final[tuple[Transition, ...]] = (
    # 信息采集
    _t(A.REPORT, {S.NEW}, S.REPORTED, {R.INSPECTOR}),
    _t(A.PUBLIC_REPORT, {S.NEW}, S.PUBLIC_REPORTED, {R.ACCEPTOR, R.ADMIN}),
    _t(A.SELF_HANDLE, {S.NEW}, S.SELF_HANDLED, {R.INSPECTOR}, needs={Need.ATTACHMENT}),
    _t(A.SELF_HANDLE, {S.REPORTED}, S.SELF_HANDLED, {R.INSPECTOR}, Scope.REPORTER, {Need.ATTACHMENT}),
    _t(A.SEND_VERIFY, {S.PUBLIC_REPORTED}, S.VERIFYING, {R.ACCEPTOR}, needs={Need.INSPECTOR}),
    # On-site results (核实, 核查) need photos; their position is checked by casework.service.on_site_distance.
    _t(A.VERIFY_TRUE, {S.VERIFYING}, S.REPORTED, {R.INSPECTOR}, Scope.ASSIGNED, {Need.ATTACHMENT}),
    _t(A.VERIFY_FALSE, {S.VERIFYING}, S.VOIDED, {R.INSPECTOR}, Scope.ASSIGNED, {Need.NOTE, Need.ATTACHMENT}),
    # 案卷建立
    _t(A.FILE, {S.REPORTED}, S.FILED, {R.SHIFT_LEADER}),
    _t(A.VOID, {S.REPORTED, S.PUBLIC_REPORTED}, S.VOIDED, {R.SHIFT_LEADER}, needs={Need.NOTE}),
    # 作废 after 立案 (standards.md §5.3 FILED --作废审批--> VOID): the shift leader voids a filing made in
    # error, with a note, while the case waits for 派遣 (also after an approved 回退 brought it back there).
    # Once a department holds the case it can only leave through 回退 / 挂账 / 结案. Counted as 作废数.
    _t(A.VOID, {S.FILED}, S.VOIDED, {R.SHIFT_LEADER}, needs={Need.NOTE}),
    _t(A.MERGE, {S.REPORTED, S.PUBLIC_REPORTED}, S.MERGED, {R.SHIFT_LEADER, R.ACCEPTOR}, needs={Need.TARGET_CASE}),
    # 任务派遣
    _t(A.DISPATCH, {S.FILED}, S.DISPATCHED, {R.DISPATCHER}, needs={Need.DEPARTMENT}),
    # 任务处理 and the requests a department may make
    _t(A.ACCEPT, {S.DISPATCHED}, S.HANDLING, {R.DEPARTMENT}, Scope.OWN_DEPARTMENT),
    _t(A.REQUEST_SENDBACK, _OPEN_WORK, S.SENDBACK_REQUESTED, {R.DEPARTMENT}, Scope.OWN_DEPARTMENT, {Need.NOTE}),
    _t(A.APPROVE_SENDBACK, {S.SENDBACK_REQUESTED}, S.FILED, {R.DISPATCHER}),
    _t(A.REJECT_SENDBACK, {S.SENDBACK_REQUESTED}, S.HANDLING, {R.DISPATCHER}, needs={Need.NOTE}),
    _t(
        A.REQUEST_EXTENSION,
        {S.HANDLING},
        S.EXTENSION_REQUESTED,
        {R.DEPARTMENT},
        Scope.OWN_DEPARTMENT,
        {Need.EXTENSION, Need.NOTE},
    ),
    _t(A.APPROVE_EXTENSION, {S.EXTENSION_REQUESTED}, S.HANDLING, {R.DISPATCHER}),
    _t(A.REJECT_EXTENSION, {S.EXTENSION_REQUESTED}, S.HANDLING, {R.DISPATCHER}, needs={Need.NOTE}),
    _t(A.REQUEST_SUSPENSION, {S.HANDLING}, S.SUSPENSION_REQUESTED, {R.DEPARTMENT}, Scope.OWN_DEPARTMENT, {Need.NOTE}),
    _t(A.APPROVE_SUSPENSION, {S.SUSPENSION_REQUESTED}, S.SUSPENDED, {R.DISPATCHER}),
    _t(A.REJECT_SUSPENSION, {S.SUSPENSION_REQUESTED}, S.HANDLING, {R.DISPATCHER}, needs={Need.NOTE}),
    _t(A.RESUME, {S.SUSPENDED}, S.HANDLING, {R.DISPATCHER}),
    # 处理反馈
    _t(A.FEEDBACK, {S.HANDLING}, S.FEEDBACK, {R.DEPARTMENT}, Scope.OWN_DEPARTMENT, {Need.ATTACHMENT}),
    # 核查结案
    _t(A.SEND_CHECK, {S.FEEDBACK}, S.CHECKING, {R.ACCEPTOR}, needs={Need.INSPECTOR}),
    _t(A.CHECK_PASS, {S.CHECKING}, S.CHECKED, {R.INSPECTOR}, Scope.ASSIGNED, {Need.ATTACHMENT}),
    _t(A.CHECK_FAIL, {S.CHECKING}, S.DISPATCHED, {R.INSPECTOR}, Scope.ASSIGNED, {Need.NOTE, Need.ATTACHMENT}),
    _t(A.CLOSE, {S.CHECKED}, S.CLOSED, {R.SHIFT_LEADER}),
    _t(A.APPROVE_SELF_HANDLED, {S.SELF_HANDLED}, S.CLOSED, {R.SHIFT_LEADER}),
    # 自处理审核 the other ways: returned (the self-handling is not accepted; the report goes back to the
    # supervision queue to be filed as an ordinary case) or voided (not a valid report), each with a note.
    _t(A.RETURN_SELF_HANDLED, {S.SELF_HANDLED}, S.REPORTED, {R.SHIFT_LEADER}, needs={Need.NOTE}),
    _t(A.VOID, {S.SELF_HANDLED}, S.VOIDED, {R.SHIFT_LEADER}, needs={Need.NOTE}),
)

CREATING_ACTIONS: Final = frozenset({A.REPORT, A.PUBLIC_REPORT, A.SELF_HANDLE})


@dataclass(frozen=True)
class Actor:
    """Who is acting."""

    user_id: int
    role: Role
    department_id: int | None = None


@dataclass(frozen=True)
class CaseFacts:
    """What the table's scopes need to know about the case."""

    status: CaseStatus
    department_id: int | None = None
    reporter_id: int | None = None
    assigned_inspector_id: int | None = None


def _in_scope(t: Transition, actor: Actor, case: CaseFacts) -> bool:
    if t.scope is Scope.ANY:
        return True
    if t.scope is Scope.OWN_DEPARTMENT:
        return actor.department_id is not None and actor.department_id == case.department_id
    if t.scope is Scope.ASSIGNED:
        return case.assigned_inspector_id == actor.user_id
    return case.reporter_id == actor.user_id


def allowed_actions(actor: Actor, case: CaseFacts) -> list[CaseAction]:
    """The actions this user may take on this case now, in table order."""
    out: list[CaseAction] = []
    for t in TRANSITIONS:
        if case.status in t.sources and actor.role in t.roles and _in_scope(t, actor, case) and t.action not in out:
            out.append(t.action)
    return out


_ROWS_BY_ACTION: Final[dict[CaseAction, tuple[Transition, ...]]] = {
    a: tuple(t for t in TRANSITIONS if t.action is a) for a in CaseAction
}
"""The table's rows per action, in table order (a replay judges every event: no scan of the whole table)."""

_ROWS_BY_ACTION_ROLE: Final[dict[tuple[CaseAction, Role], tuple[Transition, ...]]] = {
    (a, r): tuple(t for t in rows if r in t.roles) for a, rows in _ROWS_BY_ACTION.items() for r in Role
}
"""The rows an action may take for a role, in table order (empty: the role never takes the action)."""


def check_transition(
    actor: Actor, case: CaseFacts, action: CaseAction, given: frozenset[Need] = frozenset()
) -> Transition:
    """Judge ``action`` on ``case`` by ``actor``; return the row that applies.

    Raises:
        ActionForbidden: the role never takes this action, or the case is not the actor's to act on (403).
        InvalidTransition: the action is not possible from the current status (409; names the allowed actions).
        MissingActionInput: the action needs input that was not ``given`` (422).
    """
    rows = _ROWS_BY_ACTION_ROLE.get((action, actor.role), ())
    if not rows:
        raise ActionForbidden(f"role {actor.role} may not {action}", code="case.role_forbidden", loc=["action"])
    from_here = [t for t in rows if case.status in t.sources]
    if not from_here:
        allowed = allowed_actions(actor, case)
        raise InvalidTransition(
            f"cannot {action} a case that is {case.status}; allowed: {', '.join(allowed) or 'none'}",
            loc=["action"],
            extra={"status": str(case.status), "allowed_actions": [str(a) for a in allowed]},
        )
    in_scope = [t for t in from_here if _in_scope(t, actor, case)]
    if not in_scope:
        raise ActionForbidden(
            f"this case is not yours to {action}", code=f"case.not_{from_here[0].scope}", loc=["action"]
        )
    row = in_scope[0]
    if row.needs and not row.needs <= given:
        missing = sorted(row.needs - given)
        raise MissingActionInput(
            f"{action} needs {', '.join(missing)}",
            loc=[str(missing[0])],
            extra={"missing": [str(m) for m in missing]},
        )
    return row


def can_view(
    actor: Actor,
    case: CaseFacts,
    *,
    involved_department_ids: frozenset[int] = frozenset(),
    has_merged_report: bool = False,
) -> bool:
    """Whether the actor may see the case at all.

    The centres, leaders and admins see every case; department staff see the cases currently with their
    department; inspectors see the cases they reported or hold a verify/check task for, and the cases into
    which one of their reports was merged (``has_merged_report``), so that they see the outcome.
    """
    if actor.role in CITYWIDE_ROLES:
        return True
    if actor.role is Role.DEPARTMENT:
        return actor.department_id is not None and actor.department_id == case.department_id
    if actor.role is Role.INSPECTOR:
        return has_merged_report or actor.user_id in (case.reporter_id, case.assigned_inspector_id)
    return False


class Stage(StrEnum):
    """The timed stages of a case; each has a limit in the handling-standard table."""

    VERIFY = "verify"  # 核实
    FILE = "file"  # 立案
    DISPATCH = "dispatch"  # 派遣
    HANDLE = "handle"  # 处置
    CHECK = "check"  # 核查


STAGE_OF: Final[dict[CaseStatus, Stage]] = {
    S.VERIFYING: Stage.VERIFY,
    S.REPORTED: Stage.FILE,
    S.FILED: Stage.DISPATCH,
    S.DISPATCHED: Stage.HANDLE,
    S.HANDLING: Stage.HANDLE,
    S.SENDBACK_REQUESTED: Stage.HANDLE,
    S.EXTENSION_REQUESTED: Stage.HANDLE,
    S.SUSPENSION_REQUESTED: Stage.HANDLE,
    S.SUSPENDED: Stage.HANDLE,
    S.CHECKING: Stage.CHECK,
}


def stage_of(status: CaseStatus) -> Stage | None:
    """The timed stage a status belongs to, or None for untimed states."""
    return STAGE_OF.get(status)
