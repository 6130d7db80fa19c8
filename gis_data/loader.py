"""Load areas, unit grids and components, all-or-nothing, with a report that names every row.

Both loaders first validate every row against the file and the database, and only then write. If any row
is rejected nothing is written and :class:`LoadRejected` (422 ``gis.load_rejected``) carries the report;
otherwise the rows are upserted by code (created / updated / unchanged) in bulk.

Metric checks (grid area, overlaps, gaps) run in the city's projected CRS (``settings.projected_crs``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity
from sqlalchemy import select
from sqlalchemy.orm import Session

from components import catalog as class_catalog
from components import catalog_loader, codes
from components import service as components_service
from components.models import COMPONENT_STATES, Area, Component, ComponentHistory, Grid
from gis_data.readers import WGS84, RawRow, reproject, reproject_many, transformer
from gridcity import spatial
from gridcity.errors import InvalidInput
from gridcity.org import Department
from gridcity.types import utcnow

GRID_AREA_WARN_M2 = (2_000.0, 50_000.0)
"""A unit grid outside this range gets a warning (the guidance is ~10,000 m², standards.md §1)."""
OVERLAP_TOLERANCE_M2 = 1.0
GAP_TOLERANCE_M2 = 1.0
EDGE_TOLERANCE_M = 0.05
CHUNK = 900

AREA_LEVEL_BY_LENGTH = {6: "district", 9: "street", 12: "community", 15: "grid"}


# ---- the report -----------------------------------------------------------------------------------------


@dataclass
class RowReport:
    """What happened to one input row."""

    row: int
    code: str | None
    outcome: str = "pending"  # created | updated | unchanged | rejected
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def error(self, code: str, msg: str) -> None:
        """Record a reason to reject the row."""
        self.errors.append({"type": code, "msg": msg})

    def warn(self, code: str, msg: str) -> None:
        """Record a warning (the row still loads)."""
        self.warnings.append({"type": code, "msg": msg})


@dataclass
class LoadReport:
    """The outcome of one load: every row with its outcome, reasons and warnings."""

    kind: str
    source: str
    crs: str
    rows: list[RowReport]

    @property
    def ok(self) -> bool:
        """Whether every row was accepted."""
        return not any(r.errors for r in self.rows)

    @property
    def counts(self) -> dict[str, int]:
        """Rows per outcome, and the number of warnings."""
        out = {
            "rows": len(self.rows),
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "rejected": 0,
            "warnings": sum(len(r.warnings) for r in self.rows),
        }
        for r in self.rows:
            if r.outcome in out:
                out[r.outcome] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the report."""
        return {
            "kind": self.kind,
            "source": self.source,
            "crs": self.crs,
            "ok": self.ok,
            "counts": self.counts,
            "rows": [asdict(r) for r in self.rows],
        }


class LoadRejected(InvalidInput):
    """At least one row was rejected, so nothing was loaded; ``report`` says which and why."""

    def __init__(self, report: LoadReport) -> None:
        for r in report.rows:
            if r.errors:
                r.outcome = "rejected"
            elif r.outcome == "pending":
                r.outcome = "not_loaded"
        bad = sum(1 for r in report.rows if r.errors)
        super().__init__(
            f"{bad} of {len(report.rows)} rows rejected; nothing was loaded",
            code="gis.load_rejected",
            loc=["body"],
            extra={"report": report.to_dict()},
        )
        self.report = report


def _raise_if_rejected(report: LoadReport) -> None:
    if not report.ok:
        raise LoadRejected(report)


# ---- helpers ----------------------------------------------------------------------------------------------


