"""Patrol duty in Chromium as a phone: the track is recorded from watchPosition while on duty, kept offline,
uploaded in batches through the patrol API once online, and today's coverage of the area is shown."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.fieldapp.conftest import login
from tests.mobile_api.conftest import cell_center


def points(db: Any) -> int:
    with db.connect() as c:
        return int(c.execute(sa.text("SELECT count(*) FROM patrol_point")).scalar_one())


def test_patrol_records_the_track_offline_and_uploads_it(phone, orgdata, city, db, artifacts):
    page = phone.new_page()
    login(page)
    page.get_by_test_id("patrol").click()
    toggle = page.get_by_test_id("duty-toggle")
    phone.set_offline(True)
    toggle.click()
    page.locator("[data-testid=duty-toggle][aria-pressed=true]").wait_for()
    for n, (i, j) in enumerate([(0, 0), (1, 0), (1, 1), (0, 1)], start=1):
        lon, lat = cell_center(i, j)
        phone.set_geolocation({"longitude": lon, "latitude": lat, "accuracy": 12})
        # Both counts of the same moment (the recorded count moves first, the unsent one after a read).
        page.get_by_test_id("track-count").filter(has_text=f"已记录 {n} 个轨迹点，{n} 个待上传").wait_for()
    assert points(db) == 0
    phone.set_offline(False)  # back online: the buffered track goes up as one batch
    page.get_by_test_id("track-count").filter(has_text="0 个待上传").wait_for(timeout=60_000)
    assert points(db) == 4
    toggle.click()  # off duty
    page.locator("[data-testid=duty-toggle][aria-pressed=false]").wait_for()
    page.get_by_test_id("tasks").click()
    page.get_by_test_id("patrol").click()
    page.get_by_test_id("coverage").filter(has_text="4/4").wait_for()
    assert "100%" in page.get_by_test_id("coverage").inner_text()
    page.screenshot(path=str(artifacts / "patrol.png"), full_page=True)
