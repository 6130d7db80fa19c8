"""Nothing made on the phone is lost or counted twice: reports composed offline survive closing the app and are
sent once when the network returns, also when the connection drops mid-upload; a refused report keeps its
reason; an expired login asks for a new one and then drains; the app shell opens offline; the manifest is valid."""

from __future__ import annotations

import io
import json
from typing import Any

import sqlalchemy as sa
from PIL import Image

from tests.fieldapp.conftest import CATALOGUE, HERE, compose_report, expired_token, jpeg, login, set_session_token
from tests.mobile_api.conftest import bomb_png

OUTBOX_STATES = "() => [...document.querySelectorAll('[data-testid=outbox-item]')].map(e => e.dataset.state)"


def cases(db: Any, like: str = "%") -> list[tuple[int, str]]:
    with db.connect() as c:
        return [
            (r[0], r[1])
            for r in c.execute(
                sa.text('SELECT id, description FROM "case" WHERE description LIKE :d ORDER BY id'), {"d": like}
            )
        ]


def photos_of(db: Any, case_id: int) -> int:
    with db.connect() as c:
        return int(
            c.execute(
                sa.text(
                    "SELECT count(*) FROM event_attachment ea JOIN case_event e ON "
                    "e.id = ea.event_id WHERE e.case_id = :c"
                ),
                {"c": case_id},
            ).scalar_one()
        )


def wait_states(page: Any, state: str, n: int, timeout: float = 60_000) -> None:
    page.wait_for_function(
        f"n => document.querySelectorAll('[data-testid=outbox-item][data-state={state}]').length === n",
        arg=n,
        timeout=timeout,
    )


def wait_drained(page: Any, passes: int = 1) -> None:
    """Wait until the outbox has finished `passes` drain passes since the page loaded (the app counts them)."""
    page.wait_for_function(
        "n => Number(document.documentElement.dataset.outboxDrains || 0) >= n", arg=passes, timeout=60_000
    )


def wait_shell_cached(page: Any) -> None:
    """Wait until the service worker controls the page (its install cached the app shell)."""
    page.evaluate("navigator.serviceWorker.ready")
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30_000)


def test_app_shell_opens_offline_from_the_service_worker(phone, orgdata, city, artifacts):
    page = phone.new_page()
    login(page)
    wait_shell_cached(page)
    phone.set_offline(True)
    page.reload()
    page.get_by_test_id("tasks").wait_for()
    # The header follows navigator.onLine and its "offline" event; right after a reload Chromium may still say
    # online for a moment (seen once, in a full run on a fresh Debian 12 with its Chromium 150 while another
    # suite ran), so wait for the redraw on the event rather than read once.
    page.wait_for_function("document.querySelector('[data-testid=network]')?.textContent === '离线'", timeout=15_000)
    # A fresh tab with no network opens the app too, and its report form works (map without tiles included).
    other = phone.new_page()
    other.goto("/m/")
    other.get_by_test_id("new-report").click()
    other.get_by_test_id("class-search").wait_for()
    other.locator(".minimap canvas").wait_for(timeout=30_000)
    other.screenshot(path=str(artifacts / "offline-report.png"))


