"""Subjects, rankings (count, score and rank a subject type for a period), the evidence behind a number, and
publications (frozen results)."""

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.models import Case
from components import service as components_service
from components.models import Area, Grid
from evaluation import indicators, primitives, scoring
from evaluation.models import Publication, PublishedResult
from evaluation.service.families import count_primitives, families, primitive_names
from evaluation.service.periods import (
    DEFAULT_TZ,
    FLAG_NO_PATROL_DATA,
    POSITION_TYPES,
    SUBJECT_TYPES,
    Period,
    check_subject_type,
    indicator_set_for,
    parse_period,
)
from evaluation.service.rollup import count_primitives_rollup, ensure_rollup, rollup_is_exact
from gridcity.errors import Conflict, InvalidInput, NotFound
from gridcity.org import Department, User
from gridcity.types import utcnow

# --------------------------------------------------------------------------------------------------------
# Subjects


@dataclass(frozen=True)
class Subject:
    """A subject to rank."""

    id: str
    name: str
    region_class: str | None = None


def list_subjects(session: Session, subject_type: str, seen: Sequence[str] = ()) -> list[Subject]:
    """Every known subject of the type, plus any subject id that appears in the counts."""
    subjects: dict[str, Subject] = {}
    if subject_type == "department":
        for d in session.execute(select(Department.id, Department.name).where(Department.active)):
            subjects[str(d.id)] = Subject(str(d.id), d.name)
        missing = [int(s) for s in seen if s not in subjects]
        for d in session.execute(select(Department.id, Department.name).where(Department.id.in_(missing))):
            subjects[str(d.id)] = Subject(str(d.id), d.name)
    elif subject_type in POSITION_TYPES:
        role = POSITION_TYPES[subject_type]
        for u in session.execute(select(User.id, User.display_name).where(User.role == role, User.active)):
            subjects[str(u.id)] = Subject(str(u.id), u.display_name)
        missing = [int(s) for s in seen if s not in subjects]
        for u in session.execute(select(User.id, User.display_name).where(User.id.in_(missing))):
            subjects[str(u.id)] = Subject(str(u.id), u.display_name)
    else:
        if subject_type == "grid":
            for g in session.execute(select(Grid.code, Grid.name, Grid.region_class)):
                subjects[g.code] = Subject(g.code, g.name or g.code, g.region_class)
        else:
            for a in session.execute(select(Area.code, Area.name, Area.region_class).where(Area.level == subject_type)):
                subjects[a.code] = Subject(a.code, a.name, a.region_class)
        for s in seen:
            subjects.setdefault(s, Subject(s, s, None))
    return sorted(subjects.values(), key=lambda s: s.id)


# --------------------------------------------------------------------------------------------------------
# Rankings


@dataclass(frozen=True)
class SubjectResult:
    """One ranked subject."""

    subject_id: str
    name: str
    counts: dict[str, int | float]
    score: scoring.SubjectScore
    rank: int
    tied: bool
    flags: tuple[str, ...]

    @property
    def explanation(self) -> dict[str, Any]:
        """The scoring's explanation as JSON-able data."""
        s = self.score
        return {
            "lines": list(s.explanation),
            "rates": [
                {
                    "key": r.key,
                    "name_zh": r.name_zh,
                    "numerator": r.numerator,
                    "denominator": r.denominator,
                    "value": r.value,
                }
                for r in s.rates
            ],
            "components": [
                {
                    "key": c.key,
                    "name_zh": c.name_zh,
                    "input_value": c.input_value,
                    "score": c.score,
                    "weight": c.weight,
                    "contribution": c.contribution,
                }
                for c in s.components
            ],
        }


@dataclass(frozen=True)
class Ranking:
    """The ranked results of one subject type in one period under one indicator set."""

    period: Period
    subject_type: str
    version: str
    indicator_set: indicators.IndicatorSet
    rows: list[SubjectResult] = field(default_factory=list)
    source: str = "raw"  # where the counts came from: "raw" (facts) or "rollup" (daily rollup)


