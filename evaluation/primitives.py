"""The counting primitives of 综合评价 and its enumerations (subject types, directions, kinds, flags).

The primitives are a fixed registry (the indicator sets only label them); the indicator sets are in
:mod:`evaluation.indicators`, loaded by :mod:`evaluation.indicator_loader`, and scored and ranked by
:mod:`evaluation.scoring`. Pure: no I/O.

Counting conventions (what the SQL that produces ``counts`` must respect; see :data:`PRIMITIVES`):

* A period is ``[start, end)`` in the city's local time and the computation is *as of* ``end``: only
  events logged before ``end`` exist, so recomputing a past period gives the same numbers.
* A case is counted once. Cases merged into another case are never counted. Cases voided (作废) before
  the as-of time are excluded from the case-level primitives (filed, closing, handling, 有效上报) and counted
  in ``voided`` (作废 after 立案); the work positions did on the case before the void (受理, 核实, 按时立案,
  a dispatch later sent back) stays counted for them, as each primitive's definition says.
* A timed task (a stage run of the case timeline: 核实, 立案, 派遣, 处置, 核查, plus the untimed-so-far
  steps 发核实, 发核查, 结案) has a deadline from the SLA engine (working calendar, approved extensions
  added, suspended time excluded). It is *on time* when the time elapsed to its completion, in the
  limit's measure (working time for working units), is at most the limit, and it is *determined* at its
  completion if on time, else at the first instant it is late (for a deadline at the end of a working
  period, the start of the next one). A task is counted in the period that contains its
  determination time; a task neither completed nor overdue at the as-of time is not counted yet. So
  every task lands in exactly one period and each "on time" count is a subset of its "due" count.
* Rates are ``numerator / denominator × 100`` and 0 when the denominator is 0 (the standard's rule).

Arithmetic is exact (:class:`fractions.Fraction`); the published 综合指标值 is rounded to two decimals with
``ROUND_HALF_UP``, and grades and rankings use that published value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

# --------------------------------------------------------------------------------------------------------
# Enumerations


class SubjectType(StrEnum):
    """What is being evaluated."""

    REGION = "region"  # 区域: grid / community / street / district
    DEPARTMENT = "department"  # 专业部门
    INSPECTOR = "inspector"  # 监督员
    ACCEPTOR = "acceptor"  # 受理员
    SHIFT_LEADER = "shift_leader"  # 值班长
    DISPATCHER = "dispatcher"  # 派遣员


class Direction(StrEnum):
    """Whether a higher indicator value is better; a lower-better rate scores ``100 − rate``."""

    HIGHER_BETTER = "higher_better"
    LOWER_BETTER = "lower_better"


class PrimitiveKind(StrEnum):
    """A primitive is either a count of cases/tasks or a measured value in 0–100."""

    COUNT = "count"
    VALUE = "value"


class IndicatorKind(StrEnum):
    """How an indicator turns primitives into a 0–100 component score."""

    RATE = "rate"  # numerator / denominator × 100
    BAND = "band"  # a count looked up in score bands
    VALUE = "value"  # a 0–100 value used as is


class ScoreFlag(StrEnum):
    """Flags attached to a subject's score."""

    INSUFFICIENT_DATA = "insufficient_data"


# --------------------------------------------------------------------------------------------------------
# Counting primitives (fixed registry; the TOML only labels them)


@dataclass(frozen=True)
class Primitive:
    """One counting primitive computed from the case event log for a subject and period.

    Attributes:
        name: Stable key used in ``counts`` and in indicator files.
        name_zh: Chinese name.
        name_en: English gloss.
        kind: Count or value.
        definition: Exact counting rule (see the module docstring for the shared conventions).
    """

    name: str
    name_zh: str
    name_en: str
    kind: PrimitiveKind
    definition: str


def _p(name: str, zh: str, en: str, definition: str, kind: PrimitiveKind = PrimitiveKind.COUNT) -> Primitive:
    return Primitive(name, zh, en, kind, " ".join(definition.split()))


