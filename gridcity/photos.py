"""Photo pipeline: validate an upload, read trusted capture metadata, render clean public JPEGs.

The module is pure: it takes the uploaded bytes (or a path) and returns bytes plus metadata. It knows
nothing about the database or the file store. The two steps are:

1. :func:`inspect_photo` identifies the real format from the content (the file name and declared
   content type are ignored), enforces the size and pixel budgets *before anything is decoded*,
   checks the file is complete, and reads the capture metadata (EXIF time, GPS, camera, orientation)
   so it can be stored in columns before the metadata is stripped.
2. :func:`render_photo` produces the public renditions: a display JPEG and a thumbnail JPEG,
   auto-oriented and with **all** metadata removed (EXIF, GPS, XMP, comments, ICC). JPEGs are
   decoded with DCT-domain scaling (:meth:`PIL.Image.Image.draft`), so a 12 MP photo is never decoded
   at full resolution just to be shrunk, and the thumbnail is made from the already-reduced display
   image (performance goal G-I1; the full-resolution path is ~3× slower).
The comparison of the capture time and position with what the reporter claims (the claim-vs-EXIF policy)
is not a photo matter but a report's: it lives in :mod:`mobile_api.photo_claims`.

:func:`process_photo` runs steps 1 and 2 on one read of the input. :func:`prepare_photo` is what ingest
runs: step 1 and the thumbnail only (a 1/8-scale DCT decode for a 12 MP JPEG); the display rendition is
rendered later from the stored original with :func:`render_display`.

Decompression bombs: Pillow's process-wide ``Image.MAX_IMAGE_PIXELS`` is left alone (other code in
the process relies on it). Instead every call compares the size read from the header with
:attr:`PhotoLimits.max_pixels` before any pixel is decoded, and Pillow's own
``DecompressionBombWarning`` (when warnings are errors) and ``DecompressionBombError`` are treated as
the same refusal. A ``max_pixels`` above twice Pillow's global limit therefore has no effect.

HEIF/HEIC is accepted through the ``pillow_heif`` package (a dependency; the format is dropped from the
defaults if it cannot be imported). The format is recognised from the content (``ftyp`` box), never from a
name. libheif applies the HEIF rotation itself when decoding, so HEIF photos come out upright.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from PIL import Image, ImageFile, UnidentifiedImageError

from gridcity.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia

__all__ = [
    "DEFAULT_LIMITS",
    "GeoPoint",
    "PhotoInfo",
    "PhotoLimits",
    "PreparedPhoto",
    "ProcessedPhoto",
    "Rendition",
    "Renditions",
    "heif_supported",
    "inspect_photo",
    "prepare_photo",
    "process_photo",
    "read_photo_source",
    "render_display",
    "render_photo",
    "render_thumbnail",
]


PhotoSource = bytes | bytearray | memoryview | str | os.PathLike[str]
"""Raw image bytes, or a path to a file holding them."""

Loc = Sequence[str | int] | None

_CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heic",
}

# EXIF tag numbers.
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_ORIENTATION = 0x0112
_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_SUBSEC_TIME_ORIGINAL = 0x9291
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_STATUS = 1, 2, 3, 4, 9

# Errors Pillow and its plugins raise on damaged input.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
)
_EXIF_ERRORS: tuple[type[BaseException], ...] = (*_DECODE_ERRORS, KeyError, ZeroDivisionError, OverflowError)
_BOMB_ERRORS: tuple[type[BaseException], ...] = (Image.DecompressionBombError, Image.DecompressionBombWarning)

# EXIF Orientation → the transpose that undoes it.
_ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_MAX_TEXT = 128


@functools.cache
def heif_supported() -> bool:
    """Tell whether HEIF/HEIC can be decoded, registering the ``pillow_heif`` opener if present.

    Returns:
        True if the optional ``pillow_heif`` package is importable.
    """
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _default_formats() -> frozenset[str]:
    formats = {"JPEG", "PNG", "WEBP"}
    if heif_supported():
        formats.add("HEIF")
    return frozenset(formats)


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """Budgets an uploaded photo must fit.

    Attributes:
        max_bytes: Largest accepted upload in bytes (default 15 MiB).
        max_pixels: Largest accepted width × height, checked from the header before decoding
            (default 50 MP; a 12 MP phone photo is 12 M).
        allowed_formats: Pillow format names accepted: ``JPEG``, ``PNG``, ``WEBP`` and, when
            ``pillow_heif`` is installed, ``HEIF``.
    """

    max_bytes: int = 15 * 1024 * 1024
    max_pixels: int = 50_000_000
    allowed_formats: frozenset[str] = field(default_factory=_default_formats)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError("max_bytes and max_pixels must be positive")
        formats = frozenset(f.upper() for f in self.allowed_formats)
        unknown = formats - _CONTENT_TYPES.keys()
        if unknown:
            raise ValueError(f"unsupported formats in allowed_formats: {sorted(unknown)}")
        object.__setattr__(self, "allowed_formats", formats)


DEFAULT_LIMITS = PhotoLimits()


class GeoPoint(NamedTuple):
    """A WGS-84 position, longitude first."""

    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class PhotoInfo:
    """What :func:`inspect_photo` learned about an upload.

    Attributes:
        format: Real format found from the content: ``JPEG``, ``PNG``, ``WEBP`` or ``HEIF``.
        width: Width in pixels as stored (before applying ``orientation``).
        height: Height in pixels as stored.
        mode: Pillow mode of the stored image (``RGB``, ``L``, ``P``, ``RGBA``, ``CMYK`` …).
        orientation: EXIF Orientation, 1–8 (1 when absent or invalid).
        sha256: Hex SHA-256 of the original bytes (for dedupe and integrity).
        size_bytes: Length of the original bytes.
        taken_at: EXIF DateTimeOriginal (with SubSecTimeOriginal); timezone-aware when
            OffsetTimeOriginal is present, naive otherwise; None when absent or unparsable.
        gps: EXIF GPS position in WGS-84, None when absent, void or invalid.
        camera_make: EXIF Make, stripped, None when absent.
        camera_model: EXIF Model, stripped, None when absent.
    """

    format: str
    width: int
    height: int
    mode: str
    orientation: int
    sha256: str
    size_bytes: int
    taken_at: datetime | None = None
    gps: GeoPoint | None = None
    camera_make: str | None = None
    camera_model: str | None = None

    @property
    def content_type(self) -> str:
        """MIME type of the original, as found from its content."""
        return _CONTENT_TYPES[self.format]

    @property
    def oriented_size(self) -> tuple[int, int]:
        """``(width, height)`` as displayed, after applying the EXIF orientation."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class Rendition:
    """One public, metadata-free JPEG.

    Attributes:
        data: The encoded JPEG.
        width: Width in pixels.
        height: Height in pixels.
        content_type: Always ``image/jpeg``.
    """

    data: bytes
    width: int
    height: int
    content_type: str = "image/jpeg"

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of :attr:`data`."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class Renditions:
    """The public renditions of one photo.

    Attributes:
        display: Auto-oriented JPEG, longest side at most ``long_side``.
        thumbnail: Auto-oriented JPEG, longest side at most ``thumb_side``.
        decoded_size: Size the decoder actually produced (smaller than the stored size when JPEG
            DCT scaling was used); kept for observability of goal G-I1.
    """

    display: Rendition
    thumbnail: Rendition
    decoded_size: tuple[int, int]


