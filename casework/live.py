"""The live stream behind ``/ws/live``: case events and deadline warnings, fanned out to connected users.

How it works (one :class:`LiveHub` per app worker):

* **Ordering and ids.** Every message about a case event carries the event's id (``case_event.id``).
  Event writers take a PostgreSQL advisory lock (``casework.service``), and SQLite serialises writers, so
  ids become visible in increasing order: reading ``id > last`` never skips an event that commits later.
  Deadline warnings have their own monotonic id (``case_alert.id``, message field ``alert_id``), ordered by
  the monitor's own advisory lock. The two sequences are independent; a client resumes each one.
* **Live source.** A single *pump* task per worker reads ``case_event``/``case_alert`` rows with ids above
  its high-water marks and fans them out. It is woken by (a) a SQLAlchemy ``after_commit`` hook in this
  process (set by the pipeline subscriber :func:`on_change` and the monitor, so only committed rows are read), (b) on
  PostgreSQL, ``LISTEN gridcity_events``: :func:`on_change` runs ``pg_notify`` inside the case's
  transaction, which PostgreSQL delivers at commit to every worker, and (c) a slow poll as a safety net.
  Because the pump reads "everything above the mark", a lost or coalesced wake-up never loses an event.
* **Per-client queues.** The pump never awaits a socket: it puts the (already serialised) message on each
  subscriber's bounded queue. A subscriber whose queue is full is marked overflowed; its connection gets
  ``{"type": "resync", "since": <last id delivered>, ...}`` and is closed (1013), so one slow client
  never delays the others. The client reconnects with ``?since=`` and the gap is filled from the log.
* **Resume.** On connect with ``since`` (and ``since_alert``) the subscriber is registered at the pump's
  current marks first, then the gap ``(since, mark]`` is read from the log (filtered by visibility) and sent
  before anything from the queue, so nothing is missed and nothing is sent twice. A gap larger than
  ``max_gap_ids`` is not replayed: the client gets ``{"type": "reset"}`` and reloads its views.
* **Visibility** (as ``casework.lifecycle.can_view``): the centres, leaders and admins see everything;
  department staff see events whose ``case_event.department_id`` is theirs (plus the send-back approval
  that takes a case away from them) and warnings raised while the case was with them; inspectors see
  events and warnings of cases they reported or hold a verify/check task for.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from casework import service as casework_service
from casework.alerts import CaseAlert
from casework.lifecycle import Actor, CaseAction, CaseStatus
from casework.models import Case, CaseEvent
from casework.service import CaseChange
from gridcity import spatial
from gridcity.org import User
from gridcity.roles import CITYWIDE_ROLES, Role
from gridcity.types import utcnow

log = logging.getLogger("gridcity.live")

CHANNEL = "gridcity_events"
DIRTY_KEY = "gridcity_live_dirty"


@dataclass
class LiveConfig:
    """Knobs of the live stream (tests and benchmarks may change them on ``app.state.live_config``)."""

    heartbeat_seconds: float = 15.0
    queue_size: int = 1000
    poll_seconds: float = 5.0
    batch_size: int = 500
    #: The largest gap (in ids) one connect or one ``resume`` replays; a larger one gets ``reset``, so one
    #: small frame never makes the server send more than this many items.
    max_gap_ids: int = 1_000
    send_timeout_seconds: float = 10.0
    listen_postgres: bool = True
    #: ``resume`` frames a connection may send at once, and how fast that allowance refills (per second).
    resume_burst: int = 3
    resume_per_second: float = 0.2
    #: How long a client has to send its ``auth`` frame when it did not authenticate in the handshake.
    auth_timeout_seconds: float = 10.0
    #: How often open connections are checked against ``app_user.active`` (deactivated users are cut off).
    user_check_seconds: float = 10.0


@dataclass(frozen=True)
class LiveItem:
    """One message ready to send, with what decides who may see it."""

    kind: str  # event | alert
    id: int
    text: str
    department_ids: frozenset[int]
    inspector_ids: frozenset[int]


def visible(actor: Actor, item: LiveItem) -> bool:
    """Whether ``actor`` may receive ``item``."""
    if actor.role in CITYWIDE_ROLES:
        return True
    if actor.role is Role.DEPARTMENT:
        return actor.department_id is not None and actor.department_id in item.department_ids
    if actor.role is Role.INSPECTOR:
        return actor.user_id in item.inspector_ids
    return False


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)


_CASE_COLS = (
    Case.number,
    Case.status.label("case_status"),
    Case.version,
    Case.class_code,
    Case.urgency,
    Case.lon,
    Case.lat,
    Case.grid_code,
    Case.department_id.label("case_department_id"),
    Case.reporter_id,
    Case.assigned_inspector_id,
    Case.stage,
    Case.stage_started_at,
    Case.deadline_at,
    Case.warn_at,
)


def _case_part(r: Any, now: dt.datetime) -> dict[str, Any]:
    return {
        "number": r.number,
        "status": str(r.case_status),
        "version": r.version,
        "class_code": r.class_code,
        "urgency": r.urgency,
        "lon": r.lon,
        "lat": r.lat,
        "grid_code": r.grid_code,
        "department_id": r.case_department_id,
        "stage": r.stage,
        "deadline_at": _iso(r.deadline_at),
        "light": casework_service.light_from(
            stage=r.stage, status=CaseStatus(r.case_status), deadline_at=r.deadline_at, warn_at=r.warn_at, now=now
        ),
    }


def _inspectors(r: Any) -> frozenset[int]:
    return frozenset(i for i in (r.reporter_id, r.assigned_inspector_id) if i is not None)


def event_query(*, after: int, upto: int | None = None, limit: int = 500, actor: Actor | None = None) -> sa.Select[Any]:
    """The statement behind :func:`event_items`."""
    q = (
        select(
            CaseEvent.id,
            CaseEvent.case_id,
            CaseEvent.seq,
            CaseEvent.action,
            CaseEvent.from_status,
            CaseEvent.to_status,
            CaseEvent.actor_id,
            CaseEvent.actor_role,
            CaseEvent.department_id,
            CaseEvent.at,
            CaseEvent.note,
            CaseEvent.data,
            *_CASE_COLS,
        )
        .join(Case, Case.id == CaseEvent.case_id)
        .where(CaseEvent.id > after)
        .order_by(CaseEvent.id)
        .limit(limit)
    )
    if upto is not None:
        q = q.where(CaseEvent.id <= upto)
    if actor is not None and actor.role is Role.DEPARTMENT:
        q = q.where(
            sa.or_(CaseEvent.department_id == actor.department_id, CaseEvent.action == CaseAction.APPROVE_SENDBACK)
        )
    elif actor is not None and actor.role is Role.INSPECTOR:
        q = q.where(sa.or_(Case.reporter_id == actor.user_id, Case.assigned_inspector_id == actor.user_id))
    return q


def event_items(
    session: Session, *, after: int, upto: int | None = None, limit: int = 500, actor: Actor | None = None
) -> list[LiveItem]:
    """Events with ``after < id <= upto`` in id order, as messages (prefiltered in SQL for ``actor``)."""
    return events_from_rows(session.execute(event_query(after=after, upto=upto, limit=limit, actor=actor)))


def events_from_rows(rows: Any) -> list[LiveItem]:
    """Rows of :func:`event_query` as messages, each serialised once."""
    now = utcnow()
    out = []
    for r in rows:
        data = r.data or {}
        depts = {r.department_id, data.get("from_department_id")}
        payload = {
            "type": "event",
            "id": r.id,
            "case_id": r.case_id,
            "seq": r.seq,
            "action": str(r.action),
            "from_status": str(r.from_status),
            "to_status": str(r.to_status),
            "actor_id": r.actor_id,
            "actor_role": None if r.actor_role is None else str(r.actor_role),
            "department_id": r.department_id,
            "at": _iso(r.at),
            "note": r.note,
            "data": data,
            "case": _case_part(r, now),
        }
        out.append(
            LiveItem("event", r.id, _dumps(payload), frozenset(d for d in depts if isinstance(d, int)), _inspectors(r))
        )
    return out


def alert_query(*, after: int, upto: int | None = None, limit: int = 500, actor: Actor | None = None) -> sa.Select[Any]:
    """The statement behind :func:`alert_items`."""
    q = (
        select(
            CaseAlert.id,
            CaseAlert.case_id,
            CaseAlert.stage,
            CaseAlert.level,
            CaseAlert.run_started_at,
            CaseAlert.deadline_at.label("alert_deadline_at"),
            CaseAlert.department_id,
            CaseAlert.created_at,
            *_CASE_COLS,
        )
        .join(Case, Case.id == CaseAlert.case_id)
        .where(CaseAlert.id > after)
        .order_by(CaseAlert.id)
        .limit(limit)
    )
    if upto is not None:
        q = q.where(CaseAlert.id <= upto)
    if actor is not None and actor.role is Role.DEPARTMENT:
        q = q.where(CaseAlert.department_id == actor.department_id)
    return q


def alert_items(
    session: Session, *, after: int, upto: int | None = None, limit: int = 500, actor: Actor | None = None
) -> list[LiveItem]:
    """Deadline warnings with ``after < id <= upto`` in id order, as messages."""
    return alerts_from_rows(session.execute(alert_query(after=after, upto=upto, limit=limit, actor=actor)))


def alerts_from_rows(rows: Any) -> list[LiveItem]:
    """Rows of :func:`alert_query` as messages, each serialised once."""
    now = utcnow()
    out = []
    for r in rows:
        payload = {
            "type": "alert",
            "alert_id": r.id,
            "case_id": r.case_id,
            "stage": r.stage,
            "level": r.level,
            "run_started_at": _iso(r.run_started_at),
            "deadline_at": _iso(r.alert_deadline_at),
            "department_id": r.department_id,
            "at": _iso(r.created_at),
            "case": _case_part(r, now),
        }
        depts = frozenset({r.department_id} if r.department_id is not None else ())
        insp = frozenset({r.assigned_inspector_id} if r.assigned_inspector_id is not None else ())
        out.append(LiveItem("alert", r.id, _dumps(payload), depts, insp))
    return out


def high_water(session: Session) -> tuple[int, int]:
    """The largest committed event id and alert id (0 when none)."""
    e = session.scalar(select(sa.func.max(CaseEvent.id))) or 0
    a = session.scalar(select(sa.func.max(CaseAlert.id))) or 0
    return int(e), int(a)


PING = "ping"  # a queue marker: the writer sends a heartbeat with the marks current at that moment
RESUME = "resume"  # a queue marker: the connection replays the log from the id the client asked for


class _Started:
    """Await a coroutine that has already run up to its first suspension (it yielded ``first``)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation or error thrown into the awaiting task
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