def compute(
    session: Session,
    *,
    period: Period | str,
    subject_type: str,
    indicator_version: str | None = None,
    tz: str = DEFAULT_TZ,
    source: str = "auto",
    city_dir: Path | None = None,
) -> Ranking:
    """Count, score and rank every subject of a type for a period (ties share a competition rank).

    ``source``: ``"auto"`` serves the counts from the daily rollup when that is exact for the period (see
    :func:`rollup_is_exact`; refreshing stale days first) and from the raw facts otherwise; ``"raw"`` always
    recomputes from the facts (audit, publication).

    Raises:
        InvalidInput: bad period, unknown subject type, unknown indicator version, unknown source.
    """
    p = parse_period(period, tz=tz) if isinstance(period, str) else period
    st = check_subject_type(subject_type)
    iset = indicator_set_for(p, indicator_version, city_dir)
    iset.subject(st)  # raises when the set does not define the type
    if source not in ("auto", "raw"):
        raise InvalidInput(
            f"未知的数据来源 {source!r}（可用：auto、raw）", code="evaluation.unknown_source", loc=["source"]
        )
    used = "raw"
    if source == "auto" and rollup_is_exact(ensure_rollup(session, tz=tz), p):
        counted = count_primitives_rollup(session, period=p, subject_type=subject_type)
        used = "rollup"
    else:
        counted = count_primitives(session, period=p, subject_type=subject_type)
    subjects = list_subjects(session, subject_type, list(counted))
    scores: list[scoring.SubjectScore] = []
    extra: dict[str, tuple[Subject, dict[str, int | float], tuple[str, ...]]] = {}
    names = primitive_names(subject_type)
    memo: dict[Any, scoring.SubjectScore] = {}
    # Count bands are calibrated for the indicator set's band period; other periods scale proportionally.
    scale = scoring.band_scale(p.kind, (p.last_day - p.first_day).days + 1, iset.band_period)
    coverage = (
        components_service.coverage_by_inspector(session, start=p.start, end=p.end)
        if subject_type == "inspector"
        else {}
    )
    for subj in subjects:
        counts: dict[str, int | float] = dict.fromkeys(names, 0)
        counts.update(counted.get(subj.id, {}))
        flags: tuple[str, ...] = ()
        if subject_type == "inspector":
            # Patrol coverage: share of the inspector's supervision-area grids with a GPS breadcrumb in the
            # period. An inspector without a supervision area has no coverage to judge, and the result says so.
            total, seen = coverage.get(int(subj.id), (0, 0))
            counts["patrol_coverage"] = round(100.0 * seen / total, 2) if total else 0
            flags = () if total else (FLAG_NO_PATROL_DATA,)
        region_class = None
        if st is primitives.SubjectType.REGION:
            region_class = subj.region_class or iset.region_classes[0].key
        # Scoring is exact (Fraction) Python, ~1 ms a subject: many subjects (grids) share the same counts.
        key = (region_class, tuple(sorted(counts.items())))
        if key not in memo:
            memo[key] = scoring.score_subject(st, counts, iset, region_class, period_scale=scale)
        score = dataclasses.replace(memo[key], subject_id=subj.id)
        scores.append(score)
        extra[subj.id] = (subj, counts, flags)
    rows = []
    for r in scoring.rank(scores):
        subj, counts, flags = extra[r.subject_id]
        all_flags = tuple(sorted({str(f) for f in r.score.flags} | set(flags)))
        rows.append(SubjectResult(r.subject_id, subj.name, counts, r.score, r.rank, r.tied, all_flags))
    return Ranking(p, subject_type, iset.version, iset, rows, used)


# --------------------------------------------------------------------------------------------------------
# Evidence


@dataclass(frozen=True)
class EvidenceItem:
    """One case behind a number."""

    case_id: int
    number: str
    at: dt.datetime | None
    deadline_at: dt.datetime | None
    completed_at: dt.datetime | None
    overdue_seconds: float
    # "overdue by" is always working time (seconds of the working calendar past the deadline, suspensions
    # excluded), for open and completed items alike, whatever the unit of the limit.
    overdue_measure: str = "working_seconds"


