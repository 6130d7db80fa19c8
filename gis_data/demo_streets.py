"""The demo city's named street network, laid on the same 100 m lattice as its grids and communities.

:mod:`gis_data.demo_city` builds every unit grid as an exact 100 m square of one lattice in the city's
projected CRS (CGCS2000 GK CM 108E). The streets here run along lines of that lattice, so a street is
exactly the edge between grids and communities, as in a real city where unit grids are bounded by roads:

- 主干路 (arterial): the city edge, district boundaries (north-south) and street-office boundaries (east-west),
  each one road with one name across the whole city;
- 次干路 (secondary): the community boundaries inside a street office, also across the whole city;
- 支路 (branch): every ``BRANCH_STEP`` lattice lines inside a community (none when communities are too small),
  one road per district (east-west) or per street office (north-south), so each branch road has a local name.

Every street is a WGS84 :class:`~shapely.geometry.LineString` with its vertices on lattice corners (the same
coordinates as the grid corners), running west→east or north→south. The same ``scale`` always gives the
same streets. :func:`street_rows` gives them as loader rows (``code``, ``name``, ``kind``) for the base map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString, Polygon
from sqlalchemy.orm import Session

from gis_data import demo_city
from gis_data.readers import WGS84, RawRow, transformer

BRANCH_STEP = 4
"""Branch roads every 4 lattice lines (400 m) inside a community."""

ARTERIAL, SECONDARY, BRANCH = "主干路", "次干路", "支路"
KINDS = (ARTERIAL, SECONDARY, BRANCH)

# Full-length roads, named north→south (east-west roads) and west→east (north-south roads). Their numbers
# follow the city's layout, which does not change with scale.
EW_ARTERIALS = ["北坡路", "经一路", "经二路", "中山路", "滨河大道", "渭滨大道"]
NS_ARTERIALS = ["西环路", "宝平路", "红旗路", "东环路"]
EW_SECONDARY = ["大庆路", "宝光路", "新华路", "胜利路", "火炬路"]
NS_SECONDARY = ["清姜路", "公园路", "金台大道"]

# Branch roads: local names built from these stems and suffixes (then numbered when a big city runs out).
_STEMS = (
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
)
_SUFFIXES = ("街", "巷", "路")
_NUMERALS = "一二三四五六七八九十"

assert len(EW_ARTERIALS) == demo_city.STREETS_PER_DISTRICT + 1
assert len(NS_ARTERIALS) == len(demo_city.DISTRICTS) + 1
assert len(EW_SECONDARY) == demo_city.STREETS_PER_DISTRICT * (demo_city.COMMUNITY_BLOCK[1] - 1)
assert len(NS_SECONDARY) == len(demo_city.DISTRICTS) * (demo_city.COMMUNITY_BLOCK[0] - 1)


@dataclass(frozen=True)
class DemoStreet:
    """One named street: a lattice line (or a stretch of one) of the demo city."""

    code: str
    name: str
    kind: str
    """主干路, 次干路 or 支路."""
    axis: str
    """``ew`` (runs west→east along lattice row ``index``) or ``ns`` (north→south along column ``index``)."""
    index: int
    start: int
    """First lattice position along the street (column for ``ew``, row for ``ns``)."""
    end: int
    line: LineString
    """WGS84, with one vertex on every lattice corner it passes."""


@dataclass(frozen=True)
class Frame:
    """The demo city's lattice at one scale: its size in cells and a lattice-corner → WGS84 mapper."""

    ncols: int
    nrows: int
    cw: int
    """Grid columns per community."""
    ch: int
    """Grid rows per community."""
    to_wgs: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    """(columns, rows) of lattice corners → (lon, lat), exactly as demo_city computes grid corners."""
    at: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    """(columns, rows) as fractions of cells (any real numbers) → (lon, lat)."""


