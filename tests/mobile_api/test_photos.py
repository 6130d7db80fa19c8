"""Tests of the photo pipeline, on real images generated with Pillow."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import warnings
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile, ImageOps

from gridcity.errors import GridCityError, InvalidInput, PayloadTooLarge, UnsupportedMedia
from gridcity.photos import (
    GeoPoint,
    PhotoInfo,
    PhotoLimits,
    _parse_gps,
    inspect_photo,
    process_photo,
    render_photo,
)
from mobile_api.photo_claims import CHINA_STANDARD_TIME, compare_claim
from tests.mobile_api.conftest import make_exif

CST = timezone(timedelta(hours=8))


def photo_like(width: int, height: int) -> Image.Image:
    """An RGB image with gradients and noise, so it compresses like a photo."""
    grad = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40)
    return Image.merge("RGB", (grad, grad.transpose(Image.Transpose.ROTATE_180), noise))


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of any declared size; huge sizes compress to a few KB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# Tiananmen-ish, in WGS-84.
PHOTO_LONLAT = (116.397128, 39.916527)


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    """4000×3000, q92, Orientation=6, full capture metadata: the shape of a 12 MP phone photo."""
    exif = make_exif(
        orientation=6,
        taken="2026:03:14 09:26:53",
        offset="+08:00",
        lonlat=PHOTO_LONLAT,
        make="HUAWEI",
        model="ALN-AL00",
    )
    return encode(photo_like(4000, 3000), "JPEG", quality=92, exif=exif)


@pytest.fixture(scope="module")
def big_info(big_jpeg: bytes) -> PhotoInfo:
    return inspect_photo(big_jpeg)


def error_of(fn: Callable[[], object]) -> GridCityError:
    with pytest.raises(GridCityError) as err:
        fn()
    return err.value


# ------------------------------------------------------------------------------------------------
# inspect_photo


def test_inspect_reads_capture_metadata(big_jpeg: bytes, big_info: PhotoInfo) -> None:
    info = big_info
    assert (info.format, info.width, info.height, info.orientation) == ("JPEG", 4000, 3000, 6)
    assert info.oriented_size == (3000, 4000)
    assert info.content_type == "image/jpeg"
    assert info.sha256 == hashlib.sha256(big_jpeg).hexdigest()
    assert info.size_bytes == len(big_jpeg)
    assert info.taken_at == datetime(2026, 3, 14, 9, 26, 53, tzinfo=CST)
    assert info.taken_at.utcoffset() == timedelta(hours=8)
    assert info.gps is not None
    assert info.gps.lon == pytest.approx(PHOTO_LONLAT[0], abs=1e-6)
    assert info.gps.lat == pytest.approx(PHOTO_LONLAT[1], abs=1e-6)
    assert (info.camera_make, info.camera_model) == ("HUAWEI", "ALN-AL00")


def test_inspect_southern_western_gps_and_naive_time() -> None:
    exif = make_exif(taken="2025:12:31 23:59:59", lonlat=(-43.1729, -22.9068))
    info = inspect_photo(encode(photo_like(64, 48), "JPEG", exif=exif))
    assert info.gps == pytest.approx(GeoPoint(-43.1729, -22.9068), abs=1e-6)
    assert info.taken_at == datetime(2025, 12, 31, 23, 59, 59)
    assert info.taken_at.tzinfo is None


def test_inspect_without_exif() -> None:
    info = inspect_photo(encode(photo_like(64, 48), "JPEG"))
    assert (info.orientation, info.taken_at, info.gps, info.camera_make, info.camera_model) == (
        1,
        None,
        None,
        None,
        None,
    )


def test_inspect_ignores_placeholder_exif_values() -> None:
    exif = make_exif(taken="0000:00:00 00:00:00", offset="+99:99", lonlat=(0.0, 0.0), orientation=1)
    exif[0x0112] = 42  # invalid orientation
    info = inspect_photo(encode(photo_like(64, 48), "JPEG", exif=exif))
    assert (info.taken_at, info.gps, info.orientation) == (None, None, 1)


def test_gps_rational_tuples_and_void_status() -> None:
    gps = {1: "N", 2: ((39, 1), (54, 1), (5940, 100)), 3: b"E\x00", 4: ((116, 1), (23, 1), (4980, 100))}
    point = _parse_gps(gps)
    assert point == pytest.approx(GeoPoint(116 + 23 / 60 + 49.8 / 3600, 39 + 54 / 60 + 59.4 / 3600))
    assert _parse_gps({**gps, 9: "V"}) is None  # receiver says the fix is void
    assert _parse_gps({**gps, 2: ((39, 0), (54, 1), (0, 1))}) is None  # zero denominator
    assert _parse_gps({**gps, 1: "X"}) is None  # bad reference
    assert _parse_gps({**gps, 3: None}) is None  # missing reference


def test_png_named_jpg_is_accepted_as_png(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.jpg"
    path.write_bytes(encode(photo_like(80, 60), "PNG"))
    info = inspect_photo(path)
    assert (info.format, info.content_type, info.width, info.height) == ("PNG", "image/png", 80, 60)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"just some text pretending to be a photo\n" * 10, id="text"),
        pytest.param(encode(Image.new("P", (20, 20)), "GIF"), id="gif"),
        pytest.param(encode(Image.new("RGB", (20, 20)), "BMP"), id="bmp"),
        pytest.param(encode(Image.new("RGB", (20, 20)), "TIFF"), id="tiff"),
    ],
)
def test_unsupported_content_is_refused(payload: bytes, tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(payload)
    err = error_of(lambda: inspect_photo(path))
    assert isinstance(err, UnsupportedMedia)
    assert err.code == "photo.unsupported_type"
    assert err.status_code == 415


def test_format_outside_configured_list_is_refused() -> None:
    webp = encode(photo_like(40, 30), "WEBP")
    assert inspect_photo(webp).format == "WEBP"
    err = error_of(lambda: inspect_photo(webp, PhotoLimits(allowed_formats=frozenset({"JPEG"}))))
    assert err.code == "photo.unsupported_type"
    assert "WEBP" in err.message


def test_empty_upload() -> None:
    err = error_of(lambda: inspect_photo(b"", loc=["body", "photo"]))
    assert (type(err), err.code, err.loc) == (InvalidInput, "photo.empty", ["body", "photo"])


def test_too_many_bytes(tmp_path: Path) -> None:
    data = encode(photo_like(200, 150), "JPEG")
    limits = PhotoLimits(max_bytes=len(data) - 1)
    err = error_of(lambda: inspect_photo(data, limits))
    assert isinstance(err, PayloadTooLarge)
    assert err.code == "photo.too_large"
    assert err.status_code == 413
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    assert error_of(lambda: process_photo(path, limits)).code == "photo.too_large"
    assert inspect_photo(data, PhotoLimits(max_bytes=len(data))).size_bytes == len(data)


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.95, -2], ids=["header", "half", "most", "no-eoi"])
def test_truncated_jpeg_is_corrupt(big_jpeg: bytes, keep: float) -> None:
    cut = big_jpeg[: int(len(big_jpeg) * keep)] if keep > 0 else big_jpeg[:keep]
    err = error_of(lambda: inspect_photo(cut))
    assert (type(err), err.code) == (InvalidInput, "photo.corrupt")


def test_render_fails_cleanly_on_truncated_jpeg() -> None:
    data = encode(photo_like(640, 480), "JPEG")
    info = inspect_photo(data)
    cut = data[: len(data) // 2]
    # Skip inspect on purpose: rendering damaged bytes must still raise the domain error.
    err = error_of(lambda: render_photo(cut, dataclasses.replace(info, size_bytes=len(cut))))
    assert err.code == "photo.corrupt"


def test_render_refuses_info_of_other_bytes() -> None:
    data = encode(photo_like(64, 48), "JPEG")
    other = inspect_photo(encode(photo_like(48, 64), "JPEG"))
    with pytest.raises(ValueError):
        render_photo(data, dataclasses.replace(other, size_bytes=len(data)))


def test_damaged_headers_are_corrupt_not_unsupported() -> None:
    png = encode(photo_like(40, 30), "PNG")
    assert error_of(lambda: inspect_photo(png[:-30])).code == "photo.corrupt"  # cut inside IDAT
    flipped = bytearray(png)
    flipped[-20] ^= 0xFF  # breaks a CRC
    assert error_of(lambda: inspect_photo(bytes(flipped))).code == "photo.corrupt"
    webp = encode(photo_like(40, 30), "WEBP")
    assert error_of(lambda: inspect_photo(webp[:-10])).code == "photo.corrupt"
    assert error_of(lambda: inspect_photo(b"\xff\xd8\xff\xe0" + b"\x00" * 64)).code == "photo.corrupt"


def test_decompression_bomb_refused_by_pillow_limit() -> None:
    bomb = bilevel_png(20000, 20000)  # 400 MP in ~50 KB
    assert len(bomb) < 100_000
    before = Image.MAX_IMAGE_PIXELS
    err = error_of(lambda: inspect_photo(bomb))
    assert (type(err), err.code) == (InvalidInput, "photo.too_many_pixels")
    assert "400.0 MP" in err.message
    assert Image.MAX_IMAGE_PIXELS == before  # the process-wide setting is never touched


@pytest.mark.parametrize("warning_filter", ["error", "ignore"])
def test_decompression_bomb_warning_zone(warning_filter: str) -> None:
    # 100 MP: above Pillow's warning threshold (89 MP), below its error threshold. Whether the
    # warning is an exception or silenced, the photo is refused.
    bomb = bilevel_png(10000, 10000)
    with warnings.catch_warnings():
        warnings.simplefilter(warning_filter, Image.DecompressionBombWarning)
        err = error_of(lambda: inspect_photo(bomb))
    assert err.code == "photo.too_many_pixels"


def test_pixel_budget_is_per_call() -> None:
    assert error_of(lambda: inspect_photo(bilevel_png(8000, 7500))).code == "photo.too_many_pixels"  # 60 MP
    data = encode(photo_like(400, 300), "JPEG")
    err = error_of(lambda: inspect_photo(data, PhotoLimits(max_pixels=100_000)))
    assert err.code == "photo.too_many_pixels"
    assert err.extra == {"pixels": 120_000, "max_pixels": 100_000}
    assert inspect_photo(data).width == 400  # the same image passes under the default limits


# ------------------------------------------------------------------------------------------------
# render_photo


def test_render_orients_shrinks_and_strips(big_jpeg: bytes, big_info: PhotoInfo) -> None:
    out = render_photo(big_jpeg, big_info)
    display, thumb = out.display, out.thumbnail
    # Orientation 6: stored landscape, displayed portrait.
    assert (display.width, display.height) == (1500, 2000)
    assert max(display.width, display.height) <= 2048
    assert (thumb.width, thumb.height) == (240, 320)
    for rendition in (display, thumb):
        assert rendition.content_type == "image/jpeg"
        with Image.open(io.BytesIO(rendition.data)) as im:
            assert im.format == "JPEG"
            assert im.size == (rendition.width, rendition.height)
            assert not im.getexif()
            assert not im.getexif().get_ifd(0x8825)
            for key in ("exif", "icc_profile", "xmp", "comment", "photoshop"):
                assert key not in im.info
            im.load()
        assert b"Exif\x00\x00" not in rendition.data
        assert b"HUAWEI" not in rendition.data


def test_jpeg_is_never_decoded_at_full_resolution(
    big_jpeg: bytes, big_info: PhotoInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[tuple[str | None, tuple[int, int]]] = []
    original_load = ImageFile.ImageFile.load

    def recording_load(self: ImageFile.ImageFile) -> Any:
        result = original_load(self)
        decoded.append((self.format, self.size))
        return result

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    out = render_photo(big_jpeg, big_info)
    # load() is re-entered (a no-op) by later operations; every call saw the reduced size.
    jpeg_loads = {size for fmt, size in decoded if fmt in ("JPEG", "MPO")}
    assert jpeg_loads == {(2000, 1500)}  # DCT-scaled by 1/2 in the decoder
    assert out.decoded_size == (2000, 1500)

    decoded.clear()
    thumbs_only = render_photo(big_jpeg, big_info, long_side=320)
    assert {size for fmt, size in decoded if fmt in ("JPEG", "MPO")} == {(500, 375)}  # 1/8
    assert (thumbs_only.display.width, thumbs_only.display.height) == (240, 320)


def test_draft_slack_trades_exact_size_for_cheap_decode() -> None:
    data = encode(photo_like(1900, 1425), "JPEG")
    info = inspect_photo(data)
    cheap = render_photo(data, info, long_side=1000)
    assert cheap.decoded_size == (950, 713)
    assert (cheap.display.width, cheap.display.height) == (950, 713)
    exact = render_photo(data, info, long_side=1000, draft_slack=0)
    assert exact.decoded_size == (1900, 1425)
    assert (exact.display.width, exact.display.height) == (1000, 750)


def test_small_images_are_not_upscaled() -> None:
    data = encode(photo_like(300, 200), "JPEG")
    out = render_photo(data, inspect_photo(data))
    assert (out.display.width, out.display.height) == (300, 200)
    assert (out.thumbnail.width, out.thumbnail.height) == (300, 200)


def _quadrant_image() -> Image.Image:
    im = Image.new("RGB", (120, 80))
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    boxes = [(0, 0, 60, 40), (60, 0, 120, 40), (0, 40, 60, 80), (60, 40, 120, 80)]
    for colour, box in zip(colours, boxes, strict=True):
        im.paste(colour, box)
    return im


def _corners(im: Image.Image) -> list[tuple[int, ...]]:
    w, h = im.size
    points = [(w // 6, h // 6), (w * 5 // 6, h // 6), (w // 6, h * 5 // 6), (w * 5 // 6, h * 5 // 6)]
    return [tuple(round(c / 64) for c in im.getpixel(p)) for p in points]  # type: ignore[union-attr]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    data = encode(_quadrant_image(), "JPEG", quality=95, exif=make_exif(orientation=orientation))
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    out = render_photo(data, inspect_photo(data))
    with Image.open(io.BytesIO(out.display.data)) as got:
        assert got.size == expected.size
        assert _corners(got) == _corners(expected)


def test_palette_and_alpha_pngs_become_rgb_on_white() -> None:
    palette = Image.new("P", (100, 100), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    palette.paste(0, (0, 0, 50, 100))
    p_data = encode(palette, "PNG", transparency=0)  # left half transparent
    rgba = Image.new("RGBA", (100, 100), (0, 0, 255, 0))
    rgba.paste((0, 0, 255, 255), (50, 0, 100, 100))
    la = Image.new("LA", (100, 100), (0, 0))
    la.paste((0, 255), (50, 0, 100, 100))
    for data in (p_data, encode(rgba, "PNG"), encode(la, "PNG"), encode(rgba, "WEBP", lossless=True)):
        out = render_photo(data, inspect_photo(data))
        with Image.open(io.BytesIO(out.display.data)) as im:
            assert im.mode == "RGB"
            left = im.getpixel((10, 50))
            assert isinstance(left, tuple)
            assert min(left) > 240  # transparent → white
            right = im.getpixel((90, 50))
            assert isinstance(right, tuple)
            assert right != left


def test_grayscale_and_cmyk_jpegs() -> None:
    for im in (Image.new("L", (50, 40), 128), Image.new("CMYK", (50, 40), (0, 255, 255, 0))):
        data = encode(im, "JPEG")
        out = render_photo(data, inspect_photo(data))
        with Image.open(io.BytesIO(out.display.data)) as got:
            assert got.mode == "RGB"


def test_process_photo_from_path(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(encode(photo_like(2600, 1200), "JPEG", exif=make_exif(orientation=8)))
    result = process_photo(path, long_side=1024, thumb_side=200)
    assert result.info.orientation == 8
    assert (result.renditions.display.width, result.renditions.display.height) == (473, 1024)
    assert (result.renditions.thumbnail.width, result.renditions.thumbnail.height) == (92, 200)


def test_render_argument_validation(big_jpeg: bytes, big_info: PhotoInfo) -> None:
    for kwargs in ({"long_side": 0}, {"quality": 100}, {"draft_slack": 1.0}):
        with pytest.raises(ValueError):
            render_photo(big_jpeg, big_info, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# compare_claim


def _info(*, gps: GeoPoint | None, taken_at: datetime | None) -> PhotoInfo:
    return PhotoInfo(
        format="JPEG",
        width=10,
        height=10,
        mode="RGB",
        orientation=1,
        sha256="0" * 64,
        size_bytes=1,
        taken_at=taken_at,
        gps=gps,
    )


CLAIM_AT = datetime(2026, 3, 14, 10, 0, tzinfo=CST)
CLAIM_LON, CLAIM_LAT = PHOTO_LONLAT


def test_claim_consistent_photo_has_no_flags(big_info: PhotoInfo) -> None:
    # ~20 m north-east of the claim, one hour earlier.
    near = _info(gps=GeoPoint(CLAIM_LON + 0.00017, CLAIM_LAT + 0.00012), taken_at=CLAIM_AT - timedelta(hours=1))
    assert compare_claim(near, claimed_lon=CLAIM_LON, claimed_lat=CLAIM_LAT, claimed_at=CLAIM_AT) == []
    # The real inspected photo: taken 09:26:53+08:00 at the claimed spot.
    assert compare_claim(big_info, claimed_lon=CLAIM_LON, claimed_lat=CLAIM_LAT, claimed_at=CLAIM_AT) == []


def test_claim_far_and_old_photo_is_flagged() -> None:
    far_old = _info(gps=GeoPoint(CLAIM_LON, CLAIM_LAT + 0.045), taken_at=CLAIM_AT - timedelta(days=3))
    flags = compare_claim(far_old, claimed_lon=CLAIM_LON, claimed_lat=CLAIM_LAT, claimed_at=CLAIM_AT)
    assert [f.code for f in flags] == ["photo.far_from_claim", "photo.old"]
    far, old = flags
    assert far.value == pytest.approx(5004, abs=5)
    assert "5,004 m" in far.message
    assert old.value == 3 * 86400
    assert "3 d 0 h" in old.message


def test_claim_photo_taken_after_report_and_naive_times() -> None:
    later = _info(gps=None, taken_at=datetime(2026, 3, 14, 11, 30))  # naive → CST by default
    flags = compare_claim(later, claimed_lon=CLAIM_LON, claimed_lat=CLAIM_LAT, claimed_at=CLAIM_AT)
    assert [f.code for f in flags] == ["photo.no_exif_gps", "photo.taken_after_claim"]
    assert flags[1].value == 90 * 60
    assert "1 h 30 min" in flags[1].message
    # Interpreted as UTC instead, 11:30Z is 19:30 CST: still after; 01:30Z is 09:30 CST: fine.
    early_utc = _info(gps=None, taken_at=datetime(2026, 3, 14, 1, 30))
    flags = compare_claim(
        early_utc,
        claimed_lon=CLAIM_LON,
        claimed_lat=CLAIM_LAT,
        claimed_at=CLAIM_AT,
        naive_tz=UTC,
    )
    assert [f.code for f in flags] == ["photo.no_exif_gps"]
    # Small clock skew is tolerated.
    skewed = _info(gps=None, taken_at=CLAIM_AT + timedelta(minutes=2))
    codes = [f.code for f in compare_claim(skewed, claimed_lon=0, claimed_lat=0, claimed_at=CLAIM_AT)]
    assert codes == ["photo.no_exif_gps"]


def test_claim_without_exif_and_bad_coordinates() -> None:
    bare = _info(gps=None, taken_at=None)
    flags = compare_claim(bare, claimed_lon=CLAIM_LON, claimed_lat=CLAIM_LAT, claimed_at=CLAIM_AT)
    assert [f.code for f in flags] == ["photo.no_exif_gps", "photo.no_exif_time"]
    assert all(f.value is None for f in flags)
    with pytest.raises(InvalidInput) as err:
        compare_claim(bare, claimed_lon=float("nan"), claimed_lat=30, claimed_at=CLAIM_AT)
    assert err.value.code == "geo.invalid_coordinates"


def test_china_standard_time_constant() -> None:
    assert CHINA_STANDARD_TIME.utcoffset(None) == timedelta(hours=8)
