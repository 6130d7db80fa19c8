"""HTTP endpoints of 综合评价: rankings, drill-down evidence, publications, CSV/xlsx export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from evaluation import export, service
from evaluation.schemas import (
    EvidenceRead,
    EvidenceRow,
    PublicationCreate,
    PublicationRead,
    PublishedRow,
    RankingRead,
    RankingRow,
)
from gridcity.deps import DbSession, require_roles
from gridcity.roles import Role
from gridcity.types import IdPath

router = APIRouter(tags=["evaluation"])

READERS = require_roles(Role.LEADER, Role.ADMIN, Role.ACCEPTOR, Role.SHIFT_LEADER, Role.DISPATCHER)
PUBLISHERS = require_roles(Role.LEADER, Role.ADMIN)
PeriodQ = Annotated[str, Query(max_length=40, description="2026-10 | 2026-Q4 | 2026 | 2026-W43 | a..b")]
VersionQ = Annotated[str | None, Query(max_length=40, description="Indicator-set version (default: in effect)")]


def _tz(request: Request) -> str:
    rules = getattr(request.app.state, "rules", None)
    return rules.calendar.timezone if rules is not None else service.DEFAULT_TZ


def _city(request: Request) -> Any:
    rules = getattr(request.app.state, "rules", None)
    return rules.city_dir if rules is not None else None


def _ranking_read(r: service.Ranking) -> RankingRead:
    return RankingRead(
        period=r.period.label,
        period_start=r.period.start,
        period_end=r.period.end,
        subject_type=r.subject_type,
        version=r.version,
        indicator_set_sha=r.indicator_set.sha256,
        rows=[
            RankingRow(
                rank=x.rank,
                tied=x.tied,
                subject_id=x.subject_id,
                name=x.name,
                composite=x.score.composite,
                grade=x.score.grade,
                flags=list(x.flags),
                counts=dict(x.counts),
                explanation=x.explanation,
                case_count=export.case_count(r, x),
            )
            for x in r.rows
        ],
    )


def _publication_read(session: Any, pub: Any, subject_type: str | None) -> PublicationRead:
    out = PublicationRead.model_validate(pub)
    out.results = [
        PublishedRow.model_validate(r)
        for r in service.published_results(session, publication_id=pub.id, subject_type=subject_type)
    ]
    return out


@router.post(
    "/evaluation/publications",
    response_model=PublicationRead,
    status_code=201,
    summary="Freeze a period's results (发布)",
)
def create_publication(
    body: PublicationCreate, session: DbSession, request: Request, user: Any = PUBLISHERS
) -> PublicationRead:
    """Compute and freeze every subject type's ranking of a period under one indicator-set version."""
    pub = service.publish(
        session, period=body.period, version=body.version, created_by=user.id, tz=_tz(request), city_dir=_city(request)
    )
    return _publication_read(session, pub, None)


@router.get(
    "/evaluation/publications/{publication_id}",
    response_model=PublicationRead,
    summary="A frozen publication",
    dependencies=[READERS],
)
def read_publication(
    publication_id: IdPath, session: DbSession, subject_type: Annotated[str | None, Query(max_length=20)] = None
) -> PublicationRead:
    """The frozen rows of a publication (optionally one subject type)."""
    return _publication_read(session, service.get_publication(session, publication_id), subject_type)


def _export(session: Any, request: Request, subject_type: str, period: str, version: str | None, ext: str) -> Response:
    ranking = service.compute(
        session,
        period=period,
        subject_type=subject_type,
        indicator_version=version,
        tz=_tz(request),
        city_dir=_city(request),
    )
    if ext == "csv":
        body, media = export.to_csv(ranking), "text/csv; charset=utf-8"
    else:
        body, media = export.to_xlsx(ranking), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{export.filename(ranking, ext)}"'},
    )


@router.get(
    "/evaluation/{subject_type}/export.csv",
    summary="Ranking as CSV (Chinese headers)",
    dependencies=[READERS],
    response_class=Response,
)
def export_csv(
    subject_type: str, period: PeriodQ, session: DbSession, request: Request, version: VersionQ = None
) -> Response:
    """The ranking as CSV (UTF-8 with BOM)."""
    return _export(session, request, subject_type, period, version, "csv")


@router.get(
    "/evaluation/{subject_type}/export.xlsx",
    summary="Ranking as xlsx (Chinese headers)",
    dependencies=[READERS],
    response_class=Response,
)
def export_xlsx(
    subject_type: str, period: PeriodQ, session: DbSession, request: Request, version: VersionQ = None
) -> Response:
    """The ranking as an Excel workbook."""
    return _export(session, request, subject_type, period, version, "xlsx")


@router.get(
    "/evaluation/{subject_type}",
    response_model=RankingRead,
    summary="Ranking of a subject type",
    dependencies=[READERS],
)
def ranking(
    subject_type: str, period: PeriodQ, session: DbSession, request: Request, version: VersionQ = None
) -> RankingRead:
    """Rankings with grades, flags and explanations, computed live from the log's facts."""
    return _ranking_read(
        service.compute(
            session,
            period=period,
            subject_type=subject_type,
            indicator_version=version,
            tz=_tz(request),
            city_dir=_city(request),
        )
    )


@router.get(
    "/evaluation/{subject_type}/{subject_id}/evidence",
    response_model=EvidenceRead,
    summary="The cases behind a number",
    dependencies=[READERS],
)
def evidence(
    subject_type: str,
    subject_id: str,
    period: PeriodQ,
    session: DbSession,
    request: Request,
    primitive: Annotated[str, Query(max_length=40)],
) -> EvidenceRead:
    """Drill-down: which cases make up one primitive of one subject."""
    items = service.evidence(
        session,
        period=period,
        subject_type=subject_type,
        subject_id=subject_id,
        primitive=primitive,
        tz=_tz(request),
        rules=getattr(request.app.state, "rules", None),
    )
    return EvidenceRead(
        period=period,
        subject_type=subject_type,
        subject_id=subject_id,
        primitive=primitive,
        count=len(items),
        cases=[EvidenceRow(**vars(i)) for i in items],
    )
