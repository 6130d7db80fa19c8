"""G-S2 on PostGIS: the department scorecard recomputed from the raw facts vs one raw scan of the log, with and
without the effective-dispatch index (migration 0005), in the same run on the same data.

    .venv/bin/python -m bench.bench_scorecard --n 100000 --write
    .venv/bin/python -m bench.bench_scorecard --n 100000 --pg-url postgresql+psycopg://postgres@127.0.0.1/gc_x

Seeds N synthetic cases with ``bench.bench_evaluation.seed`` (bulk SQL: 8 events and 8 fact rows a case),
then times ``evaluation.service.compute(department, 2026, source="raw")`` and the limit, one
``GROUP BY actor_id, action`` scan of the year's ``case_event`` rows (best of the repeats after a warm-up),
first as migrated, then with ``ix_stage_fact_effective`` dropped (and the table analysed again), then with it
rebuilt. The PostgreSQL database named by ``--pg-url`` is dropped and recreated.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from typing import Any

import sqlalchemy as sa

from bench.bench_evaluation import best_of, fresh_engine, seed
from evaluation import service
from gridcity.database import make_engine, make_session_factory

INDEX = "ix_stage_fact_effective"
RAW = sa.text("SELECT actor_id, action, count(*) FROM case_event WHERE at >= :a AND at < :b GROUP BY actor_id, action")


def _autocommit(engine: sa.Engine, *sql: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for statement in sql:
            c.exec_driver_sql(statement)


def _eff_plan(engine: sa.Engine, period: service.Period) -> str:
    """How the case-filed family reaches the effective dispatch (the plan node that reads ``eff``)."""
    fam = next(f for f in service.families("department", period) if f.name == "case_filed")
    sq = fam.rows.subquery(fam.name)
    q = sa.select(sq.c.subject, *(sa.func.sum(sq.c[p]) for p in fam.primitives)).group_by(sq.c.subject)
    compiled = q.compile(dialect=engine.dialect)
    with engine.connect() as c:
        plan = [r[0] for r in c.exec_driver_sql("EXPLAIN " + str(compiled), {**compiled.params, **fam.params})]
    node = next((line for line in plan if " on stage_fact eff" in line), "?")
    return node.strip().removeprefix("->").strip().split("  (cost")[0]


def measure(engine: sa.Engine, repeat: int) -> dict[str, Any]:
    """The department scorecard and the raw scan, timed in one session."""
    period = service.parse_period("2026")
    with make_session_factory(engine)() as s:
        dept = best_of(lambda: service.compute(s, period=period, subject_type="department", source="raw"), repeat)
        raw = best_of(lambda: s.execute(RAW, {"a": period.start, "b": period.end}).all(), repeat)
    return {"department_s": dept[0], "raw_s": raw[0], "plan": _eff_plan(engine, period)}


def repeated(engine: sa.Engine, runs: int = 15) -> tuple[float, float]:
    """Median seconds of the department scorecard over its runs 1-5 and 11-``runs`` on one connection: psycopg
    prepares a statement on its 5th run, after which PostgreSQL may pick a generic plan (gridcity.database)."""
    period = service.parse_period("2026")
    times = []
    with make_session_factory(engine)() as s:
        for _ in range(runs):
            t0 = time.perf_counter()
            service.compute(s, period=period, subject_type="department", source="raw")
            times.append(time.perf_counter() - t0)
    return statistics.median(times[:5]), statistics.median(times[10:])


def run(n: int, pg_url: str, repeat: int) -> dict[str, Any]:
    """Seed once, then measure with the index, without it, and with it again."""
    engine = fresh_engine("postgis", pg_url)
    seed(engine, n)  # ends with VACUUM ANALYZE
    out: dict[str, Any] = {"n": n, "facts": 0, "rows": []}
    with engine.connect() as c:
        out["facts"] = c.exec_driver_sql("SELECT count(*) FROM stage_fact").scalar()
        out["events"] = c.exec_driver_sql("SELECT count(*) FROM case_event").scalar()
        indexdef = c.exec_driver_sql("SELECT indexdef FROM pg_indexes WHERE indexname = %(i)s", {"i": INDEX}).scalar()
    assert indexdef, f"{INDEX} is missing: migrate first"
    out["rows"].append(("with the index (as migrated)", measure(engine, repeat)))
    _autocommit(engine, f"DROP INDEX {INDEX}", "ANALYZE stage_fact")
    out["rows"].append(("without it", measure(engine, repeat)))
    _autocommit(engine, indexdef, "VACUUM ANALYZE stage_fact")
    out["rows"].append(("with it again", measure(engine, repeat)))
    out["indexdef"] = indexdef
    engine.dispose()
    engine = make_engine(engine.url.render_as_string(hide_password=False))  # fresh connections
    out["repeated"] = repeated(engine)
    engine.dispose()
    return out


def main() -> None:
    """Run and optionally write docs/performance.md."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="cases to synthesise")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gc_bench_scorecard")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="write the section into docs/performance.md")
    args = ap.parse_args()
    r = run(args.n, args.pg_url, args.repeat)
    load = os.getloadavg()[0]
    lines = [
        "| index | department scorecard s | raw event scan s | ratio | how the effective dispatch is read |",
        "|---|---|---|---|---|",
    ]
    for label, m in r["rows"]:
        lines.append(
            f"| {label} | {m['department_s']:.3f} | {m['raw_s']:.3f} | "
            f"{m['department_s'] / m['raw_s']:.2f} | `{m['plan']}` |"
        )
    first, later = r["repeated"]
    again = (
        f"The same scorecard run 15 times on one fresh connection: median {first:.3f} s over runs 1-5, "
        f"{later:.3f} s over runs 11-15 (psycopg prepares a statement on its 5th run; "
        "`gridcity.database.make_engine` keeps PostgreSQL from switching it to a generic plan)."
    )
    lines += ["", again]
    print("\n".join(lines))
    if args.write:
        from bench.perfdoc import write_section  # noqa: PLC0415

        write_section(
            "bench_scorecard",
            "\n".join(
                [
                    "## Department scorecard from the raw facts, G-S2 (postgis)",
                    "",
                    f"`.venv/bin/python -m bench.bench_scorecard --n {args.n} --write`",
                    f"— {dt.date.today().isoformat()}, {platform.machine()}, {platform.python_version()}, "
                    f"{os.cpu_count()} CPUs shared (1-min load {load:.1f} at the end: the figures are noisy).",
                    f"{r['n']:,} synthetic cases ({r['events']:,} events, {r['facts']:,} fact rows; "
                    "`bench.bench_evaluation.seed`). The scorecard is `evaluation.service.compute(department, 2026, "
                    'source="raw")` (every family a `GROUP BY` over the facts, 立案 and 结案 in one statement on '
                    "PostgreSQL; then exact scoring and ranking); the "
                    "limit is one raw `GROUP BY actor_id, action` scan of the year's `case_event` rows, in the same "
                    "session. Best of the repeats after a warm-up, with the index of migration 0005, without it, and "
                    "with it again, on the same data. G-S2 asks for ≤ 1.5×.",
                    "",
                    *lines,
                    "",
                    f"The index: `{r['indexdef']}`. A department is judged only on a case's effective dispatch (its "
                    "`handle` run started by `dispatch`, not undone by an approved send-back); "
                    "the 立案 and 结案 families "
                    "join every fact of the year to it. Without the index PostgreSQL reads those runs through a bitmap "
                    "scan of `ix_stage_fact_ended` plus the heap; with it, an index-only scan of an index that holds "
                    "only them.",
                    "",
                    READ,
                ]
            ),
        )