@dataclass(frozen=True, slots=True)
class ProcessedPhoto:
    """Result of :func:`process_photo`."""

    info: PhotoInfo
    renditions: Renditions


@dataclass(frozen=True, slots=True)
class PreparedPhoto:
    """Result of :func:`prepare_photo`: the validated original, its metadata and its thumbnail."""

    info: PhotoInfo
    data: bytes
    thumbnail: Rendition


# --------------------------------------------------------------------------------------------------
# Reading and identifying


def read_photo_source(source: PhotoSource, limits: PhotoLimits = DEFAULT_LIMITS, *, loc: Loc = None) -> bytes:
    """Return the bytes of ``source``, refusing more than ``limits.max_bytes`` without reading them.

    Args:
        source: Image bytes, or a path to a file.
        limits: Budgets to enforce.
        loc: Location of the photo in the request, for errors.

    Returns:
        The bytes.

    Raises:
        PayloadTooLarge: ``photo.too_large``.
        InvalidInput: ``photo.empty`` when there are no bytes.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        with open(source, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limits.max_bytes:
                raise _too_large(size, limits, loc)
            data = fh.read(limits.max_bytes + 1)
    if not data:
        raise InvalidInput("the photo is empty", code="photo.empty", loc=loc)
    if len(data) > limits.max_bytes:
        raise _too_large(len(data), limits, loc)
    return data


def _human_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"


def _too_large(size: int, limits: PhotoLimits, loc: Loc) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the photo is {_human_bytes(size)}; the limit is {_human_bytes(limits.max_bytes)}",
        code="photo.too_large",
        loc=loc,
        extra={"size_bytes": size, "max_bytes": limits.max_bytes},
    )


def _sniff(data: bytes) -> str | None:
    """Name the format suggested by the magic bytes (only used to word errors)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
        return "HEIF"
    return None


