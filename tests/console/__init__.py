"""Real-server helpers for the live-stream, multi-worker and browser tests.

A uvicorn server runs the real app on a free 127.0.0.1 port, either in a thread of the test process
(``ThreadServer``) or as a separate process (``spawn_worker``, used to prove that two workers on one
PostgreSQL database deliver each other's events).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
import uvicorn
from websockets.sync.client import ClientConnection, connect

from gridcity.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadServer:
    """The app served by uvicorn in a background thread (same process, so tests may tune ``app.state``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


WORKER_CODE = """
import os, sys, uvicorn
from gridcity.root.app import create_app
from gridcity.settings import Settings
settings = Settings(database_url=os.environ["T_DB"], data_dir=os.environ["T_DATA"], secret_key=os.environ["T_SECRET"])
app = create_app(settings)
# Only LISTEN/NOTIFY may deliver another worker's events in the tests: the safety-net poll is switched off.
app.state.live_config.poll_seconds = float(os.environ.get("T_POLL", "3600"))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", ws="websockets-sansio",
            access_log=False)
"""


def spawn_worker(settings: Settings, *, poll_seconds: float = 3600) -> tuple[subprocess.Popen[bytes], str]:
    """Start one more app worker as its own process on a free port; returns it and its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "T_DB": settings.resolved_database_url(),
        "T_DATA": str(settings.data_dir),
        "T_SECRET": settings.resolved_secret_key(),
        "T_POLL": str(poll_seconds),
    }
    proc = subprocess.Popen([sys.executable, "-c", WORKER_CODE, str(port)], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("worker process did not start")
        time.sleep(0.1)


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Stop a worker started by ``spawn_worker``."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def bearer(headers: dict[str, str]) -> str:
    """The token inside ``{"Authorization": "Bearer …"}``."""
    return headers["Authorization"].split(" ", 1)[1]


def ws_open(base_url: str, token: str | None, *, via: str = "frame", **params: int) -> ClientConnection:
    """Open ``/ws/live`` with resume parameters, authenticated ``via`` the first frame (default), the
    subprotocol ``bearer.<token>`` or the ``Authorization`` header; never with the token in the URL."""
    q = [f"{k}={v}" for k, v in params.items()]
    ws_url = base_url.replace("http://", "ws://") + "/ws/live" + ("?" + "&".join(q) if q else "")
    if via == "subprotocol":
        return connect(ws_url, open_timeout=10, proxy=None, subprotocols=["gridcity.live", f"bearer.{token}"])  # type: ignore[list-item]
    if via == "header":
        return connect(ws_url, open_timeout=10, proxy=None, additional_headers={"Authorization": f"Bearer {token}"})
    return _FirstFrameAuth(connect(ws_url, open_timeout=10, proxy=None), token)  # type: ignore[return-value]


class _FirstFrameAuth:
    """``with ws_open(...) as ws``: the connection, with the ``auth`` frame sent first."""

    def __init__(self, cm: Any, token: str | None) -> None:
        self.cm, self.token = cm, token

    def __enter__(self) -> ClientConnection:
        ws: ClientConnection = self.cm.__enter__()
        ws.send(json.dumps({"type": "auth", "token": self.token}))
        return ws

    def __exit__(self, *exc: Any) -> Any:
        return self.cm.__exit__(*exc)


def recv(ws: ClientConnection, timeout: float = 15) -> dict[str, Any]:
    """The next frame as JSON (fails the test if nothing arrives in ``timeout`` seconds)."""
    data: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return data


def recv_until(ws: ClientConnection, kind: str, timeout: float = 15) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Frames until one of type ``kind``; returns it and the frames before it (pings dropped)."""
    before = []
    while True:
        msg = recv(ws, timeout)
        if msg["type"] == kind:
            return msg, before
        if msg["type"] != "ping":
            before.append(msg)