def frame(scale: float) -> Frame:
    """The lattice of :func:`gis_data.demo_city.build_areas` at ``scale`` (same origin, same arithmetic)."""
    cw, ch = demo_city._dims(scale)
    bc, br = demo_city.COMMUNITY_BLOCK
    ncols = len(demo_city.DISTRICTS) * bc * cw
    nrows = demo_city.STREETS_PER_DISTRICT * br * ch
    to_proj = transformer(WGS84, demo_city.PROJECTED_CRS)
    to_wgs = transformer(demo_city.PROJECTED_CRS, WGS84)
    assert to_proj is not None and to_wgs is not None
    cx, cy = to_proj.transform(*demo_city.CENTRE)
    x0, y0 = cx - ncols * demo_city.CELL_M / 2, cy + nrows * demo_city.CELL_M / 2
    xs = x0 + np.arange(ncols + 1) * demo_city.CELL_M
    ys = y0 - np.arange(nrows + 1) * demo_city.CELL_M

    def mapper(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = to_wgs.transform(xs[np.asarray(cols, dtype=int)], ys[np.asarray(rows, dtype=int)])
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)

    def at(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cols, rows = np.asarray(cols, dtype=float), np.asarray(rows, dtype=float)
        lon, lat = to_wgs.transform(x0 + cols * demo_city.CELL_M, y0 - rows * demo_city.CELL_M)
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)

    return Frame(ncols, nrows, cw, ch, mapper, at)