def _unsupported(data: bytes, limits: PhotoLimits, loc: Loc) -> UnsupportedMedia:
    sniffed = _sniff(data)
    what = f"{sniffed} images are not accepted" if sniffed else "the upload is not a recognised image"
    return UnsupportedMedia(
        f"{what}; send one of: {', '.join(sorted(limits.allowed_formats))}",
        code="photo.unsupported_type",
        loc=loc,
        extra={"allowed": sorted(limits.allowed_formats)},
    )


def _corrupt(reason: str, loc: Loc) -> InvalidInput:
    return InvalidInput(f"the photo is damaged or truncated ({reason})", code="photo.corrupt", loc=loc)


def _too_many_pixels(pixels: int | None, limits: PhotoLimits, loc: Loc) -> InvalidInput:
    size = f"{pixels / 1e6:.1f} MP" if pixels is not None else "too many pixels"
    return InvalidInput(
        f"the photo has {size}; the limit is {limits.max_pixels / 1e6:.1f} MP",
        code="photo.too_many_pixels",
        loc=loc,
        extra={"pixels": pixels, "max_pixels": limits.max_pixels},
    )


def _open(data: bytes, formats: Sequence[str], limits: PhotoLimits, loc: Loc) -> ImageFile.ImageFile:
    """Open lazily (header only), mapping every failure to a domain error."""
    try:
        return Image.open(io.BytesIO(data), formats=list(formats))
    except _BOMB_ERRORS as exc:
        # Pillow's message is "Image size (N pixels) exceeds limit …".
        match = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_many_pixels(int(match.group(1)) if match else None, limits, loc) from None
    except UnidentifiedImageError:
        if _sniff(data) in formats:
            # The magic says it is an accepted format but no plugin could parse the header.
            raise _corrupt("unreadable header", loc) from None
        raise _unsupported(data, limits, loc) from None
    except _DECODE_ERRORS as exc:
        raise _corrupt(type(exc).__name__, loc) from None


def _normalise_format(pillow_format: str | None) -> str:
    # Multi-picture JPEGs (common from phones) open as MPO; the first picture is a plain JPEG.
    return "JPEG" if pillow_format == "MPO" else (pillow_format or "")


def _jpeg_is_complete(data: bytes) -> bool:
    """Walk the JPEG marker segments to the first scan and check an EOI marker follows it.

    Pillow's ``verify()`` is a no-op for JPEG, so this is the cheap (no decode, ~µs) truncation
    check. Inside entropy-coded data a 0xFF byte is always stuffed or a restart marker, so ``FF D9``
    after the start of scan can only be a real EOI (or, for a file with appended data, come after
    it). A file cut anywhere before its EOI is caught; damage inside the scan data is caught by
    the decoder in :func:`render_photo`.
    """
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # stand-alone markers
            pos += 2
            continue
        if marker == 0xD9:  # EOI before any scan: no image data
            return False
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return False
        if marker == 0xDA:  # start of scan
            # Searched from the end: the EOI is normally the last two bytes, so this is O(1) for a
            # complete file (a forward scan of 4 MB of entropy data costs ~4 ms).
            return data.rfind(b"\xff\xd9", pos + 2 + length) != -1
        pos += 2 + length
    return False


