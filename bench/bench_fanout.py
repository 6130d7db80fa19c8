"""Live-stream fan-out: N operator websockets, case events at R/s; latency from the event to its receipt.

In the same run, the anchor: a bare Starlette websocket app on the same machine pushing the same number of
messages of the same size to the same number of sockets (performance.md C2 measures this kind of push).

    .venv/bin/python -m bench.bench_fanout                                   # SpatiaLite (temp file)
    .venv/bin/python -m bench.bench_fanout --db postgresql+psycopg://postgres@127.0.0.1/gc_bench_fanout

Events are real case reports committed through the service layer by a generator thread of the benchmark
process (another process than the app, as another worker would be); the app's live hub learns of them by
LISTEN/NOTIFY on PostgreSQL, by its poll (set to 10 ms for this run) on SpatiaLite, reads them and fans them
out. Latency = receipt time − the wall-clock time right after the generator's commit returned. Server and
clients run in separate processes, pinned to different CPUs when there are two. A PostgreSQL URL must name
a database the benchmark may drop and recreate. Writes its section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from websockets.asyncio.client import connect

from bench.perfdoc import write_section
from bench.scratch import recreate_postgis_database
from gridcity import migrate, org, security
from gridcity.database import make_engine, make_session_factory
from gridcity.roles import Role

ROOT = Path(__file__).resolve().parent.parent
RECEIPTS: list[tuple[int, float]] = []
COMMITS: dict[int, float] = {}
SECRET = "bench-secret-" + "x" * 32

APP_SERVER = """
import sys, uvicorn
from gridcity.app import create_app
from gridcity.settings import Settings
app = create_app(Settings(database_url=sys.argv[2], data_dir=sys.argv[3], secret_key=sys.argv[4]))
app.state.live_config.queue_size = 10000
app.state.live_config.poll_seconds = float(sys.argv[5])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

