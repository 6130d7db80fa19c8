"""Photo-report ingest over HTTP against a real uvicorn server, next to its limit (Pillow alone).

One run measures, on the same machine and the same photos (4000×3000 JPEG, q92, EXIF with GPS and time,
Orientation=6 — the shape of a 12 MP phone photo, ~4 MB):

* **ingest** — ``POST /mobile/v1/reports`` (multipart: JSON field + one photo, an ``Idempotency-Key`` each)
  from ``--clients`` concurrent HTTP clients against ``uvicorn gridcity.asgi:app`` (1 worker) started in a
  subprocess on 127.0.0.1: sustained reports/s over the run and the per-request p50/p99;
* **limit** — :func:`gridcity.photos.prepare_photo` (what ingest runs per photo) alone on the same photos,
  in-process, 1 thread and ``--clients`` threads (Pillow releases the GIL);
* **G-I1** — ``prepare_photo`` against a B3-style draft pipeline (``draft('RGB',(512,512))`` → 512 px
  LANCZOS → transpose → JPEG q85), 1 thread, interleaved in ``--rounds`` rounds, as a time ratio (goal
  ≤ 1.25); ``process_photo`` (with the 2048 px display) and ``render_display`` alone for reference;
* **event-loop hygiene (G-I3)** — ``GET /healthz`` p99 from a separate process, idle and while the ingest
  runs; next to it, in the same windows, the p99 of a bare ASGI app (:mod:`bench.bare_asgi`, its own uvicorn
  process), so that on a loaded machine the figure can be read relative to the machine's own floor (our
  busy p99 ÷ the bare app's busy p99).

    .venv/bin/python -m bench.bench_ingest                        # SpatiaLite, 60 reports, 2 clients
    .venv/bin/python -m bench.bench_ingest --backend postgis --write
    .venv/bin/python -m bench.bench_ingest --n 200 --clients 4

The client runs on the same machine as the server (both share its cores), so the figures are a floor.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import io
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
from PIL import Image, TiffImagePlugin

from bench.b6_ingest import draft_pipeline
from bench.perfdoc import write_section
from bench.scratch import free_port, recreate_postgis_database, uvicorn_cmd
from gridcity import migrate, org, photos, security
from gridcity.database import make_engine, make_session_factory
from gridcity.roles import Role

LON, LAT = 107.1448, 34.3693
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/gc_bench_ingest"
SECRET = "bench-secret-" + "x" * 40
TAG = b"GCBENCH-000000"  # a same-length counter in EXIF Make makes every photo distinct without re-encoding


def _dms(v: float) -> tuple[Any, Any, Any]:
    r = TiffImagePlugin.IFDRational
    d = int(v)
    m = int((v - d) * 60)
    s = round(((v - d) * 60 - m) * 60 * 10000)
    return r(d), r(m), r(s, 10000)


def base_photo() -> bytes:
    """4000×3000, q92, 4:2:0, Orientation=6, EXIF time + GPS (WGS84), gradients and noise like a photo."""
    size = (4000, 3000)
    grad = Image.linear_gradient("L").resize(size)
    im = Image.merge("RGB", (grad, grad.transpose(Image.Transpose.ROTATE_180), Image.effect_noise(size, 40)))
    exif = Image.Exif()
    exif[0x010F] = TAG.decode()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = dt.datetime.now().strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", _dms(LAT), "E", _dms(LON)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def variant_of(base: bytes, i: int) -> bytes:
    """Photo ``i``: distinct SHA-256, same pixels and decode cost."""
    return base.replace(TAG, f"GCBENCH-{i:06d}".encode())


def variants(base: bytes, n: int) -> list[bytes]:
    """``n`` distinct photos (different SHA-256, same pixels and decode cost)."""
    assert base.count(TAG) == 1
    return [variant_of(base, i) for i in range(n)]


def tiny_photo(base: bytes) -> bytes:
    """The base photo's EXIF on 64×48 pixels: a report whose photo work is next to nothing."""
    src = Image.open(io.BytesIO(base))
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(buf, "JPEG", exif=src.getexif())
    return buf.getvalue()


