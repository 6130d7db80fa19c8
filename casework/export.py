"""The case list as CSV (UTF-8 with BOM, so that Excel opens it) or xlsx, with Chinese headers.

The columns are those the console's queues show, so the file and the screen hold the same figures.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from casework.schemas import CaseListItem

XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADERS = ("案卷号", "类别", "类别代码", "状态", "部门", "地址", "问题描述", "上报时间", "处置时限", "灯")
STATUS_ZH = {
    "public_reported": "公众举报",
    "verifying": "核实中",
    "reported": "待立案",
    "filed": "待派遣",
    "dispatched": "待签收",
    "handling": "处置中",
    "sendback_requested": "回退申请",
    "extension_requested": "延期申请",
    "suspension_requested": "挂账申请",
    "suspended": "挂账",
    "feedback": "已反馈",
    "checking": "核查中",
    "checked": "核查通过",
    "self_handled": "自处理待审",
    "closed": "已结案",
    "voided": "作废",
    "merged": "已合并",
}
LIGHT_ZH = {"green": "正常", "yellow": "预警", "red": "超时", "paused": "挂账", "none": ""}


def _local(t: dt.datetime | None, tz: ZoneInfo) -> str:
    if t is None:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def rows(items: Sequence[CaseListItem], *, dept_names: dict[int, str], tz: str) -> list[list[Any]]:
    """The table's rows (times in the city's zone, names not codes)."""
    zone = ZoneInfo(tz)
    return [
        [
            c.number,
            c.class_name or c.class_code,
            c.class_code,
            STATUS_ZH.get(c.status.value, c.status.value),
            dept_names.get(c.department_id, "") if c.department_id else "",
            c.address or "",
            c.description or "",
            _local(c.created_at, zone),
            _local(c.deadline_at, zone),
            LIGHT_ZH.get(c.light, c.light),
        ]
        for c in items
    ]


def render(items: Sequence[CaseListItem], *, ext: str, dept_names: dict[int, str], tz: str) -> bytes:
    """The file's bytes."""
    table = rows(items, dept_names=dept_names, tz=tz)
    if ext == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(HEADERS)
        writer.writerows(table)
        return ("\ufeff" + buf.getvalue()).encode("utf-8")
    from openpyxl import Workbook  # noqa: PLC0415  (only needed for this export)

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "案卷"
    ws.append(list(HEADERS))
    for row in table:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