READ = (
    "Read (2026-12-03, load 7-8): G-S2 (<= 1.5x) is met in this run, 1.35x and 1.18x with the index (1.72x "
    "without it), and ~1.1-1.3x in same-session comparisons while the changes were made (scorecard 0.14-0.17 s "
    "against a raw scan of 0.12-0.15 s). What changed since 1.5-2.2x: (1) on PostgreSQL the 立案 and 结案 "
    "families are one statement, the UNION ALL of both families' case facts joined once to the effective "
    "dispatch, so the parallel hash of those runs is built once instead of twice (`count_primitives` 0.236 -> "
    "0.192 s median at 100,000 cases; the choice is `gridcity.spatial.joins_by_hashing`, SQLite keeps its two "
    "covering-index statements; the plan column above is the 立案 family's own statement, whose `eff` side is "
    "the same); (2) PostgreSQL connections run with `plan_cache_mode=force_custom_plan` "
    "(`gridcity.database.make_engine`): once psycopg had prepared a statement (its 5th run on a connection) "
    "PostgreSQL switched to a generic plan, which cannot use the partial index (its `'handle'` is then a "
    "parameter) and probes 200,000 index entries by a nested loop, so the scorecard took 0.6-0.8 s from about "
    "its 10th run on a connection (and the raw scan 0.35 s); the 15-run line above shows it gone. The rest of "
    "the gap is the `suspended` and `handle` families (one index-only scan each) and the exact scoring in "
    "Python (45 departments: too small to tell from the noise at this load)."
)


if __name__ == "__main__":
    main()