def _branch_name(i: int) -> str:
    """The i-th branch-road name: stem + suffix, then numbered lanes (``文化一巷``) for very big cities."""
    n = len(_STEMS) * len(_SUFFIXES)
    stem, suffix = _STEMS[i % len(_STEMS)], _SUFFIXES[(i // len(_STEMS)) % len(_SUFFIXES)]
    if i < n:
        return f"{stem}{suffix}"
    j = i - n
    stem, k = _STEMS[j % len(_STEMS)], j // len(_STEMS) + 1
    numeral = _NUMERALS[k - 1] if k <= len(_NUMERALS) else f"{k}"
    return f"{stem}{numeral}巷"


def _line(fr: Frame, axis: str, index: int, start: int, end: int) -> LineString:
    pos = np.arange(start, end + 1)
    fixed = np.full_like(pos, index)
    lon, lat = fr.to_wgs(pos, fixed) if axis == "ew" else fr.to_wgs(fixed, pos)
    return LineString(np.column_stack([lon, lat]))


def build_streets(scale: float) -> list[DemoStreet]:
    """The named streets of the demo city at ``scale``: arterials, secondaries, then branch roads."""
    fr = frame(scale)
    bc, br = demo_city.COMMUNITY_BLOCK
    dist_w, street_h = bc * fr.cw, br * fr.ch  # cells per district (columns) and per street office (rows)
    out: list[DemoStreet] = []

    def add(name: str, kind: str, axis: str, index: int, start: int, end: int) -> None:
        out.append(
            DemoStreet(f"DL{len(out) + 1:04d}", name, kind, axis, index, start, end, _line(fr, axis, index, start, end))
        )

    for k, name in enumerate(EW_ARTERIALS):
        add(name, ARTERIAL, "ew", k * street_h, 0, fr.ncols)
    for k, name in enumerate(NS_ARTERIALS):
        add(name, ARTERIAL, "ns", k * dist_w, 0, fr.nrows)
    ew_sec = [r for r in range(fr.ch, fr.nrows, fr.ch) if r % street_h]
    for r, name in zip(ew_sec, EW_SECONDARY, strict=True):
        add(name, SECONDARY, "ew", r, 0, fr.ncols)
    ns_sec = [c for c in range(fr.cw, fr.ncols, fr.cw) if c % dist_w]
    for c, name in zip(ns_sec, NS_SECONDARY, strict=True):
        add(name, SECONDARY, "ns", c, 0, fr.nrows)
    n_branch = 0
    # east-west branch roads: one per district along each inner lattice row of a community
    for r in range(fr.nrows):
        if r % fr.ch == 0 or (r % fr.ch) % BRANCH_STEP:
            continue
        for d in range(len(demo_city.DISTRICTS)):
            add(_branch_name(n_branch), BRANCH, "ew", r, d * dist_w, (d + 1) * dist_w)
            n_branch += 1
    # north-south branch roads: one per street office along each inner lattice column of a community
    for c in range(fr.ncols):
        if c % fr.cw == 0 or (c % fr.cw) % BRANCH_STEP:
            continue
        for s in range(demo_city.STREETS_PER_DISTRICT):
            add(_branch_name(n_branch), BRANCH, "ns", c, s * street_h, (s + 1) * street_h)
            n_branch += 1
    return out


def street_rows(scale: float) -> list[RawRow]:
    """The streets as loader rows (``code``, ``name``, ``kind``) with their WGS84 lines."""
    return [
        RawRow(row=i + 1, properties={"code": s.code, "name": s.name, "kind": s.kind}, geom=s.line)
        for i, s in enumerate(build_streets(scale))
    ]


# ---- the rest of the base map: building blocks, parks and the river ---------------------------------------

BUILDING_KINDS = ("住宅", "住宅", "住宅", "商业", "办公", "学校")


def _rect(fr: Frame, c: float, r: float, c1: float, r1: float) -> Polygon:
    lon, lat = fr.at(np.array([c, c1, c1, c]), np.array([r, r, r1, r1]))
    return Polygon(np.column_stack([lon, lat]))


def _is_park(fr: Frame, c: int, r: int) -> bool:
    """One park per community: a 2 × 2 block of grids (one grid in small cities) near its north-west corner."""
    oc, orow = c % fr.cw, r % fr.ch
    if fr.cw >= 4 and fr.ch >= 4:
        return 1 <= oc <= 2 and 1 <= orow <= 2
    return oc == 0 and orow == 0


def base_rows(scale: float) -> dict[str, list[RawRow]]:
    """The demo base map by layer: ``road`` (the streets), ``building`` (two blocks per grid, set back from
    the roads), ``green`` (a park per community) and ``water`` (渭河 along the south edge of the city)."""
    fr = frame(scale)
    out: dict[str, list[RawRow]] = {"road": street_rows(scale), "building": [], "green": [], "water": []}
    n = 0
    for r in range(fr.nrows):
        for c in range(fr.ncols):
            if _is_park(fr, c, r):
                continue
            for k, (a, b) in enumerate(((0.14, 0.46), (0.54, 0.86))):
                n += 1
                kind = BUILDING_KINDS[(c * 7 + r * 3 + k) % len(BUILDING_KINDS)]
                out["building"].append(
                    RawRow(
                        row=n,
                        properties={"code": f"JZ{n:06d}", "kind": kind},
                        geom=_rect(fr, c + a, r + 0.14, c + b, r + 0.86),
                    )
                )
    parks: set[tuple[int, int]] = set()
    for r in range(0, fr.nrows, fr.ch):
        for c in range(0, fr.ncols, fr.cw):
            cells = [(c + i, r + j) for i in range(fr.cw) for j in range(fr.ch) if _is_park(fr, c + i, r + j)]
            if not cells or cells[0] in parks:
                continue
            parks.update(cells)
            c0, r0 = min(cells)
            c1, r1 = max(cells)
            idx = len(out["green"])
            out["green"].append(
                RawRow(
                    row=idx + 1,
                    properties={"code": f"LD{idx + 1:04d}", "kind": "公园", "name": f"{_STEMS[idx % len(_STEMS)]}公园"},
                    geom=_rect(fr, c0 + 0.1, r0 + 0.1, c1 + 0.9, r1 + 0.9),
                )
            )
    # the Wei River: a 250 m wide band with a gentle meander, 300 m south of the city's southern road
    cols = np.linspace(-10, fr.ncols + 10, 80)
    mid = fr.nrows + 5.5 + 1.5 * np.sin(cols / 9.0)
    lon_n, lat_n = fr.at(cols, mid - 1.25)
    lon_s, lat_s = fr.at(cols[::-1], (mid + 1.25)[::-1])
    river = Polygon(np.column_stack([np.concatenate([lon_n, lon_s]), np.concatenate([lat_n, lat_s])]))
    out["water"].append(RawRow(row=1, properties={"code": "SX0001", "name": "渭河", "kind": "河流"}, geom=river))
    return out


def load_base_map(session: Session, scale: float) -> dict[str, int]:
    """Load the demo base map through the validating base-map loader; features per layer."""
    from gis_data import loader  # noqa: PLC0415

    counts = {}
    for layer, rows in base_rows(scale).items():
        rep = loader.load_base_features(session, rows, layer=layer, source="demo")
        counts[layer] = rep.counts["created"]
    return counts
