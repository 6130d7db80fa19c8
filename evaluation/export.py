"""Export a ranking as CSV (UTF-8 with BOM, so that Excel opens it) or xlsx, with Chinese headers."""

from __future__ import annotations

import csv
import io
from typing import Any

from evaluation import service

BASE_HEADERS = ("排名", "名称", "综合指标值", "等级")


def case_count(ranking: service.Ranking, row: Any) -> float:
    """A subject's case count: the main denominator of its subject type (the screen shows the same)."""
    expr = ranking.indicator_set.subject(service.check_subject_type(ranking.subject_type)).main_denominator
    return float(sum(sign * float(row.counts.get(name, 0)) for sign, name in expr.terms))


def _table(ranking: service.Ranking) -> tuple[list[str], list[list[Any]]]:
    """Each column holds what its header says: a "…分值" column the score the indicator earned (a band's
    score), any other indicator column its value (a rate in %, or the count); regions carry their code."""
    definition = ranking.indicator_set.subject(service.check_subject_type(ranking.subject_type))
    indicators = [(ind.key, ind.name_zh) for ind in definition.indicators]
    coded = ranking.subject_type in service.REGION_LEVELS
    base = [*BASE_HEADERS[:1], "编码", *BASE_HEADERS[1:]] if coded else list(BASE_HEADERS)
    # 案件数 as on the console's ranking tables (the subject type's main denominator)
    headers = [*base, *(zh for _, zh in indicators), "案件数", "备注"]
    rows: list[list[Any]] = []
    for r in ranking.rows:
        values = {c.key: round(c.score if c.name_zh.endswith("分值") else c.input_value, 2) for c in r.score.components}
        notes = "；".join(service.FLAG_NAMES_ZH.get(f, f) for f in r.flags)
        head = [r.rank, r.subject_id, r.name] if coded else [r.rank, r.name]
        rows.append(
            [
                *head,
                float(r.score.composite),
                r.score.grade,
                *(values.get(k, "") for k, _ in indicators),
                case_count(ranking, r),
                notes,
            ]
        )
    return headers, rows


def to_csv(ranking: service.Ranking) -> bytes:
    """The ranking as CSV bytes (UTF-8 with BOM)."""
    headers, rows = _table(ranking)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(ranking: service.Ranking) -> bytes:
    """The ranking as an xlsx workbook (one sheet)."""
    from openpyxl import Workbook  # noqa: PLC0415  (only needed for this export)

    headers, rows = _table(ranking)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = f"{ranking.subject_type} {ranking.period.label}"[:31]
    ws.append(headers)
    for row in rows:
        ws.append([_cell(v) for v in row])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A value openpyxl can write: control characters that xlsx (XML) cannot hold become U+FFFD, so a name
    stored before names were checked on input cannot break the export for everyone."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # noqa: PLC0415

    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) if isinstance(value, str) else value


def filename(ranking: service.Ranking, ext: str) -> str:
    """An ASCII file name for the download."""
    return f"evaluation_{ranking.subject_type}_{ranking.period.label.replace('..', '_')}_{ranking.version}.{ext}"
