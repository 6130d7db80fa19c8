"""Secrets never reach a log line (issue 15): a real uvicorn server, every logger at DEBUG and the access log
on, representative traffic (logins right and wrong, bearer calls, the websocket, phone numbers through the
console, the phone API and Open311), then the whole log is searched for the secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
from websockets.sync.client import connect

from gridcity.settings import Settings
from tests.casework.helpers import LAT, LON
from tests.conftest import Org, make_jpeg
from tests.console import free_port

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import logging, os, sys, uvicorn
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
logging.getLogger("sqlalchemy").setLevel(logging.DEBUG)  # SQLAlchemy sets its own root logger to WARN
from gridcity.root.app import create_app
from gridcity.settings import Settings
settings = Settings(database_url=os.environ["T_DB"], data_dir=os.environ["T_DATA"], secret_key=os.environ["T_SECRET"],
                    monitor_interval_seconds=0)
app = create_app(settings)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="trace", access_log=True,
            ws="websockets-sansio", log_config=None)  # uvicorn's loggers propagate to the DEBUG root
"""

PASSWORD = "password-123"  # the test organisation's password
WRONG_PASSWORD = "Wr0ng-but-Secret-Passw0rd"
NEW_PASSWORD = "Brand-New-Secret-9876"
PHONES = ("13912345678", "13787654321", "13655550000")


def test_no_token_password_or_phone_number_in_any_log_line(orgdata: Org, settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {
        **os.environ,
        "T_DB": settings.resolved_database_url(),
        "T_DATA": str(settings.data_dir),
        "T_SECRET": settings.resolved_secret_key(),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        tokens: list[str] = []
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
            with httpx.Client(base_url=url, timeout=30) as http:
                # Logins, right and wrong, on the console and the phone.
                assert (
                    http.post(
                        "/api/v1/auth/token", data={"username": "acceptor", "password": WRONG_PASSWORD}
                    ).status_code
                    == 401
                )
                r = http.post("/api/v1/auth/token", data={"username": "acceptor", "password": PASSWORD})
                assert r.status_code == 200
                tokens.append(r.json()["access_token"])
                acceptor = {"Authorization": f"Bearer {tokens[-1]}"}
                r = http.post("/mobile/v1/auth/token", data={"username": "inspector", "password": PASSWORD})
                assert r.status_code == 200
                tokens.append(r.json()["access_token"])
                inspector = {"Authorization": f"Bearer {tokens[-1]}"}
                r = http.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
                tokens.append(r.json()["access_token"])
                admin = {"Authorization": f"Bearer {tokens[-1]}"}
                # Bearer calls, a refused one and a user created with a password.
                assert http.get("/api/v1/auth/me", headers=acceptor).status_code == 200
                assert http.get("/api/v1/users", headers=inspector).status_code == 403
                assert (
                    http.post(
                        "/api/v1/users",
                        headers=admin,
                        json={"username": "newbie", "password": NEW_PASSWORD, "role": "leader"},
                    ).status_code
                    == 201
                )
                assert (
                    http.post(
                        "/api/v1/users",
                        headers=admin,
                        json={"username": "broken", "password": NEW_PASSWORD, "role": "no-such-role"},
                    ).status_code
                    == 422
                )
                # A hotline report with the caller's phone number.
                r = http.post(
                    "/api/v1/cases",
                    headers=acceptor,
                    json={
                        "action": "public_report",
                        "class_code": "C0101",
                        "lon": LON,
                        "lat": LAT,
                        "description": "市民来电",
                        "reporter": {"name": "市民甲", "phone": PHONES[0]},
                    },
                )
                assert r.status_code == 201, r.text
                # Open311 with a phone number, and a refused one (bad input) with another.
                r = http.post(
                    "/open311/v2/requests.json",
                    data={
                        "api_key": "demo-open311-key",
                        "service_code": "C0101",
                        "lat": str(LAT),
                        "long": str(LON),
                        "phone": PHONES[1],
                        "first_name": "张",
                    },
                    files=[("media", ("a.jpg", make_jpeg(seed=4242), "image/jpeg"))],
                )
                assert r.status_code == 200, r.text
                assert (
                    http.post(
                        "/open311/v2/requests.json",
                        data={
                            "api_key": "demo-open311-key",
                            "service_code": "C0101",
                            "lat": "999",
                            "long": str(LON),
                            "phone": PHONES[2],
                        },
                    ).status_code
                    == 400
                )
                # The phone API: a report with photos.
                r = http.post(
                    "/mobile/v1/reports",
                    headers={**inspector, "Idempotency-Key": "log-1"},
                    data={"report": json.dumps({"class_code": "C0101", "lon": LON, "lat": LAT})},
                    files=[("photos", ("p.jpg", make_jpeg(seed=4243), "image/jpeg"))],
                )
                assert r.status_code == 201, r.text
                # The websocket, authenticated by its first frame; and one that tried the URL.
                ws_url = url.replace("http://", "ws://") + "/ws/live"
                with connect(ws_url, open_timeout=10, proxy=None) as ws:
                    ws.send(json.dumps({"type": "auth", "token": tokens[0]}))
                    assert json.loads(ws.recv(timeout=15))["type"] == "hello"
                with connect(
                    ws_url, open_timeout=10, proxy=None, subprotocols=["gridcity.live", f"bearer.{tokens[1]}"]
                ) as ws:  # type: ignore[list-item]
                    assert json.loads(ws.recv(timeout=15))["type"] == "hello"
                with connect(
                    ws_url, open_timeout=10, proxy=None, additional_headers={"Authorization": f"Bearer {tokens[2]}"}
                ) as ws:
                    assert json.loads(ws.recv(timeout=15))["type"] == "hello"
                with connect(ws_url + "?token=" + tokens[0], open_timeout=10, proxy=None) as ws:
                    assert json.loads(ws.recv(timeout=15))["code"] == "ws.token_in_url"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log_path.read_text("utf-8", errors="replace")
    # The log did capture the traffic (so an empty log cannot pass) ...
    assert "POST /api/v1/auth/token" in text and "/ws/live" in text and "sqlalchemy.engine" in text
    assert "INSERT INTO public_reporter" in text
    # ... and none of the secrets.
    secrets = {"token": tokens, "password": [PASSWORD, WRONG_PASSWORD, NEW_PASSWORD], "phone": list(PHONES)}
    leaks = [(kind, s[:12]) for kind, values in secrets.items() for s in values if s in text]
    for tok in tokens:  # not even a part of one (a log line may elide a long value's middle)
        head, payload, signature = tok.split(".")
        leaks += [("token part", part[:8]) for part in (payload, signature[:16], signature[-16:]) if part in text]
    assert not leaks, f"secrets in the server log: {leaks}"
