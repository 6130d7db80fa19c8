"""The field app's whole day in Chromium as a phone: an inspector reports, sees it, answers a verify and a check
task on site; department staff accept a case and feed back with photos, and ask for an extension."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from tests.casework.helpers import act, report, to_status
from tests.fieldapp.conftest import HERE, add_component, choose_photos, jpeg, login


def rows(db: Any, sql: str) -> list[Any]:
    with db.connect() as c:
        return list(c.execute(sa.text(sql)).all())


def wait_sent(page: Any, n: int) -> None:
    page.get_by_test_id("outbox").click()
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=outbox-item][data-state=sent]').length >= n",
        arg=n,
        timeout=60_000,
    )


def test_the_inspectors_day(phone, api, orgdata, city, db, artifacts):
    comp = add_component(db, "C0101", 1, 6)
    verify = act(
        api,
        orgdata,
        report(api, orgdata, user="acceptor", action="public_report", photos=[], lon=HERE[0], lat=HERE[1] + 0.0003),
        "acceptor",
        "send_verify",
        inspector_id=orgdata.ids["inspector"],
    )
    check = to_status(api, orgdata, "checking")
    page = phone.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page)
    # Report with two photos; the class by its Chinese name; the nearest component is offered and kept.
    page.get_by_test_id("new-report").click()
    page.get_by_test_id("position").filter(has_text="精度").wait_for()
    choose_photos(page, "photo-input", [jpeg(1), jpeg(2)])
    page.locator(".thumbs img").nth(1).wait_for()
    page.get_by_test_id("class-search").fill("上水井")
    options = page.get_by_test_id("class-option")
    names = options.all_inner_texts()
    assert names and len({n.split()[0] for n in names}) == len(names)  # never the same name twice
    options.filter(has_text="上水井盖").first.click()
    page.get_by_test_id("component-option").first.wait_for()
    assert page.get_by_test_id("component-id").inner_text() == comp
    page.get_by_test_id("description").fill("上水井盖破损，有坠落风险")
    page.get_by_test_id("urgency").select_option("urgent")
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    page.get_by_test_id("submit-report").click()
    wait_sent(page, 1)
    page.screenshot(path=str(artifacts / "outbox.png"), full_page=True)
    [(case_id, status, component_id, urgency)] = rows(
        db, "SELECT id, status, component_id, urgency FROM \"case\" WHERE description LIKE '%坠落%'"
    )
    assert (status, component_id, urgency) == ("reported", comp, "urgent")
    assert (
        rows(
            db,
            f"SELECT count(*) FROM event_attachment ea JOIN case_event e ON e.id = ea.event_id "
            f"WHERE e.case_id = {case_id}",
        )[0][0]
        == 2
    )
    # My reports: the state and the timeline.
    page.get_by_test_id("my-reports").click()
    item = page.locator(f"[data-testid=report-item][data-case='{case_id}']")
    assert "待立案" in item.get_by_test_id("report-status").inner_text()
    item.click()
    page.get_by_test_id("timeline").filter(has_text="上报").wait_for()
    # The verify task: the on-site rule is shown before answering; pass with a photo.
    page.get_by_test_id("tasks").click()
    page.get_by_test_id("task-item").nth(1).wait_for()
    assert page.get_by_test_id("task-item").count() == 2
    page.get_by_test_id("task-item").filter(has_text="核实").click()
    rule = page.get_by_test_id("onsite-rule")
    assert "200 米内" in rule.inner_text() and "您当前距案件" in rule.inner_text()
    choose_photos(page, "result-photo-input", [jpeg(10)])
    page.locator(".answer .thumbs img").wait_for()
    page.get_by_test_id("task-pass").click()
    wait_sent(page, 2)
    assert rows(db, f'SELECT status FROM "case" WHERE id = {verify["id"]}')[0][0] == "reported"
    # The check task: fail needs a note, then goes back to the department.
    page.get_by_test_id("tasks").click()
    page.get_by_test_id("task-item").filter(has_text="核查").click()
    choose_photos(page, "result-photo-input", [jpeg(11)])
    page.locator(".answer .thumbs img").wait_for()
    page.get_by_test_id("task-fail").click()
    assert page.get_by_test_id("answer-error").inner_text() == "请填写说明"
    page.get_by_test_id("result-note").fill("井盖仍未更换")
    page.get_by_test_id("task-fail").click()
    wait_sent(page, 3)
    assert rows(db, f'SELECT status FROM "case" WHERE id = {check["id"]}')[0][0] == "dispatched"
    page.screenshot(path=str(artifacts / "done.png"), full_page=True)
    assert errors == []


def test_the_departments_day(phone, api, orgdata, city, db, artifacts):
    case = to_status(api, orgdata, "dispatched")
    other = to_status(api, orgdata, "dispatched")
    page = phone.new_page()
    login(page, "water")
    assert page.get_by_test_id("new-report").count() == 0 and page.get_by_test_id("duty-toggle").count() == 0
    page.get_by_test_id("task-item").nth(1).wait_for()
    page.locator(f"[data-testid=task-item][data-case='{case['id']}']").click()
    page.get_by_test_id("task-accept").click()
    wait_sent(page, 1)
    assert rows(db, f'SELECT status FROM "case" WHERE id = {case["id"]}')[0][0] == "handling"
    page.get_by_test_id("tasks").click()
    page.locator(f"[data-testid=task-item][data-case='{case['id']}']").click()
    page.get_by_test_id("onsite-rule").wait_for()
    choose_photos(page, "result-photo-input", [jpeg(20), jpeg(21)])
    page.locator(".answer .thumbs img").nth(1).wait_for()
    page.get_by_test_id("result-note").fill("已更换井盖")
    page.get_by_test_id("task-done").click()
    wait_sent(page, 2)
    assert rows(db, f'SELECT status FROM "case" WHERE id = {case["id"]}')[0][0] == "feedback"
    assert (
        rows(
            db,
            f"SELECT count(*) FROM event_attachment ea JOIN case_event e ON e.id = ea.event_id "
            f"WHERE e.case_id = {case['id']} AND e.action = 'feedback' AND ea.role = 'after'",
        )[0][0]
        == 2
    )
    # An extension only in the units valid for the case's handling limit.
    page.get_by_test_id("tasks").click()
    page.locator(f"[data-testid=task-item][data-case='{other['id']}']").click()
    page.locator("[data-testid=extension-unit] option").first.wait_for(state="attached")
    units = page.get_by_test_id("extension-unit").locator("option").evaluate_all("os => os.map(o => o.value)")
    detail = api.get(f"/mobile/v1/tasks/{other['id']}", headers=orgdata.headers("water")).json()
    assert units == detail["extension_units"] and units
    page.get_by_test_id("extension-value").fill("2")
    page.get_by_test_id("result-note").fill("备件两天后到")
    page.get_by_test_id("task-extension").click()
    wait_sent(page, 3)
    [(status, data)] = rows(
        db,
        f'SELECT c.status, e.data FROM "case" c JOIN case_event e ON e.case_id = c.id '
        f"WHERE c.id = {other['id']} AND e.action = 'request_extension'",
    )
    data = json.loads(data) if isinstance(data, str) else data
    assert status == "extension_requested" and data["extension"] == {"value": 2.0, "unit": units[0]}
    page.screenshot(path=str(artifacts / "department.png"), full_page=True)


def test_a_self_handled_report_keeps_before_and_after_photos(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    page.get_by_test_id("new-report").click()
    page.get_by_test_id("self-handled").check()
    choose_photos(page, "photo-before", [jpeg(30)])
    choose_photos(page, "photo-after", [jpeg(31), jpeg(32)])
    page.locator(".thumbs img").nth(2).wait_for()
    page.get_by_test_id("class-search").fill("暴露垃圾")
    page.get_by_test_id("class-option").filter(has_text="暴露垃圾").first.click()
    page.get_by_test_id("description").fill("路边暴露垃圾")
    page.get_by_test_id("self-note").fill("已清理")
    page.get_by_test_id("submit-report").click()
    wait_sent(page, 1)
    [(case_id, status, source)] = rows(db, 'SELECT id, status, source FROM "case"')
    assert (status, source) == ("self_handled", "self")
    roles = sorted(
        r[0]
        for r in rows(
            db,
            f"SELECT ea.role FROM event_attachment ea JOIN case_event e "
            f"ON e.id = ea.event_id WHERE e.case_id = {case_id}",
        )
    )
    assert roles == ["after", "after", "before"]
