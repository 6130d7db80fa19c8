"""The live websocket against a real uvicorn server: auth, visibility, resume, bad input, two workers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
import pytest
import sqlalchemy as sa
from websockets.exceptions import ConnectionClosed

from casework import live
from casework.lifecycle import Actor
from casework.models import CaseEvent
from gridcity import security
from gridcity.roles import Role
from tests.casework.helpers import act, report
from tests.conftest import Org
from tests.console import (
    ThreadServer,
    bearer,
    recv,
    recv_until,
    spawn_worker,
    stop_worker,
    ws_open,
)


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


def filed(http: httpx.Client, org: Org, seed: int = 1) -> dict[str, Any]:
    case = report(http, org)  # type: ignore[arg-type]
    return act(http, org, case, "shiftlead", "file")  # type: ignore[arg-type]


def dispatch(http: httpx.Client, org: Org, case: dict[str, Any], dept: str) -> dict[str, Any]:
    return act(http, org, case, "dispatcher", "dispatch", department_id=org.depts[dept])  # type: ignore[arg-type]


def event_ids(db: sa.Engine, after: int = 0) -> list[int]:
    with db.connect() as c:
        return list(c.scalars(sa.select(CaseEvent.id).where(CaseEvent.id > after).order_by(CaseEvent.id)))


# ---- authentication and bad input --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "expired", "forged", "unknown_user"])
def test_bad_token_is_closed_with_policy_violation(server: ThreadServer, orgdata: Org, kind: str) -> None:
    secret = orgdata.secret
    tok = {
        "missing": None,
        "expired": security.create_token(
            user_id=orgdata.ids["dispatcher"], role="dispatcher", secret=secret, ttl=dt.timedelta(seconds=-5)
        ),
        "forged": security.create_token(
            user_id=orgdata.ids["dispatcher"],
            role="dispatcher",
            secret="not-the-key-" + "y" * 32,
            ttl=dt.timedelta(hours=1),
        ),
        "unknown_user": security.create_token(
            user_id=99999, role="dispatcher", secret=secret, ttl=dt.timedelta(hours=1)
        ),
    }[kind]
    with ws_open(server.url, tok) as ws:
        err = recv(ws)
        assert err["type"] == "error" and err["code"].startswith("auth.")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


def test_bad_since_is_refused(server: ThreadServer, orgdata: Org) -> None:
    with ws_open(server.url, token(orgdata, "dispatcher"), since=-3) as ws:
        assert recv(ws)["code"] == "ws.bad_since"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


def test_malformed_client_messages_get_an_error_frame_and_the_stream_goes_on(
    server: ThreadServer, http: httpx.Client, orgdata: Org
) -> None:
    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        assert recv(ws)["type"] == "hello"
        recv_until(ws, "synced")
        for bad in ["not json", "[1, 2]", '"text"', '{"type": "subscribe_everything"}', '{"no": "type"}', "{" * 10_000]:
            ws.send(bad)
            msg = recv(ws)
            assert msg["type"] == "error" and msg["code"] == "ws.bad_message", msg
        ws.send(b"\x00\x01binary")
        assert recv(ws)["code"] == "ws.bad_message"
        ws.send('{"type": "ping"}')
        assert recv(ws)["type"] == "pong"
        # The connection still streams events.
        case = report(http, orgdata)  # type: ignore[arg-type]
        ev, _ = recv_until(ws, "event")
        assert ev["case_id"] == case["id"] and ev["action"] == "report"


# ---- visibility ---------------------------------------------------------------------------------------


def test_department_never_receives_another_departments_events(
    server: ThreadServer, http: httpx.Client, orgdata: Org
) -> None:
    with ws_open(server.url, token(orgdata, "lighting")) as ld, ws_open(server.url, token(orgdata, "water")) as sz:
        for ws in (ld, sz):
            recv_until(ws, "synced")
        water_case = dispatch(http, orgdata, filed(http, orgdata), "SZ")
        act(http, orgdata, water_case, "water", "accept")  # type: ignore[arg-type]
        light_case = dispatch(http, orgdata, filed(http, orgdata, seed=5), "LD")

        # The water department sees its dispatch and its acceptance ...
        ev1, _ = recv_until(sz, "event")
        ev2, _ = recv_until(sz, "event")
        assert (ev1["case_id"], ev1["action"]) == (water_case["id"], "dispatch")
        assert (ev2["case_id"], ev2["action"]) == (water_case["id"], "accept")
        # ... and the lighting department's first frame is its own dispatch: the stream is in id order, so
        # any of the water events (all earlier) would have come before it.
        first, _ = recv_until(ld, "event")
        assert (first["case_id"], first["action"]) == (light_case["id"], "dispatch")
        assert first["department_id"] == orgdata.depts["LD"]
        # Nor does it get them by replay.
    with ws_open(server.url, token(orgdata, "lighting"), since=0) as ld2:
        _, replay = recv_until(ld2, "synced")
        assert {m["case_id"] for m in replay if m["type"] == "event"} == {light_case["id"]}


def test_inspector_sees_only_own_reports(server: ThreadServer, http: httpx.Client, orgdata: Org) -> None:
    with ws_open(server.url, token(orgdata, "inspector2")) as ws:
        recv_until(ws, "synced")
        report(http, orgdata, user="inspector")  # type: ignore[arg-type]
        mine = report(http, orgdata, user="inspector2")  # type: ignore[arg-type]
        ev, _ = recv_until(ws, "event")
        assert ev["case_id"] == mine["id"]


# ---- resume -------------------------------------------------------------------------------------------


def test_resume_after_disconnect_misses_nothing(
    server: ThreadServer, http: httpx.Client, orgdata: Org, db: sa.Engine
) -> None:
    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        hello = recv(ws)
        assert hello["type"] == "hello"
        recv_until(ws, "synced")
        a = filed(http, orgdata)
        got = [recv_until(ws, "event")[0]["id"] for _ in range(2)]
    last = got[-1]
    # While the client is away: more cases and actions, some on the old case.
    dispatch(http, orgdata, a, "SZ")
    b = filed(http, orgdata, seed=7)
    act(http, orgdata, b, "shiftlead", "file", expect=409)  # a refused action writes no event
    missed = event_ids(db, after=last)
    assert len(missed) == 3

    with ws_open(server.url, token(orgdata, "dispatcher"), since=last) as ws:
        hello = recv(ws)
        synced, replay = recv_until(ws, "synced")
        assert [m["id"] for m in replay] == missed
        assert synced["last_id"] == missed[-1]
        # Then live, continuing right after the replay, without duplicates.
        c = dispatch(http, orgdata, b, "LD")
        ev, between = recv_until(ws, "event")
        assert between == [] and ev["id"] == event_ids(db, after=missed[-1])[0]
        assert ev["case"]["status"] == c["status"] == "dispatched"
    assert got == event_ids(db)[:2]


def test_resume_message_on_an_open_socket_refills_the_gap_without_duplicates(
    server: ThreadServer, http: httpx.Client, orgdata: Org, db: sa.Engine
) -> None:
    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        recv_until(ws, "synced")
        a = filed(http, orgdata)
        dispatch(http, orgdata, a, "SZ")
        got = [recv_until(ws, "event")[0]["id"] for _ in range(3)]
        assert got == event_ids(db)
        # The client lost everything after the first event (say its view was rebuilt) and asks again.
        ws.send(json.dumps({"type": "resume", "last_id": got[0]}))
        synced, replay = recv_until(ws, "synced")
        assert [m["id"] for m in replay] == got[1:] and synced["last_id"] == got[-1]
        # Live again: the next event comes once, right after the replay.
        b = report(http, orgdata)  # type: ignore[arg-type]
        ev, between = recv_until(ws, "event")
        assert between == [] and ev["case_id"] == b["id"] and ev["id"] == event_ids(db)[-1]
        # Resume from 0 replays the whole log (alerts untouched), then the stream goes on.
        ws.send('{"type": "resume", "last_id": 0}')
        synced, replay = recv_until(ws, "synced")
        assert [m["id"] for m in replay] == event_ids(db) and synced["last_id"] == event_ids(db)[-1]
        ws.send('{"type": "ping"}')
        pong, between = recv_until(ws, "pong")
        assert between == []


def test_resume_message_during_live_traffic_misses_nothing(
    server: ThreadServer, http: httpx.Client, orgdata: Org, db: sa.Engine
) -> None:
    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        recv_until(ws, "synced")
        first = filed(http, orgdata)
        seen = [recv_until(ws, "event")[0]["id"] for _ in range(2)]
        ws.send(json.dumps({"type": "resume", "last_id": seen[0]}))
        dispatch(http, orgdata, first, "SZ")  # these may be sent before or after the resume is served
        report(http, orgdata)  # type: ignore[arg-type]
        all_ids = event_ids(db)
        assert len(all_ids) == 4
        frames: list[dict[str, Any]] = []
        while not (any(m["type"] == "synced" for m in frames) and frames[-1].get("id") == all_ids[-1]):
            frames.append(recv(ws))
        cut = next(i for i, m in enumerate(frames) if m["type"] == "synced")
        before = [m["id"] for m in frames[:cut] if m["type"] == "event"]
        after = [m["id"] for m in frames[cut + 1 :] if m["type"] == "event"]
        # Before "synced": live frames sent before the resume was served, then the replay, which starts
        # at the first id after the resume's last_id.
        replay = before[before.index(seen[1]) :]
        assert before[: before.index(seen[1])] == replay[1 : 1 + before.index(seen[1])]
        assert [seen[0], *replay, *after] == all_ids  # from the resume on: every id once, in order


@pytest.mark.parametrize(
    "bad",
    [
        '{"type": "resume"}',
        '{"type": "resume", "last_id": -1}',
        '{"type": "resume", "last_id": "3"}',
        '{"type": "resume", "last_id": true}',
        '{"type": "resume", "last_id": 1.5}',
    ],
)
def test_malformed_resume_gets_an_error_frame(server: ThreadServer, orgdata: Org, bad: str) -> None:
    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        recv_until(ws, "synced")
        ws.send(bad)
        # A heartbeat may come first when the machine is slow (it failed once so under load): skip pings only.
        msg, between = recv_until(ws, "error")
        assert between == [] and msg["code"] == "ws.bad_message"
        ws.send('{"type": "ping"}')
        assert recv_until(ws, "pong")[1] == []


def test_idle_socket_gets_heartbeats_with_its_marks(server: ThreadServer, http: httpx.Client, orgdata: Org) -> None:
    server.app.state.live_config.heartbeat_seconds = 0.3
    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        recv_until(ws, "synced")
        ping, _ = recv_until(ws, "ping")
        case = report(http, orgdata)  # type: ignore[arg-type]
        ev, _ = recv_until(ws, "event")
        assert ev["case_id"] == case["id"]
        ping, between = recv_until(ws, "ping")
        assert between == [] and ping["last_id"] == ev["id"]


def test_too_large_a_gap_asks_for_a_reset(server: ThreadServer, http: httpx.Client, orgdata: Org) -> None:
    server.app.state.live_config.max_gap_ids = 2
    filed(http, orgdata)
    filed(http, orgdata, seed=3)
    with ws_open(server.url, token(orgdata, "dispatcher"), since=0) as ws:
        recv(ws)
        msg = recv(ws)
        assert msg["type"] == "reset" and msg["last_id"] == 4
        assert recv_until(ws, "synced")[1] == []


# ---- slow clients -------------------------------------------------------------------------------------


def _item(i: int, dept: int | None = None) -> live.LiveItem:
    return live.LiveItem("event", i, f'{{"type":"event","id":{i}}}', frozenset({dept} if dept else ()), frozenset())


def test_a_full_queue_marks_only_that_subscriber_for_resync() -> None:
    async def run() -> tuple[live.Subscriber, live.Subscriber]:
        hub = live.LiveHub(None, "sqlite://", live.LiveConfig())  # type: ignore[arg-type]
        slow = live.Subscriber(Actor(1, Role.DISPATCHER), 3, 0, 0)
        fast = live.Subscriber(Actor(2, Role.DISPATCHER), 100, 0, 0)
        hub.add(slow)
        hub.add(fast)
        hub.fan_out([_item(i) for i in range(1, 11)], [])
        return slow, fast

    slow, fast = asyncio.run(run())
    assert slow.overflow.is_set() and len(slow.queue) == 3 and slow.pos_event == 3
    assert not fast.overflow.is_set() and [e[1] for e in fast.queue] == list(range(1, 11))


def test_fan_out_routes_items_only_to_their_audience() -> None:
    hub = live.LiveHub(None, "sqlite://", live.LiveConfig())  # type: ignore[arg-type]
    subs = {
        "centre": live.Subscriber(Actor(1, Role.DISPATCHER), 100, 0, 0),
        "dept5": live.Subscriber(Actor(2, Role.DEPARTMENT, department_id=5), 100, 0, 0),
        "dept6": live.Subscriber(Actor(3, Role.DEPARTMENT, department_id=6), 100, 0, 0),
        "insp7": live.Subscriber(Actor(7, Role.INSPECTOR), 100, 0, 0),
        "insp8": live.Subscriber(Actor(8, Role.INSPECTOR), 100, 0, 0),
    }
    for sub in subs.values():
        hub.add(sub)
    hub.fan_out(
        [
            live.LiveItem("event", 1, "a", frozenset({5}), frozenset({7})),
            live.LiveItem("event", 2, "b", frozenset({6, 5}), frozenset()),
            live.LiveItem("event", 3, "c", frozenset(), frozenset({8})),
        ],
        [],
    )
    got = {name: [e[1] for e in sub.queue] for name, sub in subs.items()}
    assert got == {"centre": [1, 2, 3], "dept5": [1, 2], "dept6": [2], "insp7": [1], "insp8": [3]}
    assert hub.hw_event == 3
    hub.unsubscribe(subs["dept6"])
    assert ("dept", 6) not in hub.audiences and subs["dept6"] not in hub.subscribers


def test_a_stalled_write_never_delays_the_other_clients() -> None:
    """The fan-out writes in its own step; a write that waits moves to a task and only its client queues."""

    async def run() -> tuple[live.Subscriber, live.Subscriber, list[str], list[str], asyncio.Future[None]]:
        hub = live.LiveHub(None, "sqlite://", live.LiveConfig())  # type: ignore[arg-type]
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fast_got: list[str] = []
        slow_got: list[str] = []

        async def fast_send(text: str) -> None:
            fast_got.append(text)

        async def slow_send(text: str) -> None:
            if not gate.done():
                await gate  # the client's socket is full until the gate opens
            slow_got.append(text)

        slow = live.Subscriber(Actor(1, Role.DISPATCHER), 5, 0, 0)
        fast = live.Subscriber(Actor(2, Role.DISPATCHER), 5, 0, 0)
        for sub, send in ((slow, slow_send), (fast, fast_send)):
            hub.add(sub)
            sub.go_live(send)
        hub.fan_out([_item(i) for i in range(1, 4)], [])
        # Within the same step: the fast client has everything, the slow one has one write waiting.
        assert len(fast_got) == 3 and fast.delivered_event == 3 and not fast.busy
        assert slow.busy and [e[1] for e in slow.queue] == [2, 3] and slow.delivered_event == 0
        gate.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not slow.busy and slow.delivered_event == 3
        gate2: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def stuck_send(text: str) -> None:
            await gate2

        slow.send = stuck_send
        hub.fan_out([_item(i) for i in range(4, 12)], [])
        return slow, fast, fast_got, slow_got, gate2

    slow, fast, fast_got, slow_got, _ = asyncio.run(run())
    assert [json.loads(t)["id"] for t in slow_got] == [1, 2, 3]
    assert [json.loads(t)["id"] for t in fast_got] == list(range(1, 12)) and not fast.done.is_set()
    # One write stuck, five queued behind it, the next one overflows: that client alone must resync.
    assert slow.overflow.is_set() and slow.done.is_set() and slow.reason == "overflow"
    assert slow.pos_event == 9


def test_invisible_items_advance_the_position_without_queueing() -> None:
    sub = live.Subscriber(Actor(1, Role.DEPARTMENT, department_id=5), 2, 0, 0)
    for i in range(1, 50):
        sub.offer(_item(i, dept=6))
    sub.offer(_item(50, dept=5))
    assert not sub.overflow.is_set() and len(sub.queue) == 1 and sub.pos_event == 50


def test_slow_client_is_told_to_resync_and_others_keep_streaming(
    server: ThreadServer, http: httpx.Client, orgdata: Org, db: sa.Engine
) -> None:
    server.app.state.live_config.queue_size = 1
    hub: live.LiveHub = server.app.state.live_hub
    with (
        ws_open(server.url, token(orgdata, "dispatcher")) as slow,
        ws_open(server.url, token(orgdata, "shiftlead")) as other,
    ):
        recv_until(slow, "synced")
        recv_until(other, "synced")
        # We overfill the slow client's one-slot queue in one step of the server's loop, as the pump would
        # for a client whose socket stalls (a write in progress: later frames wait in the queue).
        slow_sub = next(s for s in hub.subscribers if s.actor.role is Role.DISPATCHER)
        loop = hub._loop
        assert loop is not None

        def stall_and_overfill() -> None:
            slow_sub.busy = True
            for _ in range(2):
                slow_sub.control({"type": "pong"})

        loop.call_soon_threadsafe(stall_and_overfill)
        msg, _ = recv_until(slow, "resync")
        assert msg["reason"] == "slow_client" and "since" in msg
        with pytest.raises(ConnectionClosed) as info:
            slow.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1013
        case = report(http, orgdata)  # type: ignore[arg-type]
        ev, _ = recv_until(other, "event")
        assert ev["case_id"] == case["id"]
    # The slow client resumes from the id it was given and gets what it missed.
    with ws_open(server.url, token(orgdata, "dispatcher"), since=msg["since"]) as again:
        recv(again)
        _, replay = recv_until(again, "synced")
        assert [m["id"] for m in replay] == event_ids(db, after=msg["since"])


# ---- alerts -------------------------------------------------------------------------------------------


def test_deadline_alerts_are_streamed(server: ThreadServer, http: httpx.Client, orgdata: Org) -> None:
    from casework.monitor import monitor_once
    from gridcity.database import transaction
    from gridcity.types import utcnow

    case = filed(http, orgdata)
    later = utcnow() + dt.timedelta(days=60)

    def run() -> int:
        with transaction(server.app.state.session_factory) as s:
            return len(monitor_once(s, now=later))

    with ws_open(server.url, token(orgdata, "dispatcher")) as ws:
        recv_until(ws, "synced")
        assert run() == 2
        yellow, _ = recv_until(ws, "alert")
        red, _ = recv_until(ws, "alert")
        assert (yellow["level"], red["level"]) == ("yellow", "red")
        assert red["alert_id"] > yellow["alert_id"] and red["case_id"] == case["id"]
        assert run() == 0
    # Alerts resume by their own id.
    with ws_open(server.url, token(orgdata, "dispatcher"), since_alert=yellow["alert_id"] - 1) as ws:
        assert recv(ws)["type"] == "hello"
        _, replay = recv_until(ws, "synced")
        assert [(m["type"], m["alert_id"]) for m in replay] == [
            ("alert", yellow["alert_id"]),
            ("alert", red["alert_id"]),
        ]
    with ws_open(server.url, token(orgdata, "water"), since_alert=0) as ws:
        assert recv(ws)["type"] == "hello"
        _, replay = recv_until(ws, "synced")
        assert replay == []  # the case is not with the water department


# ---- several workers ----------------------------------------------------------------------------------


@pytest.mark.postgis
def test_two_workers_deliver_each_others_events(backend: str, db: sa.Engine, settings: Any, orgdata: Org) -> None:
    if backend != "postgis":
        pytest.skip("several workers need PostgreSQL (LISTEN/NOTIFY)")
    worker_a, url_a = spawn_worker(settings)
    worker_b, url_b = spawn_worker(settings)
    try:
        with (
            httpx.Client(base_url=url_a, timeout=30) as http_a,
            ws_open(url_b, token(orgdata, "water")) as ws_b,
            ws_open(url_a, token(orgdata, "water")) as ws_a,
        ):
            recv_until(ws_b, "synced")
            recv_until(ws_a, "synced")
            case = dispatch(http_a, orgdata, filed(http_a, orgdata), "SZ")
            ev_b, _ = recv_until(ws_b, "event")
            ev_a, _ = recv_until(ws_a, "event")
            assert ev_b == ev_a
            assert (ev_b["case_id"], ev_b["action"], ev_b["case"]["status"]) == (case["id"], "dispatch", "dispatched")
        # And the other way round, through worker B to a client of worker A.
        with httpx.Client(base_url=url_b, timeout=30) as http_b, ws_open(url_a, token(orgdata, "dispatcher")) as ws_a:
            recv_until(ws_a, "synced")
            other = report(http_b, orgdata)  # type: ignore[arg-type]
            ev, _ = recv_until(ws_a, "event")
            assert ev["case_id"] == other["id"]
    finally:
        stop_worker(worker_a)
        stop_worker(worker_b)


# ---- NOTIFY payloads (a listening worker delivers without reading the log) -----------------------------


def _case_and_event(db: sa.Engine, case_id: int) -> tuple[Any, Any]:
    from sqlalchemy.orm import Session  # noqa: PLC0415

    from casework.models import Case  # noqa: PLC0415

    s = Session(db)
    case = s.get(Case, case_id)
    ev = s.scalars(sa.select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq.desc())).first()
    return s, (case, ev)


def test_notify_payload_carries_exactly_what_the_pump_would_read(client: Any, db: sa.Engine, orgdata: Org) -> None:
    case = report(client, orgdata)
    act(client, orgdata, case, "shiftlead", "file")
    act(client, orgdata, case, "dispatcher", "dispatch", department_id=orgdata.depts["SZ"], note="请尽快处理")
    s, (c, ev) = _case_and_event(db, case["id"])
    with s:
        carried = live.item_from_payload(live.notify_payload(c, ev))
        (read,) = live.event_items(s, after=ev.id - 1, limit=1)
    assert carried is not None
    assert carried == read
    assert json.loads(carried.text)["case"]["status"] == "dispatched"
    assert carried.department_ids == frozenset({orgdata.depts["SZ"]})


def test_a_message_too_large_for_notify_is_announced_by_id(client: Any, db: sa.Engine, orgdata: Org) -> None:
    case = report(client, orgdata)
    act(client, orgdata, case, "shiftlead", "void", note="重复上报" * 1000)
    s, (c, ev) = _case_and_event(db, case["id"])
    with s:
        payload = live.notify_payload(c, ev)
    assert payload == str(ev.id)
    assert live.item_from_payload(payload) is None


@pytest.mark.parametrize("payload", ["17", "{not json", '{"id": 6}', '{"id": "x", "m": "", "d": [], "i": []}'])
def test_unusable_notify_payloads_wake_the_pump(payload: str) -> None:
    assert live.item_from_payload(payload) is None


def test_notify_delivers_only_the_next_event_and_otherwise_wakes_the_pump() -> None:
    async def run() -> tuple[list[int], list[bool]]:
        hub = live.LiveHub(None, "sqlite://", live.LiveConfig())  # type: ignore[arg-type]
        hub._wake = asyncio.Event()
        hub.hw_event = 5
        sub = live.Subscriber(Actor(1, Role.DISPATCHER), 100, 5, 0)
        hub.add(sub)
        woken = []

        def note(i: int) -> str:
            return json.dumps({"id": i, "d": [], "i": [], "m": f"m{i}"})

        for payload in (note(6), note(8), note(6), "7", note(7)):
            hub._wake.clear()
            hub.on_notify(payload)
            woken.append(hub._wake.is_set())
        # The pump's read may overlap a NOTIFY delivery: what is at or below the mark is not offered twice.
        hub.fan_out([_item(i) for i in (6, 7, 8)], [])
        return [e[1] for e in sub.queue], woken

    delivered, woken = asyncio.run(run())
    assert delivered == [6, 7, 8]
    assert woken == [False, True, True, True, False]


def test_the_pump_reads_nothing_while_nobody_is_subscribed_and_the_first_subscriber_gets_the_marks() -> None:
    """G-P1: a server without open consoles does not read the log after every commit."""
    hub = live.LiveHub(None, "sqlite://", live.LiveConfig())  # type: ignore[arg-type]
    reads: list[str] = []

    def read_new(after_event: int, after_alert: int) -> tuple[list[live.LiveItem], list[live.LiveItem]]:
        reads.append("items")
        return [_item(i) for i in range(after_event + 1, 43)], []

    def read_high_water() -> tuple[int, int]:
        reads.append("marks")
        return 40, 7

    hub._read_new = read_new  # type: ignore[method-assign]
    hub._read_high_water = read_high_water  # type: ignore[method-assign]

    async def run() -> live.Subscriber:
        hub._drain_lock = asyncio.Lock()
        await hub._drain()  # a commit woke the pump: nobody to offer anything to
        await hub._drain()
        assert reads == [] and hub._marks_stale
        # What subscribe() does once the pump runs: bring the marks up to date, then register at them.
        await hub._drain(subscribing=True)
        sub = hub._register(Actor(1, Role.DISPATCHER), since=None, since_alert=None)
        await hub._drain()  # the next commit: read, as there is a subscriber now
        return sub

    sub = asyncio.run(run())
    # The marks were brought up to date once (not every row since), then rows above them were read.
    assert reads == ["marks", "items", "items"]
    assert (sub.pos_event, sub.pos_alert) == (42, 7) and not hub._marks_stale


def test_a_local_commit_wakes_the_pump_only_when_no_postgresql_listener_will() -> None:
    async def run() -> list[bool]:
        woken = []
        for url, listening in (("sqlite://", True), ("postgresql://x/y", True), ("postgresql://x/y", False)):
            hub = live.LiveHub(None, url, live.LiveConfig())  # type: ignore[arg-type]
            hub._loop, hub._wake, hub._listening = asyncio.get_running_loop(), asyncio.Event(), asyncio.Event()
            if listening:
                hub._listening.set()
            hub.committed_threadsafe()
            await asyncio.sleep(0)
            woken.append(hub._wake.is_set())
        return woken

    # The listener delivers the commit's NOTIFY itself; without one (or on SQLite) the commit wakes the pump.
    assert asyncio.run(run()) == [True, False, True]
