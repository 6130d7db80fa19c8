"""Fixtures for the field app (城管通) tests: a real server, Debian's Chromium as a phone, a small city."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
import pytest
from sqlalchemy.orm import Session

from components.models import Component
from gridcity import security, spatial
from tests.mobile_api.conftest import CELL, DISTRICT, LAT, LON, city, photo  # noqa: F401

#: The one error catalogue (console and phone): code -> {"zh": …, "en": …}.
CATALOGUE: dict[str, dict[str, str]] = json.loads(
    (Path(__file__).resolve().parents[2] / "gridcity" / "static" / "errors.json").read_text(encoding="utf-8")
)
HERE = (LON + CELL / 2, LAT + CELL / 2)  # inside grid (0, 0) of the test city
M = 1 / 111_000
PASSWORD = "password-123"
UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Mobile Safari/537.36"
)
# Playwright's 'Pixel 7' descriptor, spelled out (the browser fixture yields the browser, not the devices table).
PIXEL_7: dict[str, Any] = {
    "viewport": {"width": 412, "height": 839},
    "screen": {"width": 412, "height": 915},
    "device_scale_factor": 2.625,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": UA,
}


def exif_now() -> str:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")


def jpeg(seed: int, lonlat: tuple[float, float] = HERE) -> dict[str, Any]:
    """A real JPEG with EXIF time (now, +08:00) and GPS, as the file chooser takes it."""
    return {
        "name": f"IMG_{seed:04d}.jpg",
        "mimeType": "image/jpeg",
        "buffer": photo(seed, taken=exif_now(), lonlat=lonlat),
    }


@pytest.fixture
def phone(browser: Any, server: Any) -> Iterator[Any]:
    """A phone-sized, touch, geolocated browser context on the test server (service workers allowed)."""
    ctx = browser.new_context(
        **PIXEL_7,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        geolocation={"longitude": HERE[0], "latitude": HERE[1], "accuracy": 8},
        permissions=["geolocation"],
        base_url=server.url,
    )
    yield ctx
    ctx.close()


@pytest.fixture
def api(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def add_component(db: Any, class_code: str, seq: int, dy_m: float) -> str:
    code = f"{DISTRICT}{class_code[1:]}{seq:06d}"
    with Session(db) as s, s.begin():
        s.add(
            Component(
                code=code,
                class_code=class_code,
                name=f"上水井盖{seq}",
                state="完好",
                geom=spatial.ewkt(f"POINT({HERE[0]} {HERE[1] + dy_m * M})"),
            )
        )
    return code


def expired_token(orgdata: Any, username: str) -> str:
    return security.create_token(
        user_id=orgdata.ids[username], role="x", secret=orgdata.secret, ttl=dt.timedelta(seconds=-60)
    )


def login(page: Any, username: str = "inspector") -> None:
    page.goto("/m/")
    submit_login(page, username)


def submit_login(page: Any, username: str) -> None:
    """Fill the login form on the page and wait for the task list."""
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("tasks").wait_for()


def set_session_token(page: Any, token: str) -> None:
    """Replace the stored login's token (an expired one: the next start asks for a new login)."""
    page.evaluate(
        """token => new Promise((ok, fail) => {
        const r = indexedDB.open('chengguantong');
        r.onsuccess = () => { const tx = r.result.transaction('meta', 'readwrite');
          const s = tx.objectStore('meta'); const g = s.get('session');
          g.onsuccess = () => { s.put({...g.result, token}, 'session'); tx.oncomplete = ok; }; };
        r.onerror = fail; })""",
        token,
    )


def relogin_after_expiry(page: Any, orgdata: Any, expired: str, username: str) -> None:
    """``expired``'s stored login runs out and ``username`` logs in on the same phone (no logout in between)."""
    set_session_token(page, expired_token(orgdata, expired))
    page.reload()
    page.get_by_test_id("login-message").wait_for()
    submit_login(page, username)


def choose_photos(page: Any, testid: str, files: list[dict[str, Any]]) -> None:
    """Pick photos through the file chooser, as a user does from the gallery."""
    with page.expect_file_chooser() as fc:
        page.get_by_test_id(f"{testid}-gallery").click()
    fc.value.set_files(files)


def compose_report(
    page: Any, *, seeds: list[int], query: str = "上水井盖", description: str = "井盖破损", pick_component: bool = False
) -> None:
    page.get_by_test_id("new-report").click()
    choose_photos(page, "photo-input", [jpeg(s) for s in seeds])
    page.locator(".thumbs img").nth(len(seeds) - 1).wait_for()
    page.get_by_test_id("class-search").fill(query)
    page.get_by_test_id("class-option").filter(has_text=query).first.click()
    page.get_by_test_id("class-chosen").wait_for()
    if pick_component:
        page.get_by_test_id("component-option").first.wait_for()
    page.get_by_test_id("description").fill(description)
    page.get_by_test_id("submit-report").click()
    page.get_by_test_id("outbox-list").wait_for()
