"""Import standard addresses (标准地址: door plates, places, roads with a point), all-or-nothing.

Input rows (CSV with ``lon,lat`` or GeoJSON points, read by :mod:`gis_data.readers`) carry ``code``,
``name``, optional ``kind`` (door_plate | place | road; default door_plate), ``road``, ``number``,
``aliases`` (separated by ``;``) and optionally ``grid_code``. Every row is validated first; if any is
rejected nothing is written (422 ``gis.load_rejected`` with the report). Rows are replaced by code; each
address is placed in its unit grid and community, named with its district and street, and indexed for
the look-up (:mod:`components.addresses`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from components import addresses
from components import service as components_service
from components.models import Address, AddressGram, Area, Grid
from gis_data.loader import LoadReport, RowReport, _geoms_from_db, _raise_if_rejected, _text
from gis_data.readers import WGS84, RawRow
from gridcity import spatial

KINDS = ("door_plate", "place", "road")
CHUNK = 5000


@dataclass
class _AddrIn:
    rep: RowReport
    code: str
    kind: str
    name: str
    road: str | None
    number: str | None
    aliases: list[str]
    lon: float
    lat: float
    grid_code: str | None


def _check(raw: RawRow, rep: RowReport, grid_codes: set[str] | None) -> _AddrIn | None:
    p = raw.properties
    for code, msg in raw.problems:
        rep.error(code, msg)
    code = _text(p.get("code"))
    name = _text(p.get("name"))
    kind = _text(p.get("kind")) or "door_plate"
    if not code or len(code) > 40:
        rep.error("address.bad_code", "code is required (at most 40 characters)")
    if not name or len(name) > 200:
        rep.error("address.bad_name", "name is required (at most 200 characters)")
    if kind not in KINDS:
        rep.error("address.bad_kind", f"kind must be one of {', '.join(KINDS)}")
    geom = raw.geom
    if geom is None or geom.geom_type != "Point":
        if geom is not None:
            rep.error("address.not_a_point", "an address is a point")
        return None
    grid = _text(p.get("grid_code"))
    if grid and grid_codes is not None and grid not in grid_codes:
        rep.error("address.unknown_grid", f"unknown grid {grid}")
    if rep.errors or not code or not name:
        return None
    aliases = [a.strip() for a in (_text(p.get("aliases")) or "").split(";") if a.strip()]
    return _AddrIn(
        rep, code, kind, name, _text(p.get("road")), _text(p.get("number")), aliases, float(geom.x), float(geom.y), grid
    )


def load_addresses(session: Session, rows: Sequence[RawRow], *, source: str = "upload") -> LoadReport:
    """Validate and load standard addresses (replacing those with the same code)."""
    report = LoadReport("addresses", source, WGS84, [])
    grid_comm = dict(session.execute(select(Grid.code, Grid.community_code)).all())
    items: list[_AddrIn] = []
    seen: set[str] = set()
    for raw in rows:
        rep = RowReport(raw.row, _text(raw.properties.get("code")))
        report.rows.append(rep)
        item = _check(raw, rep, set(grid_comm) if grid_comm else None)
        if item is not None and item.code in seen:
            rep.error("address.duplicate_code", f"code {item.code} appears twice in the file")
            item = None
        if item is not None:
            seen.add(item.code)
            items.append(item)
    _raise_if_rejected(report)
    area_names = dict(session.execute(select(Area.code, Area.name)).all())
    existing = set()
    for chunk in _chunks([i.code for i in items]):
        existing |= set(session.scalars(select(Address.code).where(Address.code.in_(chunk))))
    if existing:
        for chunk in _chunks(sorted(existing)):
            ids = select(Address.id).where(Address.code.in_(chunk)).scalar_subquery()
            session.execute(sa.delete(AddressGram).where(AddressGram.address_id.in_(ids)))
            session.execute(sa.delete(Address).where(Address.code.in_(chunk)))
    located = _grids_of(session, [it for it in items if not it.grid_code])
    values = []
    for it in items:
        grid = it.grid_code or located.get(id(it))
        comm = grid_comm.get(grid) if grid else None
        district = area_names.get(comm[:6]) if comm else None
        street = area_names.get(comm[:9]) if comm else None
        community = area_names.get(comm) if comm else None
        full = " ".join(x for x in (district, street, it.name) if x)
        search = addresses.normalize(
            "".join(x for x in (it.name, it.road, district, street, community, *it.aliases) if x)
        )[:400]
        values.append(
            {
                "code": it.code,
                "kind": it.kind,
                "name": it.name,
                "road": it.road,
                "number": it.number,
                "full_name": full[:300],
                "lon": it.lon,
                "lat": it.lat,
                "grid_code": grid,
                "community_code": comm,
                "search_text": search,
                "name_key": addresses.normalize(it.name)[:200],
            }
        )
        it.rep.outcome = "updated" if it.code in existing else "created"
    for chunk in _chunks(values):
        ids = session.scalars(sa.insert(Address).returning(Address.id, sort_by_parameter_order=True), chunk).all()
        grams: list[tuple[str, int]] = []
        for aid, v in zip(ids, chunk, strict=True):
            grams.extend(addresses.index_rows(aid, v["search_text"]))
        spatial.bulk_append(session, AddressGram.__table__, ["gram", "address_id"], grams)  # type: ignore[arg-type]
    session.flush()
    return report


def _grids_of(session: Session, items: Sequence[_AddrIn]) -> dict[int, str | None]:
    """The unit grid of each point, found in memory (an STRtree of the grids around the points): one read of
    the grids instead of one spatial query per address. On a shared border the lowest code wins."""
    if not items:
        return {}
    lons = [i.lon for i in items]
    lats = [i.lat for i in items]
    box = (min(lons), min(lats), max(lons), max(lats))
    stmt = select(Grid.code, sa.func.ST_AsBinary(Grid.geom)).where(
        components_service.bbox_clause(session, Grid.geom, box)
    )
    grids = _geoms_from_db(session, stmt)
    if not grids:
        return {}
    codes = [g[0] for g in grids]
    tree = shapely.STRtree([g[1] for g in grids])
    pts = shapely.points(np.column_stack([lons, lats]))
    pairs = tree.query(pts, predicate="intersects")
    best: dict[int, str] = {}
    for pi, gi in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
        code = codes[gi]
        if pi not in best or code < best[pi]:
            best[pi] = code
    return {id(it): best.get(k) for k, it in enumerate(items)}


def _chunks(seq: Sequence[Any], n: int = CHUNK) -> list[Sequence[Any]]:
    return [seq[i : i + n] for i in range(0, len(seq), n)]
