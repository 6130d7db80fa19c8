"""MapLibre glyph ranges (signed-distance-field PBFs) rendered from the machine's fonts, so map labels need no
glyph server on the internet. Chinese ideographs are drawn by MapLibre itself (``localIdeographFontFamily``);
this serves the rest (digits of grid codes, Latin letters, punctuation) and any range that is asked for.

The PBF is the ``glyphs.proto`` of the MapLibre style spec: fontstack {name, range, glyphs: [{id, bitmap,
width, height, left, top, advance}]}, bitmaps of (width + 6) × (height + 6) SDF bytes at 24 px.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = 24
BUFFER = 3
RADIUS = 8.0
CUTOFF = 0.25
FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for f in FONT_FILES:
        if Path(f).exists():
            return ImageFont.truetype(f, SIZE, layout_engine=ImageFont.Layout.BASIC)
    return ImageFont.load_default(SIZE)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _field(num: int, value: int | bytes, *, signed: bool = False) -> bytes:
    if isinstance(value, bytes):
        return _varint(num << 3 | 2) + _varint(len(value)) + value
    return _varint(num << 3) + _varint(_zigzag(value) if signed else value)


def _sdf(mask: np.ndarray) -> np.ndarray:
    """Signed-distance bytes of a boolean glyph mask (already padded by ``BUFFER``), TinySDF's encoding."""
    inside = np.argwhere(mask)
    outside = np.argwhere(~mask)
    pts = np.indices(mask.shape).reshape(2, -1).T
    if len(inside) == 0:
        d = np.full(len(pts), RADIUS)
    else:
        d_in = np.sqrt(((pts[:, None, :] - inside[None, :, :]) ** 2).sum(-1)).min(1)
        d_out = np.sqrt(((pts[:, None, :] - outside[None, :, :]) ** 2).sum(-1)).min(1) if len(outside) else 0
        d = np.where(mask.reshape(-1), -(d_out - 0.5), d_in - 0.5)
    v = 255 - 255 * (d / RADIUS + CUTOFF)
    return np.clip(np.round(v), 0, 255).astype(np.uint8).reshape(mask.shape)


def _glyph(cp: int) -> bytes | None:
    font = _font()
    ch = chr(cp)
    try:
        advance = round(font.getlength(ch))
        box = font.getbbox(ch)
    except (ValueError, OSError, RuntimeError):
        return None
    ascent = font.getmetrics()[0] if isinstance(font, ImageFont.FreeTypeFont) else SIZE
    x0, y0, x1, y1 = box
    w, h = max(0, x1 - x0), max(0, y1 - y0)
    fields = _field(1, cp)
    if w and h:
        img = Image.new("L", (w + 2 * BUFFER, h + 2 * BUFFER), 0)
        ImageDraw.Draw(img).text((BUFFER - x0, BUFFER - y0), ch, font=font, fill=255)
        mask = np.asarray(img) >= 128
        fields += _field(2, _sdf(mask).tobytes())
    # top: from the baseline up to the bitmap's top, less MapLibre's 24 px ascender convention
    top = (ascent - y0) - SIZE
    fields += _field(3, w) + _field(4, h) + _field(5, int(x0), signed=True) + _field(6, int(top), signed=True)
    fields += _field(7, advance)
    return fields


@functools.lru_cache(maxsize=256)
def _block(start: int) -> bytes:
    """The encoded glyphs of the 256 code points from ``start`` (the same machine font for every fontstack)."""
    out = b""
    for cp in range(start, start + 256):
        if cp < 32 or 0xD800 <= cp < 0xE000:
            continue
        g = _glyph(cp)
        if g is not None:
            out += _field(3, g)
    return out


def glyph_pbf(fontstack: str, start: int) -> bytes:
    """The PBF of the 256 code points from ``start``, named for ``fontstack`` (rendered once per block)."""
    stack = _field(1, fontstack.encode()) + _field(2, f"{start}-{start + 255}".encode()) + _block(start)
    return _field(1, stack)
