"""A working day per role, in Debian's Chromium against a real server: intake by standard address and 发核实,
self-handled review, dispatching from a queue of more than 200 cases, the department's accept / extension /
feedback, the leader's period and xlsx download, and the admin creating and deactivating users."""

from __future__ import annotations

import calendar
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from shapely.geometry import Point

from casework import service
from casework.lifecycle import Actor, CaseAction
from casework.models import Attachment, Case
from gis_data.addresses import load_addresses
from gis_data.readers import RawRow
from gridcity.database import make_session_factory
from gridcity.roles import Role
from tests.casework.helpers import LAT, LON, act, report, upload
from tests.conftest import Org, make_jpeg
from tests.console import ThreadServer
from tests.console.test_console_browser import done, login

pytestmark = pytest.mark.browser


def clean(page: Any) -> None:
    """Nothing on screen says null or shows a raw error body."""
    text = page.inner_text("body")
    assert not re.search(r"\bnull\b|undefined|\{\"detail\"|\[object Object\]|NaN", text), text[:2000]


def test_acceptor_registers_a_hotline_complaint_by_address_and_sends_it_to_verification(
    server: ThreadServer, browser: Any, orgdata: Org, db: sa.Engine, artifacts: Path
) -> None:
    names = ["经二路12号", "经二路120号", "经二路2号", "经二路14号"]
    rows = [
        RawRow(
            i + 1, {"code": f"M{i}", "name": name, "road": "经二路", "kind": "door_plate"}, Point(LON + i * 1e-4, LAT)
        )
        for i, name in enumerate(names)
    ]
    with make_session_factory(db)() as s, s.begin():
        load_addresses(s, rows)
    page = login(browser, server, "acceptor")
    assert page.is_visible("#view-intake")
    page.select_option("#intake-form select[name=channel]", "hotline_12345")
    page.fill("#intake-form input[name=caller_name]", "王女士")
    page.fill("#intake-form input[name=caller_phone]", "13912345678")
    page.select_option("#intake-form select[name=class_code]", "E0102")
    page.fill("#intake-form textarea[name=description]", "路边暴露垃圾，味道很大")
    page.fill("#intake-form input[name=address_q]", "经二路12")
    first = page.locator("#address-suggestions li.suggestion").first
    first.wait_for()
    assert page.locator("#address-suggestions li.suggestion").count() == 2  # 12号 and 120号, not 2号/14号
    assert "经二路12号" in first.inner_text()
    first.click()
    assert "经二路12号" in page.inner_text("#address-chosen")
    page.screenshot(path=str(artifacts / "intake.png"), full_page=True)
    page.click("#intake-form button.submit")
    verify = page.locator("#intake-result form[data-action=send_verify]")
    verify.wait_for()
    verify.locator("select[name=inspector_id]").select_option(str(orgdata.ids["inspector"]))
    verify.locator("button[type=submit]").click()
    page.locator("#intake-result .done[data-status=verifying]").wait_for()
    number = page.get_attribute("#intake-result .done", "data-number")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        page_ = http.get("/api/v1/cases", params={"number": number}, headers=orgdata.headers("acceptor")).json()
        case = http.get(f"/api/v1/cases/{page_['items'][0]['id']}", headers=orgdata.headers("acceptor")).json()
        assert (case["status"], case["source"], case["class_code"]) == ("verifying", "hotline_12345", "E0102")
        assert case["lon"] == pytest.approx(LON) and "经二路12号" in case["address"]
        assert case["reporter"] == {"name": "王女士", "phone": "13912345678", "email": None}
        assert case["assigned_inspector_id"] == orgdata.ids["inspector"]
        public = http.get(f"/open311/v2/requests/{number}.json").text
        assert "13912345678" not in public and "王女士" not in public
    # The case file shows the caller to the supervision centre, and class names, not codes.
    page.click("#nav a[data-view=supervision]")
    row = page.locator(f"#supervision-table tr[data-number='{number}']")
    row.wait_for()
    assert row.locator("td.class-name").inner_text() == "暴露垃圾"
    row.locator("button.detail").click()
    page.locator("#detail .facts .private").wait_for()
    assert "13912345678" in page.inner_text("#detail .facts .private")
    clean(page)
    done(page)