def test_the_manifest_is_valid_and_its_icons_exist(api, phone):
    page = phone.new_page()
    page.goto("/m/")
    href = page.locator("link[rel=manifest]").get_attribute("href")
    r = api.get(href)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/manifest+json")
    m = r.json()
    assert m["name"] == "城管通" and m["display"] == "standalone"
    assert m["start_url"].startswith(m["scope"]) and m["scope"] == "/m/"
    sizes = set()
    for icon in m["icons"]:
        got = api.get(icon["src"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        w, h = Image.open(io.BytesIO(got.content)).size
        assert icon["sizes"] == f"{w}x{h}"
        sizes.add(w)
    assert {192, 512} <= sizes  # what browsers require to offer installing
    sw = api.get("/m/sw.js")
    assert sw.status_code == 200 and "javascript" in sw.headers["content-type"]
    assert api.get("/m", follow_redirects=False).headers["location"] == "/m/"


def test_three_reports_composed_offline_survive_closing_and_are_sent_once(phone, orgdata, city, db, artifacts):
    page = phone.new_page()
    login(page)
    wait_shell_cached(page)
    phone.set_offline(True)
    for i in range(3):
        compose_report(page, seeds=[100 + 2 * i, 101 + 2 * i], description=f"离线上报{i}")
    assert page.evaluate(OUTBOX_STATES).count("sent") == 0 and len(page.evaluate(OUTBOX_STATES)) == 3
    page.screenshot(path=str(artifacts / "offline-outbox.png"), full_page=True)
    page.close()
    assert cases(db, "离线上报%") == []
    page = phone.new_page()
    page.goto("/m/")
    page.get_by_test_id("outbox").click()
    # Drawn once read from IndexedDB (the list is not there yet at the click); waiting or retrying, not sent.
    page.wait_for_function(f"() => ({OUTBOX_STATES})().length === 3", timeout=30_000)
    assert "sent" not in page.evaluate(OUTBOX_STATES)
    phone.set_offline(False)
    wait_states(page, "sent", 3)
    got = cases(db, "离线上报%")
    assert sorted(d for _, d in got) == ["离线上报0", "离线上报1", "离线上报2"]
    assert [photos_of(db, cid) for cid, _ in got] == [2, 2, 2]
    page.reload()  # opening the app again sends nothing twice
    page.get_by_test_id("outbox").click()
    wait_states(page, "sent", 3)
    wait_drained(page)  # the drain pass of the app's start has ended: whatever it would send is sent
    assert len(cases(db, "离线上报%")) == 3


def test_a_connection_dropping_during_upload_is_retried_with_the_same_key(phone, orgdata, city, db):
    page = phone.new_page()
    calls: list[tuple[str, str]] = []

    def flaky(route: Any) -> None:
        key = route.request.headers.get("idempotency-key", "")
        calls.append((key, "x"))
        n = len(calls)
        if n == 1:  # the server stores the report, but the answer never reaches the phone
            route.fetch()
            route.abort("connectionreset")
        elif n == 2:  # the connection drops before the server gets it
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/mobile/v1/reports", flaky)
    login(page)
    for i in range(3):
        compose_report(page, seeds=[200 + i], description=f"断网上报{i}")
    wait_states(page, "sent", 3, timeout=120_000)
    got = cases(db, "断网上报%")
    assert sorted(d for _, d in got) == ["断网上报0", "断网上报1", "断网上报2"]
    assert all(photos_of(db, cid) == 1 for cid, _ in got)
    keys = [k for k, _ in calls]
    assert len(set(keys)) == 3 and len(keys) >= 5  # every retry reused its report's key
    with db.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM idempotency_record WHERE kind = 'report'")).scalar_one() == 3


def test_a_refused_report_keeps_its_reason_and_can_be_sent_again(phone, app, orgdata, city, db):
    page = phone.new_page()
    login(page)
    limit = app.state.settings.max_upload_bytes
    app.state.settings.max_upload_bytes = 2_000  # the deployment's limit shrank after the phone read it
    try:
        compose_report(page, seeds=[300], description="被拒上报")
        wait_states(page, "refused", 1)
        assert page.get_by_test_id("outbox-reason").inner_text() == CATALOGUE["photo.too_large"]["zh"]
        assert cases(db, "被拒上报%") == []
    finally:
        app.state.settings.max_upload_bytes = limit
    page.reload()  # kept across a restart with its reason, and not sent again by itself
    page.get_by_test_id("outbox").click()
    assert page.get_by_test_id("outbox-reason").inner_text() == CATALOGUE["photo.too_large"]["zh"]
    wait_drained(page)  # the start's drain pass has ended without sending the refused report
    assert page.evaluate(OUTBOX_STATES) == ["refused"] and cases(db, "被拒上报%") == []
    page.get_by_test_id("outbox-retry").click()
    wait_states(page, "sent", 1)
    assert len(cases(db, "被拒上报%")) == 1
    # A refused item can also be corrected or deleted.
    app.state.settings.max_upload_bytes = 2_000
    try:
        compose_report(page, seeds=[301], description="再次被拒")
        wait_states(page, "refused", 1)
    finally:
        app.state.settings.max_upload_bytes = limit
    page.get_by_test_id("outbox-edit").click()
    page.get_by_test_id("description").fill("改正后上报")
    page.get_by_test_id("submit-report").click()
    wait_states(page, "sent", 2)
    assert [d for _, d in cases(db, "%上报")][-1] == "改正后上报" and cases(db, "再次被拒") == []


def test_an_expired_login_asks_for_a_new_one_and_then_drains_the_outbox(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    wait_shell_cached(page)
    phone.set_offline(True)
    compose_report(page, seeds=[400], description="过期登录上报")
    # The login expires while the phone is offline (the stored token is replaced by an expired one).
    set_session_token(page, expired_token(orgdata, "inspector"))
    page.close()
    page = phone.new_page()
    page.goto("/m/")
    page.get_by_test_id("tasks").wait_for()  # still usable offline
    phone.set_offline(False)
    page.get_by_test_id("login-message").wait_for()
    assert "登录已过期" in page.get_by_test_id("login-message").inner_text()
    assert cases(db, "过期登录上报") == []
    page.get_by_test_id("login-password").fill("password-123")
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("outbox").click()
    wait_states(page, "sent", 1)
    assert len(cases(db, "过期登录上报")) == 1


def test_bad_photos_and_a_position_outside_the_city_are_explained_before_queueing(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    page.get_by_test_id("new-report").click()
    page.get_by_test_id("class-search").wait_for()
    files = [
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not an image at all" * 10},
        {"name": "bomb.png", "mimeType": "image/png", "buffer": bomb_png()},
        {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": jpeg(1)["buffer"] + b"\0" * (16 * 1024 * 1024)},
    ]
    with page.expect_file_chooser() as fc:
        page.get_by_test_id("photo-input-gallery").click()
    fc.value.set_files(files)
    err = page.get_by_test_id("photo-input-error")
    err.filter(has_text="huge.jpg").wait_for()
    text = err.inner_text()
    # The phone's refusals are the server's codes in the one catalogue's words, with the file's name.
    assert f"“notes.jpg”：{CATALOGUE['photo.unsupported_type']['zh']}" in text
    assert f"“bomb.png”：{CATALOGUE['photo.too_many_pixels']['zh']}（" in text
    assert f"“huge.jpg”：{CATALOGUE['photo.too_large']['zh']}（" in text
    assert page.locator(".thumbs img").count() == 0
    page.get_by_test_id("submit-report").click()
    assert page.get_by_test_id("report-error").inner_text() == "请至少拍一张照片"
    # Standing outside the city: said at once, and nothing is queued.
    phone.set_geolocation({"longitude": 116.397, "latitude": 39.909, "accuracy": 10})
    page.get_by_test_id("tasks").click()
    page.get_by_test_id("new-report").click()
    page.get_by_test_id("outside-city").filter(has_text="不在本市范围内").wait_for()
    with page.expect_file_chooser() as fc:
        page.get_by_test_id("photo-input-gallery").click()
    fc.value.set_files([jpeg(2)])
    page.get_by_test_id("class-search").fill("上水井盖")
    page.get_by_test_id("class-option").first.click()
    page.get_by_test_id("submit-report").click()
    assert "不在本市范围内" in page.get_by_test_id("report-error").inner_text()
    page.get_by_test_id("outbox").click()
    page.get_by_test_id("outbox-empty").wait_for()
    assert json.loads(json.dumps(cases(db))) == []
    phone.set_geolocation({"longitude": HERE[0], "latitude": HERE[1], "accuracy": 8})


def test_the_language_switch_changes_the_labels_and_the_refusal_from_the_one_catalogue(phone, orgdata, city, db, app):
    page = phone.new_page()
    login(page)
    limit = app.state.settings.max_upload_bytes
    app.state.settings.max_upload_bytes = 2_000
    try:
        compose_report(page, seeds=[500], description="语言切换")
        wait_states(page, "refused", 1)
    finally:
        app.state.settings.max_upload_bytes = limit
    reason = page.get_by_test_id("outbox-reason")
    assert reason.inner_text() == CATALOGUE["photo.too_large"]["zh"]
    assert page.locator("main h2").inner_text() == "待发送"
    page.get_by_test_id("lang-switch").click()
    page.locator("main h2").filter(has_text="Outbox").wait_for()
    assert page.get_by_test_id("outbox-reason").inner_text() == CATALOGUE["photo.too_large"]["en"]
    assert page.get_by_test_id("outbox-state").inner_text() == "Refused"
    page.reload()  # the choice is kept
    page.get_by_test_id("outbox").click()
    assert page.get_by_test_id("outbox-reason").inner_text() == CATALOGUE["photo.too_large"]["en"]
    page.get_by_test_id("lang-switch").click()
    page.locator("main h2").filter(has_text="待发送").wait_for()
    assert page.get_by_test_id("outbox-reason").inner_text() == CATALOGUE["photo.too_large"]["zh"]
