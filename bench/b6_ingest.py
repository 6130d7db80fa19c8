"""B6, the anchor of goal G-I2 (`../shared/domain/performance.md` Part 2): a bare FastAPI ingest endpoint.

"upload + EXIF + draft thumbnail in the threadpool + write two files, 1 worker on 1 core" — what any photo
ingest endpoint on this server stack must do at the least, with none of gridcity: no authentication, no
database, no idempotency, no case. :mod:`bench.bench_ingest` serves it with the same uvicorn command as the
app and sends it the same photos from the same clients, so that G-I2 (our ingest ≥ 0.8× B6) is read in one
run. The thumbnail is the B3 draft pipeline (the anchor of G-I1); the files go under ``$GC_B6_DIR``.
``/upload-prepare`` is the same endpoint with gridcity's own photo step (:func:`gridcity.photos.prepare_photo`:
validation, EXIF, the 320 px thumbnail) in place of EXIF + B3: the like-for-like anchor for our ingest.
``/upload-raw`` takes the photo as the whole request body (no multipart), reads it on the event loop and runs
``prepare_photo`` in the threadpool: the most that any ingest code served by this uvicorn could reach.

    GC_B6_DIR=/tmp/b6 .venv/bin/python -m uvicorn bench.b6_ingest:app --port 8002
"""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

from fastapi import FastAPI, File, Request, UploadFile
from PIL import Image
from starlette.concurrency import run_in_threadpool

from gridcity import photos

app = FastAPI()
_counter = itertools.count()


def draft_pipeline(data: bytes) -> bytes:
    """The B3 anchor pipeline: DCT-scaled decode, 512 px thumbnail, transpose, JPEG q85."""
    im: Image.Image = Image.open(io.BytesIO(data))
    im.draft("RGB", (512, 512))
    im = im.convert("RGB")
    im.thumbnail((512, 512), Image.Resampling.LANCZOS)
    im = im.transpose(Image.Transpose.ROTATE_270)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85)
    return out.getvalue()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/upload", status_code=201)
def upload(photo: UploadFile = File(...)) -> dict[str, int]:  # noqa: B008 (FastAPI's own idiom)
    """Read the photo into memory, read its EXIF (time and GPS), make the draft thumbnail, write both files."""
    data = photo.file.read()
    exif = Image.open(io.BytesIO(data)).getexif()
    tags = len(exif) + len(exif.get_ifd(0x8769)) + len(exif.get_ifd(0x8825))
    _write(data, draft_pipeline(data))
    return {"bytes": len(data), "tags": tags}


@app.post("/upload-prepare", status_code=201)
def upload_prepare(photo: UploadFile = File(...)) -> dict[str, int]:  # noqa: B008
    """The same with ``prepare_photo`` as the photo step."""
    prepared = photos.prepare_photo(photo.file.read())
    _write(prepared.data, prepared.thumbnail.data)
    return {"bytes": len(prepared.data), "width": prepared.info.width}


@app.post("/upload-raw", status_code=201)
async def upload_raw(request: Request) -> dict[str, int]:
    """The photo as the body: no multipart parsing; ``prepare_photo`` and the writes in the threadpool."""
    data = await request.body()
    return await run_in_threadpool(_prepare_and_write, data)


def _prepare_and_write(data: bytes) -> dict[str, int]:
    prepared = photos.prepare_photo(data)
    _write(prepared.data, prepared.thumbnail.data)
    return {"bytes": len(prepared.data), "width": prepared.info.width}


def _write(original: bytes, thumbnail: bytes) -> None:
    folder = Path(os.environ["GC_B6_DIR"])
    n = next(_counter)
    (folder / f"{n}.jpg").write_bytes(original)
    (folder / f"{n}.thumb.jpg").write_bytes(thumbnail)