def timed_map(fn: Any, items: list[bytes], threads: int) -> float:
    """Items per second of ``fn`` over ``items`` with ``threads`` threads."""
    t0 = time.perf_counter()
    if threads == 1:
        for x in items:
            fn(x)
    else:
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(fn, items))
    return len(items) / (time.perf_counter() - t0)


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds all processes of the machine have used so far, idle and I/O wait left out (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system [idle iowait] irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass
class _Tally:
    """One endpoint's share of the G-I2 rounds: wall seconds, latencies, and the CPU seconds of its server, of
    the HTTP clients (this process) and of the whole machine."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_cpu: float = 0.0

    def add(self, pid: int, run: Callable[[], tuple[float, list[float]]]) -> None:
        """Run one round (``run`` returns its seconds and latencies) with ``pid`` as its server."""
        s0, p0, m0 = proc_cpu(pid), time.process_time(), machine_cpu()
        seconds, latencies = run()
        self.server_cpu += proc_cpu(pid) - s0
        self.client_cpu += time.process_time() - p0
        self.machine_cpu += machine_cpu() - m0
        self.seconds += seconds
        self.latencies += latencies


def pin(pid: int, cpus: set[int]) -> None:
    """Run every thread of process ``pid`` (threads it starts later inherit it) on ``cpus`` only."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def server_process(pid: int) -> int:
    """The uvicorn process: ``pid`` itself, or its child when ``pid`` is py-spy running it."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def prepare_database(backend: str, data_dir: Path, pg_url: str) -> tuple[str, int]:
    """A migrated database with one inspector; its URL and the inspector's id."""
    if backend == "spatialite":
        url = f"sqlite:///{data_dir / 'bench_ingest.sqlite'}"
    else:
        url = recreate_postgis_database(pg_url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    with make_session_factory(engine)() as s, s.begin():
        uid = org.create_user(s, username="bench-inspector", password="bench-password", role=Role.INSPECTOR).id
    engine.dispose()
    return url, uid


def count_cases(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as c:
        n = int(c.exec_driver_sql('SELECT count(*) FROM "case"').scalar_one())
    engine.dispose()
    return n


def pinger(base_urls: list[str], ready: Any, stop: Any, out: Any, interval: float) -> None:
    """In its own process (no GIL shared with the upload clients): GET /healthz of each server in turn until
    told to stop; puts one list of latencies per server."""
    lat: list[list[float]] = [[] for _ in base_urls]
    clients = [httpx.Client(base_url=u, timeout=30) for u in base_urls]
    try:
        for c in clients:
            c.get("/healthz")
        ready.set()
        while not stop.is_set():
            for c, seen in zip(clients, lat, strict=True):
                t0 = time.perf_counter()
                r = c.get("/healthz")
                seen.append(time.perf_counter() - t0)
                assert r.status_code == 200
            time.sleep(interval)
    finally:
        for c in clients:
            c.close()
    out.put(lat)


def ping_window(base_urls: list[str], interval: float = 0.005) -> Any:
    """Start a pinger process and wait until it pings; returns (process, stop event, queue)."""
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    q = ctx.Queue()
    p = ctx.Process(target=pinger, args=(base_urls, ready, stop, q, interval))
    p.start()
    if not ready.wait(120):
        raise RuntimeError("the pinger did not start")
    return p, stop, q


def wait_until_up(base_url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="gc-bench-ingest-"))
    url, uid = prepare_database(args.backend, data_dir, args.pg_url)
    print(f"generating {args.n} photos of 4000×3000 ...", flush=True)
    base = base_photo()
    pics = variants(base, min(40, args.n + args.warmup))  # the limit's sample; ingest makes its own on the fly

    # --- the limit: Pillow alone on the same photos ---
    # What ingest runs per photo is photos.prepare_photo (validate, EXIF, thumbnail); the 2048 px display
    # rendition is made later, on its first request (render_display). G-I1 compares prepare_photo with the
    # B3 draft pipeline, interleaved (A B A B ...) so that load changes on the machine hit both alike.
    sample = pics[: min(len(pics), 40)]
    timed_map(photos.prepare_photo, sample[:4], 1)  # warm-up
    timed_map(draft_pipeline, sample[:4], 1)
    prep_t = draft_t = prep_cpu = 0.0
    for rnd in range(args.rounds):
        part = sample[rnd :: args.rounds] or sample
        c0 = time.process_time()
        prep_t += len(part) / timed_map(photos.prepare_photo, part, 1)
        prep_cpu += time.process_time() - c0
        draft_t += len(part) / timed_map(draft_pipeline, part, 1)
    prep_1 = len(sample) / prep_t
    draft_1 = len(sample) / draft_t
    prep_n = timed_map(photos.prepare_photo, sample, args.clients)
    proc_1 = timed_map(photos.process_photo, sample[:10], 1)
    info = photos.inspect_photo(sample[0])
    display_1 = timed_map(lambda d: photos.render_display(d, info), [sample[0]] * 10, 1)
    print(
        f"prepare_photo: {prep_1:.1f}/s (1 thread), {prep_n:.1f}/s ({args.clients} threads); "
        f"B3 draft pipeline {draft_1:.1f}/s; G-I1 ratio {draft_1 / prep_1:.2f}; "
        f"process_photo (with display) {proc_1:.1f}/s; display alone {display_1:.1f}/s",
        flush=True,
    )

    # --- the server ---
    port = free_port()
    env = {
        **os.environ,
        "GRIDCITY_DATA_DIR": str(data_dir),
        "GRIDCITY_DATABASE_URL": url,
        "GRIDCITY_SECRET_KEY": SECRET,
    }
    cmd = uvicorn_cmd("gridcity.asgi:app", port)
    if args.profile:
        # py-spy samples the server from outside (no instrumentation inside the process being measured).
        cmd = [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--format",
            "raw",
            "--rate",
            "50",
            "--nonblocking",
            "--threads",
            "--output",
            args.profile,
            "--",
            *cmd,
        ]
    server = subprocess.Popen(cmd, env=env)
    base_url = f"http://127.0.0.1:{port}"
    # The machine's floor: a bare ASGI app under the same uvicorn, pinged in the same windows (G-I3 relative).
    bare_port = free_port()
    bare = subprocess.Popen(uvicorn_cmd("bench.bare_asgi:app", bare_port))
    bare_url = f"http://127.0.0.1:{bare_port}"
    # G-I2's anchor B6: a bare FastAPI ingest endpoint under the same uvicorn, sent the same photos.
    b6_port = free_port()
    b6_dir = data_dir / "b6"
    b6_dir.mkdir()
    b6 = subprocess.Popen(uvicorn_cmd("bench.b6_ingest:app", b6_port), env={**os.environ, "GC_B6_DIR": str(b6_dir)})
    b6_url = f"http://127.0.0.1:{b6_port}"
    try:
        wait_until_up(base_url, server, "the server")
        wait_until_up(bare_url, bare, "the bare ASGI app")
        wait_until_up(b6_url, b6, "the B6 anchor")
        token = security.create_token(user_id=uid, role="inspector", secret=SECRET, ttl=dt.timedelta(hours=2))
        headers = {"Authorization": f"Bearer {token}"}
        report = {
            "class_code": "C0101",
            "lon": LON,
            "lat": LAT,
            "description": "bench",
            "captured_at": dt.datetime.now(dt.UTC).isoformat(),
        }

        def post(c: httpx.Client, pic: bytes) -> float:
            t0 = time.perf_counter()
            r = c.post(
                "/mobile/v1/reports",
                data={"report": json.dumps(report)},
                files=[("photos", ("p.jpg", pic, "image/jpeg"))],
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            if r.status_code != 201:
                raise RuntimeError(f"ingest failed: {r.status_code} {r.text[:300]}")
            return time.perf_counter() - t0

        def post_b6(c: httpx.Client, pic: bytes, path: str = "/upload") -> float:
            t0 = time.perf_counter()
            r = c.post(path, files=[("photo", ("p.jpg", pic, "image/jpeg"))])
            if r.status_code != 201:
                raise RuntimeError(f"B6 failed: {r.status_code} {r.text[:300]}")
            return time.perf_counter() - t0

        def post_b6p(c: httpx.Client, pic: bytes) -> float:
            return post_b6(c, pic, "/upload-prepare")

        def post_raw(c: httpx.Client, pic: bytes) -> float:
            t0 = time.perf_counter()
            r = c.post("/upload-raw", content=pic, headers={"Content-Type": "image/jpeg"})
            if r.status_code != 201:
                raise RuntimeError(f"raw upload failed: {r.status_code} {r.text[:300]}")
            return time.perf_counter() - t0

        with httpx.Client(base_url=base_url, timeout=120) as c:
            for i in range(args.warmup):
                post(c, variant_of(base, i))
        with httpx.Client(base_url=b6_url, timeout=120) as c:
            for i in range(args.warmup):
                post_b6(c, variant_of(base, 900_000 + i))
                post_b6p(c, variant_of(base, 910_000 + i))
                post_raw(c, variant_of(base, 920_000 + i))

        def ingest(first: int, n: int, url: str = base_url, send: Any = post) -> tuple[float, list[float]]:
            """``n`` reports (photos ``first``…) from ``args.clients`` clients: seconds and latencies."""
            todo = list(range(first, first + n))
            lock = threading.Lock()
            latencies: list[float] = []

            def client() -> None:
                with httpx.Client(base_url=url, timeout=120) as c:
                    while True:
                        with lock:
                            if not todo:
                                return
                            i = todo.pop()
                        d = send(c, variant_of(base, i))
                        with lock:
                            latencies.append(d)

            t0 = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.perf_counter() - t0, latencies

        # G-I2: ingest alone (no pinger: each ping is a request the same worker serves), in rounds that
        # alternate with B6 (the same photos, clients and uvicorn), so that a change in the machine's other
        # load hits both alike. CPU time of both servers and of the clients (this process) is counted too:
        # unlike rates it barely depends on the machine's other load.
        server_pid = server_process(server.pid) if args.profile else server.pid
        # Per worker core, as B6 is defined ("1 worker on 1 core"): each server runs on CPU 0 alone, the
        # clients (this process) on CPU 1; the database server is not pinned.
        all_cpus = os.sched_getaffinity(0)
        pinned = args.pin and len(all_cpus) >= 2
        if pinned:
            first_cpu, *others = sorted(all_cpus)
            for pid in (server_pid, b6.pid):
                pin(pid, {first_cpu})
            pin(os.getpid(), set(others))
        prep_round_t = 0.0  # the limit again, in the same rounds (the machine's speed drifts within minutes)
        # each endpoint: (its server process, the first photo number it is sent, its URL, how a photo is sent)
        targets = {
            "ours": (server_pid, 0, base_url, post),
            "b6": (b6.pid, 500_000, b6_url, post_b6),
            "b6p": (b6.pid, 600_000, b6_url, post_b6p),
            "raw": (b6.pid, 700_000, b6_url, post_raw),
        }
        tally = {name: _Tally() for name in targets}
        first = args.warmup
        for rnd in range(args.b6_rounds):
            n = args.n // args.b6_rounds + (1 if rnd < args.n % args.b6_rounds else 0)
            for name, (pid, offset, endpoint, send) in targets.items():
                tally[name].add(pid, functools.partial(ingest, offset + first, n, endpoint, send))
            prep_round_t += n / timed_map(photos.prepare_photo, [pics[j % len(pics)] for j in range(n)], 1)
            first += n
        if pinned:
            for pid in (server_pid, b6.pid, os.getpid()):
                pin(pid, all_cpus)
        ours, latencies = tally["ours"], tally["ours"].latencies
        rate, server_cpu, client_cpu = args.n / ours.seconds, ours.server_cpu / args.n, ours.client_cpu / args.n

        # Idle /healthz (ours and the bare app's, alternately).
        p, stop, q = ping_window([base_url, bare_url])
        time.sleep(args.idle_seconds)
        stop.set()
        idle, bare_idle = q.get(timeout=60)
        p.join()

        # G-I3: the same ingest again with the pinger running.
        p, stop, q = ping_window([base_url, bare_url])
        time.sleep(0.5)
        t, _ = ingest(args.warmup + args.n, args.n)
        rate_pinged = args.n / t
        stop.set()
        busy, bare_busy = q.get(timeout=60)
        p.join()

        # The fixed cost of a report (auth, idempotency, case + event, commit): the same reports with a
        # 64×48 photo (same EXIF), sequentially; server CPU per report.
        tiny = tiny_photo(base)
        with httpx.Client(base_url=base_url, timeout=120) as c:
            post(c, tiny.replace(TAG, b"GCBENCH-T00000"))
            c0 = proc_cpu(server_pid)
            for i in range(args.tiny):
                post(c, tiny.replace(TAG, f"GCBENCH-T{i + 1:05d}".encode()))
            tiny_cpu = (proc_cpu(server_pid) - c0) / args.tiny
    finally:
        bare.terminate()
        b6.terminate()
        if args.profile:
            import signal  # noqa: PLC0415

            server.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT and stops the server
        else:
            server.terminate()
        server.wait(timeout=60)
        bare.wait(timeout=60)
        b6.wait(timeout=60)
    stored = count_cases(url)
    sent = 2 * args.n + args.warmup + 1 + args.tiny
    assert stored == sent, f"{stored} cases stored, {sent} sent"
    return {
        "backend": args.backend,
        "n": args.n,
        "clients": args.clients,
        "photo_mb": len(base) / 1e6,
        "rate": rate,
        "rate_pinged": rate_pinged,
        **{f"{name}_rate": args.n / t.seconds for name, t in tally.items() if name != "ours"},
        **{f"{name}_cpu": t.server_cpu / args.n for name, t in tally.items() if name != "ours"},
        **{f"{name}_p50": pct(t.latencies, 0.5) * 1e3 for name, t in tally.items() if name != "ours"},
        "ours_all": ours.machine_cpu / args.n,
        "b6_all": tally["b6"].machine_cpu / args.n,
        "b6_rounds": args.b6_rounds,
        "pinned": pinned,
        "prep_rounds": args.n / prep_round_t,
        "p50": pct(latencies, 0.5) * 1e3,
        "p99": pct(latencies, 0.99) * 1e3,
        "prep_1": prep_1,
        "prep_n": prep_n,
        "draft_1": draft_1,
        "proc_1": proc_1,
        "display_1": display_1,
        "ping_idle_p50": pct(idle, 0.5) * 1e3,
        "ping_idle_p99": pct(idle, 0.99) * 1e3,
        "ping_idle_n": len(idle),
        "ping_busy_p50": pct(busy, 0.5) * 1e3,
        "ping_busy_p99": pct(busy, 0.99) * 1e3,
        "ping_busy_n": len(busy),
        "bare_idle_p50": pct(bare_idle, 0.5) * 1e3,
        "bare_idle_p99": pct(bare_idle, 0.99) * 1e3,
        "bare_busy_p50": pct(bare_busy, 0.5) * 1e3,
        "bare_busy_p99": pct(bare_busy, 0.99) * 1e3,
        "mean_ms": statistics.mean(latencies) * 1e3,
        "load": (load_before, os.getloadavg()[0]),
        "prep_cpu": prep_cpu / len(sample),
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "tiny_cpu": tiny_cpu,
        "tiny_n": args.tiny,
    }


def _verdict(value: float, goal: float, better: str) -> str:
    met = value <= goal if better == "lower" else value >= goal
    return "met" if met else "**not met**"


def section(r: dict[str, Any], cmd: str) -> str:
    """The docs/performance.md section."""
    # Pinned, each server has one core: the limit is prepare_photo on one thread (one core) too.
    prep_ref = r["prep_rounds"] if r["pinned"] else r["prep_n"]
    prep_label = "1 thread, one core like the server, in the same rounds" if r["pinned"] else f"{r['clients']} threads"
    ratio = r["rate"] / prep_ref
    limits = f"{r['prep_1']:.1f} / {r['prep_n']:.1f}; {r['prep_rounds']:.1f} photos/s"
    sustained = f"**{r['rate']:.1f} reports/s**; p50 {r['p50']:.0f}, p99 {r['p99']:.0f} ms"
    pin_label = "; each server pinned to one CPU, the clients on the other" if r["pinned"] else ""
    gi2 = _verdict(ratio, 0.8, "higher")
    b6_ratio = r["rate"] / r["b6_rate"]
    b6_prep = r["b6_rate"] / prep_ref
    b6p_ratio = r["rate"] / r["b6p_rate"]
    b6p_prep = r["b6p_rate"] / prep_ref
    gi1 = r["draft_1"] / r["prep_1"]
    ping_ratio = r["ping_busy_p99"] / r["ping_idle_p99"]
    bare_ratio = r["bare_busy_p99"] / r["bare_idle_p99"]
    relative = r["ping_busy_p99"] / r["bare_busy_p99"]
    bare = (
        "| bare ASGI app (`bench/bare_asgi.py`, same uvicorn), pinged alternately with ours: "
        f"idle p50 / p99; in ingest p50 / p99 | {r['bare_idle_p50']:.2f} / {r['bare_idle_p99']:.2f} ms; "
        f"{r['bare_busy_p50']:.2f} / {r['bare_busy_p99']:.2f} ms |\n"
    )
    anchors = (
        "| B6, the anchor of G-I2: a bare FastAPI ingest endpoint (`bench/b6_ingest.py`: upload read into memory, "
        "EXIF, B3 draft thumbnail in the threadpool, two files written), same uvicorn, clients and photos, "
        f"{r['b6_rounds']} rounds alternating with ours{pin_label} | {r['b6_rate']:.1f} photos/s; "
        f"p50 {r['b6_p50']:.0f} ms; "
        f"server CPU {r['b6_cpu'] * 1e3:.0f} ms per photo |\n"
        f"| **G-I2** as the standard defines it: ingest / B6 (goal ≥ 0.8) | **{b6_ratio:.2f}** "
        f"({_verdict(b6_ratio, 0.8, 'higher')}); B6's server CPU per photo ÷ ours per report: "
        f"{r['b6_cpu'] / r['server_cpu']:.2f} |\n"
        "| CPU of the whole machine per report (server, database, clients, anything else running): ours; B6's "
        f"| {r['ours_all'] * 1e3:.0f} ms; {r['b6_all'] * 1e3:.0f} ms |\n"
        "| B6 with our photo step: the same bare endpoint running `prepare_photo` instead of EXIF + B3 "
        f"(`/upload-prepare`), alternating likewise | {r['b6p_rate']:.1f} photos/s; p50 {r['b6p_p50']:.0f} ms; "
        f"server CPU {r['b6p_cpu'] * 1e3:.0f} ms per photo |\n"
        f"| **G-I2 like for like**: ingest / B6 with our photo step (goal ≥ 0.8) | **{b6p_ratio:.2f}** "
        f"({_verdict(b6p_ratio, 0.8, 'higher')}); its server CPU per photo ÷ ours per report: "
        f"{r['b6p_cpu'] / r['server_cpu']:.2f} |\n"
        f"| G-I2 as issue 11 words it: ingest / `prepare_photo` alone ({prep_label}) (goal ≥ 0.8) | "
        f"**{ratio:.2f}** ({gi2}) |\n"
        "| the photo as the raw request body (`/upload-raw`: no multipart), `prepare_photo` and two files in the "
        f"threadpool: the most any ingest code behind this uvicorn reaches | {r['raw_rate']:.1f} photos/s; server "
        f"CPU {r['raw_cpu'] * 1e3:.0f} ms per photo; {r['raw_rate'] / prep_ref:.2f} of `prepare_photo` alone "
        f"(CPU: {r['prep_cpu'] / r['raw_cpu']:.2f}); ours / it: {r['rate'] / r['raw_rate']:.2f} |\n"
        "| the same ratio for the bare endpoints: B6 / `prepare_photo` alone; B6 with our photo step / "
        f"`prepare_photo` alone | {b6_prep:.2f}; {b6p_prep:.2f} (CPU: `prepare_photo` ÷ their server CPU "
        f"{r['prep_cpu'] / r['b6_cpu']:.2f}; {r['prep_cpu'] / r['b6p_cpu']:.2f}) |\n"
    )
    draft = f"{r['draft_1']:.1f} photos/s ({1000 / r['draft_1']:.0f} ms/photo)"
    ref = f"{r['proc_1']:.1f} photos/s; {1000 / r['display_1']:.0f} ms"
    cpu = (
        f"| CPU per report: server / HTTP clients; `prepare_photo` alone, per photo | "
        f"{r['server_cpu'] * 1e3:.0f} / {r['client_cpu'] * 1e3:.0f} ms; {r['prep_cpu'] * 1e3:.0f} ms |\n"
        f"| `prepare_photo` CPU / server CPU per report (the ceiling of G-I2 when the CPUs are the limit) | "
        f"**{r['prep_cpu'] / r['server_cpu']:.2f}** |\n"
        f"| server CPU per report with a 64×48 photo ({r['tiny_n']} sequential: the fixed cost of a report) | "
        f"{r['tiny_cpu'] * 1e3:.0f} ms |\n"
    )
    cpu = anchors + cpu
    return f"""## Photo-report ingest over HTTP ({r["backend"]})

`{cmd}`
— {dt.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};
1-min load average {r["load"][0]:.1f} before / {r["load"][1]:.1f} after the run (other work on the machine
inflates absolute figures; the ratios are taken within the run).
`POST /mobile/v1/reports` (multipart: JSON + one {r["photo_mb"]:.2f} MB 4000×3000 JPEG with EXIF GPS/time,
Orientation=6; idempotency key; EXIF-vs-claim flags; case created with its event) from {r["clients"]} concurrent
clients against uvicorn (1 worker) on 127.0.0.1, {r["backend"]} database; clients share the machine with the
server. Per photo, ingest runs `gridcity.photos.prepare_photo` (validate, EXIF, 320 px thumbnail from a
1/8-scale DCT decode, store original + thumbnail); the 2048 px display rendition is rendered from the original
on its first `GET …/display` and kept. The limit is `prepare_photo` alone on the same photos in the same run.

| what | figure |
|---|---|
| ingest, sustained ({r["n"]} reports{pin_label}) | {sustained} |
| the same while `/healthz` is pinged every 5 ms (the G-I3 window) | {r["rate_pinged"]:.1f} reports/s |
| limit: `prepare_photo` alone, 1 thread / {r["clients"]} threads; 1 thread in the G-I2 rounds | {limits} |
| B3-style draft pipeline alone, 1 thread (interleaved with the line above) | {draft} |
| **G-I1** `prepare_photo` time / B3 time (goal ≤ 1.25) | **{gi1:.2f}** ({_verdict(gi1, 1.25, "lower")}) |
| for reference: `process_photo` (thumbnail + display), 1 thread; display alone (first GET) | {ref} |
{cpu}| `GET /healthz` idle: p50 / p99 (n={r["ping_idle_n"]}) | {r["ping_idle_p50"]:.2f} / {r["ping_idle_p99"]:.2f} ms |
| `GET /healthz` in ingest: p50 / p99 (n={r["ping_busy_n"]}) | {r["ping_busy_p50"]:.2f} / {r["ping_busy_p99"]:.2f} ms |
| **G-I3** ratio busy p99 / idle p99 (goal ≤ 2) | **{ping_ratio:.1f}** ({_verdict(ping_ratio, 2.0, "lower")}) |
{bare}| the machine alone: bare app busy p99 / idle p99 | {bare_ratio:.1f} |
| **G-I3 relative**: our busy p99 ÷ the bare app's busy p99 (what our process adds) | **{relative:.1f}** |

Reading G-I2: the standard (`../shared/domain/performance.md`) sets it as ingest ≥ 0.8× **B6**, a bare
ingest endpoint on the same server stack (upload + EXIF + draft thumbnail in the threadpool + two files
written), so that the 25% between them pays for what the goal names beyond B6: persistence and routing. B6 runs
here as `bench/b6_ingest.py` under the same uvicorn, with the same clients and photos, in rounds alternating
with ours; so does the same bare endpoint with our own photo step (`prepare_photo`, lighter than B3's 512 px
LANCZOS), the like-for-like reading. Issue 11 words the goal as 0.8× `prepare_photo` alone (no HTTP at all): no
ingest endpoint on this stack reaches that, as the bare endpoints' own ratios to `prepare_photo` show, not even
one that takes the photo as the raw body with no multipart to parse.

The endpoint is sync (`def`), so photo work runs in the threadpool, off the event loop. The
multipart body is parsed off the loop too (`mobile_api.forms`: the loop only batches the received chunks
into 4 MiB batches; python-multipart runs in a worker thread, 1–2 hops per 4 MB photo). Each photo part is
written, as it arrives, to a temp file under the photo store and hashed on the way; the service takes that
hash (`prepare_photo` takes it too and does not hash again) and hard-links the temp file into the store as
the original (`MediaStore.put_file`: `fsync`, link; one folder `fsync` for original and thumbnail), so the
4 MB are neither hashed again nor written a second time; `prepare_photo` still validates and reads EXIF from
the same bytes, so the EXIF-vs-claim check sees the photo as sent.
The photo work (decode, EXIF, thumbnail, file writes with fsync) happens after the authenticating
read transaction is committed and before the short write transaction (idempotency claim, attachment row,
case and event), so on SpatiaLite (`BEGIN IMMEDIATE`) concurrent reports no longer queue behind each
other's photo processing; files written before a transaction that then rolls back are removed with it.
G-I3 is {_verdict(ping_ratio, 2.0, "lower")} in this run. What remains on the loop is HTTP parsing of
the body (uvicorn/httptools) and the chunk batching; `/healthz` is itself a sync endpoint, so each ping also
waits for a threadpool thread and the GIL while photo threads run Python code (EXIF, hashing set-up, multipart
parsing). The machine's share of the tail is read from a bare ASGI app served by the same uvicorn in its own
process and pinged in the same windows (the {r["clients"]} clients, the pinger and both servers share
{os.cpu_count()} CPUs with other work, load {r["load"][0]:.1f}): its busy p99 rose {bare_ratio:.1f}× over its
idle p99, ours {ping_ratio:.1f}×; ours
in ingest is {relative:.1f}× the bare app's in the same window.
"""


PROFILE_TEXT = """
**Profile of the server during this run** (`--profile`: py-spy sampling the uvicorn process from outside,
50 Hz, non-blocking, all threads; busy samples only, so time a thread spends blocked in `fsync` or on the
SQLite write lock counts as busy where py-spy sees the syscall):

{table}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["spatialite", "postgis"], default="spatialite")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--tiny", type=int, default=30, help="reports with a 64×48 photo (fixed cost per report)")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the G-I1 comparison")
    ap.add_argument("--b6-rounds", type=int, default=2, help="rounds of ingest alternating with B6 (G-I2)")
    ap.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="G-I2 per worker core: each server on one CPU, the clients on the others (default: on)",
    )
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--write", action="store_true", help="write the section into docs/performance.md")
    ap.add_argument(
        "--profile",
        metavar="RAW",
        help="run the server under py-spy and write its raw samples here (summarise with bench.profile_summary)",
    )
    args = ap.parse_args()
    r = run(args)
    cmd = "   ".join(
        [
            ".venv/bin/python -m bench.bench_ingest",
            f"--backend {args.backend}",
            f"--n {args.n}",
            f"--clients {args.clients}",
            "--write",
        ]
    ).replace("   ", " ")
    text = section(r, cmd)
    if args.profile:
        from bench.profile_summary import summarise  # noqa: PLC0415

        text += PROFILE_TEXT.format(table=summarise(Path(args.profile)))
    print(text)
    if args.write:
        write_section("bench_ingest" if args.backend == "spatialite" else f"bench_ingest_{args.backend}", text)


if __name__ == "__main__":
    main()
