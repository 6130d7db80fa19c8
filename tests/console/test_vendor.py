"""The front-end libraries come from npm (the committed lock file) and are served by gridcity itself."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gridcity.root.console import NODE_MODULES, VENDOR_DIRS
from tests.console import ROOT

LOCK = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(VENDOR_DIRS))
def test_every_served_library_is_locked_and_installed(name: str) -> None:
    package = VENDOR_DIRS[name].split("/")[0]
    assert f"node_modules/{package}" in LOCK["packages"], f"{package} is not in package-lock.json"
    assert (NODE_MODULES / VENDOR_DIRS[name]).is_dir(), "run scripts/setup.sh (npm ci)"


@pytest.mark.parametrize(
    ("url", "marker"),
    [
        ("/vendor/maplibre-gl/maplibre-gl.mjs", b"maplibre"),
        ("/vendor/echarts/echarts.min.js", b"echarts"),
        ("/vendor/swagger-ui/swagger-ui-bundle.js", b"SwaggerUI"),
    ],
)
def test_vendor_files_are_served_from_node_modules(client: TestClient, url: str, marker: bytes) -> None:
    r = client.get(url)
    assert r.status_code == 200
    assert marker in r.content[:2_000_000]


def test_vendor_serves_only_the_named_packages(client: TestClient) -> None:
    assert client.get("/vendor/maplibre-gl/../../package.json").status_code == 404
    assert client.get("/vendor/zrender/index.js").status_code == 404


def test_api_docs_load_nothing_from_outside(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert client.get("/redoc").status_code == 404


@pytest.mark.browser
def test_api_docs_render_offline_in_chromium(server: Any, browser: Any) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    assert outside == []
    ctx.close()
