"""The live websocket ``/ws/live`` and the startup work of the live stream and the deadline monitor.

Protocol (JSON text frames):

* Connect to ``/ws/live[?since=<event id>][&since_alert=<alert id>]``. The token never goes in the URL
  (URLs end up in access logs): either offer the subprotocols ``gridcity.live`` and ``bearer.<token>``
  (``new WebSocket(url, ["gridcity.live", "bearer." + token])``; the server selects ``gridcity.live``), or
  send ``Authorization: Bearer``, or send ``{"type": "auth", "token": "<bearer token>"}`` as the first frame
  (within ``auth_timeout_seconds``). A ``token`` query parameter is refused (``ws.token_in_url``). A missing,
  invalid or expired token: an ``error`` frame, then close code 1008 (policy violation).
* The connection ends (``error`` frame ``auth.token_expired`` / ``auth.user_inactive``, close 1008) when its
  token expires or its user is deactivated (checked every ``user_check_seconds``).
* Server → client: ``hello`` (who you are, the current marks), then the gap since ``since`` / ``since_alert``
  replayed from the log, then ``synced``, then live ``event`` (field ``id`` = case_event id, increasing) and
  ``alert`` (field ``alert_id``, increasing) frames; ``ping`` every ``heartbeat`` seconds of silence with
  ``last_id``/``last_alert_id`` (the client has everything visible up to there); ``resync`` (then close
  1013) when the client fell too far behind: reconnect with ``since``/``since_alert`` from that frame;
  ``reset`` when the gap is too large to replay (more than ``max_gap_ids``) or the resume point lies beyond
  the newest item (``reason: since_ahead``): reload the views, the stream continues live from ``last_id``.
* Client → server: ``{"type": "ping"}`` → ``pong``. ``{"type": "resume", "last_id": N}`` (and/or
  ``"last_alert_id": M``) on an open socket: the events after ``N`` (alerts after ``M``) are replayed from
  the log in order, then ``synced``, then the live stream continues with no id sent twice after the replay
  (a too-large gap gets ``reset`` as on connect; an id beyond the newest gets an ``error`` frame
  ``ws.resume_ahead`` naming the newest id). Resumes are rate limited per connection (``resume_burst``,
  then ``resume_per_second``): one too many gets ``ws.rate_limited`` with ``retry_after`` seconds.
  Anything else (not JSON, not an object, unknown type, bad ids, binary) → an ``error`` frame; the
  connection stays open.

Hot path: an item is serialised once by the pump and routed only to the subscribers who may see it, and
written to each socket in the pump's own step (``Subscriber.kick``); only a write that would wait moves to
a task of that connection. Heartbeats and the send timeout are kept by one watchdog task per worker
(``LiveHub._watch``), not by a timer per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from casework import live
from casework import service as casework_service
from casework.lifecycle import Actor
from gridcity import security
from gridcity.database import transaction
from gridcity.deps import user_from_token
from gridcity.errors import NotAuthenticated
from gridcity.types import utcnow

log = logging.getLogger("gridcity.live")

router = APIRouter(tags=["live"])

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013


def setup(app: FastAPI) -> None:
    """Create the worker's hub, install the hooks, and run the hub and the monitor with the app's lifespan."""
    settings = app.state.settings
    live.install_hooks()
    app.state.live_config = live.LiveConfig()
    app.state.live_hub = live.LiveHub(
        app.state.read_session_factory, settings.resolved_database_url(), app.state.live_config
    )
    # Seconds between deadline-monitor runs; 0 or less disables the task (monitor_once stays callable).
    app.state.monitor_interval = float(settings.monitor_interval_seconds)
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        hub: live.LiveHub = app.state.live_hub
        try:
            await hub.ensure_started()
        except Exception:  # e.g. a database not migrated yet: the hub starts with the first websocket
            log.warning("live stream not started at startup; will start on first connection", exc_info=True)
        monitor = None
        if app.state.monitor_interval > 0:
            monitor = asyncio.create_task(_monitor_loop(app), name="gridcity-deadline-monitor")
        try:
            async with previous(a) as state:
                yield state
        finally:
            if monitor is not None:
                monitor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await monitor
            await hub.stop()

    app.router.lifespan_context = lifespan


def run_monitor(app: FastAPI) -> int:
    """One monitor run in its own transaction; returns how many warnings were raised."""
    from casework.monitor import monitor_once  # noqa: PLC0415

    with transaction(app.state.session_factory) as s:
        return len(monitor_once(s, now=utcnow(), rules=app.state.rules))


async def _monitor_loop(app: FastAPI) -> None:
    while True:
        await asyncio.sleep(app.state.monitor_interval)
        try:
            await asyncio.to_thread(run_monitor, app)
        except Exception:  # we keep monitoring; a failed run is retried on the next tick
            log.exception("deadline monitor run failed")


SUBPROTOCOL = "gridcity.live"
BEARER_PREFIX = "bearer."


def _authenticate(app: Any, token: str | None) -> tuple[Actor, float | None]:
    """The actor of a token and the token's expiry (epoch seconds)."""
    with app.state.read_session_factory() as s:
        user = user_from_token(s, app.state.settings, token)
        exp = security.decode_token(token or "", secret=app.state.settings.resolved_secret_key()).get("exp")
        return casework_service.actor_of(user), float(exp) if isinstance(exp, (int, float)) else None


