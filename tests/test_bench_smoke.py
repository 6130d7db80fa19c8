"""Every benchmark in ``bench/`` runs once at its smallest size, so a bench that rots fails the suite.

Nothing else runs the benches, and two rotted unnoticed after changes to the code they call
(``bench_evaluation`` crashed, ``bench_fanout`` waited three minutes for sockets the app refused). Each bench
runs as ``python -m bench.<name>`` in a subprocess, as a person runs it (the benches pin CPUs, start servers
and browsers, own their event loops), on this leg's back end: the SpatiaLite leg runs each bench's SpatiaLite
side, the PostGIS leg (``--db postgis``) its PostgreSQL side. A test asserts that the bench exited 0 and
printed a line of its figures (the table header or a figure row): never a timing.

``TMPDIR`` is the test's own folder: ``bench_tiles`` and ``bench_map_browser`` keep their scratch city under
``tempfile.gettempdir()`` by scale (``gc_bench_tiles_<scale>.sqlite``), which a long run on the same machine
may be using. No bench gets ``--write``, and docs/performance.md is checked unchanged at the end.

Every bench runs here but ``bench_map_browser`` (see its ``skip``: about a minute even at its smallest, most of
it Chromium rendering WebGL in software). ``bench_fieldapp`` drives Chromium too and is skipped where
``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.browser_fixtures import CHROMIUM
from tests.conftest import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parent.parent
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Bench:
    """One bench's smallest run: its arguments on a back end, and a line that only its figures print."""

    args: Callable[[str, str], list[str]]  # (backend, scratch PostgreSQL URL) -> command-line arguments
    prints: Callable[[str], str]  # backend -> text the output must contain
    backends: tuple[str, ...] = ("spatialite", "postgis")
    browser: bool = False
    skip: str = ""  # why this bench cannot run small enough here


def _pg(url: str, flag: str = "--pg-url") -> list[str]:
    return [flag, url] if url else []


def _legacy(backend: str) -> str:
    return "sqlite" if backend == "spatialite" else backend


BENCHES: dict[str, Bench] = {
    "bench_addresses": Bench(
        lambda b, pg: ["--n", "1000", "--queries", "10", "--backends", b, *_pg(pg)],
        lambda b: f"| {b} | plate |",
    ),
    "bench_burst": Bench(
        lambda b, pg: ["--clients", "4", "--requests", "2", "--backends", b, *_pg(pg)],
        lambda b: "`GET /api/v1/auth/me`",
    ),
    "bench_evaluation": Bench(
        lambda b, pg: ["--n", "200", "--repeat", "1", "--db", _legacy(b), *_pg(pg)],
        lambda b: "  rollup: build ",  # its last figures (the table is built with --write only)
    ),
    "bench_fanout": Bench(
        lambda b, pg: [
            *("--clients", "4", "--rates", "5", "--seconds", "1", "--rounds", "1", "--client-procs", "1"),
            *_pg(pg, "--db"),
        ],
        # Not "20 of 20": a client stops after 5 events, and the bench matches an event with a commit only by
        # the case's newest event id at commit time. On PostgreSQL 15 of 20 matched in one run (2026-12-02); four
        # runs on 2026-12-03, printing both sides' event ids, matched 20 of 20 (every client got ids 1-5).
        lambda b: "| event → operator (app) | ",
    ),
    "bench_fieldapp": Bench(
        lambda b, pg: ["--backend", b, "--n", "3", "--submits", "1", "--photo", "200x150", *_pg(pg)],
        lambda b: "| what | figure |",
        browser=True,
    ),
    "bench_import": Bench(
        lambda b, pg: ["--n", "500", "--backends", b, *_pg(pg)],
        lambda b: f"| {b} | 500 |",
    ),
    "bench_ingest": Bench(
        lambda b, pg: [
            *("--backend", b, "--n", "4", "--clients", "1", "--warmup", "1", "--idle-seconds", "0.5"),
            *("--tiny", "2", "--rounds", "1", *_pg(pg)),
        ],
        lambda b: "| **G-I2** as the standard defines it: ingest / B6",
    ),
    "bench_legacy_import": Bench(
        lambda b, pg: ["--cases", "20", "--db", _legacy(b), *_pg(pg)],
        lambda b: f"| {_legacy(b)} | ",
    ),
    # The browser bench has no PostGIS side: it drives the SpatiaLite city bench_tiles loads.
    "bench_map_browser": Bench(
        lambda b, pg: ["--scale", "0.05", "--cases", "50", "--flights", "2", "--no-breakdown"],
        lambda b: "| run | frames | p50 ms |",
        backends=("spatialite",),
        browser=True,
        skip="about a minute even at its smallest (two flights, no breakdown): loading the city, then Chromium "
        "rendering WebGL in software (SwiftShader) takes a CPU of its own, slowing every other bench here; "
        "run it by hand: python -m bench.bench_map_browser --scale 0.05 --cases 50 --flights 2 --no-breakdown",
    ),
    "bench_pipeline": Bench(
        lambda b, pg: ["--n", "5", *_pg(pg, "--db")],
        lambda b: f"| {b} | 5 | 40 |",
    ),
    "bench_routing": Bench(
        lambda b, pg: ["--n", "500", "--q", "20", "--backends", b, *_pg(pg)],
        lambda b: f"| {b} | component snap: `recommend()` |",
    ),
    # The scorecard's question (a partial index and PostgreSQL's plans) exists on PostgreSQL only.
    "bench_scorecard": Bench(
        lambda b, pg: ["--n", "200", "--repeat", "1", *_pg(pg)],
        lambda b: "| index | department scorecard s |",
        backends=("postgis",),
    ),
    "bench_tiles": Bench(
        lambda b, pg: ["--backends", b, "--scale", "0.05", "--cases", "50", "--per-zoom", "2", *_pg(pg)],
        lambda b: "| layer | zooms | tiles | ours p50 ms |",
    ),
}