BARE_SERVER = """
import asyncio, json, sys, time, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

sockets = set()

async def ws(websocket):
    await websocket.accept()
    sockets.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except Exception:
        pass
    finally:
        sockets.discard(websocket)

async def push(rate, count, pad):
    for i in range(count):
        text = json.dumps({"type": "event", "id": i, "t": time.time(), "pad": pad})
        for s in list(sockets):
            try:
                await s.send_text(text)
            except Exception:
                sockets.discard(s)
        await asyncio.sleep(1 / rate)

async def start(request):
    q = request.query_params
    asyncio.get_running_loop().create_task(push(float(q["rate"]), int(q["count"]), "x" * int(q["pad"])))
    return JSONResponse({"sockets": len(sockets)})

app = Starlette(routes=[WebSocketRoute("/ws", ws), Route("/start", start)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh_db(url: str | None) -> str:
    if url is None:
        return f"sqlite:///{Path(tempfile.mkdtemp()) / 'fanout.sqlite'}"
    recreate_postgis_database(url)
    return url


def _prepare(url: str, operators: int) -> tuple[list[str], int]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    pw = security.hash_password("bench-password")
    with make_session_factory(engine)() as s, s.begin():
        ops = [org.create_user(s, username=f"op{i:04d}", password="x", role=Role.DISPATCHER, password_hash=pw).id
               for i in range(operators)]
        insp = org.create_user(s, username="inspector", password="x", role=Role.INSPECTOR, password_hash=pw).id
    engine.dispose()
    ttl = dt.timedelta(hours=2)
    return [security.create_token(user_id=u, role="dispatcher", secret=SECRET, ttl=ttl) for u in ops], insp


def _spawn(code: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", code, str(port), *args], cwd=ROOT)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(proc.pid, {0})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("server did not start") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _client(url: str, lat: list[float], ready: asyncio.Event, counter: list[int], n: int,
                  stop: asyncio.Event, stamp: str) -> None:
    async with connect(url, max_queue=None, open_timeout=60, compression=None) as ws:
        if stamp != "t":  # the app's stream is live once it says "synced"
            while json.loads(await ws.recv()).get("type") != "synced":
                pass
        counter[0] += 1
        if counter[0] == n:
            ready.set()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now = time.time()
            msg = json.loads(raw)
            if msg.get("type") != "event":
                continue
            if stamp == "t":
                lat.append(now - msg["t"])
            else:  # we match the receipt with the commit time later
                lat.append(now)
                RECEIPTS.append((msg["id"], now))


async def _run_clients(ws_url: str, n: int, expect: int, start: object, stamp: str,
                       max_seconds: float) -> tuple[list[float], float]:
    lat: list[float] = []
    ready, stop = asyncio.Event(), asyncio.Event()
    counter = [0]
    tasks = [asyncio.create_task(_client(u, lat, ready, counter, n, stop, stamp))
             for u in ([ws_url] * n if isinstance(ws_url, str) else ws_url)]
    await asyncio.wait_for(ready.wait(), timeout=120)
    await asyncio.sleep(0.5)
    t0 = time.perf_counter()
    await start()  # type: ignore[operator]
    while len(lat) < expect and time.perf_counter() - t0 < max_seconds:
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - t0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return lat, elapsed


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def _drive_events(url: str, inspector_id: int, rate: float, count: int) -> None:
    """Commit ``count`` case reports at ``rate``/s through the service layer; note each commit's time."""
    from casework import live, service  # noqa: PLC0415
    from casework.lifecycle import Actor, CaseAction  # noqa: PLC0415
    from gridcity.database import transaction  # noqa: PLC0415

    live.install_hooks()  # the after-action hook: pg_notify inside each transaction on PostgreSQL
    engine = make_engine(url)
    factory = make_session_factory(engine)
    actor = Actor(inspector_id, Role.INSPECTOR)
    new = service.NewCase(class_code="C0101", lon=107.1448, lat=34.3693, description="bench")
    t0 = time.perf_counter()
    for i in range(count):
        # We keep the rate by the clock (open loop), not by how long each commit took.
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with transaction(factory) as s:
            case = service.create_case(s, actor=actor, action=CaseAction.REPORT, new=new)
            s.flush()
            ev_id = s.scalar(sa.text("SELECT max(id) FROM case_event WHERE case_id = :c"), {"c": case.id})
        COMMITS[int(ev_id)] = time.time()
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=None, help="PostgreSQL URL (a database to recreate); default SpatiaLite")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/performance.md")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    count = int(args.rate * args.seconds)
    url = _fresh_db(args.db)
    tokens, inspector = _prepare(url, args.clients)
    data_dir = tempfile.mkdtemp()

    poll = 0.01 if url.startswith("sqlite") else 5.0
    app_proc, app_url = _spawn(APP_SERVER, url, data_dir, SECRET, str(poll))
    try:
        ws_base = app_url.replace("http://", "ws://") + "/ws/live?token="
        lat_app, t_app = asyncio.run(_run_clients(
            [ws_base + t for t in tokens], args.clients, count * args.clients,  # type: ignore[arg-type]
            lambda: asyncio.to_thread(_drive_events, url, inspector, args.rate, count), "at", args.seconds + 60))
    finally:
        _stop(app_proc)
    lat_app = [t - COMMITS[i] for i, t in RECEIPTS if i in COMMITS]
    # The app's event payload size, to give the bare push the same bytes per message.
    pad = 600

    bare_proc, bare_url = _spawn(BARE_SERVER)
    try:
        async def start_bare() -> None:
            async with httpx.AsyncClient() as http:
                await http.get(f"{bare_url}/start", params={"rate": args.rate, "count": count, "pad": pad})
        lat_bare, t_bare = asyncio.run(_run_clients(
            bare_url.replace("http://", "ws://") + "/ws", args.clients, count * args.clients, start_bare,
            "t", args.seconds + 60))
    finally:
        _stop(bare_proc)

    def line(name: str, lat: list[float], elapsed: float) -> str:
        return (f"| {name} | {len(lat):,} of {count * args.clients:,} | {_pct(lat, 0.5):.1f} | {_pct(lat, 0.99):.1f} "
                f"| {max(lat) * 1000:.1f} | {len(lat) / elapsed:,.0f} |")

    backend = "PostgreSQL/PostGIS (LISTEN/NOTIFY wake-up)" if url.startswith("postgresql") else "SpatiaLite"
    ratio50 = _pct(lat_app, 0.5) / max(_pct(lat_bare, 0.5), 1e-9)
    ratio99 = _pct(lat_app, 0.99) / max(_pct(lat_bare, 0.99), 1e-9)
    wake = "LISTEN/NOTIFY" if url.startswith("postgresql") else "10 ms poll"
    body = f"""## Live stream fan-out (`bench/bench_fanout.py`)

{args.clients} operator websockets (dispatchers: they see every event), {args.rate:g} case events/s for
{args.seconds:g} s, one uvicorn worker ({backend}), clients in another process; {platform.machine()},
{os.cpu_count()} CPUs, Python {platform.python_version()}. Latency in ms from the generator's commit (in
another process) to the receipt; wake-up: {wake}; the anchor pushes the same number of ~{pad}-byte
messages from a bare Starlette websocket app on the same machine (performance.md C1/C2).

| path | delivered | p50 ms | p99 ms | max ms | deliveries/s |
|---|---|---|---|---|---|
{line("case event → operator (app)", lat_app, t_app)}
{line("bare websocket push (anchor)", lat_bare, t_bare)}

Ratio app / anchor: p50 {ratio50:.1f}×, p99 {ratio99:.1f}×. Goal G-W1: p99 ≤ 2× C2 (≤ 25 ms at 200
operators × 20 events/s); this run is at {args.rate:g} events/s.

Caveats of this setup: all {args.clients} clients are one Python asyncio process on one CPU, and on the
app run that CPU also runs the event generator (SQLAlchemy + commits); the anchor run has no generator.
When the anchor itself is far above C2 the numbers are client-bound, not a server limit: compare the ratio,
and treat a ratio above 2× as "not yet shown to meet G-W1".

Reproduce: `.venv/bin/python -m bench.bench_fanout{' --db ' + args.db if args.db else ''}`
"""
    print(body)
    if not args.no_doc:
        write_section("bench_fanout", body)


if __name__ == "__main__":
    main()
