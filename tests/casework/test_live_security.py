"""The live websocket's security (issue 15): no token in the URL, the stream ends with its token or user,
resume points beyond the newest are answered, and a resume is bounded and rate limited. Real uvicorn,
real websockets."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
import pytest
import sqlalchemy as sa
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from casework import live
from gridcity import security
from tests.casework.helpers import act, report
from tests.conftest import Org
from tests.console import ThreadServer, bearer, recv, recv_until, ws_open


@pytest.fixture
def server(app: Any) -> Iterator[ThreadServer]:
    with ThreadServer(app) as srv:
        yield srv


@pytest.fixture
def http(server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def token(org: Org, user: str) -> str:
    return bearer(org.headers(user))


def closed_with(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=20)
    return info.value.rcvd.code if info.value.rcvd is not None else None


def filed(http: httpx.Client, org: Org) -> dict[str, Any]:
    return act(http, org, report(http, org), "shiftlead", "file")  # type: ignore[arg-type]


# ---- the token never goes in the URL ----------------------------------------------------------------------


def test_a_token_in_the_url_is_refused(server: ThreadServer, orgdata: Org) -> None:
    from websockets.sync.client import connect

    url = server.ws_url + "/ws/live?token=" + token(orgdata, "dispatcher")
    with connect(url, open_timeout=10, proxy=None) as ws:
        err = recv(ws)
        assert err["type"] == "error" and err["code"] == "ws.token_in_url"
        assert closed_with(ws) == 1008


@pytest.mark.parametrize("via", ["frame", "subprotocol", "header"])
def test_the_token_comes_in_the_first_frame_the_subprotocol_or_the_header(
    server: ThreadServer, orgdata: Org, via: str
) -> None:
    with ws_open(server.url, token(orgdata, "dispatcher"), via=via) as ws:
        hello = recv(ws)
        assert hello["type"] == "hello" and hello["user_id"] == orgdata.ids["dispatcher"]
        if via == "subprotocol":
            assert ws.subprotocol == "gridcity.live"  # the token is not echoed back
        recv_until(ws, "synced")


def test_a_first_frame_that_is_not_auth_is_refused(server: ThreadServer) -> None:
    from websockets.sync.client import connect

    with connect(server.ws_url + "/ws/live", open_timeout=10, proxy=None) as ws:
        ws.send('{"type": "ping"}')
        err = recv(ws)
        assert err["type"] == "error" and err["code"] == "auth.missing_token"
        assert closed_with(ws) == 1008


def test_the_console_sends_no_token_in_the_url() -> None:
    from pathlib import Path

    js = (Path(__file__).resolve().parents[2] / "gridcity" / "static" / "app.js").read_text("utf-8")
    assert "token=" not in js and '"auth"' in js


# ---- the stream ends with its token or its user ---------------------------------------------------------


def test_the_stream_ends_when_its_token_expires(server: ThreadServer, orgdata: Org) -> None:
    short = security.create_token(
        user_id=orgdata.ids["dispatcher"], role="dispatcher", secret=orgdata.secret, ttl=dt.timedelta(seconds=2)
    )
    with ws_open(server.url, short) as ws:
        recv_until(ws, "synced")
        err, _ = recv_until(ws, "error", timeout=30)
        assert err["code"] == "auth.token_expired"
        assert closed_with(ws) == 1008


def test_the_stream_ends_when_its_user_is_deactivated(
    server: ThreadServer, http: httpx.Client, orgdata: Org, db: sa.Engine
) -> None:
    server.app.state.live_config.user_check_seconds = 0.2
    with (
        ws_open(server.url, token(orgdata, "dispatcher")) as ws,
        ws_open(server.url, token(orgdata, "shiftlead")) as other,
    ):
        recv_until(ws, "synced")
        recv_until(other, "synced")
        with db.begin() as c:
            c.execute(sa.text("UPDATE app_user SET active = false WHERE id = :i"), {"i": orgdata.ids["dispatcher"]})
        err, _ = recv_until(ws, "error", timeout=30)
        assert err["code"] == "auth.user_inactive"
        assert closed_with(ws) == 1008
        # Another user's stream goes on.
        case = report(http, orgdata)  # type: ignore[arg-type]
        assert recv_until(other, "event")[0]["case_id"] == case["id"]


# ---- resume points beyond the newest, bounded and rate-limited replays ----------------------------------


def test_connecting_with_since_beyond_the_newest_is_answered_with_a_reset(
    server: ThreadServer, http: httpx.Client, orgdata: Org
) -> None:
    filed(http, orgdata)  # events 1, 2
    with ws_open(server.url, token(orgdata, "dispatcher"), since=500) as ws:
        assert recv(ws)["type"] == "hello"
        reset = recv(ws)
        assert reset == {"type": "reset", "reason": "since_ahead", "last_id": 2, "last_alert_id": 0}
        recv_until(ws, "synced")
        # The next event (id 3, below the claimed 500) is delivered, not silently skipped.
        case = report(http, orgdata)  # type: ignore[arg-type]
        ev, _ = recv_until(ws, "event")
        assert ev["id"] == 3 and ev["case_id"] == case["id"]


def test_a_resume_beyond_the_newest_gets_an_error(server: ThreadServer, http: httpx.Client, orgdata: Org) -> None:
    filed(http, orgdata)
    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        recv_until(ws, "synced")
        ws.send(json.dumps({"type": "resume", "last_id": 16_000}))
        err, _ = recv_until(ws, "error")
        assert err["code"] == "ws.resume_ahead" and err["last_id"] == 2
        recv_until(ws, "synced")
        case = report(http, orgdata)  # type: ignore[arg-type]
        assert recv_until(ws, "event")[0]["case_id"] == case["id"]


def test_one_resume_frame_replays_a_bounded_gap(server: ThreadServer, http: httpx.Client, orgdata: Org) -> None:
    assert live.LiveConfig().max_gap_ids <= 1_000  # one 40-byte frame never makes the server send 16,000
    server.app.state.live_config.max_gap_ids = 3
    for _ in range(3):
        filed(http, orgdata)  # 6 events
    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        recv_until(ws, "synced")
        ws.send('{"type": "resume", "last_id": 0}')
        synced, before = recv_until(ws, "synced")
        assert [m["type"] for m in before] == ["reset"] and before[0]["last_id"] == 6
        ws.send('{"type": "resume", "last_id": 3}')  # within the bound: replayed
        synced, before = recv_until(ws, "synced")
        assert [m["id"] for m in before] == [4, 5, 6]


def test_resumes_are_rate_limited(server: ThreadServer, http: httpx.Client, orgdata: Org) -> None:
    cfg = server.app.state.live_config
    cfg.resume_burst, cfg.resume_per_second = 2, 0.001
    filed(http, orgdata)
    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        recv_until(ws, "synced")
        for _ in range(2):
            ws.send('{"type": "resume", "last_id": 0}')
            _, replay = recv_until(ws, "synced")
            assert [m["id"] for m in replay] == [1, 2]
        ws.send('{"type": "resume", "last_id": 0}')
        err = recv(ws)
        assert err["type"] == "error" and err["code"] == "ws.rate_limited" and err["retry_after"] > 0
        ws.send('{"type": "ping"}')  # the connection stays usable
        assert recv(ws)["type"] == "pong"