@pytest.fixture(scope="module", autouse=True)
def performance_doc_untouched() -> Iterator[None]:
    """No smoke run may write its figures into docs/performance.md."""
    before = PERFORMANCE_DOC.read_bytes() if PERFORMANCE_DOC.exists() else None
    yield
    after = PERFORMANCE_DOC.read_bytes() if PERFORMANCE_DOC.exists() else None
    assert after == before, "a smoke run wrote docs/performance.md"


def _runs_here(bench: Bench, backend: str) -> bool:
    return backend in bench.backends and (CHROMIUM.exists() or not bench.browser) and not bench.skip


def _run(name: str, backend: str, pg_url: str, tmp: Path) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    cmd = [sys.executable, "-m", f"bench.{name}", *BENCHES[name].args(backend, pg_url)]
    assert "--write" not in cmd
    env = {**os.environ, "TMPDIR": str(tmp)}
    return cmd, subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def bench_runs(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[tuple[list[str], subprocess.CompletedProcess[str]]]]]:
    """The selected benches of this module, started at once a few at a time; each test waits for its own.

    Run one after another they take minutes (each bench starts an interpreter, migrates a database, most start
    a server); much of that is waiting, so three at a time on two CPUs take about half as long. On PostGIS each
    bench gets a scratch database beside the suite's (``GRIDCITY_TEST_PG_ADMIN``), dropped afterwards
    (``bench_legacy_import`` makes ``<name>_src``, ``<name>_dst`` and ``<name>_mem`` of it).
    """
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    names = sorted(n for n in selected if _runs_here(BENCHES[n], backend))
    pg_base, scratch = PG_ADMIN_URL.rsplit("/", 1)[0], f"gc_smoke_{uuid.uuid4().hex[:8]}"
    pg_names = {n: f"{scratch}_{n.removeprefix('bench_')}" for n in names} if backend == "postgis" else {}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            n: pool.submit(_run, n, backend, f"{pg_base}/{pg_names[n]}" if pg_names else "", tmp_path_factory.mktemp(n))
            for n in names
        }
        yield futures
    if pg_names:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            for db in pg_names.values():
                for suffix in ("", "_src", "_dst", "_mem"):
                    c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}{suffix}" WITH (FORCE)')
        admin.dispose()


def _marks(bench: Bench) -> list[pytest.MarkDecorator]:
    return [pytest.mark.postgis] * (bench.backends == ("postgis",)) + [pytest.mark.browser] * bench.browser


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(b), id=n) for n, b in sorted(BENCHES.items())])
def test_bench_runs_at_its_smallest_size_and_prints_its_figures(
    name: str,
    backend: str,
    bench_runs: dict[str, Future[tuple[list[str], subprocess.CompletedProcess[str]]]],
) -> None:
    bench = BENCHES[name]
    if backend not in bench.backends:
        pytest.skip(f"{name} has no {backend} side")
    if bench.skip:
        pytest.skip(f"{name}: {bench.skip}")
    if not _runs_here(bench, backend):
        pytest.skip(f"{name} drives {CHROMIUM}")
    cmd, proc = bench_runs[name].result()
    tail = f"\n$ {' '.join(cmd)}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, tail
    assert bench.prints(backend) in proc.stdout, tail