def _check_complete(data: bytes, fmt: str, pillow_format: str, loc: Loc) -> None:
    """Raise ``photo.corrupt`` if the file is truncated or fails its format's integrity checks."""
    if fmt == "JPEG" and not _jpeg_is_complete(data):
        raise _corrupt("JPEG data ends before the end-of-image marker", loc)
    if fmt == "WEBP" and int.from_bytes(data[4:8], "little") + 8 > len(data):
        raise _corrupt("WebP data is shorter than its RIFF header says", loc)
    # verify() needs a fresh image object; for PNG it checks every chunk's CRC up to IEND.
    try:
        with Image.open(io.BytesIO(data), formats=[pillow_format]) as probe:
            probe.verify()
    except _BOMB_ERRORS:  # pragma: no cover - already refused by the first open
        raise _corrupt("changed between reads", loc) from None
    except _DECODE_ERRORS + (UnidentifiedImageError,) as exc:
        raise _corrupt(f"{type(exc).__name__}: {exc}", loc) from None


# --------------------------------------------------------------------------------------------------
# EXIF


def _text(value: Any) -> str | None:
    """Decode an EXIF ASCII value, dropping NUL padding, control characters and blanks."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable()).strip()
    return cleaned[:_MAX_TEXT] or None


def _parse_taken_at(exif_ifd: dict[int, Any]) -> datetime | None:
    raw = _text(exif_ifd.get(_TAG_DATETIME_ORIGINAL))
    if raw is None:
        return None
    for pattern in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            taken = datetime.strptime(raw[:19], pattern)
            break
        except ValueError:
            continue
    else:
        return None
    subsec = _text(exif_ifd.get(_TAG_SUBSEC_TIME_ORIGINAL))
    if subsec and subsec.isdigit():
        taken = taken.replace(microsecond=int(subsec[:6].ljust(6, "0")))
    offset = _text(exif_ifd.get(_TAG_OFFSET_TIME_ORIGINAL))
    match = _OFFSET_RE.match(offset) if offset else None
    if match:
        sign = -1 if match.group(1) == "-" else 1
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        if delta <= timedelta(hours=14) and int(match.group(3)) < 60:
            taken = taken.replace(tzinfo=timezone(sign * delta))
    return taken


def _rational(value: Any) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
        return float(num) / float(den) if float(den) else math.nan
    return float(value)


def _gps_coordinate(value: Any, ref: Any, positive: str, negative: str, bound: float) -> float | None:
    ref_text = _text(ref)
    if ref_text is None or ref_text.upper() not in (positive, negative):
        return None
    parts = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    dms = [_rational(p) for p in parts]
    if not all(math.isfinite(x) and x >= 0 for x in dms) or any(x >= 60.0 for x in dms[1:]):
        return None
    degrees = sum(x / 60.0**i for i, x in enumerate(dms))
    if degrees > bound:
        return None
    return -degrees if ref_text.upper() == negative else degrees


def _parse_gps(gps_ifd: dict[int, Any]) -> GeoPoint | None:
    if not gps_ifd or _text(gps_ifd.get(_GPS_STATUS)) == "V":  # V = measurement void
        return None
    lat = _gps_coordinate(gps_ifd.get(_GPS_LAT), gps_ifd.get(_GPS_LAT_REF), "N", "S", 90.0)
    lon = _gps_coordinate(gps_ifd.get(_GPS_LON), gps_ifd.get(_GPS_LON_REF), "E", "W", 180.0)
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):  # 0,0 = "no fix" placeholder
        return None
    return GeoPoint(lon, lat)


def _read_metadata(im: Image.Image) -> dict[str, Any]:
    """Read orientation, capture time, GPS and camera; broken EXIF reads as absent, never fails."""
    meta: dict[str, Any] = {"orientation": 1}
    if im.format == "PNG" and "exif" not in im.info:
        return meta  # PngImageFile.getexif() would decode the whole image to look for a late eXIf
    try:
        exif = im.getexif()
    except _EXIF_ERRORS:
        return meta
    try:
        orientation = int(exif.get(_TAG_ORIENTATION, 1))
        meta["orientation"] = orientation if orientation in range(1, 9) else 1
    except _EXIF_ERRORS:
        pass
    meta["camera_make"] = _text(exif.get(_TAG_MAKE))
    meta["camera_model"] = _text(exif.get(_TAG_MODEL))
    try:
        meta["taken_at"] = _parse_taken_at(exif.get_ifd(_IFD_EXIF))
    except _EXIF_ERRORS:
        pass
    try:
        meta["gps"] = _parse_gps(exif.get_ifd(_IFD_GPS))
    except _EXIF_ERRORS:
        pass
    return meta


# --------------------------------------------------------------------------------------------------
# Public API


def inspect_photo(
    source: PhotoSource, limits: PhotoLimits = DEFAULT_LIMITS, *, loc: Loc = None, sha256: str | None = None
) -> PhotoInfo:
    """Validate an upload and read its capture metadata, without decoding any pixels.

    The format is found from the content; any file name or declared content type is irrelevant.
    Cost is dominated by hashing and the integrity checks (well under a millisecond per MB).

    Args:
        source: Image bytes, or a path to a file.
        limits: Budgets to enforce.
        loc: Location of the photo in the request, copied into errors (e.g. ``["body", "photo"]``).
        sha256: The hex SHA-256 of exactly these bytes when the caller has it already (an upload hashed as
            it arrived); taken as is, not recomputed (~3 ms per 4 MB).

    Returns:
        The photo's format, stored size, orientation, hash and EXIF capture metadata.

    Raises:
        InvalidInput: ``photo.empty`` (no bytes), ``photo.too_many_pixels`` (width × height over
            ``limits.max_pixels``, or a Pillow decompression-bomb refusal), ``photo.corrupt``
            (truncated or damaged file).
        PayloadTooLarge: ``photo.too_large`` (more than ``limits.max_bytes``).
        UnsupportedMedia: ``photo.unsupported_type`` (not an image, or a format not allowed).
    """
    data = read_photo_source(source, limits, loc=loc)
    pillow_formats = sorted(limits.allowed_formats)
    with _open(data, pillow_formats, limits, loc) as im:
        fmt = _normalise_format(im.format)
        if fmt not in limits.allowed_formats:  # pragma: no cover - Image.open was restricted
            raise _unsupported(data, limits, loc)
        width, height = im.size
        if width <= 0 or height <= 0:
            raise _corrupt("zero-sized image", loc)
        if width * height > limits.max_pixels:
            raise _too_many_pixels(width * height, limits, loc)
        _check_complete(data, fmt, im.format or fmt, loc)
        meta = _read_metadata(im)
        mode = im.mode
    return PhotoInfo(
        format=fmt,
        width=width,
        height=height,
        mode=mode,
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        **meta,
    )


def _dct_scale(size: tuple[int, int], long_side: int, slack: float) -> int:
    """Largest JPEG DCT scale (8, 4, 2) whose output long side is still ≥ (1 - slack) × long_side."""
    longest = max(size)
    for scale in (8, 4, 2):
        if min(size) >= scale and math.ceil(longest / scale) >= long_side * (1.0 - slack):
            return scale
    return 1


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """Size scaled down (never up) so the longest side is at most ``side``."""
    width, height = size
    longest = max(width, height)
    if longest <= side:
        return size
    ratio = side / longest
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _flatten_to_rgb(im: Image.Image) -> Image.Image:
    """Convert any mode to RGB; transparent areas become white."""
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if im.mode in ("P", "L", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA")
    elif im.mode in ("P", "PA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        return background
    return im if im.mode == "RGB" else im.convert("RGB")


def _encode_jpeg(im: Image.Image, quality: int) -> Rendition:
    # Start from empty metadata: Pillow's JPEG writer copies a COM comment from ``im.info``, and no
    # exif/icc_profile/xmp is passed, so the output carries no metadata at all.
    im.info = {}
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, optimize=True)
    return Rendition(data=buf.getvalue(), width=im.width, height=im.height)


def _check_render_args(long_side: int, quality: int, draft_slack: float) -> None:
    if long_side < 1 or not 1 <= quality <= 95 or not 0 <= draft_slack < 1:
        raise ValueError("long_side and thumb_side must be ≥ 1, quality 1–95, draft_slack in [0, 1)")


def _decode(
    source: PhotoSource, info: PhotoInfo, long_side: int, draft_slack: float, loc: Loc
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``source`` as RGB, DCT-scaled for JPEG so that its long side stays ≥ about ``long_side``."""
    data = read_photo_source(source, PhotoLimits(max_bytes=info.size_bytes + 1), loc=loc)
    limits = PhotoLimits(
        max_bytes=info.size_bytes,
        max_pixels=info.width * info.height,
        allowed_formats=frozenset({info.format}),
    )
    # Not closed with a context manager: closing would also free the decoded pixels, and there is
    # no file handle to release (the source is a BytesIO).
    im = _open(data, [info.format], limits, loc)
    if (
        len(data) != info.size_bytes
        or im.size != (info.width, info.height)
        or _normalise_format(im.format) != info.format
    ):
        raise ValueError("info does not describe these bytes; pass the result of inspect_photo()")
    try:
        if info.format == "JPEG":
            scale = _dct_scale(im.size, long_side, draft_slack)
            if scale > 1:
                im.draft("RGB", (im.width // scale, im.height // scale))
        im.load()
        decoded_size = im.size
        return _flatten_to_rgb(im), decoded_size
    except _BOMB_ERRORS:
        raise _too_many_pixels(info.width * info.height, limits, loc) from None
    except _DECODE_ERRORS as exc:
        raise _corrupt(f"{type(exc).__name__}: {exc}", loc) from None


def _shrink_and_orient(im: Image.Image, info: PhotoInfo, side: int, reducing_gap: float) -> Image.Image:
    if max(im.size) > side:
        im = im.resize(_fit(im.size, side), Image.Resampling.LANCZOS, reducing_gap=reducing_gap)
    transpose = _ORIENTATION_TRANSPOSE.get(info.orientation)
    return im.transpose(transpose) if transpose is not None else im


def render_display(
    source: PhotoSource,
    info: PhotoInfo,
    *,
    long_side: int = 2048,
    quality: int = 85,
    draft_slack: float = 0.1,
    loc: Loc = None,
) -> Rendition:
    """Render only the public display JPEG (see :func:`render_photo` for the arguments and errors)."""
    _check_render_args(long_side, quality, draft_slack)
    im, _ = _decode(source, info, long_side, draft_slack, loc)
    return _encode_jpeg(_shrink_and_orient(im, info, long_side, 3.0), quality)


def render_thumbnail(
    source: PhotoSource,
    info: PhotoInfo,
    *,
    thumb_side: int = 320,
    quality: int = 85,
    draft_slack: float = 0.1,
    loc: Loc = None,
) -> tuple[Rendition, tuple[int, int]]:
    """Render only the thumbnail, decoding a JPEG at 1/8 scale when that still covers ``thumb_side``.

    This is the ingest-time rendition (goal G-I1: about the cost of the B3 draft pipeline). Same
    arguments and errors as :func:`render_photo`.

    Returns:
        The thumbnail and the size the decoder produced.
    """
    _check_render_args(thumb_side, quality, draft_slack)
    im, decoded = _decode(source, info, thumb_side, draft_slack, loc)
    return _encode_jpeg(_shrink_and_orient(im, info, thumb_side, 2.0), quality), decoded


def render_photo(
    source: PhotoSource,
    info: PhotoInfo,
    *,
    long_side: int = 2048,
    thumb_side: int = 320,
    quality: int = 85,
    draft_slack: float = 0.1,
    loc: Loc = None,
) -> Renditions:
    """Render the public display JPEG and thumbnail, auto-oriented, with all metadata stripped.

    For JPEG input the decoder is told the target size first (:meth:`PIL.Image.Image.draft`), so
    it scales by 1/2, 1/4 or 1/8 in the DCT domain instead of decoding every pixel. Pillow only
    offers those power-of-two scales, so a 4000×3000 photo can be decoded at 2000×1500 or at full
    size for a 2048 display. ``draft_slack`` settles that: the reduced decode is used when its long
    side is at least ``(1 - draft_slack) × long_side`` (default 10 %, i.e. ≥ 1843 px for 2048),
    and the display then keeps the decoded size (2000×1500) rather than paying ~3× the CPU for a
    full decode to gain 48 px. Set ``draft_slack=0`` to get exactly ``long_side`` when possible.
    Orientation is applied after shrinking, and the thumbnail is made from the display image.
    Alpha is composited on white; an embedded ICC profile is dropped with everything else.

    Args:
        source: The same bytes (or path) that were inspected.
        info: The result of :func:`inspect_photo` for ``source``.
        long_side: Longest side of the display rendition; images are never upscaled.
        thumb_side: Longest side of the thumbnail.
        quality: JPEG quality of both renditions (1–95).
        draft_slack: Fraction below ``long_side`` the display may come out when that allows a
            DCT-scaled JPEG decode (0 ≤ draft_slack < 1).
        loc: Location of the photo in the request, copied into errors.

    Returns:
        The display and thumbnail renditions.

    Raises:
        InvalidInput: ``photo.corrupt`` when decoding fails (e.g. a truncated file),
            ``photo.too_many_pixels`` when Pillow refuses the image as a decompression bomb.
        ValueError: ``info`` does not describe ``source``, or an argument is out of range.
    """
    _check_render_args(min(long_side, thumb_side), quality, draft_slack)
    im, decoded_size = _decode(source, info, long_side, draft_slack, loc)
    display = _shrink_and_orient(im, info, long_side, 3.0)
    thumb = display.resize(_fit(display.size, thumb_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return Renditions(
        display=_encode_jpeg(display, quality),
        thumbnail=_encode_jpeg(thumb, quality),
        decoded_size=decoded_size,
    )


def process_photo(
    source: PhotoSource,
    limits: PhotoLimits = DEFAULT_LIMITS,
    *,
    long_side: int = 2048,
    thumb_side: int = 320,
    quality: int = 85,
    draft_slack: float = 0.1,
    loc: Loc = None,
) -> ProcessedPhoto:
    """Inspect and render both renditions in one go, reading ``source`` once.

    Args:
        source: Image bytes, or a path to a file.
        limits: Budgets to enforce.
        long_side: See :func:`render_photo`.
        thumb_side: See :func:`render_photo`.
        quality: See :func:`render_photo`.
        draft_slack: See :func:`render_photo`.
        loc: Location of the photo in the request, copied into errors.

    Returns:
        The metadata and the renditions.

    Raises:
        InvalidInput: ``photo.empty``, ``photo.too_many_pixels``, ``photo.corrupt``.
        PayloadTooLarge: ``photo.too_large``.
        UnsupportedMedia: ``photo.unsupported_type``.
    """
    data = read_photo_source(source, limits, loc=loc)
    info = inspect_photo(data, limits, loc=loc)
    renditions = render_photo(
        data,
        info,
        long_side=long_side,
        thumb_side=thumb_side,
        quality=quality,
        draft_slack=draft_slack,
        loc=loc,
    )
    return ProcessedPhoto(info=info, renditions=renditions)


def prepare_photo(
    source: PhotoSource,
    limits: PhotoLimits = DEFAULT_LIMITS,
    *,
    thumb_side: int = 320,
    quality: int = 85,
    loc: Loc = None,
    sha256: str | None = None,
) -> PreparedPhoto:
    """The ingest-time work: validate, read EXIF, render the thumbnail only (G-I1).

    The display rendition is made later, from the stored original (:func:`render_display`). ``sha256``: the
    bytes' hash when the caller has it already (see :func:`inspect_photo`).

    Raises:
        Same as :func:`process_photo`.
    """
    data = read_photo_source(source, limits, loc=loc)
    info = inspect_photo(data, limits, loc=loc, sha256=sha256)
    thumb, _ = render_thumbnail(data, info, thumb_side=thumb_side, quality=quality, loc=loc)
    return PreparedPhoto(info=info, data=data, thumbnail=thumb)
