"""Standard-address look-up at a city's size: :func:`components.addresses.lookup` on 300,000 addresses.

A synthetic city of ``--n`` addresses (default 300,000): door plates on ~1,900 roads in 3 districts and 15
streets, and named places (小区, 医院, 学校 ...), imported with :func:`gis_data.addresses.load_addresses` (the
same path as a city's file). Then, per kind of partial input, ``--queries`` look-ups (best 10), timed one by one
in the process (the HTTP layer adds the same ~1 ms to every kind):

* ``plate``  road + number prefix (``文化路12``), the acceptor's usual input;
* ``road``   a road name (``文化路``): hundreds of plates share its bigrams;
* ``place``  part of a place name (``中心医院``);
* ``broad``  a district's name (``渭滨``): a third of the city carries its bigrams (the worst case);
* ``none``   an input that matches nothing.

In the same run, the physical limits: one indexed probe of the bigram table (the least any indexed look-up
costs: one B-tree descent and a round trip), and the index-free alternative, ``search_text LIKE '%q%'`` over
the whole table, for the ``plate`` inputs. Target (interactive typing): p95 ≤ 50 ms for plate, road, place.

    .venv/bin/python -m bench.bench_addresses                     # both back ends, 300k addresses
    .venv/bin/python -m bench.bench_addresses --backends spatialite --n 50000
    .venv/bin/python -m bench.bench_addresses --write             # also write docs/performance.md

PostGIS uses a scratch database (``--pg-url``; dropped and recreated, dropped again at the end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from shapely.geometry import Point

from bench.scratch import recreate_postgis_database
from components import addresses
from components.models import Address, AddressGram
from gis_data.addresses import load_addresses
from gis_data.readers import RawRow
from gridcity import migrate
from gridcity.database import make_engine, make_session_factory

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/gc_bench_addresses"
DISTRICTS = ("渭滨区", "金台区", "陈仓区")
STREETS = (
    "经二路街道",
    "清姜街道",
    "神农镇",
    "桥南街道",
    "马营镇",
    "东风路街道",
    "西关街道",
    "中山东路街道",
    "群众路街道",
    "卧龙寺街道",
    "虢镇街道",
    "东关街道",
    "千渭街道",
    "阳平镇",
    "周原镇",
)
STEMS = (
    "文化",
    "和平",
    "团结",
    "长青",
    "建设",
    "人民",
    "石鼓",
    "太白",
    "秦岭",
    "青铜",
    "炎帝",
    "西岐",
    "凤鸣",
    "陈仓",
    "姜城",
    "斗鸡",
    "卧龙",
    "渭阳",
    "蟠龙",
    "高庙",
    "马营",
    "金陵",
    "益门",
    "峪泉",
    "福临",
    "东岭",
    "西堡",
    "南坡",
    "北辰",
    "钟楼",
    "玉涧",
    "桃园",
    "杏林",
    "槐荫",
    "梧桐",
    "银杏",
    "枫林",
    "芙蓉",
    "兴隆",
    "永安",
    "广元",
    "承平",
    "盛世",
    "安乐",
    "惠民",
    "丰收",
    "群英",
    "友谊",
    "经一",
    "经二",
    "中山",
    "红旗",
    "宝光",
    "新华",
    "胜利",
    "火炬",
    "清姜",
    "公园",
    "金台",
    "大庆",
    "滨河",
    "宝平",
    "东风",
    "西关",
)
SUFFIXES = ("路", "街", "巷", "大道", "东路", "西路", "南路", "北路")
NUMERALS = ("", "一", "二", "三", "四")
PLACES = (
    "小区",
    "花园",
    "家属院",
    "中学",
    "小学",
    "幼儿园",
    "医院",
    "卫生院",
    "超市",
    "商场",
    "公园",
    "广场",
    "派出所",
    "社区居委会",
    "宾馆",
    "菜市场",
)


def synthetic_rows(n: int, seed: int = 7) -> tuple[list[RawRow], list[str]]:
    """``n`` addresses (9 in 10 door plates, the rest places) and the road names used."""
    rng = random.Random(seed)
    roads = [f"{s}{k}{x}" for s in STEMS for k in NUMERALS[:2] for x in SUFFIXES[:4]]
    rng.shuffle(roads)
    rows: list[RawRow] = []
    plates = n * 9 // 10
    per_road = max(1, plates // len(roads))
    i = 0
    for r, road in enumerate(roads):
        district, street = DISTRICTS[r % 3], STREETS[r % 15]
        lon0, lat0 = 107.0 + (r % 50) * 0.006, 34.3 + (r // 50) * 0.004
        for num in range(1, per_road + 1):
            if i >= plates:
                break
            rows.append(
                RawRow(
                    i + 1,
                    {
                        "code": f"P{i:07d}",
                        "kind": "door_plate",
                        "name": f"{road}{num}号",
                        "road": road,
                        "number": str(num),
                        "aliases": f"{district};{street}",
                    },
                    Point(lon0 + num * 2e-5, lat0),
                )
            )
            i += 1
    while i < n:
        road = roads[i % len(roads)]
        name = f"{rng.choice(STEMS)}{rng.choice(PLACES)}"
        rows.append(
            RawRow(
                i + 1,
                {
                    "code": f"P{i:07d}",
                    "kind": "place",
                    "name": f"{name}{i % 97 or ''}",
                    "road": road,
                    "aliases": f"{DISTRICTS[i % 3]};{STREETS[i % 15]}",
                },
                Point(107.0 + (i % 300) * 0.001, 34.3 + (i % 200) * 0.001),
            )
        )
        i += 1
    return rows, roads


def queries(roads: list[str], k: int, seed: int = 11) -> dict[str, list[str]]:
    """``k`` inputs of each kind."""
    rng = random.Random(seed)
    return {
        "plate": [f"{rng.choice(roads)}{rng.randint(1, 60)}" for _ in range(k)],
        "road": [rng.choice(roads) for _ in range(k)],
        "place": [f"{rng.choice(STEMS)}{rng.choice(PLACES)}" for _ in range(k)],
        "broad": [rng.choice(["渭滨", "金台区", "陈仓"]) for _ in range(k)],
        "none": [f"不存在{rng.randint(1, 999)}号" for _ in range(k)],
    }


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]


def _stats(ms: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(ms), "p95": _pct(ms, 0.95), "max": max(ms)}


def run(backend: str, n: int, k: int, pg_url: str, tmp: Path) -> dict[str, object]:
    if backend == "spatialite":
        url = f"sqlite:///{tmp / 'bench_addresses.sqlite'}"
    else:
        url = recreate_postgis_database(pg_url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    rows, roads = synthetic_rows(n)
    t0 = time.perf_counter()
    with factory() as s, s.begin():
        load_addresses(s, rows, source="bench")
    load_s = time.perf_counter() - t0
    if backend == "postgis":
        with engine.begin() as c:
            c.exec_driver_sql("ANALYZE address; ANALYZE address_gram")
    out: dict[str, object] = {"load_s": load_s}
    with factory() as s:
        out["grams"] = s.scalar(sa.select(sa.func.count()).select_from(AddressGram))
        out["addresses"] = s.scalar(sa.select(sa.func.count()).select_from(Address))
        qs = queries(roads, k)
        for q in qs["plate"][:5]:  # warm the caches
            addresses.lookup(s, q)
        results: dict[str, dict[str, float]] = {}
        hits: dict[str, float] = {}
        for kind, inputs in qs.items():
            ms, found = [], 0
            for q in inputs:
                t = time.perf_counter()
                got = addresses.lookup(s, q, limit=10)
                ms.append((time.perf_counter() - t) * 1000)
                found += bool(got)
            results[kind] = _stats(ms)
            hits[kind] = found / len(inputs)
        out["kinds"] = results
        out["hits"] = hits
        # physical limit: one indexed probe of the bigram table
        probe = sa.select(AddressGram.address_id).where(AddressGram.gram == sa.bindparam("g")).limit(1)
        ms = []
        for q in qs["plate"]:
            t = time.perf_counter()
            s.execute(probe, {"g": addresses.normalize(q)[:2]}).first()
            ms.append((time.perf_counter() - t) * 1000)
        out["probe"] = _stats(ms)
        # the index-free alternative: a LIKE scan of the whole table (fewer inputs: it is slow)
        scan = (
            sa.select(Address.id)
            .where(Address.search_text.like(sa.bindparam("p")))
            .order_by(sa.func.length(Address.search_text))
            .limit(10)
        )
        ms = []
        for q in qs["plate"][: max(5, k // 10)]:
            t = time.perf_counter()
            s.execute(scan, {"p": "%" + addresses.normalize(q) + "%"}).all()
            ms.append((time.perf_counter() - t) * 1000)
        out["scan"] = _stats(ms)
    engine.dispose()
    if backend == "postgis":
        admin = sa.create_engine(pg_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{pg_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        admin.dispose()
    return out


def report(results: dict[str, dict[str, object]], n: int, k: int) -> str:
    lines = [
        "## Standard-address look-up (bench_addresses)",
        "",
        f"`.venv/bin/python -m bench.bench_addresses --n {n} --queries {k} --write` — {dt.date.today()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other work; load average at the end "
        f"{os.getloadavg()[0]:.1f}). {n:,} synthetic addresses "
        "(door plates on ~1,900 roads, places), imported through `gis_data.addresses.load_addresses`; "
        f"{k} look-ups per kind, best 10, in process. Milliseconds.",
        "",
        "| back end | kind | p50 | p95 | max | found |",
        "|---|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        kinds = r["kinds"]
        hits = r["hits"]
        assert isinstance(kinds, dict) and isinstance(hits, dict)
        for kind, st in kinds.items():
            lines.append(
                f"| {backend} | {kind} | {st['p50']:.2f} | {st['p95']:.2f} | {st['max']:.2f} | {hits[kind]:.0%} |"
            )
        probe, scan = r["probe"], r["scan"]
        assert isinstance(probe, dict) and isinstance(scan, dict)
        lines.append(
            f"| {backend} | *limit: one indexed probe* | {probe['p50']:.3f} | {probe['p95']:.3f} | "
            f"{probe['max']:.3f} | |"
        )
        lines.append(
            f"| {backend} | *no index: LIKE scan* | {scan['p50']:.1f} | {scan['p95']:.1f} | {scan['max']:.1f} | |"
        )
    lines.append("")
    for backend, r in results.items():
        kinds = r["kinds"]
        probe, scan = r["probe"], r["scan"]
        assert isinstance(kinds, dict) and isinstance(probe, dict) and isinstance(scan, dict)
        plate = kinds["plate"]
        lines.append(
            f"- {backend}: import {r['load_s']:.1f} s for {r['addresses']:,} addresses "
            f"({r['grams']:,} bigram rows); a plate look-up (p50 {plate['p50']:.2f} ms) costs "
            f"{plate['p50'] / probe['p50']:.0f}× one indexed probe and is "
            f"{scan['p50'] / plate['p50']:.0f}× faster than the index-free scan."
        )
    lines.append(
        "- Target p95 ≤ 50 ms for plate, road and place inputs: "
        + ", ".join(
            f"{b} {'met' if all(r['kinds'][x]['p95'] <= 50 for x in ('plate', 'road', 'place')) else 'NOT met'}"  # type: ignore[index]
            for b, r in results.items()
        )
        + ". `broad` (a district's name, matching a third of the city) is the "
        "worst case: every candidate is ranked before the best 10 are known."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="spatialite,postgis")
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in a.backends.split(","):
            results[backend] = run(backend, a.n, a.queries, a.pg_url, Path(tmp))
    text = report(results, a.n, a.queries)
    print(text)
    if a.write:
        from bench.perfdoc import write_section  # noqa: PLC0415

        write_section("bench_addresses", text)


if __name__ == "__main__":
    main()
