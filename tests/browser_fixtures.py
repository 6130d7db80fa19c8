"""Browser-test fixtures for every folder: a real server, Debian's Chromium driven by Playwright, artifacts.

Loaded once through ``pytest_plugins`` in ``tests/conftest.py``: a fixture imported into two conftests would be
two session fixtures, and two sync Playwright instances cannot run at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console import ROOT, ThreadServer

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def server(app: Any) -> Iterator[ThreadServer]:
    with ThreadServer(app) as srv:
        yield srv


# Per module, not per session: while Playwright's sync API runs, an asyncio loop is marked running in the main
# thread, so tests after the browser modules that call asyncio.run() (raw-ASGI and burst tests) would fail,
# and modules first imported under its greenlets can trip CPython 3.11's AST recursion check.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where this test saves its screenshots (``test-artifacts/`` is gitignored)."""
    path = ARTIFACTS / request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    path.mkdir(parents=True, exist_ok=True)
    return path