def _text(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _parse_date(v: Any) -> dt.date | None:
    s = _text(v)
    if s is None:
        return None
    try:
        return dt.date.fromisoformat(s)  # YYYY-MM-DD and YYYYMMDD
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"):
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{s!r} is not a date (YYYY-MM-DD or YYYYMMDD)")


def _chunks(seq: Sequence[Any], n: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _geoms_from_db(session: Session, stmt: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``stmt`` whose last column is ``ST_AsBinary(geom)``, with that column parsed by shapely."""
    rows = session.execute(stmt).all()
    if not rows:
        return []
    geoms = shapely.from_wkb([bytes(r[-1]) for r in rows])
    return [(*r[:-1], g) for r, g in zip(rows, geoms, strict=True)]


def _wkt(geom: BaseGeometry) -> str:
    return shapely.to_wkt(geom, rounding_precision=-1)


def _bulk_insert(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT executemany through Core, the geometry bound as plain WKT (``geom`` key)."""
    stmt = table.insert().values(geom=spatial.geom_from_wkt(session, "g_wkt"))
    for r in rows:
        r["g_wkt"] = r.pop("geom")
    session.connection().execute(stmt, rows)


def _same_geom(a: BaseGeometry | None, b: BaseGeometry) -> bool:
    return a is not None and a.geom_type == b.geom_type and bool(shapely.equals_exact(a, b, 1e-10))


# ---- areas and grids ----------------------------------------------------------------------------------


@dataclass
class _AreaIn:
    rep: RowReport
    code: str
    level: str
    name: str
    parent: str | None
    region_class: str
    geom: BaseGeometry
    proj: BaseGeometry
    start_date: dt.date | None = None
    end_date: dt.date | None = None


def _check_area_row(raw: RawRow, rep: RowReport, tr_proj: Any) -> _AreaIn | None:
    props = raw.properties
    for code, msg in raw.problems:
        rep.error(code, msg)
    code = _text(props.get("code"))
    if code is None:
        rep.error("area.missing_code", "the feature has no code")
        return None
    try:
        parsed = codes.parse_area_code(code)
    except InvalidInput as exc:
        rep.error(exc.code, exc.message)
        return None
    level = AREA_LEVEL_BY_LENGTH[len(code)]
    given_level = _text(props.get("level"))
    if given_level is not None and given_level != level:
        rep.error("area.level_mismatch", f"level {given_level!r} does not match the {len(code)}-digit code ({level})")
    geom = raw.geom
    if geom is None:
        return None
    if level == "grid" and isinstance(geom, MultiPolygon) and len(geom.geoms) == 1:
        geom = geom.geoms[0]
    if level != "grid" and isinstance(geom, Polygon):
        geom = MultiPolygon([geom])
    wanted = Polygon if level == "grid" else MultiPolygon
    if not isinstance(geom, wanted):
        rep.error("geom.wrong_type", f"a {level} must be a {wanted.__name__}, not a {geom.geom_type}")
        return None
    if not geom.is_valid:
        rep.error("geom.invalid", f"invalid geometry: {explain_validity(geom)}")
        return None
    dates: list[dt.date | None] = []
    for key in ("start_date", "end_date"):
        try:
            dates.append(_parse_date(props.get(key)))
        except ValueError as exc:
            rep.error("area.bad_date", f"{key}: {exc}")
            dates.append(None)
    return _AreaIn(
        rep=rep,
        code=code,
        level=level,
        name=_text(props.get("name")) or code,
        parent=parsed.parent,
        region_class=_text(props.get("region_class")) or "class1",
        geom=geom,
        proj=geom,
        start_date=dates[0],
        end_date=dates[1],
    )  # proj: reprojected in bulk by the caller


def load_areas(
    session: Session, rows: list[RawRow], *, source: str = "upload", crs: str = WGS84, projected_crs: str = "EPSG:4545"
) -> LoadReport:
    """Validate and upsert districts, streets, communities and unit grids (all or nothing).

    Raises:
        LoadRejected: any row is invalid (bad/duplicate code, wrong parent, invalid geometry, overlapping
            grids, a gap inside a community); nothing is written.
    """
    tr_proj = transformer(WGS84, projected_crs)
    report = LoadReport(kind="areas", source=source, crs=crs, rows=[])
    items: list[_AreaIn] = []
    seen: dict[str, RowReport] = {}
    for raw in rows:
        rep = RowReport(row=raw.row, code=_text(raw.properties.get("code")))
        report.rows.append(rep)
        item = _check_area_row(raw, rep, tr_proj)
        if item is None:
            continue
        if item.code in seen:
            rep.error("area.duplicate_code", f"code {item.code} already appears in row {seen[item.code].row}")
            seen[item.code].error("area.duplicate_code", f"code {item.code} appears again in row {rep.row}")
            continue
        seen[item.code] = rep
        items.append(item)
    for item, proj in zip(items, reproject_many([i.geom for i in items], tr_proj), strict=True):
        item.proj = proj
    by_code = {i.code: i for i in items}

    # we check the hierarchy against the file and the database
    parents = {i.parent for i in items if i.parent and i.parent not in by_code}
    db_parents: set[str] = set()
    for chunk in _chunks(sorted(parents)):
        db_parents |= set(session.scalars(select(Area.code).where(Area.code.in_(chunk))))
    for i in items:
        if i.parent and i.parent not in by_code and i.parent not in db_parents:
            i.rep.error("area.parent_missing", f"parent area {i.parent} of {i.code} is neither in the file nor loaded")

    grids = [i for i in items if i.level == "grid"]
    for g in grids:
        lo, hi = GRID_AREA_WARN_M2
        if not lo <= g.proj.area <= hi:
            g.rep.warn("grid.area_unusual", f"grid area {g.proj.area:,.0f} m² is far from 10,000 m²")
    _check_grid_topology(session, items, grids, tr_proj)
    _raise_if_rejected(report)
    _write_areas(session, items)
    return report


def _check_grid_topology(session: Session, items: list[_AreaIn], grids: list[_AreaIn], tr_proj: Any) -> None:
    """Overlapping grids, grids outside their community, gaps inside communities."""
    file_codes = {i.code for i in items}
    communities = {i.code: i for i in items if i.level == "community"}
    affected = set(communities) | {g.code[:12] for g in grids}
    if not affected:
        return
    # the final state: file grids plus the loaded grids the file does not replace
    final: list[tuple[str, BaseGeometry, _AreaIn | None]] = [(g.code, g.proj, g) for g in grids]
    if grids:
        x0, y0, x1, y1 = shapely.total_bounds([g.geom for g in grids])
        stmt = select(Grid.code, sa.func.ST_AsBinary(Grid.geom)).where(
            components_service.bbox_clause(session, Grid.geom, (x0, y0, x1, y1))
        )
        for code, geom in _geoms_from_db(session, stmt):
            if code not in file_codes:
                final.append((code, reproject(geom, tr_proj), None))
    for chunk in _chunks(sorted(affected - {g.code[:12] for g in grids})):
        stmt = select(Grid.code, sa.func.ST_AsBinary(Grid.geom)).where(Grid.community_code.in_(chunk))
        for code, geom in _geoms_from_db(session, stmt):
            if code not in file_codes:
                final.append((code, reproject(geom, tr_proj), None))
    final = list({c: (c, g, it) for c, g, it in final}.values())

    # overlaps among file grids and with loaded grids
    final_geoms = np.empty(len(final), dtype=object)
    final_geoms[:] = [g for _, g, _ in final]
    tree = shapely.STRtree(final_geoms)
    if grids:
        grid_geoms = np.empty(len(grids), dtype=object)
        grid_geoms[:] = [g.proj for g in grids]
        left, right = tree.query(grid_geoms, predicate="intersects")
        keep = [
            k
            for k, (li, ri) in enumerate(zip(left.tolist(), right.tolist(), strict=True))
            if not (final[ri][0] == grids[li].code or (final[ri][2] is not None and final[ri][0] < grids[li].code))
        ]
        left, right = left[keep], right[keep]  # we report each pair of file grids once, from the lower code
        # neighbours only touch: we measure the overlap only where the interiors meet
        inner = shapely.relate_pattern(grid_geoms[left], final_geoms[right], "T********")
        left, right = left[inner], right[inner]
        areas = shapely.area(shapely.intersection(grid_geoms[left], final_geoms[right]))
        for li, ri, area in zip(left.tolist(), right.tolist(), areas.tolist(), strict=True):
            a = grids[li]
            b_code, _, b_item = final[ri]
            if area > OVERLAP_TOLERANCE_M2:
                a.rep.error("grid.overlap", f"grid {a.code} overlaps grid {b_code} by {area:,.1f} m²")
                if b_item is not None:
                    b_item.rep.error("grid.overlap", f"grid {b_code} overlaps grid {a.code} by {area:,.1f} m²")

    # every community must be covered by its grids, and every grid must lie inside its community
    db_comms: dict[str, BaseGeometry] = {}
    missing = sorted(affected - set(communities))
    for chunk in _chunks(missing):
        stmt = select(Area.code, sa.func.ST_AsBinary(Area.geom)).where(Area.code.in_(chunk))
        for code, geom in _geoms_from_db(session, stmt):
            db_comms[code] = reproject(geom, tr_proj)
    members: dict[str, list[tuple[str, BaseGeometry, _AreaIn | None]]] = {}
    for entry in final:
        members.setdefault(entry[0][:12], []).append(entry)
    for comm_code in sorted(affected):
        comm = communities[comm_code].proj if comm_code in communities else db_comms.get(comm_code)
        if comm is None:
            continue  # the parent check has reported it
        mine = members.get(comm_code, [])
        if not mine:
            if comm_code in communities:
                communities[comm_code].rep.warn("community.no_grids", f"community {comm_code} has no unit grids yet")
            continue
        outer = comm.buffer(EDGE_TOLERANCE_M * 10)
        for code, geom, it in mine:
            if it is not None and geom.difference(outer).area > GAP_TOLERANCE_M2:
                it.rep.error("grid.outside_community", f"grid {code} extends outside community {comm_code}")
        covered = shapely.union_all([g for _, g, _ in mine]).buffer(EDGE_TOLERANCE_M)
        gap = comm.difference(covered).area
        if gap > GAP_TOLERANCE_M2:
            msg = f"the unit grids of community {comm_code} leave {gap:,.1f} m² uncovered"
            target = (
                communities[comm_code].rep
                if comm_code in communities
                else next(it.rep for _, _, it in mine if it is not None)
            )
            target.error("community.gap", msg)


def _write_areas(session: Session, items: list[_AreaIn]) -> None:
    """Upsert the validated areas and grids in bulk, and set each row's outcome."""
    areas = [i for i in items if i.level != "grid"]
    grids = [i for i in items if i.level == "grid"]
    for model, batch in ((Area, areas), (Grid, grids)):
        if not batch:
            continue
        existing: dict[str, tuple[Any, ...]] = {}
        cols = [model.id, model.name, model.region_class] + (
            [Area.level, Area.parent_code] if model is Area else [Grid.start_date, Grid.end_date]
        )
        for chunk in _chunks([i.code for i in batch]):
            stmt = select(model.code, *cols, sa.func.ST_AsBinary(model.geom)).where(model.code.in_(chunk))
            for row in _geoms_from_db(session, stmt):
                existing[row[0]] = row[1:]
        inserts, updates = [], []
        for i in batch:
            values: dict[str, Any] = {"name": i.name, "region_class": i.region_class, "geom": _wkt(i.geom)}
            if model is Area:
                values |= {"level": i.level, "parent_code": i.parent}
                new_cmp = (i.name, i.region_class, i.level, i.parent)
            else:
                values |= {
                    "community_code": i.code[:12],
                    "area_m2": float(i.proj.area),
                    "start_date": i.start_date,
                    "end_date": i.end_date,
                }
                new_cmp = (i.name, i.region_class, i.start_date, i.end_date)
            old = existing.get(i.code)
            if old is None:
                inserts.append({"code": i.code, **values})
                i.rep.outcome = "created"
            elif tuple(old[1:-1]) == new_cmp and _same_geom(old[-1], i.geom):
                i.rep.outcome = "unchanged"
            else:
                updates.append({"b_id": old[0], **values})
                i.rep.outcome = "updated"
        if inserts:
            _bulk_insert(session, model.__table__, inserts)
        if updates:
            _bulk_update(session, model.__table__, updates)
    session.flush()


# ---- components ---------------------------------------------------------------------------------------

_ALIASES = {
    "code": ("code", "id", "objid", "glbjbsm"),
    "class_code": ("class_code", "class", "classcode"),
    "name": ("name", "objname", "glbjmc"),
    "state": ("state", "objstate", "glbjzt"),
    "main_department": ("main_department", "deptcode1", "zgbmdm"),
    "owner_department": ("owner_department", "deptcode2", "qsdwdm"),
    "maintainer_department": ("maintainer_department", "deptcode3", "yhdwdm"),
    "initial_date": ("initial_date", "ordate", "csrq"),
    "change_date": ("change_date", "chdate", "bgrq"),
    "data_source": ("data_source", "datasource", "sjly"),
    "address": ("address", "locatedsc", "sfwz"),
    "note": ("note", "bz"),
}
_COMPARED = (
    "class_code",
    "name",
    "grid_code",
    "main_department_id",
    "owner_department_id",
    "maintainer_department_id",
    "state",
    "initial_date",
    "change_date",
    "data_source",
    "address",
    "note",
)


def _props(raw: dict[str, Any]) -> dict[str, Any]:
    keys = tuple(raw)
    plan = _PROP_PLANS.get(keys)
    if plan is None:
        lower = {str(k).strip().lower(): k for k in keys}  # a later spelling wins, as in a dict of the row
        plan = [(field_, next((lower[a] for a in aliases if a in lower), None)) for field_, aliases in _ALIASES.items()]
        if len(_PROP_PLANS) > 256:
            _PROP_PLANS.clear()
        _PROP_PLANS[keys] = plan
    return {field_: (raw[k] if k is not None else None) for field_, k in plan}


_PROP_PLANS: dict[tuple[Any, ...], list[tuple[str, Any]]] = {}
"""Property keys of a row → which key feeds each field; files repeat one key set, so this is computed once."""


@dataclass
class _CompIn:
    rep: RowReport
    code: str
    values: dict[str, Any]
    geom: BaseGeometry


class CityIndex:
    """The loaded unit grids and districts in memory, for locating many features at once."""

    def __init__(self, session: Session) -> None:
        grids = _geoms_from_db(session, select(Grid.code, sa.func.ST_AsBinary(Grid.geom)).order_by(Grid.code))
        self.grid_codes = [c for c, _ in grids]
        self.grid_tree = shapely.STRtree([g for _, g in grids]) if grids else None
        districts = _geoms_from_db(
            session,
            select(Area.code, sa.func.ST_AsBinary(Area.geom)).where(Area.level == "district").order_by(Area.code),
        )
        self.district_codes = [c for c, _ in districts]
        self.district_tree = shapely.STRtree([g for _, g in districts]) if districts else None

    @staticmethod
    def _first_hit(tree: shapely.STRtree | None, pts: list[BaseGeometry]) -> np.ndarray:
        best = np.full(len(pts), -1, dtype=np.int64)
        if tree is None or not pts:
            return best
        left, right = tree.query(pts, predicate="intersects")
        big = np.iinfo(np.int64).max
        tmp = np.full(len(pts), big, dtype=np.int64)
        np.minimum.at(tmp, left, right)  # the lowest index = the lowest code (trees are built in code order)
        best[tmp != big] = tmp[tmp != big]
        return best

    def locate(self, geoms: list[BaseGeometry]) -> list[tuple[str | None, str | None]]:
        """For each geometry: (grid code, district code) of a point on it; (None, None) outside the city."""
        pts = [g if g.geom_type == "Point" else g.representative_point() for g in geoms]
        gi = self._first_hit(self.grid_tree, pts)
        di = self._first_hit(self.district_tree, pts)
        out = []
        for g, d in zip(gi.tolist(), di.tolist(), strict=True):
            grid = self.grid_codes[g] if g >= 0 else None
            district = grid[:6] if grid else (self.district_codes[d] if d >= 0 else None)
            out.append((grid, district))
        return out

    @property
    def has_city(self) -> bool:
        """Whether any district is loaded (otherwise every point counts as inside)."""
        return self.district_tree is not None


def _class_key(value: Any, code: str | None) -> str | None:
    s = _text(value)
    if s is None:
        if code is not None:
            try:
                return codes.parse_component_id(code).class_key
            except InvalidInput:
                return None
        return None
    return "C" + s if s.isdigit() else s.upper()


def load_components(
    session: Session,
    rows: list[RawRow],
    *,
    source: str = "upload",
    crs: str = WGS84,
    catalog: class_catalog.ClassCatalog | None = None,
    history: bool = True,
    at: dt.datetime | None = None,
) -> LoadReport:
    """Validate and upsert components by ID (all or nothing), recording a history row per change.

    Raises:
        LoadRejected: any row is invalid (malformed or inconsistent ID, unknown class, unknown department,
            bad state or date, a point outside the city, a duplicate ID); nothing is written.
    """
    catalog = catalog or catalog_loader.default_catalog()
    at = at or utcnow()
    report = LoadReport(kind="components", source=source, crs=crs, rows=[])
    depts = dict(session.execute(select(Department.code, Department.id)).all())
    items: list[_CompIn] = []
    seen: dict[str, RowReport] = {}
    # geometry validity for all rows at once; the reason is only worked out for the invalid ones
    with_geom = [r.geom for r in rows if r.geom is not None]
    valid = iter(shapely.is_valid(np.asarray(with_geom, dtype=object)).tolist() if with_geom else [])
    classes: dict[str | None, tuple[str, str] | None] = {}  # class key → its error, or None when it is fine
    states = frozenset(COMPONENT_STATES)
    for raw in rows:
        p = _props(raw.properties)
        code = _text(p["code"])
        rep = RowReport(row=raw.row, code=code)
        report.rows.append(rep)
        geom = raw.geom
        is_valid = next(valid) if geom is not None else True
        for c, msg in raw.problems:
            rep.error(c, msg)
        if code is None:
            rep.error("component.missing_code", "the row has no component ID")
            continue
        try:
            codes.parse_component_id(code)
        except InvalidInput as exc:
            rep.error(exc.code, exc.message)
        key = _class_key(p["class_code"], code)
        if key is not None:
            if key not in classes:
                classes[key] = _class_problem(catalog, key)
            problem = classes[key]
            if problem is not None:
                rep.error(*problem)
        values: dict[str, Any] = {
            "class_code": key,
            "name": _text(p["name"]),
            "state": _text(p["state"]) or "完好",
            "data_source": _text(p["data_source"]),
            "address": _text(p["address"]),
            "note": _text(p["note"]),
        }
        if values["state"] not in states:
            rep.error("component.bad_state", f"state must be one of {'/'.join(COMPONENT_STATES)}")
        for role in ("main", "owner", "maintainer"):
            dcode = _text(p[f"{role}_department"])
            values[f"{role}_department_id"] = depts.get(dcode) if dcode else None
            if dcode and dcode not in depts:
                rep.error("department.unknown", f"unknown {role} department {dcode}")
        for key_ in ("initial_date", "change_date"):
            try:
                values[key_] = _parse_date(p[key_])
            except ValueError as exc:
                rep.error("component.bad_date", f"{key_}: {exc}")
        if values["data_source"] and len(values["data_source"]) > 20:
            rep.error("component.too_long", "data_source is longer than 20 characters")
        if values["address"] and len(values["address"]) > 256:
            rep.error("component.too_long", "address is longer than 256 characters")
        if values["name"] and len(values["name"]) > 100:
            rep.error("component.too_long", "name is longer than 100 characters")
        if geom is not None and not is_valid:
            rep.error("geom.invalid", f"invalid geometry: {explain_validity(geom)}")
            geom = None
        if code in seen:
            rep.error("component.duplicate_code", f"ID {code} already appears in row {seen[code].row}")
        else:
            seen[code] = rep
        if geom is not None:
            items.append(_CompIn(rep=rep, code=code, values=values, geom=geom))

    city = CityIndex(session)
    for it, (grid, district) in zip(items, city.locate([i.geom for i in items]), strict=True):
        it.values["grid_code"] = grid
        if city.has_city and district is None:
            it.rep.error("geo.outside_city", "the component lies outside the city")
            continue
        class_key = it.values["class_code"]
        if district is not None and class_key and not it.rep.errors:
            code = it.code
            if code[:6] == district and "C" + code[6:-6] == class_key:
                continue  # the ID agrees with its district and class (what check_component_id would find)
            try:
                codes.check_component_id(code, class_key=class_key, admin_code=district)
            except InvalidInput as exc:
                it.rep.error(exc.code, exc.message)
    _raise_if_rejected(report)
    _write_components(session, items, source=source, history=history, at=at)
    return report


def _class_problem(catalog: class_catalog.ClassCatalog, key: str) -> tuple[str, str] | None:
    try:
        info = catalog.get(key)
    except InvalidInput as exc:
        return exc.code, exc.message
    if info.kind is not codes.ClassKind.COMPONENT:
        return "class.not_component", f"{key} is an event class, not a component class"
    return None


_INSERT_COLUMNS = ("code", *_COMPARED, "updated_at")
_HISTORY_COLUMNS = ("component_code", "at", "action", "source", "changes")
_DATE_FIELDS = frozenset({"initial_date", "change_date"})


def _write_components(session: Session, items: list[_CompIn], *, source: str, history: bool, at: dt.datetime) -> None:
    """Upsert: new IDs are appended in bulk (COPY / one prepared executemany), changed ones updated."""
    existing: dict[str, tuple[int, dict[str, Any], BaseGeometry]] = {}
    cols = [getattr(Component, c) for c in _COMPARED]
    if items and session.scalar(select(Component.id).limit(1)) is not None:
        for chunk in _chunks([i.code for i in items]):
            stmt = select(Component.code, Component.id, *cols, sa.func.ST_AsBinary(Component.geom)).where(
                Component.code.in_(chunk)
            )
            for row in _geoms_from_db(session, stmt):
                existing[row[0]] = (row[1], dict(zip(_COMPARED, row[2:-1], strict=True)), row[-1])
    inserts: list[tuple[Any, ...]] = []
    insert_geoms: list[BaseGeometry] = []
    updates: list[dict[str, Any]] = []
    hist: list[tuple[Any, ...]] = []
    src = source[:100]
    for it in items:
        old = existing.get(it.code) if existing else None
        v = it.values
        if old is None:
            inserts.append((it.code, *[v[k] for k in _COMPARED], at))
            insert_geoms.append(it.geom)
            it.rep.outcome = "created"
            if history:
                created = {k: x for k, x in v.items() if x is not None}
                for k in _DATE_FIELDS & created.keys():
                    created[k] = created[k].isoformat()
                hist.append((it.code, at, "create", src, created))
            continue
        _, old_vals, old_geom = old
        changes = {k: [_jsonable(old_vals[k]), _jsonable(v[k])] for k in _COMPARED if old_vals[k] != v[k]}
        if not _same_geom(old_geom, it.geom):
            changes["geom"] = [old_geom.wkt, it.geom.wkt]
        if not changes:
            it.rep.outcome = "unchanged"
            continue
        updates.append({"b_id": old[0], **v, "geom": _wkt(it.geom), "updated_at": at})
        it.rep.outcome = "updated"
        if history:
            hist.append((it.code, at, "update", src, changes))
    if inserts:
        spatial.bulk_append(session, Component.__table__, _INSERT_COLUMNS, inserts, insert_geoms)
    if updates:
        _bulk_update(session, Component.__table__, updates)
    if hist:
        spatial.bulk_append(session, ComponentHistory.__table__, _HISTORY_COLUMNS, hist)
    session.flush()


def _bulk_update(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """UPDATE ... WHERE id = :b_id, executemany; every row has the same keys."""
    keys = [k for k in rows[0] if k != "b_id"]
    stmt = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(
            {
                k: spatial.geom_from_wkt(session, "v_g_wkt")
                if k == "geom"
                else sa.bindparam(f"v_{k}", type_=table.c[k].type)
                for k in keys
            }
        )
    )
    names = {k: "v_g_wkt" if k == "geom" else f"v_{k}" for k in keys}
    session.connection().execute(stmt, [{"b_id": r["b_id"], **{names[k]: r[k] for k in keys}} for r in rows])


def _jsonable(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.date) else v


# ---- base map (roads, buildings, water, green space) ----------------------------------------------------

_BASE_GEOMETRY = {
    "road": ("LineString", "MultiLineString"),
    "building": ("Polygon", "MultiPolygon"),
    "water": ("Polygon", "MultiPolygon", "LineString", "MultiLineString"),
    "green": ("Polygon", "MultiPolygon"),
}


def load_base_features(
    session: Session, rows: list[RawRow], *, layer: str, source: str = "upload", crs: str = WGS84, replace: bool = True
) -> LoadReport:
    """Load one base-map layer (``road``/``building``/``water``/``green``), all-or-nothing.

    Properties: ``name`` (roads: the street name), ``kind`` (主干路, 住宅, 河流 ...), ``code`` (optional).
    With ``replace`` the layer's earlier features from the same ``source`` are replaced.
    """
    from gis_data.models import BASE_LAYERS, BaseFeature  # noqa: PLC0415

    if layer not in BASE_LAYERS:
        raise InvalidInput(
            f"layer must be one of {', '.join(BASE_LAYERS)}", code="gis.unknown_base_layer", loc=["path", "layer"]
        )
    report = LoadReport(kind=f"base:{layer}", source=source, crs=crs, rows=[])
    good: list[tuple[list[Any], BaseGeometry]] = []
    allowed = _BASE_GEOMETRY[layer]
    for raw in rows:
        props = raw.properties
        rep = RowReport(row=raw.row, code=_text(props.get("code")))
        report.rows.append(rep)
        for code, msg in raw.problems:
            rep.error(code, msg)
        name, kind = _text(props.get("name")), _text(props.get("kind") or props.get("class"))
        if name is not None and len(name) > 100:
            rep.error("base.name_too_long", "name is longer than 100 characters")
        if kind is not None and len(kind) > 32:
            rep.error("base.kind_too_long", "kind is longer than 32 characters")
        if rep.code is not None and len(rep.code) > 64:
            rep.error("base.code_too_long", "code is longer than 64 characters")
        g = raw.geom
        if g is None:
            if not raw.problems:
                rep.error("geom.missing", "the feature has no geometry")
            continue
        if g.geom_type not in allowed:
            rep.error("base.wrong_geometry", f"a {layer} feature must be a {' or '.join(allowed)}")
            continue
        if not g.is_valid:
            rep.error("geom.invalid", explain_validity(g))
            continue
        if not rep.errors:
            rep.outcome = "created"
            good.append(([layer, rep.code, name, kind, source[:100]], g))
    _raise_if_rejected(report)
    table = BaseFeature.__table__
    if replace:
        session.execute(table.delete().where(table.c.layer == layer, table.c.source == source[:100]))
    spatial.bulk_append(
        session,
        table,
        ["layer", "code", "name", "kind", "source"],  # type: ignore[arg-type]
        [r for r, _ in good],
        [g for _, g in good],
    )
    return report
