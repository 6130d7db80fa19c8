"""The phone's small maps: MapLibre over the city's vector tiles, a pin that moves the report, offline fallback."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.fieldapp.conftest import HERE, choose_photos, jpeg, login

MAP_READY = "id => document.querySelector(`[data-testid=${id}]`)?.dataset.ready === '1'"


def case_at(db: Any, description: str) -> list[tuple[float, float]]:
    with db.connect() as c:
        return [
            (float(r[0]), float(r[1]))
            for r in c.execute(sa.text('SELECT lon, lat FROM "case" WHERE description = :d'), {"d": description})
        ]


def start_report(page: Any, seed: int) -> None:
    page.get_by_test_id("new-report").click()
    choose_photos(page, "photo-input", [jpeg(seed)])
    page.locator(".thumbs img").first.wait_for()
    page.get_by_test_id("class-search").fill("上水井盖")
    page.get_by_test_id("class-option").filter(has_text="上水井盖").first.click()
    page.get_by_test_id("class-chosen").wait_for()


def drag_pin(page: Any, dx: int, dy: int) -> None:
    box = page.get_by_test_id("map-pin").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=5)
    page.mouse.move(x + dx, y + dy, steps=5)
    page.mouse.up()


def test_dragging_the_pin_on_the_city_map_moves_the_stored_case(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    start_report(page, 600)
    page.wait_for_function(MAP_READY, arg="minimap", timeout=30_000)
    assert page.get_by_test_id("minimap").get_attribute("data-tiles") == "city"  # the app's own style and tiles
    assert page.get_by_test_id("position").inner_text().count("精度") == 1
    drag_pin(page, 80, -40)  # east and north
    page.get_by_test_id("position").filter(has_text="已手动调整位置").wait_for()
    page.get_by_test_id("description").fill("拖动图钉上报")
    page.get_by_test_id("submit-report").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=outbox-item][data-state=sent]') !== null", timeout=60_000
    )
    [(lon, lat)] = case_at(db, "拖动图钉上报")
    # ~1 m per pixel at zoom 17 here: the case is where the pin was dropped, not where the phone is.
    assert 40 / 111_000 < lon - HERE[0] < 160 / 111_000
    assert 15 / 111_000 < lat - HERE[1] < 80 / 111_000


def test_offline_the_map_falls_back_to_a_bare_style_and_the_pin_still_moves(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    page.evaluate("navigator.serviceWorker.ready")
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30_000)
    page.reload()  # the shell (with MapLibre) now comes from the service worker
    page.get_by_test_id("tasks").wait_for()
    phone.set_offline(True)
    start_report(page, 601)
    page.wait_for_function(MAP_READY, arg="minimap", timeout=30_000)  # MapLibre and its worker from the cache
    assert page.get_by_test_id("minimap").get_attribute("data-tiles") == "none"
    assert "精度" in page.get_by_test_id("position").inner_text()
    drag_pin(page, -60, 0)
    page.get_by_test_id("position").filter(has_text="已手动调整位置").wait_for()
    page.get_by_test_id("description").fill("离线拖动图钉")
    page.get_by_test_id("submit-report").click()
    page.get_by_test_id("outbox-list").wait_for()
    phone.set_offline(False)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=outbox-item][data-state=sent]') !== null", timeout=60_000
    )
    [(lon, _)] = case_at(db, "离线拖动图钉")
    assert HERE[0] - lon > 30 / 111_000
