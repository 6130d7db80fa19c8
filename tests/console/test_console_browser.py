"""The console in a real browser (Debian's Chromium through Playwright) against a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
import pytest

from tests.casework.helpers import act, report
from tests.conftest import Org
from tests.console import ThreadServer

pytestmark = pytest.mark.browser
PASSWORD = "password-123"
_page_errors: dict[int, list[str]] = {}


def done(page: Any) -> None:
    """Close the page's context; fail if the page raised any JavaScript error."""
    errors = _page_errors.pop(id(page), [])
    page.context.close()
    assert errors == []


def login(browser: Any, server: ThreadServer, username: str, view: str = "") -> Any:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = ctx.new_page()
    errors = _page_errors.setdefault(id(page), [])
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/" + ("#" + view if view else ""))
    page.fill("#login-form input[name=username]", username)
    page.fill("#login-form input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("body[data-live=on]", timeout=15_000)
    return page


def test_root_redirects_to_the_console_and_needs_no_internet(
    server: ThreadServer, browser: Any, artifacts: Path
) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url + "/")
    assert page.url.endswith("/console/")
    assert page.inner_text("#login-form h2") == "登录"
    assert all(u.startswith(server.url) for u in requests), requests  # no CDN, nothing from outside
    page.click("#lang")
    assert page.inner_text("#login-form h2") == "Log in"
    page.click("#lang")
    page.screenshot(path=str(artifacts / "login.png"))
    page.close()


def test_bad_login_is_refused(server: ThreadServer, browser: Any, orgdata: Org) -> None:
    page = browser.new_page()
    page.goto(server.url + "/console/")
    page.fill("#login-form input[name=username]", "dispatcher")
    page.fill("#login-form input[name=password]", "wrong-password")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('错误')")
    assert page.is_visible("#view-login")
    page.close()


