"""Helpers for the phone API tests: real photos with EXIF, multipart posts, a small city on the map."""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image, TiffImagePlugin

# A point in Baoji (渭滨区), inside the test city; the grid cells below start here.
LON, LAT = 107.1448, 34.3693
CELL = 0.001  # degrees: ~92 m × 111 m unit grids
DISTRICT = "610302"
COMMUNITY = "610302001001"

R = TiffImagePlugin.IFDRational


def _dms(value: float) -> tuple[R, R, R]:
    degrees = int(value)
    minutes_f = (value - degrees) * 60
    minutes = int(minutes_f)
    seconds = round((minutes_f - minutes) * 60 * 10000)
    return R(degrees), R(minutes), R(seconds, 10000)


def make_exif(
    *,
    orientation: int | None = None,
    taken: str | None = None,
    offset: str | None = None,
    lonlat: tuple[float, float] | None = None,
    make: str | None = None,
    model: str | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if orientation:
        exif[0x0112] = orientation
    if taken:
        exif_ifd = exif.get_ifd(0x8769)
        exif_ifd[0x9003] = taken
        if offset:
            exif_ifd[0x9011] = offset
    if lonlat:
        lon, lat = lonlat
        gps = exif.get_ifd(0x8825)
        gps[1] = "N" if lat >= 0 else "S"
        gps[2] = _dms(abs(lat))
        gps[3] = "E" if lon >= 0 else "W"
        gps[4] = _dms(abs(lon))
    return exif


def photo(
    seed: int = 0,
    *,
    size: tuple[int, int] = (640, 480),
    taken: str | None = None,
    offset: str | None = "+08:00",
    lonlat: tuple[float, float] | None = None,
    fmt: str = "JPEG",
) -> bytes:
    """A real image, distinct per seed, optionally with EXIF capture time and GPS."""
    im = Image.linear_gradient("L").resize(size)
    im = Image.merge("RGB", (im, im.transpose(Image.Transpose.ROTATE_180), Image.new("L", size, seed % 256)))
    im.putpixel((seed % size[0], 0), (seed % 256, 7, 255 - seed % 256))
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if fmt == "JPEG":
        kwargs["quality"] = 85
        if taken or lonlat:
            kwargs["exif"] = make_exif(taken=taken, offset=offset, lonlat=lonlat, make="HUAWEI")
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit PNG declaring width×height pixels (400 MP) in a few KB: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    comp = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def files_of(field: str, photos: list[bytes], name: str = "p{}.jpg") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (name.format(i), data, "image/jpeg")) for i, data in enumerate(photos)]


def post_report(
    client: TestClient,
    headers: dict[str, str],
    key: str | None,
    report: dict[str, Any],
    *,
    photos: list[bytes] | None = None,
    before: list[bytes] | None = None,
    after: list[bytes] | None = None,
    names: str = "p{}.jpg",
) -> Any:
    files = files_of("photos", photos or [], names) + files_of("before", before or []) + files_of("after", after or [])
    hdrs = {**headers, **({"Idempotency-Key": key} if key is not None else {})}
    return client.post("/mobile/v1/reports", data={"report": json.dumps(report)}, files=files or None, headers=hdrs)


def post_result(
    client: TestClient, headers: dict[str, str], key: str, case_id: int, result: dict[str, Any], photos: list[bytes]
) -> Any:
    return client.post(
        f"/mobile/v1/tasks/{case_id}/result",
        data={"result": json.dumps(result)},
        files=files_of("photos", photos),
        headers={**headers, "Idempotency-Key": key},
    )


def a_report(**over: Any) -> dict[str, Any]:
    return {"class_code": "C0101", "lon": LON + CELL / 2, "lat": LAT + CELL / 2, "description": "井盖破损", **over}


def count(engine: sa.Engine, table: str, where: str = "") -> int:
    with engine.connect() as c:
        return int(c.exec_driver_sql(f'SELECT count(*) FROM "{table}" {where}').scalar_one())


def media_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def cell_wkt(i: int, j: int) -> str:
    x0, y0 = LON + i * CELL, LAT + j * CELL
    x1, y1 = x0 + CELL, y0 + CELL
    return f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"


def grid_code(i: int, j: int) -> str:
    return f"{COMMUNITY}{i * 10 + j + 1:03d}"


def cell_center(i: int, j: int) -> tuple[float, float]:
    return LON + (i + 0.5) * CELL, LAT + (j + 0.5) * CELL


@dataclass(frozen=True)
class City:
    """The test city: one district around 3×3 unit grids; the inspector's area is the lower-left 2×2."""

    grids: list[str]
    area_grids: list[str]
    area_id: int


@pytest.fixture
def city(db: sa.Engine, orgdata: Any) -> City:
    from components.models import Area, Grid, SupervisionArea, SupervisionGrid
    from gridcity.database import make_session_factory

    factory = make_session_factory(db)
    x0, y0, x1, y1 = LON - 0.05, LAT - 0.05, LON + 0.05, LAT + 0.05
    with factory() as s, s.begin():
        s.add(
            Area(
                code=DISTRICT,
                level="district",
                name="渭滨区",
                geom=f"SRID=4326;MULTIPOLYGON((({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0})))",
            )
        )
        grids = []
        for i in range(3):
            for j in range(3):
                s.add(
                    Grid(
                        code=grid_code(i, j),
                        community_code=COMMUNITY,
                        area_m2=10_000.0,
                        geom=f"SRID=4326;{cell_wkt(i, j)}",
                    )
                )
                grids.append(grid_code(i, j))
        area = SupervisionArea(code="JD-01", name="责任区一", inspector_id=orgdata.ids["inspector"])
        s.add(area)
        s.flush()
        area_grids = [grid_code(i, j) for i in range(2) for j in range(2)]
        for g in area_grids:
            s.add(SupervisionGrid(supervision_area_id=area.id, grid_code=g))
        area_id = area.id
    return City(grids=grids, area_grids=area_grids, area_id=area_id)
