"""Evaluation services: periods, counting primitives as SQL aggregates, rankings, evidence, publications.

Every primitive of :data:`evaluation.primitives.PRIMITIVES` is counted inside the database: each *family* of
primitives is one select over ``stage_fact`` (or ``case_event``) that yields one row per counted item with a
0/1 column per primitive and a ``subject`` column (the attribution); the counts are ``SUM`` of those columns
``GROUP BY subject``, and the drill-down evidence is the same select filtered on one subject and one
primitive. So a number and its evidence can never disagree, and no case is loaded into Python to count it.

A period is ``[start, end)`` in the city's local time and is evaluated *as of* ``end`` (scoring's
conventions): an event logged at or after ``end`` does not exist for the period.

Fairness rules (peers.md lesson 4, the issue):
* a department is judged only on its *effective* dispatch (the latest 派遣 not undone by an approved 回退
  before the as-of time); a send-back (mis-dispatch) counts against the dispatcher's 准确派遣 instead;
* suspended (挂账) time never counts as overdue time: the deadlines come from the run clocks, which exclude it;
* voided and merged cases count only where a primitive's definition says so (see :mod:`evaluation.facts`);
* subjects below the indicator set's minimum sample are flagged ``insufficient_data`` and ranked last.

The package's modules, one per seam: :mod:`.periods` (periods, subject types), :mod:`.families` (the primitive
selects and the raw counts), :mod:`.rollup` (the daily rollup) and :mod:`.rankings` (subjects, rankings,
evidence, publications). This module re-exports their public names, the package's API.
"""

from evaluation.models import RollupDirty, RollupState
from evaluation.service.families import Family, count_primitives, families, primitive_names
from evaluation.service.periods import (
    DEFAULT_TZ,
    FLAG_NAMES_ZH,
    FLAG_NO_PATROL_DATA,
    MAX_RANGE_DAYS,
    POSITION_TYPES,
    REGION_LEVELS,
    SUBJECT_TYPES,
    Period,
    check_subject_type,
    indicator_set_for,
    parse_period,
)
from evaluation.service.rankings import (
    Echo,
    EvidenceItem,
    Ranking,
    Subject,
    SubjectResult,
    as_decimal,
    compute,
    evidence,
    get_publication,
    list_subjects,
    publish,
    published_results,
)
from evaluation.service.rollup import (
    FAR_FUTURE,
    ROLLUP_SLOTS,
    count_primitives_rollup,
    ensure_rollup,
    mark_rollup_dirty,
    rebuild_rollup,
    refresh_rollup_days,
    rollup_is_exact,
)

__all__ = [
    "DEFAULT_TZ",
    "FAR_FUTURE",
    "FLAG_NAMES_ZH",
    "FLAG_NO_PATROL_DATA",
    "MAX_RANGE_DAYS",
    "POSITION_TYPES",
    "REGION_LEVELS",
    "ROLLUP_SLOTS",
    "SUBJECT_TYPES",
    "Echo",
    "EvidenceItem",
    "Family",
    "Period",
    "Ranking",
    "RollupDirty",
    "RollupState",
    "Subject",
    "SubjectResult",
    "as_decimal",
    "check_subject_type",
    "compute",
    "count_primitives",
    "count_primitives_rollup",
    "ensure_rollup",
    "evidence",
    "families",
    "get_publication",
    "indicator_set_for",
    "list_subjects",
    "mark_rollup_dirty",
    "parse_period",
    "primitive_names",
    "publish",
    "published_results",
    "rebuild_rollup",
    "refresh_rollup_days",
    "rollup_is_exact",
]