def _handshake_token(ws: WebSocket) -> tuple[str | None, str | None]:
    """The token offered in the handshake (subprotocol or header) and the subprotocol to select."""
    offered = list(ws.scope.get("subprotocols") or [])
    token = next((p[len(BEARER_PREFIX) :] for p in offered if p.startswith(BEARER_PREFIX)), None)
    auth = ws.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    if SUBPROTOCOL in offered:
        return token, SUBPROTOCOL
    # A client must get one of the protocols it offered back; one that offered only its token gets that.
    return token, next((p for p in offered if p.startswith(BEARER_PREFIX)), None)


async def _first_frame_token(ws: WebSocket, timeout: float) -> str | None:
    """The token of a first ``{"type": "auth", "token": ...}`` frame (None for anything else or silence)."""
    try:
        async with asyncio.timeout(timeout):
            message = await ws.receive()
    except TimeoutError:
        return None
    try:
        data = json.loads(message.get("text") or "")
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("type") == "auth" and isinstance(data.get("token"), str):
        return str(data["token"])
    return None


async def _refuse(ws: WebSocket, code: str, msg: str) -> None:
    await ws.send_text(live._dumps({"type": "error", "code": code, "msg": msg}))
    await ws.close(code=CLOSE_POLICY, reason=code)


def _int_param(ws: WebSocket, name: str) -> int | None:
    raw = ws.query_params.get(name)
    if raw is None or raw == "":
        return None
    value = int(raw)  # ValueError handled by the caller
    if value < 0:
        raise ValueError(name)
    return value


async def _send(ws: WebSocket, text: str, timeout: float) -> None:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
    async with asyncio.timeout(timeout):
        await ws.send_text(text)