@dataclass(eq=False)
class Subscriber:
    """One connected client: its user, its bounded queue and how far the stream has covered it.

    Writing: once the connection is live (``send`` set), every queued frame is written at once by
    :meth:`kick`, in the caller's step of the loop (the pump's fan-out, like a bare push loop): a websocket
    write completes without waiting while the client keeps up. The first write that would wait (the
    client's socket is full) continues in a task of its own, and this client's later frames wait in its
    bounded queue behind it; a full queue marks the subscriber ``overflow`` and ``done``. So no client ever
    delays another, and no task is woken per message.
    """

    actor: Actor
    limit: int
    pos_event: int  # the pump enqueues only events above this
    pos_alert: int
    queue: deque[tuple[str, int, str]] = field(default_factory=deque)
    overflow: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # the connection must end (see ``reason``)
    reason: str = ""
    delivered_event: int = 0  # the client has every visible event up to here
    delivered_alert: int = 0
    skip_event: int = 0  # a ``resume`` ahead of what this connection sent: items up to here are not sent
    skip_alert: int = 0
    send: Callable[[str], Coroutine[Any, Any, Any]] | None = None  # the socket's write, once live
    on_resume: Callable[[str], Coroutine[Any, Any, Any]] | None = None
    hub: LiveHub | None = None
    busy: bool = False  # a write or a resume is running in ``task``
    task: asyncio.Task[Any] | None = None
    last_sent: float = 0.0  # loop time of the last frame written (heartbeats count from there)
    sending_since: float | None = None  # loop time a waiting write started, while it has not returned
    expires_at: float | None = None  # wall-clock time (epoch seconds) the connection's token expires
    resume_tokens: float = -1.0  # the resume allowance (token bucket; negative = not started)
    resume_refilled: float = 0.0

    def take_resume(self, now: float, cfg: LiveConfig) -> float:
        """Spend one ``resume`` from the allowance: 0 when allowed, else the seconds to wait."""
        if self.resume_tokens < 0:
            self.resume_tokens, self.resume_refilled = float(cfg.resume_burst), now
        self.resume_tokens = min(
            float(cfg.resume_burst), self.resume_tokens + (now - self.resume_refilled) * cfg.resume_per_second
        )
        self.resume_refilled = now
        if self.resume_tokens >= 1:
            self.resume_tokens -= 1
            return 0.0
        return (1 - self.resume_tokens) / cfg.resume_per_second if cfg.resume_per_second > 0 else float("inf")

    def audience(self) -> tuple[str, int] | None:
        """The routing key of the items this user may see (see :func:`visible`)."""
        a = self.actor
        if a.role in CITYWIDE_ROLES:
            return ("all", 0)
        if a.role is Role.DEPARTMENT:
            return None if a.department_id is None else ("dept", a.department_id)
        if a.role is Role.INSPECTOR:
            return ("user", a.user_id)
        return None

    def _put(self, entry: tuple[str, int, str]) -> bool:
        if len(self.queue) >= self.limit:
            self.end("overflow")
            return False
        self.queue.append(entry)
        if not self.busy and self.send is not None:
            self.kick()
        return True

    def offer(self, item: LiveItem) -> None:
        """Queue ``item`` if the user may see it; mark the subscriber overflowed when the queue is full."""
        if self.overflow.is_set():
            return
        pos = self.pos_event if item.kind == "event" else self.pos_alert
        if item.id <= pos:
            return
        if visible(self.actor, item) and not self._put((item.kind, item.id, item.text)):
            return
        if item.kind == "event":
            self.pos_event = item.id
        else:
            self.pos_alert = item.id

    def control(self, payload: dict[str, Any]) -> None:
        """Queue a control frame (pong, error) behind the data already queued."""
        self._put(("ctl", 0, _dumps(payload)))

    def marker(self, kind: str, value: int = 0, text: str = "") -> None:
        """Queue a marker (:data:`PING`, :data:`RESUME`) to act on in stream order."""
        self._put((kind, value, text))

    def end(self, reason: str) -> None:
        """Stop writing; the connection handler closes the socket (``overflow``: with a resync frame)."""
        if reason == "overflow":
            self.overflow.set()
        if not self.reason:
            self.reason = reason
        self.done.set()

    def go_live(
        self,
        send: Callable[[str], Coroutine[Any, Any, Any]],
        on_resume: Callable[[str], Coroutine[Any, Any, Any]] | None = None,
    ) -> None:
        """Start writing: from now on queued frames go out as soon as they are queued."""
        self.send, self.on_resume = send, on_resume
        self.last_sent = asyncio.get_running_loop().time()
        self.kick()

    def _text(self, kind: str, item_id: int, text: str) -> str | None:
        if kind == "event":
            return None if item_id <= self.skip_event else text
        if kind == "alert":
            return None if item_id <= self.skip_alert else text
        if kind == PING:
            ev, al = self.hub.marks_for(self) if self.hub is not None else (self.delivered_event, self.delivered_alert)
            return _dumps(
                {"type": "ping", "last_id": max(ev, self.skip_event), "last_alert_id": max(al, self.skip_alert)}
            )
        return text

    def _sent(self, kind: str, item_id: int) -> None:
        if kind == "event":
            self.delivered_event = item_id
        elif kind == "alert":
            self.delivered_alert = item_id

    def kick(self) -> None:
        """Write the queued frames now; hand the first write that would wait (or a resume) to a task."""
        send, queue = self.send, self.queue
        if send is None or self.busy or self.done.is_set():
            return
        wrote = False
        while queue:
            kind, item_id, text = queue.popleft()
            if kind == RESUME and self.on_resume is not None:
                self._background(self._resume(text))
                break
            out = self._text(kind, item_id, text)
            if out is None:
                continue
            coro = send(out)
            try:
                first = coro.send(None)
            except StopIteration:
                self._sent(kind, item_id)
                wrote = True
                continue
            except Exception:  # the socket is gone: the handler sees the disconnect and cleans up
                self.end("write_failed")
                return
            self._background(self._finish(coro, first, kind, item_id))
            break
        if wrote:
            self.last_sent = asyncio.get_running_loop().time()

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.busy = True
        self.task = asyncio.get_running_loop().create_task(coro)

    async def _finish(self, coro: Coroutine[Any, Any, Any], first: Any, kind: str, item_id: int) -> None:
        loop = asyncio.get_running_loop()
        self.sending_since = loop.time()
        try:
            await _Started(coro, first)
        except Exception:
            self.end("write_failed")
            return
        finally:
            self.sending_since = None
        self._sent(kind, item_id)
        self.last_sent = loop.time()
        self.busy = False
        self.kick()

    async def _resume(self, text: str) -> None:
        assert self.on_resume is not None
        loop = asyncio.get_running_loop()
        self.sending_since = loop.time()
        try:
            await self.on_resume(text)
        except Exception:
            self.end("write_failed")
            return
        finally:
            self.sending_since = None
        self.last_sent = loop.time()
        self.busy = False
        self.kick()


