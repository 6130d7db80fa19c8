"""Ingest mechanics: photo work outside the write transaction, off-loop multipart, lazy display, HEIC, storage."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from casework import attachments as casework_attachments
from gridcity import photos, storage
from gridcity.storage import MediaStore
from mobile_api import forms
from tests.mobile_api.conftest import CELL, LAT, LON, a_report, count, make_exif, media_files, photo, post_report

HERE = (LON + CELL / 2, LAT + CELL / 2)
EXIF_NOW = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")


def _jpeg(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG"
    return im


def _no_metadata(im: Image.Image) -> None:
    assert not im.getexif() and not {"exif", "icc_profile", "xmp", "comment"} & set(im.info)


# ---- the display rendition is made on demand -------------------------------------------------------------


def test_ingest_stores_original_and_thumbnail_and_the_display_is_made_on_first_request(client, orgdata, settings):
    pic = photo(90, size=(3000, 2250), taken=EXIF_NOW, lonlat=HERE)
    r = post_report(client, orgdata.headers("inspector"), "k-lazy", a_report(), photos=[pic])
    assert r.status_code == 201, r.text
    att = r.json()["photos"][0]
    names = sorted(p.name for p in media_files(settings.media_dir))
    assert names == [f"{att['sha256']}.orig", f"{att['sha256']}.thumb.jpg"]

    thumb = client.get(f"/api/v1/attachments/{att['id']}/thumb", headers=orgdata.headers("leader"))
    assert thumb.status_code == 200
    im = _jpeg(thumb.content)
    assert max(im.size) == 320
    _no_metadata(im)

    first = client.get(f"/api/v1/attachments/{att['id']}/display", headers=orgdata.headers("leader"))
    assert first.status_code == 200
    im = _jpeg(first.content)
    assert im.size == (2048, 1536)  # longest side 2048 (a 1/2-scale decode would give 1500: too small)
    _no_metadata(im)  # no EXIF, so no GPS or capture time
    assert len(media_files(settings.media_dir)) == 3  # kept in the store
    again = client.get(f"/api/v1/attachments/{att['id']}/display", headers=orgdata.headers("leader"))
    assert again.content == first.content


def test_ingest_only_decodes_at_thumbnail_scale():
    data = photo(91, size=(4000, 3000), taken=EXIF_NOW, lonlat=HERE)
    info = photos.inspect_photo(data)
    thumb, decoded = photos.render_thumbnail(data, info)
    assert decoded == (500, 375)  # 1/8-scale DCT decode, never full resolution (G-I1)
    assert (thumb.width, thumb.height) == (320, 240)
    prepared = photos.prepare_photo(data)
    assert prepared.info == info and prepared.thumbnail.data == thumb.data and prepared.data == data


# ---- photo work outside the write transaction ------------------------------------------------------------


def test_photo_work_runs_while_no_transaction_of_the_request_is_open(client, orgdata, db, monkeypatch):
    seen: list[bool] = []
    real = casework_attachments.prepare

    def prepare_and_probe(*args: Any, **kwargs: Any) -> Any:
        # Another writer must be able to take the write lock right now (SQLite: BEGIN IMMEDIATE fails at once
        # if the request still held it); on PostgreSQL no connection may sit idle inside a transaction.
        raw = db.raw_connection()
        try:
            cur = raw.cursor()
            if db.dialect.name == "sqlite":
                cur.execute("PRAGMA busy_timeout=0")
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    cur.execute("ROLLBACK")
                    seen.append(True)
                except Exception:  # noqa: BLE001 - "database is locked"
                    seen.append(False)
                finally:
                    cur.execute("PRAGMA busy_timeout=30000")  # the pooled connection's normal setting
            else:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%'"
                )
                seen.append(cur.fetchone()[0] == 0)
            cur.close()
        finally:
            raw.close()
        return real(*args, **kwargs)

    monkeypatch.setattr(casework_attachments, "prepare", prepare_and_probe)
    r = post_report(client, orgdata.headers("inspector"), "k-free", a_report(), photos=[photo(92), photo(93)])
    assert r.status_code == 201, r.text
    assert seen == [True, True]
    assert count(db, "attachment") == 2


def test_a_retry_of_a_finished_report_is_answered_without_photo_work(client, orgdata, monkeypatch):
    pics = [photo(94)]
    first = post_report(client, orgdata.headers("inspector"), "k-peek", a_report(), photos=pics)
    assert first.status_code == 201

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the photo was processed again")

    monkeypatch.setattr(casework_attachments, "prepare", refuse)
    again = post_report(client, orgdata.headers("inspector"), "k-peek", a_report(), photos=pics)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


# ---- multipart off the loop ------------------------------------------------------------------------------


def test_multipart_bodies_are_parsed_in_a_worker_thread(client, orgdata, monkeypatch):
    on_loop: list[bool] = []
    real = forms.SyncMultipart.feed

    def feed(self: Any, chunks: list[bytes]) -> None:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        real(self, chunks)

    monkeypatch.setattr(forms.SyncMultipart, "feed", feed)
    r = post_report(
        client, orgdata.headers("inspector"), "k-off", a_report(), photos=[photo(95, size=(1600, 1200)), photo(96)]
    )
    assert r.status_code == 201, r.text
    assert on_loop and not any(on_loop)


def test_a_body_larger_than_any_submission_may_be_is_413_before_it_is_read(app, client, orgdata, db):
    old = app.state.settings.max_upload_bytes
    app.state.settings.max_upload_bytes = 1000  # limit: 18 × 1000 bytes + 1 MiB of fields
    try:
        big = photo(97, size=(2000, 1500)) + b"\0" * (1200 * 1024)
        r = post_report(client, orgdata.headers("inspector"), "k-big", a_report(), photos=[big])
    finally:
        app.state.settings.max_upload_bytes = old
    assert r.status_code == 413 and r.json()["detail"][0]["type"] == "request.too_large"
    assert count(db, "case") == 0


def test_a_broken_multipart_body_is_400(client, orgdata, db):
    headers = {
        **orgdata.headers("inspector"),
        "Idempotency-Key": "k-broken",
        "Content-Type": "multipart/form-data; boundary=XyZ",
    }
    r = client.post("/mobile/v1/reports", content=b"--XyZ\r\nnot a header line\r\n\r\n", headers=headers)
    assert r.status_code in (400, 422), r.text
    r = client.post("/mobile/v1/reports", content=b"x", headers={**headers, "Content-Type": "multipart/form-data"})
    assert r.status_code == 400, r.text
    assert count(db, "case") == 0


# ---- HEIC --------------------------------------------------------------------------------------------------


def heic(
    size: tuple[int, int] = (1200, 900), *, taken: str | None = None, lonlat: tuple[float, float] | None = None
) -> bytes:
    """A real HEIC (HEVC-coded) picture written by pillow_heif, with EXIF time and GPS."""
    assert photos.heif_supported()
    im = Image.linear_gradient("L").resize(size)
    im = Image.merge("RGB", (im, im.transpose(Image.Transpose.ROTATE_180), Image.new("L", size, 99)))
    buf = io.BytesIO()
    im.save(buf, "HEIF", quality=80, exif=make_exif(taken=taken, offset="+08:00", lonlat=lonlat, make="Apple"))
    return buf.getvalue()


def test_heic_is_recognised_by_content_with_its_exif_and_rendered_to_clean_jpegs():
    data = heic(taken=EXIF_NOW, lonlat=HERE)
    assert data[4:12] == b"ftypheic"
    info = photos.inspect_photo(data)
    assert info.format == "HEIF" and info.content_type == "image/heic" and (info.width, info.height) == (1200, 900)
    assert info.gps is not None and abs(info.gps.lon - HERE[0]) < 1e-5 and abs(info.gps.lat - HERE[1]) < 1e-5
    assert info.taken_at is not None and info.taken_at.strftime("%Y:%m:%d %H:%M:%S") == EXIF_NOW
    out = photos.render_photo(data, info, long_side=1000)
    for rendition, size in ((out.display, (1000, 750)), (out.thumbnail, (320, 240))):
        im = _jpeg(rendition.data)
        assert im.size == size
        _no_metadata(im)


def test_a_heic_named_jpg_is_accepted_over_http_and_served_as_jpeg(client, orgdata, db):
    r = post_report(
        client, orgdata.headers("inspector"), "k-heic", a_report(), photos=[heic(taken=EXIF_NOW, lonlat=HERE)]
    )
    assert r.status_code == 201, r.text
    assert r.json()["photos"][0].get("flags", []) == []  # EXIF time and place match the claim
    att_id = r.json()["photos"][0]["id"]
    with db.connect() as c:
        media_type, lon = c.execute(sa.text("SELECT media_type, exif_lon FROM attachment")).one()
    assert media_type == "image/heic" and abs(lon - HERE[0]) < 1e-5
    for kind in ("thumb", "display"):
        got = client.get(f"/api/v1/attachments/{att_id}/{kind}", headers=orgdata.headers("leader"))
        assert got.status_code == 200
        _no_metadata(_jpeg(got.content))


def test_a_broken_heic_is_refused_as_corrupt():
    data = heic()
    with pytest.raises(Exception) as exc_info:
        photos.prepare_photo(data[: len(data) // 2])
    assert getattr(exc_info.value, "code", None) == "photo.corrupt"


# ---- the store ---------------------------------------------------------------------------------------------


def test_a_rollback_removes_its_own_files_but_not_one_another_request_touched(db, tmp_path):
    store = MediaStore(tmp_path / "media")
    with Session(db) as a, Session(db) as b:
        a.begin()
        _, own = store.put(b"only mine", ".orig", session=a)
        _, shared = store.put(b"shared", ".orig", session=a)
        b.begin()
        store.put(b"shared", ".orig", session=b)  # exists: b refreshes it and will rely on it
        b.commit()
        assert own.read_bytes() == b"only mine"
        a.rollback()
    assert not own.exists()
    assert shared.read_bytes() == b"shared"
    assert not list((tmp_path / "media").rglob(".tmp-*"))


def test_files_written_before_the_transaction_are_removed_by_its_rollback(db, tmp_path):
    store = MediaStore(tmp_path / "media")
    with Session(db) as s:
        _, path = store.put(b"early", ".orig", session=s)  # no transaction yet
        s.execute(sa.text("SELECT 1"))  # the transaction begins afterwards
        store.touch(path, session=s)  # our own touch keeps it ours
        s.rollback()
    assert not path.exists()


def test_a_released_savepoint_does_not_keep_files_of_a_transaction_that_rolls_back(db, tmp_path):
    store = MediaStore(tmp_path / "media")
    with Session(db) as s:
        s.begin()
        _, path = store.put(b"before the savepoint", ".orig", session=s)
        with s.begin_nested():
            s.execute(sa.text("SELECT 1"))
        s.rollback()
    assert not path.exists()


# ---- the upload's spooled file becomes the stored original (G-I2) ----------------------------------------


def test_an_upload_is_hashed_as_it_arrives_and_its_spooled_file_is_linked_as_the_original(
    client, orgdata, settings, monkeypatch
):
    linked: list[tuple[str, str]] = []
    written: list[str] = []
    real_put_file, real_put = MediaStore.put_file, MediaStore.put

    def put_file(self: MediaStore, src: Any, sha256: str, suffix: str, **kw: Any) -> Any:
        assert src.name.startswith(".tmp-upload-") and src.parent == self.root
        linked.append((sha256, suffix))
        return real_put_file(self, src, sha256, suffix, **kw)

    def put(self: MediaStore, data: bytes, suffix: str, **kw: Any) -> Any:
        sha = kw.get("key")
        if sha is None or not self.path_for(sha, suffix).exists():
            written.append(suffix)
        return real_put(self, data, suffix, **kw)

    monkeypatch.setattr(MediaStore, "put_file", put_file)
    monkeypatch.setattr(MediaStore, "put", put)
    pics = [photo(120, size=(1600, 1200), taken=EXIF_NOW, lonlat=HERE), photo(121, taken=EXIF_NOW, lonlat=HERE)]
    r = post_report(client, orgdata.headers("inspector"), "k-link", a_report(), photos=pics)
    assert r.status_code == 201, r.text
    shas = [p["sha256"] for p in r.json()["photos"]]
    assert shas == [hashlib.sha256(p).hexdigest() for p in pics]
    assert sorted(linked) == sorted((s, ".orig") for s in shas)
    assert written == [".thumb.jpg", ".thumb.jpg"]  # the originals were not written a second time
    store = MediaStore(settings.media_dir)
    for sha, pic in zip(shas, pics, strict=True):
        orig = store.path_for(sha, ".orig")
        assert orig.read_bytes() == pic and orig.stat().st_nlink == 1  # the temp name is gone
    assert not [p for p in media_files(settings.media_dir) if p.name.startswith(".tmp-")]
    # The EXIF check still reads the photo as sent: taken now, here, so no flags.
    assert [p["flags"] for p in r.json()["photos"]] == [[], []]


def test_a_spooled_upload_is_not_hashed_again_by_the_photo_work(client, orgdata, monkeypatch):
    hashed: list[int] = []
    real = hashlib.sha256

    def sha256(data: bytes = b"", **kw: Any) -> Any:
        hashed.append(len(data))
        return real(data, **kw)

    monkeypatch.setattr(photos, "hashlib", SimpleNamespace(sha256=sha256))
    pic = photo(123, size=(1600, 1200), taken=EXIF_NOW, lonlat=HERE)
    r = post_report(client, orgdata.headers("inspector"), "k-hash-once", a_report(), photos=[pic])
    assert r.status_code == 201, r.text
    assert r.json()["photos"][0]["sha256"] == real(pic).hexdigest()  # the parser's hash, stored as the key
    assert len(pic) not in hashed  # prepare_photo took the hash, it did not compute it again
    # Bytes that did not come through the parser are still hashed by the photo work itself.
    assert photos.prepare_photo(pic).info.sha256 == real(pic).hexdigest() and len(pic) in hashed


def test_the_original_and_the_thumbnail_of_an_upload_cost_one_fsync_of_their_folder(
    client, orgdata, settings, monkeypatch
):
    synced: list[Any] = []
    real = storage._fsync_dir

    def fsync_dir(folder: Any) -> None:
        synced.append(folder)
        real(folder)

    monkeypatch.setattr(storage, "_fsync_dir", fsync_dir)
    pic = photo(124, taken=EXIF_NOW, lonlat=HERE)
    r = post_report(client, orgdata.headers("inspector"), "k-one-fsync", a_report(), photos=[pic])
    assert r.status_code == 201, r.text
    store = MediaStore(settings.media_dir)
    sha = r.json()["photos"][0]["sha256"]
    orig, thumb = store.path_for(sha, ".orig"), store.path_for(sha, ".thumb.jpg")
    assert orig.read_bytes() == pic and thumb.stat().st_size > 0
    assert orig.parent == thumb.parent
    assert synced.count(orig.parent) == 1, synced  # after both names were made, not once per file


def test_a_refused_upload_leaves_no_spooled_file(client, orgdata, settings, db):
    r = post_report(
        client, orgdata.headers("inspector"), "k-notimg", a_report(), photos=[photo(122), b"this is not an image" * 100]
    )
    assert r.status_code == 415, r.text
    assert media_files(settings.media_dir) == []
    assert count(db, "case") == 0


def test_put_file_links_durably_never_replaces_and_a_rollback_removes_only_the_link(db, tmp_path):
    store = MediaStore(tmp_path / "media")
    src = store.spool_dir() / ".tmp-upload-a"
    src.write_bytes(b"spooled bytes")
    sha = hashlib.sha256(b"spooled bytes").hexdigest()
    with Session(db) as s:
        s.begin()
        path = store.put_file(src, sha, ".orig", session=s)
        assert path == store.path_for(sha, ".orig") and path.read_bytes() == b"spooled bytes"
        assert os.path.samefile(src, path)
        s.rollback()
    assert not path.exists() and src.exists()  # the caller's temp name is the caller's to remove

    _, kept = store.put(b"spooled bytes", ".orig", key=sha)  # stored meanwhile by someone else
    other = store.spool_dir() / ".tmp-upload-b"
    other.write_bytes(b"spooled bytes")
    assert store.put_file(other, sha, ".orig") == kept
    assert not os.path.samefile(other, kept)  # an existing file is only touched, never replaced


# ---- the original's fsync runs while the photo is decoded ---------------------------------------------------


def test_the_spooled_original_is_synced_while_the_photo_is_decoded(client, orgdata, monkeypatch):
    """The fsync of the upload starts before ``prepare_photo`` and is waited for before the link."""
    events: list[str] = []
    real_sync, real_prepare = storage.sync_in_background, casework_attachments.prepare

    def sync(path: Any) -> Any:
        events.append("sync started")
        wait = real_sync(path)

        def waited() -> None:
            wait()
            events.append("sync waited")

        return waited

    def prepare(*args: Any, **kw: Any) -> Any:
        events.append("decode")
        return real_prepare(*args, **kw)

    monkeypatch.setattr("mobile_api.service.sync_in_background", sync)
    monkeypatch.setattr(casework_attachments, "prepare", prepare)
    r = post_report(client, orgdata.headers("inspector"), "k-sync", a_report(), photos=[photo(125)])
    assert r.status_code == 201, r.text
    assert events[:3] == ["sync started", "decode", "sync waited"], events


def test_a_refused_photo_leaves_no_fsync_thread_behind(client, orgdata, settings, db):
    r = post_report(
        client, orgdata.headers("inspector"), "k-notimg-2", a_report(), photos=[photo(126), b"not an image" * 100]
    )
    assert r.status_code == 415, r.text
    assert not [t for t in threading.enumerate() if t.name == "gridcity-fsync"]
    assert media_files(settings.media_dir) == [] and count(db, "case") == 0


def test_a_failed_background_fsync_is_raised_by_put_file_and_nothing_is_linked(db, tmp_path):
    store = MediaStore(tmp_path / "media")
    src = store.spool_dir() / ".tmp-upload-c"
    src.write_bytes(b"spooled bytes")
    sha = hashlib.sha256(b"spooled bytes").hexdigest()
    failing = storage.sync_in_background(Path("/dev/null"))  # fsync of a character device: EINVAL
    with pytest.raises(OSError):
        store.put_file(src, sha, ".orig", synced=failing)
    assert not store.path_for(sha, ".orig").exists()
    failing()  # waited once already: a second call does nothing
    ok = storage.sync_in_background(src)
    assert store.put_file(src, sha, ".orig", synced=ok).read_bytes() == b"spooled bytes"
