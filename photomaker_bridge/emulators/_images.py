"""Real, decodable images for the emulators: deterministic per seed, different per style.

PNG is written with the standard library only (zlib); JPG and WEBP need Pillow, which the ``emulators`` and
``dev`` extras install. Rendering is cached, so a benchmark that asks for the same picture many times pays
for it once.

Each picture is a few horizontal bands and vertical stripes whose colours come from the seed, with a palette
and stripe pattern chosen by the style, plus a stylised "face" disc in the middle so a page of results shows
at a glance which style and seed made which image.
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct
import zlib
from typing import Literal

__all__ = ["ImageFormat", "content_type", "render_image", "sniff_format"]

ImageFormat = Literal["PNG", "JPEG", "WEBP"]

_CONTENT_TYPES: dict[str, str] = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def content_type(image_format: ImageFormat) -> str:
    """The MIME type of a format."""
    return _CONTENT_TYPES[image_format]


def sniff_format(data: bytes) -> Literal["PNG", "JPEG", "WEBP"] | None:
    """The format named by the file's magic bytes, or ``None`` when it is none of PNG, JPEG, WEBP."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _palette(seed: int, style: str) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(f"{style.lower()}|{seed}".encode()).digest()
    colours = [(digest[i], digest[i + 1], digest[i + 2]) for i in range(0, 24, 3)]
    # The style decides the overall tone so that two styles with the same seed still look different.
    tone = hashlib.sha256(style.lower().encode()).digest()
    return [((r + tone[0]) // 2, (g + tone[1]) // 2, (b + tone[2]) // 2) for r, g, b in colours]


def _rows(seed: int, style: str, width: int, height: int) -> list[bytes]:
    palette = _palette(seed, style)
    stripes = 2 + (sum(style.encode()) % 6)
    stripe_width = max(1, width // (stripes * 2))
    band_height = max(1, height // 4)
    centre_x, centre_y, radius = width // 2, height // 2, min(width, height) // 4
    face = bytes(palette[7])
    rows: list[bytes] = []
    cache: dict[tuple[int, int, int], bytes] = {}
    for y in range(height):
        band = min(3, y // band_height)
        base = bytes(palette[band])
        stripe = bytes(palette[4 + band % 3])
        dy = y - centre_y
        half = int((radius * radius - dy * dy) ** 0.5) if abs(dy) < radius else -1
        key = (band, half, 0)
        row = cache.get(key)
        if row is None:
            unit = base * stripe_width + stripe * stripe_width
            line = bytearray((unit * (width * 3 // len(unit) + 2))[: width * 3])
            if half >= 0:
                start, end = max(0, centre_x - half), min(width, centre_x + half)
                line[start * 3:end * 3] = face * (end - start)
            row = bytes(line)
            cache[key] = row
        rows.append(row)
    return rows


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


@functools.lru_cache(maxsize=256)
def render_image(*, seed: int, style: str, width: int, height: int, image_format: ImageFormat = "PNG",
                 quality: int = 90) -> bytes:
    """Encoded bytes of a ``width`` × ``height`` picture for this seed and style.

    ``quality`` (1–100) is the JPEG/WEBP compression quality, so a lower one gives smaller, coarser files;
    PNG is lossless and ignores it.

    Raises ``RuntimeError`` for JPEG or WEBP when Pillow is not installed (``pip install
    photomaker-bridge[emulators]``).
    """
    rows = _rows(seed, style, width, height)
    png = _png(width, height, rows)
    if image_format == "PNG":
        return png
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise RuntimeError(
            f"the emulators need Pillow to produce {image_format}: pip install 'photomaker-bridge[emulators]'"
        ) from error
    picture = Image.open(io.BytesIO(png)).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format, quality=quality)
    return buffer.getvalue()