_HUBS: weakref.WeakSet[LiveHub] = weakref.WeakSet()


class LiveHub:
    """The per-worker fan-out: a pump task, an optional PostgreSQL listener, and the subscribers."""

    def __init__(self, session_factory: sessionmaker[Session], database_url: str, config: LiveConfig) -> None:
        self.session_factory = session_factory
        self.database_url = database_url
        self.config = config
        self.subscribers: set[Subscriber] = set()
        # Subscribers by audience (see Subscriber.audience): an item is offered only to those who may see it.
        self.audiences: dict[tuple[str, int], set[Subscriber]] = {}
        self.hw_event = 0
        self.hw_alert = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listening: asyncio.Event | None = None
        self._start_lock: asyncio.Lock | None = None
        self._drain_lock: asyncio.Lock | None = None
        # True while nobody is subscribed and rows may have committed above the marks: nobody needs those
        # rows, so the pump reads none of them; the first subscriber brings the marks up to date (one read).
        self._marks_stale = False
        _HUBS.add(self)

    @property
    def is_postgres(self) -> bool:
        """Whether the workers share a PostgreSQL database (then LISTEN/NOTIFY links them)."""
        return spatial.is_postgres_url(self.database_url)

    async def ensure_started(self) -> None:
        """Start the pump (and listener) on the running loop, once."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._tasks and not any(t.done() for t in self._tasks):
            return
        if self._loop is not loop:
            self._start_lock = asyncio.Lock()
        assert self._start_lock is not None
        async with self._start_lock:
            if self._loop is loop and self._tasks and not any(t.done() for t in self._tasks):
                return
            for t in self._tasks:
                t.cancel()
            self._loop = loop
            self._wake = asyncio.Event()
            self._listening = asyncio.Event()
            self._drain_lock = asyncio.Lock()
            self.hw_event, self.hw_alert = await asyncio.to_thread(self._read_high_water)
            self._tasks = [
                asyncio.create_task(self._pump(), name="gridcity-live-pump"),
                asyncio.create_task(self._watch(), name="gridcity-live-watchdog"),
            ]
            if self.is_postgres and self.config.listen_postgres:
                self._tasks.append(asyncio.create_task(self._listen(), name="gridcity-live-listen"))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(10):
                        await self._listening.wait()

    async def stop(self) -> None:
        """Stop the tasks (subscribers' connections end with the server)."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._loop = None

    def committed_threadsafe(self) -> None:
        """A session of this process committed live rows (callable from any thread).

        While this worker listens on PostgreSQL, the commit's own ``NOTIFY`` reaches the listener (which
        delivers the event without a read), so the pump is not woken twice for it.
        """
        listening = self._listening
        if self.is_postgres and self.config.listen_postgres and listening is not None and listening.is_set():
            return
        self.wake_threadsafe()

    def wake_threadsafe(self) -> None:
        """Ask the pump to read new rows (callable from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake.set)

    # ---- reading -------------------------------------------------------------------------------------

    def _read_high_water(self) -> tuple[int, int]:
        with self.session_factory() as s:
            return high_water(s)

    def _read_new(self, after_event: int, after_alert: int) -> tuple[list[LiveItem], list[LiveItem]]:
        with self.session_factory() as s:
            n = self.config.batch_size
            return event_items(s, after=after_event, limit=n), alert_items(s, after=after_alert, limit=n)

    def gap_pages(self, actor: Actor, *, kind: str, after: int, upto: int) -> Iterator[list[LiveItem]]:
        """The visible items in ``(after, upto]`` page by page (blocking; run in a thread per page)."""
        fetch = event_items if kind == "event" else alert_items
        cursor = after
        while cursor < upto:
            with self.session_factory() as s:
                page = fetch(s, after=cursor, upto=upto, limit=self.config.batch_size, actor=actor)
            if not page:
                return
            cursor = page[-1].id
            yield [it for it in page if visible(actor, it)]

    # ---- tasks ---------------------------------------------------------------------------------------

    async def _pump(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: wait_for may swallow a cancel on 3.11
                async with asyncio.timeout(self.config.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                assert self._drain_lock is not None
                async with self._drain_lock:
                    await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be restarting: we retry on the next wake or poll
                log.exception("live pump could not read new rows")
                await asyncio.sleep(1)

    async def _drain(self, *, subscribing: bool = False) -> None:
        if not self.subscribers and not subscribing:
            # Nobody to offer anything to (the common case of a server without open consoles): no read.
            self._marks_stale = True
            return
        if self._marks_stale:
            # The first subscriber after a quiet spell: skip what nobody was there to receive (one cheap read
            # of the largest ids instead of every row since); a resuming client gets its gap from the log.
            hw_event, hw_alert = await asyncio.to_thread(self._read_high_water)
            self.hw_event, self.hw_alert = max(self.hw_event, hw_event), max(self.hw_alert, hw_alert)
            self._marks_stale = False
        while True:
            # A worker thread, not an async driver on the loop: measured, the loop busy writing to sockets
            # delayed an async read's round trips far more than the thread's GIL hand-offs.
            events, alerts = await asyncio.to_thread(self._read_new, self.hw_event, self.hw_alert)
            self.fan_out(events, alerts)
            if len(events) < self.config.batch_size and len(alerts) < self.config.batch_size:
                return

    def fan_out(self, events: list[LiveItem], alerts: list[LiveItem]) -> None:
        """Offer new items to the subscribers who may see them and advance the marks (never awaits).

        Each item is serialised once (by the reader); here it is only routed: to the citywide audience, to
        the departments it names and to the inspectors it names, so the cost is per recipient, not per
        connected client.
        """
        # The pump's read and a NOTIFY delivery may overlap: what is at or below a mark was already offered.
        if events and events[0].id <= self.hw_event:
            events = [e for e in events if e.id > self.hw_event]
        if alerts and alerts[0].id <= self.hw_alert:
            alerts = [a for a in alerts if a.id > self.hw_alert]
        groups = self.audiences
        everyone = groups.get(("all", 0), ())
        for items in (events, alerts):
            for item in items:
                for sub in everyone:
                    sub.offer(item)
                for d in item.department_ids:
                    for sub in groups.get(("dept", d), ()):
                        sub.offer(item)
                for u in item.inspector_ids:
                    for sub in groups.get(("user", u), ()):
                        sub.offer(item)
        if events:
            self.hw_event = max(self.hw_event, events[-1].id)
        if alerts:
            self.hw_alert = max(self.hw_alert, alerts[-1].id)

    async def _watch(self) -> None:
        """Heartbeats, stalled writes, expired tokens and deactivated users, for every subscriber, from one
        task (no timer per message)."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        next_user_check = loop.time() + cfg.user_check_seconds
        while True:
            await asyncio.sleep(
                max(0.05, min(1.0, cfg.heartbeat_seconds / 4, cfg.send_timeout_seconds / 4, cfg.user_check_seconds))
            )
            self.watch_once(loop.time())
            if loop.time() >= next_user_check and self.subscribers:
                next_user_check = loop.time() + cfg.user_check_seconds
                try:
                    await self.check_users()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database may be restarting: we check again on the next round
                    log.exception("live stream could not check its users")

    async def check_users(self) -> None:
        """End the connections of users who are no longer active (``app_user.active`` false, or deleted)."""
        ids = {sub.actor.user_id for sub in self.subscribers}
        active = await asyncio.to_thread(self._active_users, ids)
        for sub in list(self.subscribers):
            if sub.actor.user_id not in active:
                sub.end("auth.user_inactive")

    def _active_users(self, ids: set[int]) -> set[int]:
        with self.session_factory() as s:
            return set(s.scalars(select(User.id).where(User.id.in_(sorted(ids)), User.active.is_(True))))

    def watch_once(self, now: float, wall: float | None = None) -> None:
        """Queue a ping for subscribers silent for a heartbeat; end those whose write stalled too long and
        those whose token expired (``wall``: epoch seconds, default now)."""
        cfg = self.config
        wall = time.time() if wall is None else wall
        for sub in list(self.subscribers):
            if sub.expires_at is not None and wall >= sub.expires_at:
                sub.end("auth.token_expired")
                continue
            started = sub.sending_since
            if started is not None and now - started > cfg.send_timeout_seconds:
                sub.end("send_timeout")
                if sub.task is not None:
                    sub.task.cancel()
            elif (
                sub.send is not None and not sub.busy and not sub.queue and now - sub.last_sent >= cfg.heartbeat_seconds
            ):
                sub.last_sent = now
                sub.marker(PING)

    async def _listen(self) -> None:
        import psycopg  # noqa: PLC0415  (PostgreSQL only)

        url = sa.engine.make_url(self.database_url).set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        listening = self._listening  # this start's (a restart on another loop makes a new one)
        assert listening is not None
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    listening.set()
                    self.wake_threadsafe()  # catch up with whatever committed while we were not listening
                    async for note in conn.notifies():
                        self.on_notify(note.payload)
            except asyncio.CancelledError:
                listening.clear()
                raise
            except Exception:
                # Until we listen again, this process's commits wake the pump themselves.
                listening.clear()
                log.exception("live listener lost its PostgreSQL connection; reconnecting")
                await asyncio.sleep(1)

    def on_notify(self, payload: str) -> None:
        """A NOTIFY from any worker's commit. PostgreSQL delivers them in commit order, and event commits are
        serialised by the event-order lock, so when the payload carries the event right after our mark
        nothing can be missing before it: deliver it at once, without a database read. Anything else (a
        gap from a rolled-back id, a bare id, an event written without the hook) wakes the pump, which reads
        the log above the mark."""
        item = item_from_payload(payload)
        if item is not None and item.id == self.hw_event + 1:
            self.fan_out([item], [])
        else:
            assert self._wake is not None
            self._wake.set()

    # ---- subscribers ---------------------------------------------------------------------------------

    async def subscribe(self, actor: Actor, *, since: int | None, since_alert: int | None) -> Subscriber:
        """Register a subscriber at the pump's marks (gap fill is the caller's next step).

        We first bring the marks up to everything committed so far, so that the replay before ``synced``
        covers every event committed before the client connected.
        """
        await self.ensure_started()
        assert self._drain_lock is not None
        async with self._drain_lock:
            await self._drain(subscribing=True)
            return self._register(actor, since=since, since_alert=since_alert)

    def _register(self, actor: Actor, *, since: int | None, since_alert: int | None) -> Subscriber:
        # A resume point beyond the newest item is not trusted (it would silently skip what comes next): the
        # subscriber starts at the marks and the caller tells the client to reset (see ``ahead``).
        sub = Subscriber(actor=actor, limit=self.config.queue_size, pos_event=self.hw_event, pos_alert=self.hw_alert)
        sub.delivered_event = min(since, self.hw_event) if since is not None else self.hw_event
        sub.delivered_alert = min(since_alert, self.hw_alert) if since_alert is not None else self.hw_alert
        self.add(sub)
        return sub

    def add(self, sub: Subscriber) -> None:
        """Start offering items to ``sub``."""
        sub.hub = self
        self.subscribers.add(sub)
        key = sub.audience()
        if key is not None:
            self.audiences.setdefault(key, set()).add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a subscriber."""
        self.subscribers.discard(sub)
        key = sub.audience()
        group = self.audiences.get(key) if key is not None else None
        if group is not None:
            group.discard(sub)
            if not group:
                del self.audiences[key]  # type: ignore[arg-type]

    def marks_for(self, sub: Subscriber) -> tuple[int, int]:
        """What ``sub`` has for sure now: everything visible up to these ids (for pings)."""
        if sub.queue:
            return sub.delivered_event, sub.delivered_alert
        # Nothing waits in the queue, and the pump offered this subscriber everything up to the hub's marks.
        return (
            max(sub.delivered_event, sub.pos_event, self.hw_event),
            max(sub.delivered_alert, sub.pos_alert, self.hw_alert),
        )


# ---- hooks that wake the pump -------------------------------------------------------------------------


#: NOTIFY payloads must stay under PostgreSQL's 8000 bytes; a larger message is announced by id only.
MAX_NOTIFY_BYTES = 7900


def notify_payload(case: Case, ev: CaseEvent) -> str:
    """What :func:`on_change` NOTIFYs: the event's message, serialised as the pump would read it, with
    its audience, so listening workers can deliver it without a database read; or the bare event id when
    the message is too large for a NOTIFY payload (the listener then reads it from the log)."""
    row = SimpleNamespace(
        id=ev.id,
        case_id=ev.case_id,
        seq=ev.seq,
        action=ev.action,
        from_status=ev.from_status,
        to_status=ev.to_status,
        actor_id=ev.actor_id,
        actor_role=ev.actor_role,
        department_id=ev.department_id,
        at=ev.at,
        note=ev.note,
        data=ev.data,
        number=case.number,
        case_status=case.status,
        version=case.version,
        class_code=case.class_code,
        urgency=case.urgency,
        lon=case.lon,
        lat=case.lat,
        grid_code=case.grid_code,
        case_department_id=case.department_id,
        reporter_id=case.reporter_id,
        assigned_inspector_id=case.assigned_inspector_id,
        stage=case.stage,
        stage_started_at=case.stage_started_at,
        deadline_at=case.deadline_at,
        warn_at=case.warn_at,
    )
    (item,) = events_from_rows([row])
    payload = json.dumps(
        {"id": item.id, "d": sorted(item.department_ids), "i": sorted(item.inspector_ids), "m": item.text},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return payload if len(payload.encode()) <= MAX_NOTIFY_BYTES else str(ev.id)


def item_from_payload(payload: str) -> LiveItem | None:
    """The event message carried by a NOTIFY payload (None for a bare id or anything unexpected)."""
    if not payload.startswith("{"):
        return None
    try:
        doc = json.loads(payload)
        return LiveItem(
            "event",
            int(doc["id"]),
            str(doc["m"]),
            frozenset(int(d) for d in doc["d"]),
            frozenset(int(i) for i in doc["i"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def on_change(session: Session, change: CaseChange, pipeline: object) -> None:
    """Case pipeline subscriber: announce the change's event to the live stream at commit."""
    case, ev = change.case, change.event
    # We only mark the session here; the pump reads the row once the transaction has committed.
    session.info[DIRTY_KEY] = True
    # Delivered by PostgreSQL to every listening worker at commit, never for a rolled-back action.
    spatial.notify(session, CHANNEL, notify_payload(case, ev))


def _after_commit(session: Session) -> None:
    if session.info.pop(DIRTY_KEY, False):
        for hub in list(_HUBS):
            hub.committed_threadsafe()


def _after_rollback(session: Session) -> None:
    session.info.pop(DIRTY_KEY, None)


_installed = False


def install_hooks() -> None:
    """Install the session commit/rollback listeners that wake the hubs (idempotent).

    The events themselves are announced by :func:`on_change`, a subscriber of the app's case pipeline.
    """
    global _installed
    if not _installed:
        sa_event.listen(Session, "after_commit", _after_commit)
        sa_event.listen(Session, "after_soft_rollback", lambda s, prev: _after_rollback(s))
        _installed = True
