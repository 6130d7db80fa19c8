"""Push N cases through report → file → dispatch → accept → feedback → send_check → check_pass → close via the
service layer, and in the same run time the bare SQL insert of the same number of event rows.

    .venv/bin/python -m bench.bench_pipeline --n 10000                      # SpatiaLite (temp file)
    .venv/bin/python -m bench.bench_pipeline --n 10000 --db postgresql+psycopg://postgres@127.0.0.1/gc_bench

A PostgreSQL URL must name a database the benchmark may drop and recreate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import platform
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bench.scratch import recreate_postgis_database
from casework import service
from casework.lifecycle import Actor, CaseAction
from casework.models import Attachment
from casework.rules import load_rules
from gridcity import migrate, org
from gridcity.database import make_engine, make_session_factory
from gridcity.roles import Role


def _fresh_engine(url: str | None) -> tuple[sa.Engine, str]:
    if url is None:
        path = Path(tempfile.mkdtemp()) / "bench.sqlite"
        url = f"sqlite:///{path}"
    elif url.startswith("postgresql"):
        recreate_postgis_database(url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    return engine, url


def run(n: int, url: str | None) -> dict[str, float]:
    engine, url = _fresh_engine(url)
    factory = make_session_factory(engine)
    rules = load_rules()
    pw = "x"
    with factory() as s, s.begin():
        dept = org.create_department(s, code="SZ", name="市自来水公司")
        users = {
            r: org.create_user(s, username=r.value, password=pw, role=r, password_hash="bench",
                               department_id=dept.id if r is Role.DEPARTMENT else None)
            for r in (Role.INSPECTOR, Role.SHIFT_LEADER, Role.DISPATCHER, Role.DEPARTMENT, Role.ACCEPTOR)
        }
        actors = {r: Actor(u.id, r, u.department_id) for r, u in users.items()}
        dept_id, insp_id = dept.id, users[Role.INSPECTOR].id

    steps = [
        (Role.SHIFT_LEADER, CaseAction.FILE, {}),
        (Role.DISPATCHER, CaseAction.DISPATCH, {"department_id": dept_id}),
        (Role.DEPARTMENT, CaseAction.ACCEPT, {}),
        (Role.DEPARTMENT, CaseAction.FEEDBACK, {"note": "修复"}),  # + the department's own new photo
        (Role.ACCEPTOR, CaseAction.SEND_CHECK, {"inspector_id": insp_id}),
        (Role.INSPECTOR, CaseAction.CHECK_PASS, {}),  # + the inspector's photo and position (on site)
        (Role.SHIFT_LEADER, CaseAction.CLOSE, {}),
    ]
    lat_ms: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        with factory() as s, s.begin():
            case = service.create_case(
                s, actor=actors[Role.INSPECTOR], action=CaseAction.REPORT,
                new=service.NewCase(class_code="C0101", lon=107.14 + (i % 100) * 1e-4, lat=34.36 + (i // 100) * 1e-5),
                rules=rules,
            )
            case_id, lon, lat = case.id, case.lon, case.lat
            # Evidence belongs to its author and is used once: a photo row per case for each who gives one.
            photos = {}
            for r in (Role.DEPARTMENT, Role.INSPECTOR):
                att = Attachment(sha256=hashlib.sha256(f"{i}-{r}".encode()).hexdigest(), media_type="image/jpeg",
                                 size=1, width=1, height=1, flags=[], uploaded_by=actors[r].user_id)
                s.add(att)
                s.flush()
                photos[r] = att.id
        extra = {CaseAction.FEEDBACK: {"attachment_ids": (photos[Role.DEPARTMENT],)},
                 CaseAction.CHECK_PASS: {"attachment_ids": (photos[Role.INSPECTOR],), "lon": lon, "lat": lat}}
        for role, action, kw in steps:
            kw = {**kw, **extra.get(action, {})}
            t = time.perf_counter()
            with factory() as s, s.begin():
                service.apply_action(s, case_id=case_id, actor=actors[role], action=action,
                                     inp=service.ActionInput(**kw), rules=rules)
            lat_ms.append((time.perf_counter() - t) * 1000)
    pipeline_s = time.perf_counter() - t0
    transitions = n * (len(steps) + 1)

    # The limit: the same number of event rows inserted with bare SQL, one transaction per row as above.
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE bench_event AS SELECT * FROM case_event WHERE 1 = 0")
    row = {"case_id": 1, "seq": 1, "action": "file", "from_status": "reported", "to_status": "filed",
           "actor_id": None, "actor_role": "shift_leader", "department_id": None,
           "at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "note": None, "data": "{}"}
    ins = sa.text("INSERT INTO bench_event (case_id, seq, action, from_status, to_status, actor_id, actor_role, "
                  "department_id, at, note, data) VALUES (:case_id, :seq, :action, :from_status, :to_status, "
                  ":actor_id, :actor_role, :department_id, :at, :note, :data)")
    t0 = time.perf_counter()
    for i in range(transitions):
        with engine.begin() as c:
            c.execute(ins, {**row, "seq": i})
    raw_s = time.perf_counter() - t0
    engine.dispose()
    return {
        "n": n, "transitions": transitions, "pipeline_s": pipeline_s, "raw_s": raw_s,
        "tps": transitions / pipeline_s, "raw_tps": transitions / raw_s,
        "p50_ms": statistics.median(lat_ms), "p99_ms": statistics.quantiles(lat_ms, n=100)[98],
        "backend": "postgis" if url.startswith("postgresql") else "spatialite",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--db", default=None, help="PostgreSQL URL (a scratch database); default a SpatiaLite file")
    ap.add_argument("--write", action="store_true", help="write the figures into docs/performance.md")
    args = ap.parse_args()
    r = run(args.n, args.db)
    line = (f"| {r['backend']} | {r['n']:,} | {r['transitions']:,} | {r['tps']:.0f} | {r['p50_ms']:.2f} / "
            f"{r['p99_ms']:.2f} | {r['raw_tps']:.0f} | {r['tps'] / r['raw_tps']:.2f} |")
    print(line)
    if args.write:
        from bench.perfdoc import DOC, write_section

        name = f"bench_pipeline_{r['backend']}"
        cmd = f".venv/bin/python -m bench.bench_pipeline --n {args.n}"
        cmd += " --db <scratch PostgreSQL URL>" if args.db else ""
        write_section(name, f"""## Case pipeline throughput ({r['backend']})

`{cmd} --write`
— {dt.date.today()}, {platform.machine()}, {platform.python_version()}.
Each case: report, file, dispatch, accept, feedback, send_check, check_pass, close, one transaction each,
through `casework.service` (validation, event append, stage/deadline recomputation from the log). The limit
is a bare `INSERT` of the same number of event rows, one transaction each, in the same run.

| back end | cases | transitions | transitions/s | per-transition p50 / p99 ms | bare insert rows/s | ratio |
|---|---|---|---|---|---|---|
{line}
""")
        print(f"written to {DOC}")


if __name__ == "__main__":
    main()
