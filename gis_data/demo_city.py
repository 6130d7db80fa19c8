"""A deterministic Baoji-like demo city: districts → streets → communities → unit grids, components, owners.

Layout (scale 1): three real Baoji districts side by side west→east (陈仓区 610304, 渭滨区 610302,
金台区 610303), each 5 streets stacked north→south, each street 2 × 2 communities, each community
10 × 8 unit grids of 100 m × 100 m (built as exact squares in the city's projected CRS, CGCS2000 GK
CM 108E, then reprojected, so neighbours share their vertices exactly): 15 streets, 60 communities,
4,800 grids over 48 km², centred on 107.1448 E, 34.3693 N. About 81,400 components of the shipped
CJ/T 214 classes in a realistic mix, each with 主管/权属/养护 departments; ~50 departments; 50 inspectors
(``jdy01``…``jdy50``) with supervision areas of ~100 grids each.

``scale`` multiplies the number of grids per community and of components (so 0.05 gives 240 grids and
~4,100 components, fast enough for tests; 10 gives 48,000 grids and ~814,000 components). The same scale
always gives the same city. Everything goes through the validating loaders of :mod:`gis_data.loader`.
After the city, :func:`gis_data.demo_history.load_history` adds a year of simulated case history
(20,000 × ``scale`` cases) unless ``history=False``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from sqlalchemy import select
from sqlalchemy.orm import Session

from components import catalog as class_catalog
from components import catalog_loader, codes
from components.models import Area, SupervisionArea, SupervisionGrid
from gis_data import demo_history, loader
from gis_data.readers import WGS84, RawRow, transformer
from gridcity import org, security
from gridcity.roles import Role

DEMO_PASSWORD = "gridcity-demo"


@dataclass(frozen=True)
class DemoLogin:
    """A demo login to print."""

    username: str
    password: str
    role: Role
    name: str


SEED = 20040101
PROJECTED_CRS = "EPSG:4545"
CENTRE = (107.1448, 34.3693)
CELL_M = 100.0
BASE_COMPONENTS = 81_429
N_INSPECTORS = 50

DISTRICTS = [  # west → east
    ("610304", "陈仓区", ["虢镇街道", "千渭街道", "东关街道", "西关街道", "阳平街道"]),
    ("610302", "渭滨区", ["经二路街道", "清姜街道", "姜谭街道", "桥南街道", "金陵街道"]),
    ("610303", "金台区", ["中山东路街道", "西关街道", "中山西路街道", "群众路街道", "东风路街道"]),
]
STREETS_PER_DISTRICT = 5
COMMUNITY_BLOCK = (2, 2)  # communities per street: columns × rows

# Relative frequency of each class in the inventory (others: DEFAULT_WEIGHT). Covers, lamps and street
# trees dominate real inventories.
CLASS_WEIGHTS = {
    "C0101": 6,
    "C0102": 8,
    "C0103": 6,
    "C0104": 9,
    "C0105": 4,
    "C0106": 2,
    "C0107": 5,
    "C0108": 1.5,
    "C0109": 1,
    "C0110": 1.5,
    "C0111": 3,
    "C0112": 0.5,
    "C0113": 1.5,
    "C0114": 0.5,
    "C0115": 1,
    "C0116": 1.5,
    "C0117": 4,
    "C0118": 9,
    "C0136": 1.5,
    "C0202": 0.5,
    "C0203": 0.7,
    "C0209": 3,
    "C0210": 1,
    "C0211": 1,
    "C0212": 1,
    "C0213": 1,
    "C0301": 0.4,
    "C0305": 5,
    "C0306": 1,
    "C0307": 4,
    "C0402": 12,
    "C0403": 4,
    "C0405": 1.2,
    "C0407": 1,
    "C0408": 0.8,
    "C0201": 0.3,
}
DEFAULT_WEIGHT = 0.15
BRANCH_KINDS = ("sanitation", "landscaping", "roads")
"""Owner kinds that also have one branch per district (the branch maintains, the city unit is 主管)."""
STATES = [("完好", 0.93), ("破损", 0.04), ("占用", 0.02), ("丢失", 0.01)]


def _dims(scale: float) -> tuple[int, int]:
    """Grid columns and rows per community for ``scale``."""
    root = math.sqrt(scale)
    return max(1, round(10 * root)), max(1, round(8 * root))


def _ring(lon: np.ndarray, lat: np.ndarray, c0: int, r0: int, c1: int, r1: int) -> Polygon:
    """The lattice block from corner (c0, r0) to (c1, r1), with every lattice vertex on its boundary."""
    pts = [(c, r0) for c in range(c0, c1)] + [(c1, r) for r in range(r0, r1)]
    pts += [(c, r1) for c in range(c1, c0, -1)] + [(c0, r) for r in range(r1, r0, -1)]
    return Polygon([(float(lon[r, c]), float(lat[r, c])) for c, r in pts])


def _row(n: int, code: str, geom: Any, **props: Any) -> RawRow:
    return RawRow(row=n, properties={"code": code, **props}, geom=geom)


def build_areas(scale: float) -> tuple[list[RawRow], dict[str, tuple[int, int]], Callable[..., Any]]:
    """The area and grid rows of the city, each grid's lattice cell, and a projected→WGS84 mapper."""
    cw, ch = _dims(scale)
    bc, br = COMMUNITY_BLOCK
    ncols = len(DISTRICTS) * bc * cw
    nrows = STREETS_PER_DISTRICT * br * ch
    to_proj = transformer(WGS84, PROJECTED_CRS)
    to_wgs = transformer(PROJECTED_CRS, WGS84)
    assert to_proj is not None and to_wgs is not None
    cx, cy = to_proj.transform(*CENTRE)
    x0, y0 = cx - ncols * CELL_M / 2, cy + nrows * CELL_M / 2  # north-west corner
    xs = x0 + np.arange(ncols + 1) * CELL_M
    ys = y0 - np.arange(nrows + 1) * CELL_M
    gx, gy = np.meshgrid(xs, ys)
    lon, lat = to_wgs.transform(gx, gy)

    def project_back(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return to_wgs.transform(x, y)

    rows: list[RawRow] = []
    cells: dict[str, tuple[int, int]] = {}
    for di, (dcode, dname, street_names) in enumerate(DISTRICTS):
        dc0 = di * bc * cw
        rows.append(
            _row(len(rows) + 1, dcode, MultiPolygon([_ring(lon, lat, dc0, 0, dc0 + bc * cw, nrows)]), name=dname)
        )
        for si in range(STREETS_PER_DISTRICT):
            scode = f"{dcode}{si + 1:03d}"
            sr0 = si * br * ch
            region = "class1" if dcode == "610302" or si in (1, 2) else "class2"
            rows.append(
                _row(
                    len(rows) + 1,
                    scode,
                    MultiPolygon([_ring(lon, lat, dc0, sr0, dc0 + bc * cw, sr0 + br * ch)]),
                    name=street_names[si],
                    region_class=region,
                )
            )
            for ci in range(bc * br):
                ccode = f"{scode}{ci + 1:03d}"
                cc0, cr0 = dc0 + (ci % bc) * cw, sr0 + (ci // bc) * ch
                rows.append(
                    _row(
                        len(rows) + 1,
                        ccode,
                        MultiPolygon([_ring(lon, lat, cc0, cr0, cc0 + cw, cr0 + ch)]),
                        name=f"{street_names[si].removesuffix('街道')}第{ci + 1}社区",
                        region_class=region,
                    )
                )
                for gi in range(cw * ch):  # west → east, north → south
                    c, r = cc0 + gi % cw, cr0 + gi // cw
                    gcode = f"{ccode}{gi + 1:03d}"
                    cells[gcode] = (c, r)
                    rows.append(
                        _row(
                            len(rows) + 1,
                            gcode,
                            _ring(lon, lat, c, r, c + 1, r + 1),
                            region_class=region,
                            start_date="2024-01-01",
                        )
                    )
    origin = (x0, y0)
    return (
        rows,
        cells,
        lambda col, row, dx, dy: project_back(origin[0] + (col + dx) * CELL_M, origin[1] - (row + dy) * CELL_M),
    )


def _departments(
    session: Session, catalog: class_catalog.ClassCatalog
) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[str, int]]:
    """City units per owner kind, district branches, and street offices (existing ones are reused)."""
    kinds = sorted({c.owner_kind for c in catalog.all("component", generation="cjt214")})
    existing = session.scalars(select(org.Department).where(org.Department.parent_id.is_(None))).all()
    city: dict[str, int] = {}
    for d in existing:
        if d.owner_kind in kinds and d.owner_kind not in city:
            city[d.owner_kind] = d.id
    for kind in kinds:
        if kind not in city:
            label = codes.OWNER_KINDS[kind].split("（")[0]
            city[kind] = org.create_department(
                session, code=f"BJ-{kind.upper()}"[:32], name=f"宝鸡市{label}单位", owner_kind=kind
            ).id
    branches: dict[tuple[str, str], int] = {}
    for dcode, dname, _ in DISTRICTS:
        for kind in BRANCH_KINDS:
            label = codes.OWNER_KINDS[kind].split("（")[0]
            branches[(dcode, kind)] = org.create_department(
                session,
                code=f"{dcode}-{kind.upper()}"[:32],
                name=f"{dname}{label}所",
                owner_kind=kind,
                parent_id=city[kind],
            ).id
    streets: dict[str, int] = {}
    for dcode, dname, names in DISTRICTS:
        for si, name in enumerate(names):
            scode = f"{dcode}{si + 1:03d}"
            streets[scode] = org.create_department(
                session, code=f"JD{scode}", name=f"{dname}{name}办事处", kind="street", owner_kind="subdistrict"
            ).id
    return city, branches, streets


def build_components(
    scale: float,
    cells: dict[str, tuple[int, int]],
    to_wgs: Callable[..., Any],
    catalog: class_catalog.ClassCatalog,
    dept_codes: dict[int, str],
    city: dict[str, int],
    branches: dict[tuple[str, str], int],
    streets: dict[str, int],
) -> list[RawRow]:
    """The component rows: classes by weight, uniformly over the grids, owners by the class's owner kind."""
    rng = random.Random(SEED)
    classes = catalog.all("component", generation="cjt214")
    weights = [CLASS_WEIGHTS.get(c.key, DEFAULT_WEIGHT) for c in classes]
    n = max(len(classes), round(BASE_COMPONENTS * scale))
    grid_codes = sorted(cells)
    picks = rng.choices(range(len(classes)), weights=weights, k=n)
    grid_idx = [rng.randrange(len(grid_codes)) for _ in range(n)]
    state_names, state_w = zip(*STATES, strict=True)
    seq: dict[tuple[str, str], int] = {}
    rows: list[RawRow] = []
    # we draw every shape in cell units (0..1 inside the cell, 5 m from its edges) and reproject at once
    offsets = [(rng.uniform(0.05, 0.65), rng.uniform(0.05, 0.65), rng.uniform(0.1, 0.3)) for _ in range(n)]
    cols = np.array([cells[grid_codes[g]][0] for g in grid_idx], dtype=float)
    rws = np.array([cells[grid_codes[g]][1] for g in grid_idx], dtype=float)
    ox = np.array([o[0] for o in offsets])
    oy = np.array([o[1] for o in offsets])
    size = np.array([o[2] for o in offsets])
    lon0, lat0 = to_wgs(cols, rws, ox, oy)
    lon1, lat1 = to_wgs(cols, rws, ox + size, oy + size)
    day0 = dt.date(2015, 1, 1)
    for i in range(n):
        info = classes[picks[i]]
        gcode = grid_codes[grid_idx[i]]
        district = gcode[:6]
        key = (district, info.key)
        seq[key] = seq.get(key, 0) + 1
        ident = codes.format_component_id(admin_code=district, class_key=info.key, sequence=seq[key])
        a, b = (float(lon0[i]), float(lat0[i])), (float(lon1[i]), float(lat1[i]))
        if info.geometry is codes.Geometry.POINT:
            geom: Any = Point(a)
        elif info.geometry is codes.Geometry.LINE:
            geom = LineString([a, (b[0], a[1])])
        else:
            geom = Polygon([a, (b[0], a[1]), b, (a[0], b[1])])
        kind = info.owner_kind
        main = streets[gcode[:9]] if kind == "subdistrict" else city[kind]
        maintainer = branches.get((district, kind), main)
        rows.append(
            RawRow(
                row=i + 1,
                geom=geom,
                properties={
                    "code": ident,
                    "class_code": info.key,
                    "name": info.name_zh,
                    "state": rng.choices(state_names, weights=state_w)[0],
                    "main_department": dept_codes[main],
                    "owner_department": dept_codes[main],
                    "maintainer_department": dept_codes[maintainer],
                    "initial_date": (day0 + dt.timedelta(days=rng.randrange(3000))).isoformat(),
                    "data_source": rng.choice(["实测", "实测", "地形图", "调绘"]),
                },
            )
        )
    return rows


def _inspectors(session: Session, grid_codes: list[str]) -> None:
    """50 inspectors, each with a supervision area of consecutive grids (one password hash for all)."""
    pw_hash = security.hash_password(DEMO_PASSWORD)
    chunks = np.array_split(np.array(grid_codes), N_INSPECTORS)
    links = []
    for i, chunk in enumerate(chunks, start=1):
        user = org.create_user(
            session,
            username=f"jdy{i:02d}",
            password=DEMO_PASSWORD,
            role=Role.INSPECTOR,
            display_name=f"监督员{i:02d}",
            password_hash=pw_hash,
        )
        area = SupervisionArea(code=f"SA{i:02d}", name=f"第{i}责任区", inspector_id=user.id)
        session.add(area)
        session.flush()
        links += [{"supervision_area_id": area.id, "grid_code": str(g)} for g in chunk]
    if links:
        session.execute(SupervisionGrid.__table__.insert(), links)


def load(
    session: Session, *, scale: float = 1.0, echo: Callable[[str], object] = print, history: bool = True
) -> list[DemoLogin]:
    """Load the demo city (skipped when it exists). Returns the extra demo login (the first inspector).

    With ``history``, a freshly built city also gets its year of simulated cases (see :mod:`demo_history`).
    """
    if not 0 < scale <= 10:
        raise ValueError("scale must be in (0, 10]")
    login = [DemoLogin("jdy01", DEMO_PASSWORD, Role.INSPECTOR, "监督员01")]
    if session.scalars(select(Area.id).where(Area.code == DISTRICTS[0][0])).first() is not None:
        echo("the demo city exists already; nothing loaded")
        return login
    catalog = catalog_loader.default_catalog()
    area_rows, cells, to_wgs = build_areas(scale)
    rep = loader.load_areas(session, area_rows, source="demo", projected_crs=PROJECTED_CRS)
    echo(f"areas and grids: {rep.counts['created']} created ({len(cells)} unit grids)")
    from gis_data import demo_streets  # noqa: PLC0415  (built on this module's layout)

    base = demo_streets.load_base_map(session, scale)
    echo("base map: " + ", ".join(f"{n} {layer}" for layer, n in base.items()))
    city, branches, streets = _departments(session, catalog)
    dept_codes = dict(session.execute(select(org.Department.id, org.Department.code)).all())
    echo(f"departments: {len(dept_codes)}")
    comp_rows = build_components(scale, cells, to_wgs, catalog, dept_codes, city, branches, streets)
    rep = loader.load_components(session, comp_rows, source="demo", catalog=catalog)
    echo(f"components: {rep.counts['created']} created")
    _inspectors(session, sorted(cells))
    echo(f"inspectors: {N_INSPECTORS} (jdy01…jdy{N_INSPECTORS:02d}) with supervision areas")
    from gis_data import addresses, demo_addresses  # noqa: PLC0415  (demo_addresses builds on this module)

    rep = addresses.load_addresses(session, demo_addresses.address_rows(scale), source="demo")
    echo(f"standard addresses: {rep.counts['created']} door plates and roads")
    session.flush()
    if history:
        demo_history.load_history(session, cases=round(demo_history.BASE_CASES * scale), echo=echo)
    return login