_PRIMITIVE_LIST: tuple[Primitive, ...] = (
    # -- intake: inspectors and acceptors --------------------------------------------------------------
    _p(
        "reported",
        "上报数",
        "reports submitted",
        """
        Reports created by the inspector (action report, or self_handle creating a case) whose filing
        decision happened in the period; the decision is the first of file (立案), void (作废 / 不予立案)
        or approve_self_handled. Reports merged into another case are not counted. Attribution: the
        reporting inspector.""",
    ),
    _p(
        "valid_reported",
        "有效上报数",
        "valid reports",
        """
        Of `reported`: those decided by file or approve_self_handled and not voided before the as-of
        time.""",
    ),
    _p(
        "missed",
        "漏报数",
        "missed problems (found by the public)",
        """
        Of `filed` for the inspector (cases filed in the period in a grid the inspector was responsible
        for at filing): cases created by a public report (public_report: hotline / 12345 / app / Open311)
        that passed on-site verification (verify_true). Same set as `public_verified`, attributed to the
        grid's inspector instead of the region.""",
    ),
    _p(
        "public_verified",
        "监督举报核实数",
        "verified public reports",
        """
        Of `filed`: cases created by a public report (public_report) that passed on-site verification
        (verify_true).""",
    ),
    _p(
        "accepted",
        "受理数",
        "public reports registered",
        """
        public_report events (案件登记) performed by the acceptor in the period, whatever their later
        outcome (verified false, voided and merged reports included: registration is the work counted).""",
    ),
    _p(
        "verify_dispatch_due",
        "核实应派发数",
        "verification tasks due to be sent",
        """
        Send-verification steps (from public_report to send_verify, deadline = registration time + the
        send-verify limit) whose determination time is in the period; cases voided or merged before
        sending are excluded. Attribution: the acceptor who sent it, else the assigned acceptor.""",
    ),
    _p(
        "verify_dispatch_on_time",
        "核实按时派发数",
        "verification tasks sent on time",
        """
        Of `verify_dispatch_due`: send_verify at or before the deadline.""",
    ),
    _p(
        "check_dispatch_due",
        "核查应派发数",
        "check tasks due to be sent",
        """
        Send-check steps (from each feedback to send_check, deadline = feedback time + the send-check
        limit; every rework round is a new step) whose determination time is in the period. Attribution:
        the acceptor who sent it, else the assigned acceptor.""",
    ),
    _p(
        "check_dispatch_on_time",
        "核查按时派发数",
        "check tasks sent on time",
        """
        Of `check_dispatch_due`: send_check at or before the deadline.""",
    ),
    _p(
        "should_verify",
        "应核实数",
        "verifications due",
        """
        Verify stage runs (started by send_verify, ended by verify_true / verify_false) assigned to the
        inspector whose determination time is in the period.""",
    ),
    _p(
        "verified_on_time",
        "按时核实数",
        "verifications on time",
        """
        Of `should_verify`: ended at or before the run's deadline.""",
    ),
    _p(
        "should_check",
        "应核查数",
        "checks due",
        """
        Check stage runs (started by send_check, ended by check_pass / check_fail) assigned to the
        inspector whose determination time is in the period; each rework round is a new run.""",
    ),
    _p(
        "checked_on_time",
        "按时核查数",
        "checks on time",
        """
        Of `should_check`: ended at or before the run's deadline.""",
    ),
    # -- filing: shift leaders, regions ----------------------------------------------------------------
    _p(
        "filed",
        "立案数",
        "cases filed",
        """
        Cases whose first file (立案) event is in the period and that were not voided before the as-of
        time. Attribution: region = the case's grid at filing lies in the region; department = the
        department of the effective dispatch as of the as-of time (cases not yet dispatched are not
        attributed); inspector = the inspector responsible for the grid at filing; shift leader = who
        performed the file action.""",
    ),
    _p(
        "voided",
        "作废数",
        "filed cases voided",
        """
        Cases whose first file event is in the period and that were voided (void) before the as-of time,
        i.e. filed in error. Reports voided without ever being filed are not counted here. Attribution as
        for `filed`.""",
    ),
    _p(
        "filed_on_time",
        "按时立案数",
        "cases filed on time",
        """
        Cases whose first file event is in the period (voided later or not) and whose file stage run (from
        report / verify_true to file) ended at or before its deadline; a subset of `filed` + `voided`.""",
    ),
    # -- dispatch: dispatchers ---------------------------------------------------------------------------
    _p(
        "should_dispatch",
        "应派遣数",
        "dispatches due",
        """
        Dispatch stage runs (from file, or from an approved send-back, to dispatch) whose determination
        time is in the period. Attribution: the dispatcher who dispatched, else the assigned dispatcher;
        unassigned overdue runs are attributed to nobody.""",
    ),
    _p(
        "dispatched",
        "派遣数",
        "cases dispatched",
        """
        Distinct cases the dispatcher dispatched (dispatch event) in the period, re-dispatches included
        once per case.""",
    ),
    _p(
        "dispatched_on_time",
        "按时派遣数",
        "dispatches on time",
        """
        Of `should_dispatch`: ended by dispatch at or before the run's deadline.""",
    ),
    _p(
        "dispatched_accurately",
        "准确派遣数",
        "accurate dispatches",
        """
        Of `should_dispatch`: ended by dispatch, and that dispatch was not undone by an approved send-back
        (approve_sendback, 回退 = mis-dispatch) before the as-of time.""",
    ),
    # -- handling: departments ---------------------------------------------------------------------------
    _p(
        "should_handle",
        "应处置数",
        "handling due",
        """
        Handling tasks of the department: one per effective dispatch (the latest dispatch not undone by an
        approved send-back). A task runs from the dispatch to the feedback that the following check passes
        (a failed check, 返工, continues the same task: its clock keeps running from the dispatch); it is
        determined at the acceptance of an on-time fix, else at the first instant it is late, and counted in
        the period containing that time. Rework rounds add to `rework`, not here.""",
    ),
    _p(
        "handled",
        "处置数",
        "cases handled",
        """
        Of `should_handle`: the task's fix was accepted (核查通过) before the as-of time. Equals
        `handled_on_time` + `overdue_handled`.""",
    ),
    _p(
        "handled_on_time",
        "按期处置数",
        "cases handled on time",
        """
        Of `should_handle`: the accepted feedback came with elapsed working time (suspensions excluded,
        extensions added) at most the handling limit, counted from the dispatch.""",
    ),
    _p(
        "overdue_handled",
        "超期处置数",
        "cases handled late",
        """
        Of `handled`: the accepted feedback came after the limit was used up.""",
    ),
    _p(
        "overdue_unhandled",
        "超期未处置数",
        "overdue, not yet handled",
        """
        Of `should_handle`: no accepted feedback before the as-of time although the limit is used up (also
        a case still in rework). Equals `should_handle` − `handled`.""",
    ),
    _p(
        "extended",
        "延期数",
        "cases with an approved extension",
        """
        Of `should_handle`: at least one approve_extension in that task before the as-of time.""",
    ),
    _p(
        "suspended",
        "挂账数",
        "cases put on account (suspended)",
        """
        Cases attributed to the subject with an approve_suspension (挂账) event in the period.""",
    ),
    # -- closing: regions, departments, shift leaders ----------------------------------------------------
    _p(
        "should_close",
        "应结案数",
        "closures due",
        """
        Filed, not voided cases whose closing determination time, min(close time, overall case deadline),
        is in the period. The overall deadline is the SLA engine's 立案→结案 deadline (approved extensions
        added, suspended time excluded); close time is the close event. Self-handled cases (never filed)
        are not counted. Attribution: region = the case's grid at filing; department = the department of
        the effective dispatch as of the as-of time.""",
    ),
    _p(
        "closed",
        "结案数",
        "cases closed",
        """
        Of `should_close`: closed before the as-of time.""",
    ),
    _p(
        "closed_on_time",
        "按期结案数",
        "cases closed on time",
        """
        Of `should_close`: closed at or before the overall case deadline.""",
    ),
    _p(
        "rework",
        "返工数",
        "cases sent back for rework",
        """
        Of `should_close`: cases with at least one check_fail (核查不通过 → 返工) before the as-of time. A
        case counts once however many rework rounds it had.""",
    ),
    _p(
        "close_task_due",
        "应结案办理数",
        "closing actions due (shift leader)",
        """
        Closing steps (from check_pass to close, deadline = check_pass time + the close limit) whose
        determination time is in the period. Attribution: the shift leader who closed, else the assigned
        shift leader.""",
    ),
    _p(
        "close_task_on_time",
        "按时结案办理数",
        "closing actions on time (shift leader)",
        """
        Of `close_task_due`: close at or before the deadline.""",
    ),
    # -- values --------------------------------------------------------------------------------------------
    _p(
        "patrol_coverage",
        "巡查覆盖率",
        "patrol coverage (percent of grids patrolled)",
        """
        A value in 0–100, not a count: the percentage of the grids assigned to the inspector at the start
        of the period in which the inspector's GPS track has at least one point during working hours of the
        period.""",
        PrimitiveKind.VALUE,
    ),
)

PRIMITIVES: Mapping[str, Primitive] = MappingProxyType({p.name: p for p in _PRIMITIVE_LIST})
"""The fixed registry of counting primitives, keyed by name."""
