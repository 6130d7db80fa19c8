"""Department staff on the phone: send a case back (退回), ask for an extension in valid units only; upload progress."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from casework.deadlines import LimitUnit
from casework.lifecycle import Stage
from tests.casework.helpers import to_status
from tests.fieldapp.conftest import compose_report, login


def rows(db: Any, sql: str, **params: Any) -> list[Any]:
    with db.connect() as c:
        return list(c.execute(sa.text(sql), params).all())


def open_task(page: Any, case_id: int) -> None:
    page.get_by_test_id("tasks").click()
    page.locator(f"[data-testid=task-item][data-case='{case_id}']").click()
    page.get_by_test_id("onsite-rule").wait_for()


def wait_sent(page: Any, n: int) -> None:
    page.get_by_test_id("outbox").click()
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=outbox-item][data-state=sent]').length >= n",
        arg=n,
        timeout=60_000,
    )


def test_department_staff_send_a_case_back_from_the_phone(phone, api, orgdata, city, db):
    case = to_status(api, orgdata, "dispatched")
    page = phone.new_page()
    login(page, "water")
    open_task(page, case["id"])
    page.get_by_test_id("result-note").fill("不属于本部门职责")
    page.get_by_test_id("task-sendback").click()
    wait_sent(page, 1)
    [(status,)] = rows(db, 'SELECT status FROM "case" WHERE id = :i', i=case["id"])
    assert status == "sendback_requested"
    [(note,)] = rows(db, "SELECT note FROM case_event WHERE case_id = :i AND action = 'request_sendback'", i=case["id"])
    assert note == "不属于本部门职责"


def test_an_extension_is_offered_only_in_units_of_the_limits_kind_and_sent_in_one(phone, api, orgdata, city, db, app):
    case = to_status(api, orgdata, "handling")
    [(class_code, urgency)] = rows(db, 'SELECT class_code, urgency FROM "case" WHERE id = :i', i=case["id"])
    limit = app.state.rules.standards.lookup(class_code, urgency).limit(Stage.HANDLE.value)
    assert limit is not None
    working = LimitUnit(limit[1]).counts_working_time
    page = phone.new_page()
    login(page, "water")
    open_task(page, case["id"])
    page.locator("[data-testid=extension-unit] option").first.wait_for(state="attached")
    offered = page.get_by_test_id("extension-unit").locator("option").evaluate_all("os => os.map(o => o.value)")
    # Working time and elapsed time do not mix: only the limit's kind is offered, and all of it.
    assert sorted(offered) == sorted(u.value for u in LimitUnit if u.counts_working_time == working)
    assert any(u.counts_working_time != working for u in LimitUnit)  # there is something to leave out
    other = next(u.value for u in LimitUnit if u.counts_working_time != working)
    refused = api.post(
        f"/mobile/v1/tasks/{case['id']}/action",
        headers={**orgdata.headers("water"), "Idempotency-Key": "ext-wrong-unit"},
        json={"action": "request_extension", "note": "x", "extension": {"value": 1, "unit": other}},
    )
    assert refused.status_code == 422, refused.text  # the server refuses the unit the phone does not offer
    assert refused.json()["detail"][0]["type"] == "deadline.unit_mismatch"
    page.get_by_test_id("extension-unit").select_option(offered[-1])
    page.get_by_test_id("extension-value").fill("1.5")
    page.get_by_test_id("result-note").fill("等待备件")
    page.get_by_test_id("task-extension").click()
    wait_sent(page, 1)
    [(status, data)] = rows(
        db,
        'SELECT c.status, e.data FROM "case" c JOIN case_event e ON e.case_id = c.id '
        "WHERE c.id = :i AND e.action = 'request_extension'",
        i=case["id"],
    )
    data = json.loads(data) if isinstance(data, str) else data
    assert status == "extension_requested" and data["extension"] == {"value": 1.5, "unit": offered[-1]}


def test_the_upload_progress_bar_shows_while_a_throttled_upload_runs(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    cdp = phone.new_cdp_session(page)
    cdp.send("Network.enable")
    # Three photos at 20 kB/s: seconds of upload, as on a poor uplink.
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 50, "downloadThroughput": 2_000_000, "uploadThroughput": 20_000},
    )
    compose_report(page, seeds=[700, 701, 702], description="慢速上传")
    bar = page.get_by_test_id("upload-progress")
    bar.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => { const b = document.querySelector('[data-testid=upload-progress]');"
        " return b && b.value > 0.05 && b.value < 0.95; }",
        timeout=30_000,
    )
    assert page.locator("[data-testid=outbox-item][data-state=sending]").count() == 1
    assert rows(db, "SELECT id FROM \"case\" WHERE description = '慢速上传'") == []  # still on its way
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    page.wait_for_function(
        "() => document.querySelector('[data-testid=outbox-item][data-state=sent]') !== null", timeout=60_000
    )
    assert bar.count() == 0  # the bar goes with the upload
    assert len(rows(db, "SELECT id FROM \"case\" WHERE description = '慢速上传'")) == 1