def test_shift_leader_files_a_report_and_reviews_self_handled_ones(
    server: ThreadServer, browser: Any, orgdata: Org, db: sa.Engine, artifacts: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        plain = report(http, orgdata, description="井盖缺失")  # type: ignore[arg-type]
        photos = upload(http, orgdata, "inspector", seed=77)  # type: ignore[arg-type]
        selfh = report(http, orgdata, action="self_handle", photos=photos)  # type: ignore[arg-type]
        selfh2 = report(
            http,
            orgdata,
            action="self_handle",  # type: ignore[arg-type]
            photos=upload(http, orgdata, "inspector", seed=78),
        )  # type: ignore[arg-type]
    with make_session_factory(db)() as s, s.begin():  # the phone API's advisory EXIF check flagged this photo
        att = s.get(Attachment, photos[0])
        assert att is not None
        att.flags = [{"code": "photo.far_from_claim", "msg": "far", "value": 350.0}]
    lead = login(browser, server, "shiftlead")
    row = lead.locator(f"#supervision-table tr[data-number='{plain['number']}']")
    row.wait_for()
    row.locator("button.detail").click()
    lead.locator("#detail form[data-action=file] button[type=submit]").click()
    row.wait_for(state="detached")
    # Self-handled: the photo's warning is visible; returning needs a note (the form will not send without).
    lead.locator(f"#supervision-table tr[data-number='{selfh['number']}'] button.detail").click()
    warning = lead.locator("#detail figure.photo li.flag[data-code='photo.far_from_claim']")
    warning.wait_for()
    assert "照片拍摄位置距上报位置较远" in warning.inner_text() and "350 m" in warning.inner_text()
    form = lead.locator("#detail form[data-action=return_self_handled]")
    assert form.locator("label.required input[name=note]").count() == 1
    form.locator("button[type=submit]").click()
    assert lead.evaluate(
        "document.querySelector('#detail form[data-action=return_self_handled] input[name=note]').validity.valueMissing"
    )
    form.locator("input[name=note]").fill("现场仍有垃圾，按一般案件立案")
    form.locator("button[type=submit]").click()
    lead.locator("#detail[data-status=reported]").wait_for()
    lead.screenshot(path=str(artifacts / "self-handled-returned.png"), full_page=True)
    row2 = lead.locator(f"#supervision-table tr[data-number='{selfh2['number']}']")
    row2.locator("button[data-action=approve_self_handled]").click()
    lead.locator(f"#supervision-table tr[data-number='{selfh2['number']}']").wait_for(state="detached")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        h = orgdata.headers("shiftlead")
        assert http.get(f"/api/v1/cases/{plain['id']}", headers=h).json()["status"] == "filed"
        assert http.get(f"/api/v1/cases/{selfh['id']}", headers=h).json()["status"] == "reported"
        assert http.get(f"/api/v1/cases/{selfh2['id']}", headers=h).json()["status"] == "closed"
    clean(lead)
    done(lead)


def _many_filed(db: sa.Engine, org: Org, n: int) -> list[int]:
    inspector = Actor(org.ids["inspector"], Role.INSPECTOR)
    lead = Actor(org.ids["shiftlead"], Role.SHIFT_LEADER)
    ids = []
    with make_session_factory(db)() as s, s.begin():
        for i in range(n):
            c = service.create_case(
                s,
                actor=inspector,
                action=CaseAction.REPORT,
                new=service.NewCase(
                    class_code="C0101", lon=LON, lat=LAT, description=f"第{i}号井盖", address=f"经二路{i}号"
                ),
            )
            service.apply_action(s, case_id=c.id, actor=lead, action=CaseAction.FILE)
            ids.append(c.id)
    return ids


def test_dispatcher_works_a_queue_of_more_than_200_and_finds_an_old_overdue_case(
    server: ThreadServer, browser: Any, orgdata: Org, db: sa.Engine, artifacts: Path
) -> None:
    ids = _many_filed(db, orgdata, 230)
    now = dt.datetime.now(dt.UTC)
    with make_session_factory(db)() as s, s.begin():
        for k, cid in enumerate(ids[100:120]):  # twenty overdue, one of them reported two months ago
            c = s.get(Case, cid)
            assert c is not None
            c.deadline_at = now - dt.timedelta(hours=k + 1)
            c.warn_at = c.deadline_at - dt.timedelta(hours=1)
        old = s.get(Case, ids[5])
        assert old is not None
        old.created_at = now - dt.timedelta(days=60)
        old.deadline_at = now - dt.timedelta(days=58)
        old.warn_at = old.deadline_at - dt.timedelta(hours=1)
        old_number = old.number
    page = login(browser, server, "dispatcher")
    page.locator("#view-dispatch .pager .total[data-total='230']").wait_for()
    assert page.locator("#dispatch-table tbody tr").count() == 50
    # Most overdue first: the two-month-old case heads the queue; then the red ones.
    assert page.locator("#dispatch-table tbody tr").first.get_attribute("data-number") == old_number
    assert [r.get_attribute("data-light") for r in page.locator("#dispatch-table tbody tr").all()[:21]] == ["red"] * 21
    page.click("#view-dispatch .pager button.next")
    page.wait_for_function("location.hash.includes('offset=50')")
    page.locator("#view-dispatch .pager .range:has-text('第 51–100 条')").wait_for()
    # Newest first shows something else; then the filter finds the old overdue case: red and reported a month ago.
    bar = page.locator("#view-dispatch form.filters")
    bar.locator("select[name=light]").select_option("red")
    month_ago = (dt.date.today() - dt.timedelta(days=30)).isoformat()
    bar.locator("input[name=to]").fill(month_ago)
    bar.locator("button.apply").click()
    page.locator("#view-dispatch .pager .total[data-total='1']").wait_for()
    row = page.locator(f"#dispatch-table tr[data-number='{old_number}']")
    assert row.count() == 1
    page.screenshot(path=str(artifacts / "dispatch-filtered.png"), full_page=True)
    # The state is in the URL: a reload shows the same filtered queue.
    assert "light=red" in page.evaluate("location.hash")
    page.reload()
    page.locator("#view-dispatch .pager .total[data-total='1']").wait_for()
    assert page.input_value("#view-dispatch form.filters select[name=light]") == "red"
    # Free text over the number finds it too.
    page.goto(server.url + f"/console/#dispatch?q={old_number}")
    page.reload()
    page.locator(f"#dispatch-table tr[data-number='{old_number}']").wait_for()
    row = page.locator(f"#dispatch-table tr[data-number='{old_number}']")
    row.locator("select.dept").select_option(str(orgdata.depts["SZ"]))
    row.locator("button[data-action=dispatch]").click()
    row.wait_for(state="detached")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        got = http.get(f"/api/v1/cases/{ids[5]}", headers=orgdata.headers("dispatcher")).json()
        assert (got["status"], got["department_id"]) == ("dispatched", orgdata.depts["SZ"])
    clean(page)
    done(page)


def test_department_accepts_asks_an_extension_in_valid_units_and_feeds_back(
    server: ThreadServer, browser: Any, orgdata: Org, tmp_path: Path, artifacts: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        case = act(http, orgdata, report(http, orgdata), "shiftlead", "file")  # type: ignore[arg-type]
        case = act(http, orgdata, case, "dispatcher", "dispatch", department_id=orgdata.depts["SZ"])  # type: ignore[arg-type]
    page = login(browser, server, "water")
    row = page.locator(f"#inbox-table tr[data-number='{case['number']}']")
    row.wait_for()
    row.locator("button[data-action=accept]").click()
    page.locator(f"#inbox-table tr[data-number='{case['number']}'][data-status=handling]").wait_for()
    page.locator(f"#inbox-table tr[data-number='{case['number']}'] button.detail").click()
    form = page.locator("#detail form[data-action=request_extension]")
    form.wait_for()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        valid = http.get(f"/api/v1/cases/{case['id']}", headers=orgdata.headers("water")).json()["extension_units"]
    offered = [o.get_attribute("value") for o in form.locator("select[name=extension_unit] option").all()]
    assert offered == valid and set(offered) == {"work_hour", "work_day"}  # a work-day limit: working units only
    assert page.locator("#detail table.clocks tr[data-stage=handle]").count() == 1
    form.locator("input[name=extension_value]").fill("2")
    form.locator("select[name=extension_unit]").select_option("work_day")
    form.locator("input[name=note]").fill("需采购配件")
    form.locator("button[type=submit]").click()
    page.locator("#detail[data-status=extension_requested]").wait_for()
    assert "2 工作日" in page.inner_text("#detail .extension-asked")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        now = http.get(f"/api/v1/cases/{case['id']}", headers=orgdata.headers("dispatcher")).json()
        act(http, orgdata, now, "dispatcher", "approve_extension")  # type: ignore[arg-type]
    page.locator(f"#inbox-table tr[data-number='{case['number']}'][data-status=handling] button.detail").click()
    fb = page.locator("#detail form[data-action=feedback]")
    fb.wait_for()
    photo = tmp_path / "after.jpg"
    photo.write_bytes(make_jpeg(seed=4242))
    fb.locator("input[name=photos]").set_input_files(str(photo))
    fb.locator("input[name=note]").fill("已更换井盖")
    fb.locator("button[type=submit]").click()
    page.locator("#detail[data-status=feedback]").wait_for()
    page.locator(f"#inbox-table tr[data-number='{case['number']}']").wait_for(state="detached")
    page.screenshot(path=str(artifacts / "department-feedback.png"), full_page=True)
    clean(page)
    done(page)


def test_leader_changes_the_period_and_downloads_the_xlsx_the_screen_shows(
    server: ThreadServer, browser: Any, orgdata: Org, tmp_path: Path, artifacts: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for dept in ("SZ", "LD", "SZ"):
            c = act(http, orgdata, report(http, orgdata), "shiftlead", "file")  # type: ignore[arg-type]
            act(http, orgdata, c, "dispatcher", "dispatch", department_id=orgdata.depts[dept])  # type: ignore[arg-type]
    page = login(browser, server, "leader")
    page.wait_for_selector("body[data-dashboard=ready]", timeout=30_000)
    this_month = page.input_value("#dash-to")
    y, m = map(int, this_month.split("-"))
    prev = f"{y - 1}-12" if m == 1 else f"{y}-{m - 1:02d}"
    page.fill("#dash-from", prev)
    page.click("#dash-load")
    period = f"{prev}-01..{this_month}-{calendar.monthrange(y, m)[1]:02d}"
    dept = page.locator("#rank-department table.ranking")
    page.wait_for_function(
        "(p) => { const t = document.querySelector('#rank-department table.ranking');"
        " return t && t.dataset.period && t.dataset.period.startsWith(p); }",
        arg=prev,
    )
    label = dept.get_attribute("data-period")
    # Every table shows the same period, also after the region table switches its subject type.
    page.locator(f"#rank-region table.ranking[data-period='{label}']").wait_for()
    page.select_option("#rank-region select.subject", "street")
    page.locator(f"#rank-region table.ranking[data-subject-type=street][data-period='{label}']").wait_for()
    assert page.get_attribute("#rank-position table.ranking", "data-period") == label
    screen = [[td.inner_text() for td in tr.locator("td").all()] for tr in dept.locator("tbody tr").all()]
    assert screen and all(r[5] != "" for r in screen)  # the case count column is filled
    with page.expect_download() as dl:
        page.click("#rank-department button.export-xlsx")
    path = tmp_path / "ranking.xlsx"
    dl.value.save_as(str(path))
    ws = load_workbook(io.BytesIO(path.read_bytes())).active
    assert ws is not None
    values = list(ws.values)
    head = list(values[0])
    col = {h: head.index(h) for h in ("排名", "名称", "综合指标值", "等级", "案件数", "备注")}
    file_rows = [
        [
            str(r[col["排名"]]),
            r[col["名称"]],
            f"{float(r[col['综合指标值']]):.2f}",
            r[col["等级"]],
            f"{float(r[col['案件数']]):g}",
            (r[col["备注"]] or "").replace("；", ""),
        ]
        for r in values[1:]
    ]
    shown = [[r[0].rstrip("="), r[1], r[3], r[4], f"{float(r[5]):g}", r[6]] for r in screen]
    assert shown == file_rows
    assert any("样本不足" in r[5] for r in shown)  # too few cases: marked as the export marks them
    with httpx.Client(base_url=server.url, timeout=30) as http:
        api = http.get("/api/v1/evaluation/department", params={"period": period}, headers=orgdata.headers("leader"))
        assert api.status_code == 200, api.text
        assert api.json()["period"] == label
    page.screenshot(path=str(artifacts / "dashboard-period.png"), full_page=True)
    clean(page)
    done(page)


def test_admin_creates_a_user_who_logs_in_and_deactivation_ends_a_session(
    server: ThreadServer, browser: Any, orgdata: Org, artifacts: Path
) -> None:
    victim = login(browser, server, "lighting")
    admin = login(browser, server, "admin")
    admin.locator("#view-admin[data-ready]").wait_for()
    assert admin.locator("#dept-tree li[data-code=SZ]").count() == 1
    form = admin.locator("#user-create")
    form.locator("input[name=username]").fill("disp2")
    form.locator("input[name=display_name]").fill("新派遣员")
    form.locator("input[name=password]").fill("password-123")
    form.locator("select[name=role]").select_option("dispatcher")
    form.locator("button[type=submit]").click()
    admin.locator("#users-table tr[data-username=disp2]").wait_for()
    admin.screenshot(path=str(artifacts / "admin.png"), full_page=True)
    # The same username again: the server's stable code, shown as the catalogue's message in the user's language.
    for lang, message in (("zh", "用户名：用户名已存在"), ("en", "Username: The username exists")):
        if lang == "en":
            admin.click("#lang")
            admin.locator("#user-create button[type=submit]:has-text('Add')").wait_for()  # re-drawn in English
        form = admin.locator("#user-create")
        form.locator("input[name=username]").fill("disp2")
        form.locator("input[name=password]").fill("password-123")
        form.locator("button[type=submit]").click()
        admin.locator(f"#toasts .toast.red:has-text('{message}')").wait_for()
    assert "user.exists" not in admin.inner_text("#toasts") and "disp2 exists" not in admin.inner_text("#toasts")
    admin.click("#lang")
    # The lighting department's user is deactivated: their open console is logged out on its next request.
    admin.locator("#users-table tr[data-username=lighting] button.deactivate").click()
    admin.locator("#users-table tr[data-username=lighting][data-active=false]").wait_for()
    victim.click("#view-inbox button.reload")
    victim.locator("#view-login").wait_for(state="visible")
    assert "停用" in victim.inner_text("#toasts")
    done(victim)
    clean(admin)
    done(admin)
    newbie = login(browser, server, "disp2")
    assert newbie.is_visible("#view-dispatch")
    assert "新派遣员" in newbie.inner_text("#who")
    done(newbie)