def evidence(
    session: Session,
    *,
    period: Period | str,
    subject_type: str,
    subject_id: str,
    primitive: str,
    tz: str = DEFAULT_TZ,
    limit: int = 1000,
    rules: Any = None,
) -> list[EvidenceItem]:
    """The cases behind one primitive of one subject (same selects as the counts).

    ``overdue_seconds`` is working time past the deadline (suspensions excluded): up to the completion for
    completed items, up to ``min(period end, now)`` for items still open at that time (recomputed from the
    log as of that instant).

    Raises:
        InvalidInput: ``evaluation.unknown_primitive`` when the primitive is not counted for the type.
    """
    p = parse_period(period, tz=tz) if isinstance(period, str) else period
    fams = [fam for fam in families(subject_type, p) if primitive in fam.primitives]
    if not fams:
        raise InvalidInput(
            f"{subject_type} 不统计 {primitive!r}（可用：{', '.join(primitive_names(subject_type))}）",
            code="evaluation.unknown_primitive",
            loc=["primitive"],
        )
    as_of = min(p.end, utcnow())
    found: list[Any] = []
    for fam in fams:
        sq = fam.rows.subquery(fam.name)
        subject_match = sa.cast(sq.c.subject, sa.String) == subject_id
        q = (
            select(
                sq.c.case_id,
                Case.number,
                sq.c.ref_at,
                sq.c.deadline_at,
                sq.c.completed_at,
                sq.c.overdue_seconds,
                sq.c.fact_id,
            )
            .join(Case, Case.id == sq.c.case_id)
            .where(subject_match, sq.c[primitive] == 1)
            .order_by(sq.c.ref_at, sq.c.case_id)
            .limit(limit)
        )
        found += session.execute(q, dict(fam.params)).all()
    # Items still open at the as-of time: their overrun grows until then, so recompute it from the log.
    open_ids = [
        r.fact_id
        for r in found
        if r.fact_id is not None
        and r.deadline_at is not None
        and r.deadline_at < as_of
        and (r.completed_at is None or r.completed_at >= as_of)
    ]
    fresh: dict[int, float] = {}
    if open_ids:
        from evaluation import facts as evaluation_facts  # noqa: PLC0415  (facts imports this module)

        fresh = evaluation_facts.overdue_as_of(session, fact_ids=open_ids, as_of=as_of, rules=rules)
    return [
        EvidenceItem(
            r.case_id,
            r.number,
            r.ref_at,
            r.deadline_at,
            r.completed_at,
            fresh.get(r.fact_id, float(r.overdue_seconds or 0)),
        )
        for r in found
    ]


# --------------------------------------------------------------------------------------------------------
# Publications


def publish(
    session: Session,
    *,
    period: Period | str,
    version: str | None = None,
    created_by: int | None = None,
    tz: str = DEFAULT_TZ,
    subject_types: Sequence[str] = SUBJECT_TYPES,
    city_dir: Path | None = None,
) -> Publication:
    """Freeze the period's results of every subject type under one indicator-set version.

    Raises:
        Conflict: ``evaluation.already_published`` for a period and version already published.
    """
    p = parse_period(period, tz=tz) if isinstance(period, str) else period
    iset = indicator_set_for(p, version, city_dir)
    exists = session.scalar(
        select(Publication.id).where(Publication.period == p.label, Publication.version == iset.version)
    )
    if exists is not None:
        raise Conflict(
            f"{p.label} 已按指标体系 {iset.version} 发布（发布 #{exists}）",
            code="evaluation.already_published",
            loc=["period"],
            extra={"publication_id": exists},
        )
    pub = Publication(
        period=p.label,
        period_start=p.start,
        period_end=p.end,
        version=iset.version,
        indicator_set_sha=iset.sha256,
        created_at=utcnow(),
        created_by=created_by,
    )
    session.add(pub)
    session.flush()
    for st in subject_types:
        # Published numbers always come from the exact raw computation as of the period's end.
        ranking = compute(
            session, period=p, subject_type=st, indicator_version=iset.version, source="raw", city_dir=city_dir
        )
        session.add_all(
            PublishedResult(
                publication_id=pub.id,
                subject_type=st,
                subject_id=r.subject_id,
                subject_name=r.name,
                counts=dict(r.counts),
                composite=r.score.composite,
                grade=r.score.grade,
                rank=r.rank,
                flags=list(r.flags),
                explanation=r.explanation,
            )
            for r in ranking.rows
        )
    session.flush()
    return pub


def get_publication(session: Session, publication_id: int) -> Publication:
    """A publication.

    Raises:
        NotFound: ``evaluation.publication_not_found``.
    """
    pub = session.get(Publication, publication_id)
    if pub is None:
        raise NotFound(
            f"发布 #{publication_id} 不存在", code="evaluation.publication_not_found", loc=["publication_id"]
        )
    return pub


def published_results(
    session: Session, *, publication_id: int, subject_type: str | None = None
) -> list[PublishedResult]:
    """The frozen rows of a publication, in rank order per subject type."""
    q = select(PublishedResult).where(PublishedResult.publication_id == publication_id)
    if subject_type is not None:
        check_subject_type(subject_type)
        q = q.where(PublishedResult.subject_type == subject_type)
    return list(
        session.scalars(q.order_by(PublishedResult.subject_type, PublishedResult.rank, PublishedResult.subject_id))
    )


def as_decimal(value: Any) -> Decimal:
    """A composite value as a two-decimal Decimal."""
    return Decimal(str(value)).quantize(Decimal("0.01"))


Echo = Callable[[str], Any]
