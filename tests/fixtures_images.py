"""Tiny, real encoded images for tests, made with Pillow (a test-only dependency; the library never imports it).

Every helper returns the encoded bytes of a solid-colour image of the requested size, so a test can compare
what :mod:`photomaker_bridge.images` reads from the header with what Pillow wrote.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

__all__ = [
    "gif_bytes",
    "jpeg_bytes",
    "png_bytes",
    "webp_bytes",
    "write_image",
]

_COLOUR = (200, 120, 40)


def _encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def png_bytes(width: int = 8, height: int = 8, *, mode: str = "RGB") -> bytes:
    """A PNG of ``width`` x ``height`` pixels (``mode`` ``RGB``, ``RGBA``, ``L`` or ``P``)."""
    return _encode(Image.new(mode, (width, height), _COLOUR if mode in ("RGB", "RGBA") else 7), "PNG")


def jpeg_bytes(width: int = 8, height: int = 8, *, progressive: bool = False, exif: bool = False,
               icc: bool = False, quality: int = 75) -> bytes:
    """A JPEG (baseline, or progressive with ``progressive=True``), optionally with EXIF and ICC segments
    before the frame header, so a parser must skip them."""
    image = Image.new("RGB", (width, height), _COLOUR)
    options: dict[str, object] = {"quality": quality}
    if progressive:
        options["progressive"] = True
    if exif:
        data = Image.Exif()
        data[0x0112] = 1  # orientation: normal
        data[0x010E] = "a test image " * 20  # a long description makes the APP1 segment non-trivial
        options["exif"] = data.tobytes()
    if icc:
        options["icc_profile"] = b"\x00" * 600
    return _encode(image, "JPEG", **options)


def webp_bytes(width: int = 8, height: int = 8, *, lossless: bool = False, extended: bool = False) -> bytes:
    """A WEBP: simple lossy (``VP8 ``), lossless (``VP8L``) or extended (``VP8X``: alpha plus EXIF)."""
    if extended:
        image = Image.new("RGBA", (width, height), (*_COLOUR, 128))
        exif = Image.Exif()
        exif[0x0112] = 1
        return _encode(image, "WEBP", lossless=lossless, exif=exif.tobytes())
    return _encode(Image.new("RGB", (width, height), _COLOUR), "WEBP", lossless=lossless)


def gif_bytes(width: int = 8, height: int = 8) -> bytes:
    """A GIF: a real image in a format the providers do not take."""
    return _encode(Image.new("P", (width, height), 3), "GIF")


def write_image(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory / name`` and return the path."""
    path = directory / name
    path.write_bytes(data)
    return path
