"""Pure helpers for image bytes: sniffing, dimensions, data URIs, archives, hashes. No network, no Pillow.

Formats are recognised by their magic bytes, never by file name: PNG, JPEG and WEBP are what all three
providers accept for reference photos (runware.md §5.1, eachlabs.md §3.1, fal.md §3.4 minus WEBP, see
:func:`zip_images`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import struct
import zipfile
from collections.abc import Sequence
from typing import Literal

__all__ = [
    "ZIP_MAX_BYTES",
    "ImageFormat",
    "build_data_uri",
    "content_type_of",
    "image_size",
    "parse_data_uri",
    "sha256_hex",
    "sniff_format",
    "zip_digest",
    "zip_images",
    "zip_size",
]

ImageFormat = Literal["png", "jpeg", "webp"]

_CONTENT_TYPES: dict[ImageFormat, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_EXTENSIONS: dict[ImageFormat, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}


def sniff_format(data: bytes) -> ImageFormat | None:
    """``"png"``, ``"jpeg"`` or ``"webp"`` from the magic bytes; ``None`` for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def content_type_of(image_format: ImageFormat) -> str:
    """The MIME type of a format: ``image/png`` ..."""
    return _CONTENT_TYPES[image_format]


def extension_of(image_format: ImageFormat) -> str:
    """The usual file extension of a format, without the dot: ``png``, ``jpg``, ``webp``."""
    return _EXTENSIONS[image_format]


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


# JPEG start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) share the range but not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xDA)):  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if marker in _SOF_MARKERS:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return int(width), int(height)
        position += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from the header, or ``None`` when the header cannot be read."""
    image_format = sniff_format(data)
    if image_format == "png":
        return _png_size(data)
    if image_format == "jpeg":
        return _jpeg_size(data)
    if image_format == "webp":
        return _webp_size(data)
    return None


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as lowercase hex: the key of upload caches."""
    return hashlib.sha256(data).hexdigest()


_DATA_URI = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<base64>;base64)?,",
                       re.IGNORECASE)


def parse_data_uri(uri: str) -> tuple[str | None, bytes]:
    """``(content_type, bytes)`` of a ``data:`` URI. Raises ``ValueError`` when it is not one."""
    match = _DATA_URI.match(uri)
    if not match:
        raise ValueError("not a data URI (expected data:<type>;base64,<data>)")
    payload = uri[match.end():]
    if match.group("base64"):
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"the data URI's base64 payload is invalid: {error}") from error
    else:
        from urllib.parse import unquote_to_bytes

        data = unquote_to_bytes(payload)
    return match.group("type"), data


def build_data_uri(data: bytes, content_type: str) -> str:
    """``data:<content_type>;base64,<data>``."""
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def _member_name(index: int, image_format: ImageFormat) -> str:
    return f"image_{index}.{extension_of(image_format)}"


def zip_images(images: Sequence[tuple[ImageFormat, bytes]]) -> bytes:
    """A ZIP archive holding the images at its root as ``image_1.jpg``, ``image_2.png`` ...

    Entries are STORED, not deflated: photos are already compressed, so deflating costs time for nothing.
    Names are generated (never the user's file names) so nothing unsafe or revealing lands in the archive.
    The archive is deterministic: fixed timestamps, so the same images give the same bytes (and hash).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for index, (image_format, data) in enumerate(images, start=1):
            info = zipfile.ZipInfo(_member_name(index, image_format), date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


_LOCAL_HEADER = 30
_CENTRAL_HEADER = 46
_END_RECORD = 22
"""Fixed sizes of a ZIP's records (APPNOTE.TXT §4.3.7, §4.3.12, §4.3.16), without names or extra fields."""


ZIP_MAX_BYTES = zipfile.ZIP64_LIMIT - 64 * 1024
"""Images totalling more than this need ZIP64 records, which :func:`zip_size` does not count (2 GiB less room for
the headers)."""


def zip_size(images: Sequence[tuple[ImageFormat, int]]) -> int:
    """The length of :func:`zip_images` for images of these formats and byte lengths, without building it.

    A STORED entry is its local header, its name and its bytes, plus a central directory entry and the end
    record (APPNOTE.TXT §4.3). Images totalling more than :data:`ZIP_MAX_BYTES` raise ``ValueError``.
    """
    total = sum(size for _, size in images)
    if total > ZIP_MAX_BYTES:
        raise ValueError(f"{total} bytes of images need a ZIP64 archive (at most {ZIP_MAX_BYTES})")
    names = sum(len(_member_name(index, image_format)) for index, (image_format, _) in enumerate(images, start=1))
    return total + len(images) * (_LOCAL_HEADER + _CENTRAL_HEADER) + 2 * names + _END_RECORD


def zip_digest(images: Sequence[tuple[ImageFormat, str]]) -> str:
    """A SHA-256 naming the bytes :func:`zip_images` makes of images with these formats and SHA-256s.

    The archive is deterministic (fixed names and timestamps), so its bytes follow from its members': the fal
    upload cache is keyed by this without building (or hashing) the archive.
    """
    lines = "".join(f"{image_format}:{sha256}\n" for image_format, sha256 in images)
    return sha256_hex(f"photomaker-bridge zip v1\n{lines}".encode())