def test_dispatch_in_one_browser_arrives_in_the_department_inbox_without_reload(
    server: ThreadServer, browser: Any, orgdata: Org, artifacts: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        case = act(http, orgdata, report(http, orgdata), "shiftlead", "file")  # type: ignore[arg-type]
        other = act(http, orgdata, report(http, orgdata), "shiftlead", "file")  # type: ignore[arg-type]

    water = login(browser, server, "water")
    assert water.is_visible("#view-inbox")
    water.evaluate("window.__noReload = 'still here'")
    water.locator("#view-inbox .pager .total[data-total='0']").wait_for()  # the inbox has loaded, empty
    assert water.locator("#inbox-table tbody tr").count() == 0

    disp = login(browser, server, "dispatcher")
    row = disp.locator(f"#dispatch-table tr[data-number='{case['number']}']")
    row.wait_for()
    assert disp.locator(f"#dispatch-table tr[data-number='{other['number']}']").count() == 1
    disp.screenshot(path=str(artifacts / "dispatch-desk.png"))
    row.locator("select.dept").select_option(str(orgdata.depts["SZ"]))
    row.locator("button[data-action=dispatch]").click()
    # The dispatcher's own desk drops the case when its dispatch event comes back on the stream.
    disp.locator(f"#dispatch-table tr[data-number='{case['number']}']").wait_for(state="detached")

    # The department sees it arrive, live, and the page was not reloaded.
    arrived = water.locator(f"#inbox-table tr[data-number='{case['number']}']")
    arrived.wait_for()
    assert water.evaluate("window.__noReload") == "still here"
    assert arrived.get_attribute("data-status") == "dispatched"
    assert water.locator("#inbox-table tbody tr").count() == 1  # not the other, undispatched case
    water.screenshot(path=str(artifacts / "inbox-arrived.png"))
    # Accepting it updates the row in place.
    arrived.locator("button[data-action=accept]").click()
    water.locator(f"#inbox-table tr[data-number='{case['number']}'][data-status=handling]").wait_for()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        now = http.get(f"/api/v1/cases/{case['id']}", headers=orgdata.headers("water")).json()
    assert (now["status"], now["department_id"]) == ("handling", orgdata.depts["SZ"])
    done(water)
    done(disp)


def test_supervision_queue_shows_new_reports_live_and_files_them(
    server: ThreadServer, browser: Any, orgdata: Org, artifacts: Path
) -> None:
    lead = login(browser, server, "shiftlead")
    assert lead.is_visible("#view-supervision")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        case = report(http, orgdata)  # type: ignore[arg-type]
    row = lead.locator(f"#supervision-table tr[data-number='{case['number']}']")
    row.wait_for()
    row.locator("button.detail").click()
    lead.locator("#detail img.thumb[src^='blob:']").first.wait_for()  # the report's photo, fetched with the token
    lead.screenshot(path=str(artifacts / "supervision-detail.png"))
    lead.locator("#detail form[data-action=file] button[type=submit]").click()
    row.wait_for(state="detached")  # filed: no longer in the supervision queue
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get(f"/api/v1/cases/{case['id']}", headers=orgdata.headers("shiftlead")).json()["status"] == "filed"
    done(lead)


def test_map_draws_cases_and_updates_without_reload(
    server: ThreadServer, browser: Any, orgdata: Org, artifacts: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        report(http, orgdata)  # type: ignore[arg-type]
    page = login(browser, server, "dispatcher", view="map")
    page.click("#nav a[data-view=map]")
    page.wait_for_selector("#map[data-ready='1']", timeout=60_000)
    page.evaluate("() => App.map.jumpTo({center: [107.1448, 34.3693], zoom: 15})")
    page.wait_for_function("() => App.map.queryRenderedFeatures({layers: ['cases']}).length === 1", timeout=30_000)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        second = report(http, orgdata, lon=107.1452, lat=34.3695)  # type: ignore[arg-type]
    page.wait_for_function(
        "(id) => App.map.queryRenderedFeatures({layers: ['live-cases']}).some((f) => f.id === id)",
        arg=second["id"],
        timeout=30_000,
    )
    page.screenshot(path=str(artifacts / "map.png"))
    done(page)


def test_leader_dashboard_shows_the_numbers_the_api_returns(
    server: ThreadServer, browser: Any, orgdata: Org, artifacts: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for dept in ("SZ", "LD", "SZ"):
            c = act(http, orgdata, report(http, orgdata), "shiftlead", "file")  # type: ignore[arg-type]
            act(http, orgdata, c, "dispatcher", "dispatch", department_id=orgdata.depts[dept])  # type: ignore[arg-type]
        page = login(browser, server, "leader")
        page.wait_for_selector("body[data-dashboard=ready]", timeout=30_000)
        h = orgdata.headers("leader")
        overdue = http.get("/api/v1/cases", params={"overdue": "true", "limit": 1}, headers=h).json()["total"]
        assert page.get_attribute(".kpi-overdue", "data-value") == str(overdue)
        table = page.locator("#rank-department table.ranking")
        month = page.input_value("#dash-to")
        api = http.get("/api/v1/evaluation/department", params={"period": month}, headers=h)
        assert api.status_code == 200, api.text  # the evaluation API is part of the build: no fallback here
        assert table.get_attribute("data-period") == api.json()["period"]
        rows = api.json()["rows"]
        expected = [(str(r["rank"]) + ("=" if r["tied"] else ""), r["name"], r["grade"]) for r in rows]
        shown = [
            tuple(tr.locator(f"td.{k}").inner_text() for k in ("rank", "name", "grade"))
            for tr in table.locator("tbody tr").all()
        ]
        assert shown == expected and shown
        scores = [tr.locator("td.score").inner_text() for tr in table.locator("tbody tr").all()]
        assert scores == [f"{float(r['composite']):.2f}" for r in rows]
        # the ECharts ranking bars hold the API's scores and grades, best first
        charts = page.evaluate("() => App.dashboardCharts()")
        bars = charts["rank-department-chart"]["series"][0]["data"][::-1]
        assert [(b["value"], b["grade"]) for b in bars] == [
            (round(float(r["composite"]), 2), r["grade"]) for r in rows[:15]
        ]
        charts = page.evaluate("() => App.dashboardCharts()")
        # the monthly trend (ECharts): 12 months, the last one holding this month's 3 reports
        trend = charts["dash-trend"]
        assert len(trend["xAxis"][0]["data"]) == 12 and trend["xAxis"][0]["data"][-1] == month
        assert trend["series"][0]["data"][-1] == 3
        # The hot-spot map and class breakdown are the server's aggregate (/map/hotspots) for the period.
        hot = http.get("/api/v1/map/hotspots", headers=h).json()
        assert hot["total"] == 3
        page.wait_for_selector("#hot-map[data-ready='1']", timeout=30_000)
        assert page.get_attribute("#hot-map", "data-total") == str(hot["total"])
        assert page.get_attribute("#hot-map", "data-cells") == str(len(hot["features"]))
        pie = charts["hot-classes"]["series"][0]["data"]
        assert [(d["major"], d["value"]) for d in pie] == [(c["major"], c["count"]) for c in hot["by_class"]]
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
        # 大屏: full screen, refreshed from the live stream (a new report raises the period's total at once)
        page.click("#dash-big")
        assert page.evaluate("() => document.body.classList.contains('bigscreen')")
        report(http, orgdata)  # type: ignore[arg-type]
        page.wait_for_selector(".kpi-total[data-value='4']", timeout=30_000)
        page.screenshot(path=str(artifacts / "dashboard-bigscreen.png"))
        page.click("#dash-big")
        page.emulate_media(media="print")
        assert not page.is_visible("#top") and page.is_visible("#view-dashboard")
        page.pdf(path=str(artifacts / "dashboard-print.pdf"))
        done(page)