@router.websocket("/ws/live")
async def live_stream(ws: WebSocket) -> None:
    """Stream the case events and deadline warnings the user may see, resumable by id."""
    token, subprotocol = _handshake_token(ws)
    await ws.accept(subprotocol=subprotocol)
    if "token" in ws.query_params:
        await _refuse(
            ws,
            "ws.token_in_url",
            "never put the token in the URL; send it as the first frame "
            '{"type": "auth", "token": ...} or as the subprotocol bearer.<token>',
        )
        return
    hub: live.LiveHub = ws.app.state.live_hub
    cfg: live.LiveConfig = hub.config
    if not token:
        try:
            token = await _first_frame_token(ws, cfg.auth_timeout_seconds)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
    try:
        actor, expires_at = await asyncio.to_thread(_authenticate, ws.app, token)
    except NotAuthenticated as exc:
        await _refuse(ws, exc.code, exc.message)
        return
    try:
        since, since_alert = _int_param(ws, "since"), _int_param(ws, "since_alert")
    except ValueError:
        await ws.send_text(
            live._dumps(
                {"type": "error", "code": "ws.bad_since", "msg": "since and since_alert must be non-negative integers"}
            )
        )
        await ws.close(code=CLOSE_POLICY, reason="ws.bad_since")
        return

    sub = await hub.subscribe(actor, since=since, since_alert=since_alert)
    sub.expires_at = expires_at
    tasks: list[asyncio.Task[Any]] = []
    try:
        await _send(
            ws,
            live._dumps(
                {
                    "type": "hello",
                    "user_id": actor.user_id,
                    "role": str(actor.role),
                    "department_id": actor.department_id,
                    "last_id": hub.hw_event,
                    "last_alert_id": hub.hw_alert,
                    "heartbeat": cfg.heartbeat_seconds,
                }
            ),
            cfg.send_timeout_seconds,
        )
        if (since is not None and since > sub.delivered_event) or (
            since_alert is not None and since_alert > sub.delivered_alert
        ):
            # The client claims ids beyond the newest: never silence, it is told to reload from the marks.
            await _send(
                ws,
                live._dumps(
                    {
                        "type": "reset",
                        "reason": "since_ahead",
                        "last_id": sub.delivered_event,
                        "last_alert_id": sub.delivered_alert,
                    }
                ),
                cfg.send_timeout_seconds,
            )
        await _replay_gap(ws, hub, sub, since=since, since_alert=since_alert)
        await _send(
            ws,
            live._dumps({"type": "synced", "last_id": sub.delivered_event, "last_alert_id": sub.delivered_alert}),
            cfg.send_timeout_seconds,
        )
        sub.go_live(ws.send_text, lambda text: _resume(ws, hub, sub, text))
        tasks = [
            asyncio.create_task(_receive_loop(ws, sub, cfg)),
            asyncio.create_task(sub.done.wait()),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[1] in done and sub.overflow.is_set():
            if sub.task is not None:  # a write stuck on this client's socket: we give up on it
                sub.task.cancel()
            # We tell the client where to resume and let go of it; its gap is filled from the log.
            with contextlib.suppress(Exception):
                await _send(
                    ws,
                    live._dumps(
                        {
                            "type": "resync",
                            "reason": "slow_client",
                            "since": sub.delivered_event,
                            "since_alert": sub.delivered_alert,
                        }
                    ),
                    cfg.send_timeout_seconds,
                )
                async with asyncio.timeout(cfg.send_timeout_seconds):
                    await ws.close(code=CLOSE_TRY_AGAIN, reason="resync")
        elif tasks[1] in done and sub.reason.startswith("auth."):
            # The token expired or the user was deactivated: the stream ends like a refused connection.
            if sub.task is not None:
                sub.task.cancel()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(cfg.send_timeout_seconds):
                    msg = "token expired" if sub.reason == "auth.token_expired" else "user deactivated"
                    await _refuse(ws, sub.reason, msg)
    except (WebSocketDisconnect, TimeoutError, RuntimeError, OSError):
        pass
    finally:
        hub.unsubscribe(sub)
        if sub.task is not None and not sub.task.done():
            tasks.append(sub.task)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close()


async def _replay_gap(
    ws: WebSocket, hub: live.LiveHub, sub: live.Subscriber, *, since: int | None, since_alert: int | None
) -> None:
    upto_event, upto_alert = sub.pos_event, sub.pos_alert
    await _replay(ws, hub, sub, [("event", since, upto_event), ("alert", since_alert, upto_alert)])


async def _replay(
    ws: WebSocket, hub: live.LiveHub, sub: live.Subscriber, gaps: list[tuple[str, int | None, int]]
) -> None:
    """Send the visible items of each gap ``(after, upto]`` from the log (or ``reset`` if too large)."""
    cfg = hub.config
    if any(after is not None and upto - after > cfg.max_gap_ids for _, after, upto in gaps):
        marks = {kind: upto for kind, _, upto in gaps}
        await _send(
            ws,
            live._dumps(
                {"type": "reset", "reason": "gap_too_large", "last_id": marks["event"], "last_alert_id": marks["alert"]}
            ),
            cfg.send_timeout_seconds,
        )
        sub.delivered_event, sub.delivered_alert = marks["event"], marks["alert"]
        return
    for kind, after, upto in gaps:
        if after is None or after >= upto:
            continue
        pages = hub.gap_pages(sub.actor, kind=kind, after=after, upto=upto)
        while True:
            page = await asyncio.to_thread(next, pages, None)
            if page is None:
                break
            for item in page:
                await _send(ws, item.text, cfg.send_timeout_seconds)
        if kind == "event":
            sub.delivered_event = upto
        else:
            sub.delivered_alert = upto


async def _resume(ws: WebSocket, hub: live.LiveHub, sub: live.Subscriber, text: str) -> None:
    """Serve a client's ``resume``: replay from its ids up to what it was sent, then ``synced``.

    This runs in the sender, in stream order: every frame sent before holds an id up to the ``delivered``
    marks and everything still queued is above them, so replaying ``(last_id, delivered]`` and then going
    on with the queue sends each id after ``last_id`` exactly once.
    """
    req = json.loads(text)
    gaps: list[tuple[str, int | None, int]] = []
    for kind, key, delivered in (
        ("event", "last_id", sub.delivered_event),
        ("alert", "last_alert_id", sub.delivered_alert),
    ):
        after = req.get(key)
        newest = max(delivered, hub.hw_event if kind == "event" else hub.hw_alert)
        if after is not None and after > newest:
            # Beyond the newest item: an error naming where the stream is, never silence.
            await _send(
                ws,
                live._dumps(
                    {
                        "type": "error",
                        "code": "ws.resume_ahead",
                        key: newest,
                        "msg": f"{key} {after} is beyond the newest ({newest})",
                    }
                ),
                hub.config.send_timeout_seconds,
            )
            after = None
        elif after is not None and after > delivered:
            # The client claims more than it was sent here (another connection): we skip up to its id.
            if kind == "event":
                sub.skip_event = max(sub.skip_event, after)
            else:
                sub.skip_alert = max(sub.skip_alert, after)
            after = None
        gaps.append((kind, after, delivered))
    await _replay(ws, hub, sub, gaps)
    await _send(
        ws,
        live._dumps(
            {
                "type": "synced",
                "last_id": max(sub.delivered_event, sub.skip_event),
                "last_alert_id": max(sub.delivered_alert, sub.skip_alert),
            }
        ),
        hub.config.send_timeout_seconds,
    )


def _bad(sub: live.Subscriber, msg: str) -> None:
    sub.control({"type": "error", "code": "ws.bad_message", "msg": msg})


async def _receive_loop(ws: WebSocket, sub: live.Subscriber, cfg: live.LiveConfig) -> None:
    loop = asyncio.get_running_loop()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            _bad(sub, "send JSON text frames")
            continue
        try:
            data = json.loads(text)
        except ValueError:
            _bad(sub, "not JSON")
            continue
        if not isinstance(data, dict):
            _bad(sub, "send a JSON object")
            continue
        kind = data.get("type")
        if kind == "ping":
            sub.control({"type": "pong"})
        elif kind == "resume":
            ids = {k: data.get(k) for k in ("last_id", "last_alert_id") if data.get(k) is not None}
            if not ids or any(type(v) is not int or v < 0 for v in ids.values()):
                _bad(sub, "resume needs last_id and/or last_alert_id as non-negative integers")
                continue
            wait = sub.take_resume(loop.time(), cfg)
            if wait > 0:
                sub.control(
                    {
                        "type": "error",
                        "code": "ws.rate_limited",
                        "retry_after": round(wait, 1),
                        "msg": "too many resumes; try again later",
                    }
                )
                continue
            sub.marker(live.RESUME, 0, live._dumps(ids))
        else:
            _bad(sub, f"unknown message type {str(kind)[:40]!r}; 'ping' and 'resume' are understood")
